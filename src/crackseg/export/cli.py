"""The ``crackseg export`` command (argument parsing; the work is in :mod:`.exporter`)."""

from __future__ import annotations

import sys

DESCRIPTION = """\
Export a model to ONNX, OpenVINO or TorchScript for deployment, in fp32 or (--int8, ONNX and
OpenVINO) quantised to int8 for CPUs. MODEL_OR_CHECKPOINT is pretrained:NAME (default:
pretrained:default, the shipped CarNet), a checkpoint (.safetensors file or run folder), a
registered model name (random initialisation, for testing), or an fp32 FILE.onnx written by
crackseg export (quantised with --int8 or converted with --format openvino as it is, its own
logits the reference: no second export from PyTorch).

The file holds the network's core (normalised NCHW float32 in, logits out; batch, height and
width dynamic, height and width multiples of the size divisor) and, inside it, the metadata
crackseg predict needs: normalisation, size divisor, threshold, model and model-card names.
Every export is checked as it is written: the runtime that will run it (onnxruntime, OpenVINO or
torch.jit.load) must reproduce PyTorch's logits within --tolerance (max absolute difference) on
random and on synthetic crack images at two sizes, one not a multiple of 16; otherwise nothing
is written.

--int8: post-training static quantisation calibrated on --calib-images images of --calib: a
dataset spec (its train split, e.g. deepcrack:data/deepcrack; repeat --calib for several), a
folder of photos, or synthetic crack photos (the default; calibrating on photos like those you
will predict is better). --format onnx: onnxruntime quantize_static, QDQ, per-channel weights;
--format openvino: NNCF. An int8 file is checked against the fp32 maps (PyTorch's, or the fp32
ONNX source's) on synthetic crack photos: at most --tolerance (default 1%) of the mask pixels
may flip.

Run the file with:
  crackseg predict photo.jpg --checkpoint FILE.onnx      (onnxruntime; no torch needed)
  crackseg predict photo.jpg --checkpoint FILE.xml       (OpenVINO; no torch needed)
  crackseg predict photo.jpg --checkpoint FILE.pt        (TorchScript)
"""


def add_export_parser(sub, fmt) -> None:
    p = sub.add_parser(
        "export",
        help="export a model to ONNX, OpenVINO or TorchScript (int8: --int8), checked against "
        "PyTorch",
        description=DESCRIPTION,
        formatter_class=fmt,
    )
    p.add_argument(
        "source",
        nargs="?",
        default="pretrained:default",
        metavar="MODEL_OR_CHECKPOINT",
        help="pretrained:NAME, a checkpoint, a model name, or an fp32 crackseg FILE.onnx "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--format",
        metavar="{onnx,openvino,torchscript}",
        help="file format (default: by the --out suffix, .onnx, .xml or .pt; OpenVINO writes "
        "FILE.xml and FILE.bin)",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="file to write")
    p.add_argument(
        "--tolerance",
        type=float,
        help="largest max absolute logit difference to PyTorch accepted (default: 1e-4); with "
        "--int8, largest share of mask pixels flipped against PyTorch's fp32 mask (default: 0.01)",
    )
    q = p.add_argument_group("int8")
    q.add_argument(
        "--int8",
        action="store_true",
        help="quantise to int8 (post-training, static): --format onnx (onnxruntime) or openvino",
    )
    q.add_argument(
        "--calib",
        action="append",
        metavar="DATA_SPEC",
        help="calibration images: a dataset spec (its train split, e.g. deepcrack:PATH), a "
        "folder of photos, or 'synthetic' (default); repeat for several",
    )
    q.add_argument(
        "--calib-images",
        type=int,
        default=32,
        metavar="N",
        help="calibration images drawn (one crop of at most 512x512 each; default: %(default)s)",
    )
    q.add_argument(
        "--int8-scheme",
        choices=["u8s8", "s8s8"],
        help="--format onnx: activation / weight types (default u8s8 with 7-bit weights: every "
        "convolution runs as an integer kernel on x86; see crackseg.export.quantize)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from .exporter import export_model

    result = export_model(
        args.source,
        args.format,
        args.out,
        tolerance=args.tolerance,
        int8=args.int8,
        calib=args.calib,
        calib_images=args.calib_images,
        int8_scheme=args.int8_scheme,
    )
    if args.json:
        import json

        print(json.dumps(result.to_dict(), indent=2))
        return 0
    meta = result.metadata
    mb = result.bytes / 2**20
    print(
        f"exported {meta.source} ({meta.name}, model {meta.model}) -> {result.path} "
        f"({result.format}, {mb:.1f} MiB, {result.detail}) in {result.seconds:.1f} s"
    )
    if result.precision == "int8":
        calib = meta.quantization.get("calibration", {})
        print(
            f"int8: {meta.quantization.get('scheme')}; calibrated on {calib.get('images')} "
            f"image(s) of {calib.get('source')}"
        )
        print(
            f"parity with the fp32 maps of {result.reference}, share of mask pixels flipped "
            f"(tolerance {result.tolerance:.2%}):"
        )
    else:
        print(
            f"parity with {result.reference}, max |logit difference| (tolerance "
            f"{result.tolerance:g}):"
        )
    for check in result.checks:
        print(f"  {check.line()}")
    if result.precision == "int8" and not args.calib:
        print(
            "note: calibrated on synthetic crack photos; --calib DATA_SPEC (training photos, e.g. "
            "deepcrack:PATH) or --calib FOLDER (photos like yours) calibrates on real ones",
            file=sys.stderr,
        )
    print(f"run it: crackseg predict photo.jpg --checkpoint {result.path}", file=sys.stderr)
    return 0
