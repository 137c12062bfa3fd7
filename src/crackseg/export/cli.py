"""The ``crackseg export`` command (argument parsing; the work is in :mod:`.exporter`)."""

from __future__ import annotations

import sys

DESCRIPTION = """\
Export a model to ONNX or TorchScript for deployment. MODEL_OR_CHECKPOINT is pretrained:NAME
(default: pretrained:default, the shipped CarNet), a checkpoint (.safetensors file or run
folder), or a registered model name (random initialisation, for testing).

The file holds the network's core (normalised NCHW float32 in, logits out; batch, height and
width dynamic, height and width multiples of the size divisor) and, inside it, the metadata
crackseg predict needs: normalisation, size divisor, threshold, model and model-card names.
Every export is checked as it is written: the runtime that will run it (onnxruntime, or
torch.jit.load) must reproduce PyTorch's logits within --tolerance (max absolute difference) on
random and on synthetic crack images at two sizes, one not a multiple of 16; otherwise nothing
is written. Run the file with:
  crackseg predict photo.jpg --checkpoint FILE.onnx      (onnxruntime; no torch needed)
  crackseg predict photo.jpg --checkpoint FILE.pt        (TorchScript)
"""


def add_export_parser(sub, fmt) -> None:
    p = sub.add_parser(
        "export",
        help="export a model to ONNX or TorchScript, checked against PyTorch",
        description=DESCRIPTION,
        formatter_class=fmt,
    )
    p.add_argument(
        "source",
        nargs="?",
        default="pretrained:default",
        metavar="MODEL_OR_CHECKPOINT",
        help="pretrained:NAME, a checkpoint, or a model name (default: %(default)s)",
    )
    p.add_argument(
        "--format",
        metavar="{onnx,torchscript}",
        help="file format (default: by the --out suffix, .onnx or .pt)",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="file to write")
    p.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="largest max absolute logit difference to PyTorch accepted (default: %(default)g)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from .exporter import export_model

    result = export_model(args.source, args.format, args.out, tolerance=args.tolerance)
    if args.json:
        import json

        print(json.dumps(result.to_dict(), indent=2))
        return 0
    meta = result.metadata
    mb = result.path.stat().st_size / 2**20
    print(
        f"exported {meta.source} ({meta.name}, model {meta.model}) -> {result.path} "
        f"({result.format}, {mb:.1f} MiB, {result.detail}) in {result.seconds:.1f} s"
    )
    print(f"parity with PyTorch, max |logit difference| (tolerance {result.tolerance:g}):")
    for check in result.checks:
        print(f"  {check.line()}")
    print(f"run it: crackseg predict photo.jpg --checkpoint {result.path}", file=sys.stderr)
    return 0
