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
    from .errors import CrackSegError
    from .models import list_models, model_builder
    from .models.pretrained import get_weights, list_pretrained

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
        print("model card: crackseg models --card NAME; in Python: "
              "crackseg.create_model('carnet', weights='default')")  # fmt: skip
        return 0
    names = list_models(args.pattern)
    if not names:
        raise CrackSegError(
            f"no model matches {args.pattern!r}: 'crackseg models' lists all {len(list_models())}"
        )
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


def _parse_sizes(text: str) -> list[tuple[int, int]]:
    from .bench import BenchmarkError

    sizes = []
    for item in text.split(","):
        h, sep, w = item.strip().lower().partition("x")
        if not (sep and h.isdigit() and w.isdigit()):
            raise BenchmarkError(f"--flops-sizes {text!r}: give HxW sizes, e.g. 512x512,384x544")
        sizes.append((int(h), int(w)))
    return sizes


def _cmd_benchmark(args) -> int:
    from . import bench

    threads = args.threads or bench.default_threads()
    if threads < 1:
        raise bench.BenchmarkError("--threads must be at least 1")
    out = bench.prepare_out(args.out or bench.default_out_dir(threads))  # fail before the work
    if args.rescore:
        if not args.accuracy:
            raise bench.BenchmarkError("--rescore needs --accuracy FILE (the new accuracy columns)")
        earlier = bench.read_json(args.rescore, "--rescore")
        record = bench.rescore(earlier, args.accuracy)
        paths = bench.write_outputs(record, out, args.name)
        print(paths["md"].read_text(), end="")
        print(
            f"wrote {paths['md']}, {paths['json'].name} and {paths['png'].name} (timings of "
            f"{record['date']}, accuracy from {args.accuracy})"
        )
        return 0
    if args.profile:
        h, w = args.size
        if not (8 <= h <= 16384 and 8 <= w <= 16384):
            raise bench.BenchmarkError(f"--size {h} {w}: height and width must be 8..16384")
        paths, _ = bench.candidate_paths(compile=args.compile, bf16=args.bf16)
        by_name = {p.name: p for p in paths}
        if args.path not in by_name:
            raise bench.BenchmarkError(
                f"--path {args.path!r} is not available here; choose from {', '.join(by_name)}"
            )
        runs = 2 if args.quick else args.profile_runs
        if runs < 1:
            raise bench.BenchmarkError("--profile-runs must be at least 1")
        prof = bench.profile_model(
            args.profile, height=h, width=w, runs=runs, threads=threads, path=by_name[args.path]
        )
        print(bench.format_profile(prof))
        dest = out / f"profile_{args.profile}.json"
        dest.write_text(json.dumps(prof, indent=2) + "\n")
        print(f"wrote {dest}")
        return 0
    cfg = bench.BenchConfig(
        models=args.models,
        references=not args.no_references,
        height=args.size[0],
        width=args.size[1],
        flops_sizes=_parse_sizes(args.flops_sizes),
        threads=threads,
        runs=args.runs,
        warmup=args.warmup,
        screen_runs=args.screen_runs,
        batch=args.batch,
        batch_runs=args.batch_runs,
        compile=args.compile,
        bf16=args.bf16,
        memory=not args.no_memory,
        gpu=not args.no_gpu,
        accuracy=args.accuracy,
        quick=args.quick,
    )
    record = bench.run_benchmark(cfg, progress=not args.no_progress)
    paths = bench.write_outputs(record, out, args.name)
    print(paths["md"].read_text(), end="")
    print(f"wrote {paths['md']}, {paths['json'].name} and {paths['png'].name}")
    return 0


def _cmd_synth(args) -> int:
    from .data.synth import write_dataset

    out = write_dataset(
        args.out, n=args.n, size=args.size, condition=args.condition, seed=args.seed
    )
    print(f"wrote {args.n} images to {out}/images and masks to {out}/masks")
    return 0


def _cmd_train(args) -> int:
    from .engine.train import load_config, train

    if args.resume:
        if args.config or args.set:
            raise ValueError("--resume continues a run with its saved config: drop CONFIG/--set")
        if args.overwrite:
            raise ValueError("--resume continues a run: --overwrite starts a new one; drop one")
        summary = train(None, resume=args.resume)  # type: ignore[arg-type]
    else:
        cfg = load_config(args.config, args.set)
        summary = train(cfg, overwrite=args.overwrite)
    if summary.get("skipped"):
        print(f"skipped {len(summary['skipped'])} bad pair(s) (listed in summary.json):")
        for k in summary["skipped"]:
            print(f"  {k['image']}: {k['reason']}")
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_recalibrate(args) -> int:
    from .engine.train import recalibrate_run

    info = recalibrate_run(args.run, tag=args.tag, batches=args.batches)
    print(
        f"recomputed BatchNorm statistics of {info['checkpoint']} (step {info['step']}) over "
        f"{info['batches']} batches of training crops; original weights kept in {info['raw']}"
    )
    return 0


def _cmd_evaluate(args) -> int:
    from .engine import evaluate as ev

    if bool(args.pred) == bool(args.checkpoint):
        raise ValueError("give either --pred DIR --gt DIR, or --checkpoint RUN_OR_FILE --data SPEC")
    ev.check_tolerance(args.tolerance, "--tolerance")  # before a model is loaded
    if args.negatives:
        if args.pred:
            raise ValueError("--negatives needs --checkpoint (the model to run on the photos)")
        if args.out:
            ev.prepare_out_dir(args.out)
        if not args.data:
            return _false_alarms(args)
    common = dict(
        tolerance=args.tolerance,
        matching=args.matching,
        num_thresholds=args.thresholds,
        fixed_threshold=args.threshold,
    )
    if args.out:
        ev.prepare_out_dir(args.out)  # a bad --out fails now, not after the work
    if args.pred:
        if args.scale is not None:
            raise ValueError("--scale applies to --checkpoint (the maps of --pred are given)")
        if not args.gt:
            raise ValueError("--pred needs --gt DIR (the ground-truth masks)")
        result = ev.evaluate_dirs(
            args.pred,
            args.gt,
            out_dir=args.out,
            allow_missing=args.allow_missing,
            skip_bad=args.skip_bad,
            color_maps=args.color_maps,
            **common,
        )
    else:
        if not args.data:
            raise ValueError(
                "--checkpoint needs --data SPEC (e.g. --data deepcrack:PATH) or --negatives DIR"
            )
        if args.allow_missing or args.color_maps:
            raise ValueError("--allow-missing and --color-maps apply to --pred maps only")
        scale = {} if args.scale is None else {"scale": args.scale}
        result = ev.evaluate_checkpoint(
            args.checkpoint,
            args.data,
            split=args.split,
            out_dir=args.out,
            save_maps=args.save_maps,
            skip_bad=args.skip_bad,
            tta=args.tta,
            precision=args.precision,
            trust_checkpoint=args.trust_checkpoint,
            **scale,
            **common,
        )
    print(ev.format_table(result))
    if args.out:
        print(f"wrote metrics.json, per_image.csv and pr_curve.png to {args.out}")
    return _false_alarms(args) if args.negatives else 0


def _false_alarms(args) -> int:
    """``evaluate --negatives DIR``: what the checkpoint reports on crack-free photos."""
    from .engine.evaluate import load_predictor
    from .engine.false_alarms import false_alarms, format_false_alarms, write_false_alarms

    options = dict(precision=args.precision, tta=args.tta)
    if args.scale is not None:
        options["scale"] = args.scale
    predictor, _ = load_predictor(args.checkpoint, args.trust_checkpoint, **options)
    record = false_alarms(predictor, args.negatives)
    record["checkpoint"] = str(args.checkpoint)
    record["predictor"] = predictor.describe()
    print(format_false_alarms(record))
    if args.out:
        write_false_alarms(record, args.out)
        print(f"wrote false_alarms.json and false_alarms.csv to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog="crackseg", description=DESCRIPTION, formatter_class=fmt)
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    from .inference.cli import add_predict_parser, parse_scale
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

    t = sub.add_parser(
        "train",
        help="train a model (YAML config + --set overrides)",
        description=textwrap.dedent("""\
        Train a model. CONFIG is a YAML file of TrainConfig keys, or the name of a recipe
        shipped with crackseg (e.g. carnet_deepcrack); --set key=value overrides any key
        (values parsed as YAML), e.g.
          --set lr=3e-4 --set train_data=[deepcrack:DIR,crack500:DIR2]
        Relative dataset paths resolve against the current folder. Every value, the data and
        the validation split are checked before anything is written. The resolved config,
        log.csv, TensorBoard logs and best/last checkpoints (safetensors) are written to
        out_dir; a folder that already holds a run is refused (--overwrite replaces it).
        --resume RUN_DIR continues a run exactly where it stopped.

        recipes: """)
        + ", ".join(_recipes())
        + "\n\nconfig keys (defaults in src/crackseg/engine/train.py):\n"
        + textwrap.fill(", ".join(_config_keys()), 92, initial_indent="  ", subsequent_indent="  "),
        formatter_class=fmt,
    )
    t.add_argument("config", nargs="?", help="YAML config file")
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (repeatable)",
    )
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    t.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in out_dir (by default an existing run is refused)",
    )
    t.set_defaults(func=_cmd_train)

    r = sub.add_parser(
        "recalibrate",
        help="recompute a run's BatchNorm statistics on training crops (precise BN)",
        description=textwrap.dedent("""\
        Precise BN for a finished run: recompute the BatchNorm running statistics of
        RUN/<tag>.safetensors as a plain average over batches of training crops (drawn as in
        training, seeded by the checkpoint's step), exactly what `crackseg train` does for its
        checkpoints when bn_recalib > 0 (the default). For runs trained with bn_recalib=0 or by an
        older crackseg. Only BN buffers change; the original file is kept as <tag>_raw.safetensors
        and re-running starts from it again."""),
        formatter_class=fmt,
    )
    r.add_argument("run", help="run folder written by crackseg train (needs its config.yaml)")
    r.add_argument(
        "--tag", default="last", choices=["last", "best"], help="checkpoint (default: last)"
    )
    r.add_argument(
        "--batches",
        type=int,
        default=None,
        help="batches of crops (default: the run's bn_recalib, else 100)",
    )
    r.set_defaults(func=_cmd_recalibrate)

    e = sub.add_parser(
        "evaluate",
        help="ODS / OIS / AP of a checkpoint or of maps on disk",
        description=textwrap.dedent("""\
        The field's protocol: threshold sweep, ODS (best F at one threshold for the dataset), OIS
        (mean of per-image best F), AP, with a pixel tolerance; plus F1 / IoU at a fixed threshold.
        Either --checkpoint RUN_OR_FILE --data SPEC (SPEC: deepcrack:PATH, crack500:PATH,
        folder:IMAGES:MASKS, ...; repeatable), or --pred DIR --gt DIR with 8-bit probability
        PNGs named <stem>_prob.png or <stem>.png. With --negatives DIR (a folder of crack-free
        photos, sub-folders as surface groups) it also counts false alarms as crackseg predict
        --measure reports them: the share of photos with a crack, and of pixels marked."""),
        formatter_class=fmt,
    )
    e.add_argument(
        "--checkpoint",
        help="run folder (uses best), .safetensors file, pretrained:NAME (shipped weights, "
        "pretrained:default for the shipped CarNet), or a crackseg export (.onnx, OpenVINO "
        ".xml, TorchScript .pt; run by its runtime)",
    )
    e.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="load a TorchScript .pt --checkpoint: it is a program that runs when loaded, so "
        "only for files you made yourself",
    )
    e.add_argument("--data", action="append", help="dataset spec (repeatable)")
    e.add_argument("--split", default="test", help="split of preset datasets (default: test)")
    e.add_argument(
        "--negatives",
        metavar="DIR",
        help="with --checkpoint: also (or, without --data, only) count false alarms on a folder "
        "of crack-free photos: the share of photos with a reported crack and of pixels marked, "
        "per sub-folder (surface group); writes false_alarms.json / .csv to --out",
    )
    e.add_argument("--pred", help="folder of probability maps")
    e.add_argument("--gt", help="folder of ground-truth masks")
    e.add_argument(
        "--tolerance",
        type=float,
        default=2.0,
        help="matching tolerance in pixels, 0 = exact (default: 2)",
    )
    e.add_argument(
        "--matching",
        choices=["distance", "bsds"],
        default="distance",
        help="distance-transform rule (default) or one-to-one BSDS matching "
        "(needs pip install 'crackseg[bsds]')",
    )
    e.add_argument("--thresholds", type=int, default=255, help="threshold levels (default: 255)")
    e.add_argument("--threshold", type=float, default=0.5, help="fixed threshold for F1 / IoU")
    e.add_argument("--out", help="folder for metrics.json, per_image.csv, pr_curve.png")
    e.add_argument(
        "--save-maps",
        action="store_true",
        help="with --checkpoint: also write <stem>_prob.png maps to --out",
    )
    e.add_argument(
        "--tta",
        action="store_true",
        help="with --checkpoint: average the 8 rotated / flipped views (8x slower)",
    )
    e.add_argument(
        "--scale",
        type=parse_scale,
        default=None,
        help="with --checkpoint: resize photos by this factor before the model (default 1), or "
        "'auto' (the second, half-size pass of crackseg predict --scale auto)",
    )
    e.add_argument(
        "--precision",
        choices=["fp32", "bf16", "auto"],
        default="fp32",
        help="with --checkpoint: fp32 (default), or the fast CPU path (bf16 autocast)",
    )
    e.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip pairs that do not decode or whose sizes differ, with a warning; they are "
        "listed in the summary and metrics.json",
    )
    e.add_argument(
        "--allow-missing",
        action="store_true",
        help="with --pred: score although some masks have no prediction (an error by default); "
        "their count and names go into metrics.json",
    )
    e.add_argument(
        "--color-maps",
        action="store_true",
        help="with --pred: read colour maps as grey by luminance (an error by default)",
    )
    e.set_defaults(func=_cmd_evaluate)
    return p


# The help of demo and train is read from torch-based modules. An install without torch (the
# onnxruntime deployment: pip install "crackseg[onnx]" on top of a torch-free environment) still
# runs `crackseg predict --checkpoint model.onnx`; only those help texts come out shorter.
def _module_doc(name: str) -> str:
    import importlib

    try:
        return importlib.import_module(name).__doc__ or ""
    except ImportError:
        return "(needs PyTorch: pip install torch)"


def add_benchmark_parser(sub, fmt) -> None:
    b = sub.add_parser(
        "benchmark",
        help="every model side by side: params, FLOPs, latency on the fastest CPU path, memory",
        description=textwrap.dedent("""\
        Benchmark models side by side in one run: params; FLOPs at --flops-sizes; CPU latency at
        batch 1 (median and p90, models and paths timed round-robin so machine drift hits all
        alike) in eager fp32 and on each model's fastest verified CPU path (channels-last,
        BatchNorm folded into convs, bf16 autocast where the CPU has native bf16, torch.compile
        with --compile); images/s at --batch; peak RSS growth in a child process; GPU fp32 /
        fp16 latency when CUDA is present; accuracy columns from --accuracy. Writes NAME.md,
        NAME.json (with the machine: CPU model, flags, threads, torch) and NAME.png
        (accuracy and FLOPs vs latency) to --out.

        Models are randomly initialised (speed does not depend on the weights). Take timings on
        an idle machine; --quick is a smoke test, not a measurement. A full run over ~25 models
        at 512x512 on 2 cores takes roughly 10-15 minutes (the batch-8 rounds are about a third
        of it: lower --batch-runs or --batch to shorten it).

        examples:
          crackseg benchmark                           # every model + 2 torchvision references
          crackseg benchmark --models 'carnet*,enet' --accuracy deepcrack_scores.json
          crackseg benchmark --quick --size 64 64 --models carnet,enet
          crackseg benchmark --profile carnet          # per-stage / per-block time breakdown
        """),
        formatter_class=fmt,
    )
    b.add_argument(
        "--models",
        help="comma-separated names or shell patterns (default: every registered model and the "
        "references tv_lraspp_mobilenet_v3_large, tv_deeplabv3_mobilenet_v3_large)",
    )
    b.add_argument(
        "--no-references", action="store_true", help="leave out the torchvision references"
    )
    b.add_argument(
        "--size",
        nargs=2,
        type=int,
        default=[512, 512],
        metavar=("H", "W"),
        help="input size for latency, memory and --profile (default: 512 512)",
    )
    b.add_argument(
        "--flops-sizes",
        default="512x512,384x544",
        help="HxW sizes to count FLOPs at (default: %(default)s; 384x544 is a DeepCrack image)",
    )
    b.add_argument("--threads", type=int, help="CPU threads (default: all cores of this process)")
    b.add_argument("--runs", type=int, help="timed rounds at batch 1 (default: 20; --quick: 3)")
    b.add_argument("--warmup", type=int, help="untimed rounds first (default: 3; --quick: 1)")
    b.add_argument(
        "--screen-runs",
        type=int,
        help="timed rounds per candidate path when picking each model's fastest (default: 5; "
        "--quick: 2)",
    )
    b.add_argument("--batch", type=int, help="batch for images/s (default: 8; --quick: 2)")
    b.add_argument(
        "--batch-runs", type=int, help="timed rounds at --batch (default: 3; --quick: 2)"
    )
    b.add_argument(
        "--compile",
        action="store_true",
        help="also try torch.compile (inductor; 1-2 min of compiling per model on 2 cores)",
    )
    bf = b.add_mutually_exclusive_group()
    bf.add_argument(
        "--bf16",
        dest="bf16",
        action="store_true",
        default=None,
        help="try bf16 autocast even where the CPU has no native bf16 (default: only where it has)",
    )
    bf.add_argument("--no-bf16", dest="bf16", action="store_false", help="never try bf16")
    b.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    b.add_argument("--no-gpu", action="store_true", help="skip GPU timing even if CUDA is present")
    b.add_argument(
        "--accuracy",
        metavar="FILE",
        help="JSON of test metrics per model, {model: {'2px': {'ODS':..,'OIS':..,'AP':..}, "
        "'0px': {...}}} (or flat ODS_2px keys), shown next to latency",
    )
    b.add_argument(
        "--rescore",
        metavar="JSON",
        help="time nothing: rewrite NAME.md/.json/.png from an earlier run's JSON with the "
        "accuracy columns of --accuracy (accuracy trained later joins one timing run)",
    )
    b.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default: benchmarks/results/benchmark_<cpu>_<threads>t under the "
        "current folder)",
    )
    b.add_argument("--name", default="benchmark", help="file stem in --out (default: benchmark)")
    b.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 3 runs, 1 warm-up, 2 screen runs, batch 2, unless given (numbers are "
        "not meaningful)",
    )
    b.add_argument("--no-progress", action="store_true", help="no progress bars")
    b.add_argument(
        "--profile",
        metavar="MODEL",
        help="instead: per-stage and per-block CPU time of MODEL (torch.profiler), sorted by "
        "time; saved as profile_MODEL.json in --out",
    )
    b.add_argument("--profile-runs", type=int, default=10, help="profiled forwards (default: 10)")
    b.add_argument(
        "--path",
        default="eager",
        help="CPU path to --profile (eager, channels_last, fold_bn, fold_bn+channels_last, ...)",
    )
    b.set_defaults(func=_cmd_benchmark)


def _config_keys() -> list[str]:
    import dataclasses

    try:
        from .engine.train import TrainConfig
    except ImportError:
        return ["(needs PyTorch)"]
    return [f.name for f in dataclasses.fields(TrainConfig)]


def _recipes() -> list[str]:
    try:
        from .engine.train import list_recipes
    except ImportError:
        return ["(needs PyTorch)"]
    return list_recipes()


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
