"""The ``crackseg`` command line. Run ``crackseg --help`` or ``crackseg COMMAND --help``."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import warnings

DESCRIPTION = """\
crackseg: pixel-wise crack segmentation for road and concrete photos.

commands:
  predict    find cracks in photos, folders and videos with the shipped CarNet (or a checkpoint);
             --measure adds crack length / width / orientation and an HTML report
  serve      an HTTP API and a page to upload photos to (pip install 'crackseg[serve]')
  demo       train and evaluate CarNet on built-in synthetic data (no downloads, ~4 min on CPU)
  models     list the registered models
  info       parameters, FLOPs, per-stage shapes and conv-layer counts of a model
  benchmark  every model side by side: params, FLOPs, CPU latency on its fastest path, memory;
             --profile MODEL shows where one model spends its time
  synth      write a synthetic crack dataset (images/ + masks/) under sunny/rainy/night light
  train      train a model from a YAML config with --set overrides; --resume continues a run
  recalibrate  recompute a run's BatchNorm statistics on training crops (precise BN)
  evaluate   score a checkpoint on a dataset, or probability maps on disk, with ODS/OIS/AP
  export     write a model as ONNX, OpenVINO or TorchScript (checked against PyTorch), --int8
             quantised for CPUs; crackseg predict --checkpoint FILE.onnx runs it with
             onnxruntime (FILE.xml: OpenVINO), without torch

Run 'crackseg COMMAND --help' for the options of each command.
"""


def _cmd_demo(args) -> int:
    from .engine.demo import run_demo

    m = run_demo(args.out, quick=args.quick, seed=args.seed)
    return 0 if m["F1@0.5"] >= 0 else 1


def _cmd_models(args) -> int:
    from .errors import TRAINING_MODULES, CrackSegError
    from .inference.graphs import graph_files
    from .models import list_models
    from .models.pretrained import get_weights, list_pretrained, weights_dir

    if args.card:
        print(get_weights(args.card).card())
        return 0
    if args.pretrained:
        shipped = list_pretrained()
        if not shipped:
            print("no pretrained weights are shipped in this installation")
        for w in shipped:
            dc = w.metrics.get("deepcrack", {}).get("ODS_2px")
            c5 = w.metrics.get("crack500", {}).get("ODS_2px")
            scores = f"ODS@2px DeepCrack {dc:.3f}, CRACK500 {c5:.3f}; " if dc and c5 else ""
            print(f"{w.name:24s} model {w.model}, {w.params / 1e6:.2f} M params, {scores}"
                  f"threshold {w.threshold:.3f}")  # fmt: skip
            print(f"{'':24s} {w.summary}")
            graphs = graph_files(w.name, weights_dir())
            if graphs:
                print(f"{'':24s} exported graphs: {', '.join(sorted(graphs))} (OpenVINO; "
                      "crackseg predict runs them without PyTorch)")  # fmt: skip
        print("model card: crackseg models --card NAME; in Python: "
              "crackseg.create_model('carnet', weights='default')")  # fmt: skip
        return 0
    names = list_models(args.pattern)
    if not names:
        raise CrackSegError(
            f"no model matches {args.pattern!r}: 'crackseg models' lists all {len(list_models())}"
        )
    try:
        from .models import model_builder
    except ModuleNotFoundError as e:  # the light install: the names, without the builders' docs
        if (e.name or "").split(".")[0] not in TRAINING_MODULES:
            raise
        print("\n".join(names))
        print('(descriptions and create_model need PyTorch: pip install "crackseg[train]")')
        return 0
    for name in names:
        doc = (model_builder(name).__doc__ or "").strip().splitlines()[0]
        print(f"{name:24s} {doc}")
    return 0


def _cmd_info(args) -> int:
    import torch

    from .bench import measure_latency
    from .models import create_model
    from .models.summary import machine_info, model_facts

    h, w = args.size
    if not (8 <= h <= 16384 and 8 <= w <= 16384):
        raise ValueError(f"--size {h} {w}: height and width must be 8..16384 pixels")
    if args.runs < 1 or args.threads < 1:
        raise ValueError("--runs and --threads must be at least 1")
    model = create_model(args.model)
    facts = model_facts(model, args.model, h, w)
    out = facts.to_dict()
    if args.latency:
        torch.set_num_threads(args.threads)
        out["latency_cpu"] = measure_latency(
            model,
            h,
            w,
            runs=args.runs,
            threads=args.threads,
            channels_last=args.channels_last,
            bf16=args.bf16,
        )
        out["machine"] = machine_info()
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{args.model} at 1x3x{h}x{w}")
    print(f"  parameters      {facts.params:,} ({facts.params / 1e6:.3f} M)")
    print(
        f"  FLOPs           {facts.flops / 1e9:.3f} G  (= {facts.macs / 1e9:.3f} G MACs; "
        "conv/matmul only, torch.utils.flop_counter)"
    )
    print(
        f"  conv layers     encoder {facts.encoder_conv_layers}, decoder "
        f"{facts.decoder_conv_layers}"
    )
    print(
        f"  encoder params  {facts.encoder_params / 1e6:.3f} M, decoder "
        f"{facts.decoder_params / 1e6:.3f} M"
    )
    if facts.stages:
        print("  stage  stride  output shape          convs   params")
        for s in facts.stages:
            shape = "x".join(map(str, s.shape))
            print(f"  {s.index:5d}  {s.stride:6d}  {shape:20s}  {s.conv_layers:5d}  {s.params:,}")
    if args.latency:
        lat = out["latency_cpu"]
        print(
            f"  CPU latency     median {lat['median_ms']:.1f} ms (p90 {lat['p90_ms']:.1f}, "
            f"{lat['fps']:.1f} FPS) over "
            f"{lat['runs']} runs, batch 1, {lat['threads']} threads, "
            f"{'NHWC' if lat['channels_last'] else 'NCHW'}, {'bf16' if lat['bf16'] else 'fp32'}, "
            f"{out['machine']['cpu']}"
        )
    return 0


def _cmd_synth(args) -> int:
    from .data.synth import write_dataset

    out = write_dataset(
        args.out, n=args.n, size=args.size, condition=args.condition, seed=args.seed
    )
    print(f"wrote {args.n} images to {out}/images and masks to {out}/masks")
    return 0


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog="crackseg", description=DESCRIPTION, formatter_class=fmt)
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    from .bench.cli import add_benchmark_parser
    from .engine.cli import add_evaluate_parser, add_train_parsers
    from .inference.cli import add_predict_parser
    from .serve.cli import add_serve_parser

    add_predict_parser(sub, fmt)
    add_serve_parser(sub, fmt)

    from .export.cli import add_export_parser

    add_export_parser(sub, fmt)

    d = sub.add_parser(
        "demo",
        help="end-to-end demo on built-in synthetic data",
        description=textwrap.dedent(_module_doc("crackseg.engine.demo")),
        formatter_class=fmt,
    )
    d.add_argument("--out", default="crackseg-demo", help="output folder (default: %(default)s)")
    d.add_argument("--quick", action="store_true", help="tiny run in seconds (for tests/smoke)")
    d.add_argument("--seed", type=int, default=0, help="data and training seed")
    d.set_defaults(func=_cmd_demo)

    m = sub.add_parser("models", help="list registered models")
    m.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'carnet*'")
    m.add_argument("--pretrained", action="store_true", help="list the shipped pretrained weights")
    m.add_argument("--card", metavar="NAME", help="print the model card of shipped weights NAME")
    m.set_defaults(func=_cmd_models)

    i = sub.add_parser(
        "info",
        help="params, FLOPs, stage shapes and conv counts of a model",
        description="Model facts. FLOPs count a multiply-add as 2 (MACs = FLOPs/2),"
        " convolutions and matmuls only (torch.utils.flop_counter).",
    )
    i.add_argument("model", help="registered model name (see 'crackseg models')")
    i.add_argument(
        "--size",
        nargs=2,
        type=int,
        default=[512, 512],
        metavar=("H", "W"),
        help="input size for FLOPs and shapes (default: 512 512)",
    )
    i.add_argument("--latency", action="store_true", help="also time CPU inference at batch 1")
    i.add_argument("--runs", type=int, default=20, help="timed runs for --latency (median)")
    i.add_argument("--threads", type=int, default=2, help="CPU threads for --latency")
    i.add_argument(
        "--channels-last", action="store_true", help="--latency with NHWC tensors (often faster)"
    )
    i.add_argument(
        "--bf16", action="store_true", help="--latency under bfloat16 autocast (AVX-512 BF16/AMX)"
    )
    i.add_argument("--json", action="store_true", help="print machine-readable JSON")
    i.set_defaults(func=_cmd_info)

    add_benchmark_parser(sub, fmt)

    s = sub.add_parser(
        "synth",
        help="write a synthetic crack dataset",
        description="Procedural pavement images with exact crack masks. Writes "
        "OUT/images/*.png, OUT/masks/*.png (0/255) and OUT/manifest.json; "
        "deterministic by --seed.",
    )
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--n", type=int, default=200, help="number of images (default: 200)")
    s.add_argument("--size", type=int, default=512, help="square image size (default: 512)")
    s.add_argument(
        "--condition", default="all", help="sunny, rainy, night, or all (cycles the three; default)"
    )
    s.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    s.set_defaults(func=_cmd_synth)

    add_train_parsers(sub, fmt)
    add_evaluate_parser(sub, fmt)
    return p


def _module_doc(name: str) -> str:
    """A module's docstring, read from its source without importing it (the demo's module needs
    torch; building the parser must not load it)."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin:
        return ""
    with open(spec.origin, encoding="utf-8") as f:
        return ast.get_docstring(ast.parse(f.read())) or ""


def _version() -> str:
    from . import __version__

    return f"crackseg {__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    # the one place where errors become messages (crackseg/errors.py says which are expected):
    # an expected failure is one line and exit code 2; a bug keeps its traceback
    from .errors import debug_enabled, user_message

    show = warnings.showwarning
    if not debug_enabled():
        warnings.showwarning = _plain_warning
    try:
        return args.func(args)
    except KeyboardInterrupt as e:
        print(f"crackseg: interrupted{': ' + str(e) if str(e) else ''}", file=sys.stderr)
        return 130
    except (ValueError, KeyError, OSError, ImportError) as e:
        msg = user_message(e)
        if msg is None or debug_enabled():
            raise
        print(f"crackseg {args.command}: error: {msg}", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = show


def _plain_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one plain line (``crackseg: warning: ...``), without Python's source line."""
    from tqdm import tqdm

    text = " ".join(str(message).split())
    tqdm.write(f"crackseg: warning: {text}", file=file or sys.stderr)  # on its own line


if __name__ == "__main__":
    sys.exit(main())
