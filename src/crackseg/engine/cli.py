"""The command line of the engine: ``crackseg train``, ``recalibrate`` and ``evaluate``.

Importing this module needs no torch (the parsers are built by every ``crackseg`` command,
also in a torch-free install); the commands import the engine when they run.
"""

from __future__ import annotations

import argparse
import json
import textwrap

__all__ = ["add_evaluate_parser", "add_train_parsers"]


def _cmd_train(args) -> int:
    from .train import load_config, train

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
    from .train import recalibrate_run

    info = recalibrate_run(args.run, tag=args.tag, batches=args.batches)
    print(
        f"recomputed BatchNorm statistics of {info['checkpoint']} (step {info['step']}) over "
        f"{info['batches']} batches of training crops; original weights kept in {info['raw']}"
    )
    return 0


def _cmd_evaluate(args) -> int:
    from . import evaluate as ev

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
    from .evaluate import load_predictor
    from .false_alarms import false_alarms, format_false_alarms, write_false_alarms

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


def add_train_parsers(sub, fmt: type[argparse.HelpFormatter]) -> None:
    """``crackseg train`` and ``crackseg recalibrate``."""
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


def add_evaluate_parser(sub, fmt: type[argparse.HelpFormatter]) -> None:
    """``crackseg evaluate``: ODS / OIS / AP of a checkpoint or of maps, and false alarms."""
    from ..inference.cli import parse_scale

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


def _config_keys() -> list[str]:
    """TrainConfig's keys, read from engine/train.py's source: building the parser must not
    import torch (``crackseg predict`` builds it too)."""
    import ast
    import importlib.util

    source = importlib.util.find_spec("crackseg.engine.train").origin
    with open(source, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    config = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "TrainConfig")
    return [s.target.id for s in config.body if isinstance(s, ast.AnnAssign)]


def _recipes() -> list[str]:
    """The names of the recipes shipped in ``crackseg/configs/``."""
    from importlib import resources

    folder = resources.files("crackseg") / "configs"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))
