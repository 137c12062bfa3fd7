"""``crackseg benchmark``: the zoo side by side, or one model's profile (``--profile``).

Importing this module needs no torch: the parser is built by every ``crackseg`` command; the
benchmark imports torch when it runs.
"""

from __future__ import annotations

import argparse
import json
import textwrap

__all__ = ["add_benchmark_parser"]


def _parse_sizes(text: str) -> list[tuple[int, int]]:
    from .zoo import BenchmarkError

    sizes = []
    for item in text.split(","):
        h, sep, w = item.strip().lower().partition("x")
        if not (sep and h.isdigit() and w.isdigit()):
            raise BenchmarkError(f"--flops-sizes {text!r}: give HxW sizes, e.g. 512x512,384x544")
        sizes.append((int(h), int(w)))
    return sizes


def _cmd_benchmark(args) -> int:
    from .paths import candidate_paths
    from .profile import format_profile, profile_model
    from .timing import default_threads
    from .zoo import (
        BenchConfig,
        BenchmarkError,
        default_out_dir,
        prepare_out,
        read_json,
        rescore,
        run_benchmark,
        write_outputs,
    )

    threads = args.threads or default_threads()
    if threads < 1:
        raise BenchmarkError("--threads must be at least 1")
    out = prepare_out(args.out or default_out_dir(threads))  # fail before the work
    if args.rescore:
        if not args.accuracy:
            raise BenchmarkError("--rescore needs --accuracy FILE (the new accuracy columns)")
        earlier = read_json(args.rescore, "--rescore")
        record = rescore(earlier, args.accuracy)
        paths = write_outputs(record, out, args.name)
        print(paths["md"].read_text(), end="")
        print(
            f"wrote {paths['md']}, {paths['json'].name} and {paths['png'].name} (timings of "
            f"{record['date']}, accuracy from {args.accuracy})"
        )
        return 0
    if args.profile:
        h, w = args.size
        if not (8 <= h <= 16384 and 8 <= w <= 16384):
            raise BenchmarkError(f"--size {h} {w}: height and width must be 8..16384")
        paths, _ = candidate_paths(compile=args.compile, bf16=args.bf16)
        by_name = {p.name: p for p in paths}
        if args.path not in by_name:
            raise BenchmarkError(
                f"--path {args.path!r} is not available here; choose from {', '.join(by_name)}"
            )
        runs = 2 if args.quick else args.profile_runs
        if runs < 1:
            raise BenchmarkError("--profile-runs must be at least 1")
        prof = profile_model(
            args.profile, height=h, width=w, runs=runs, threads=threads, path=by_name[args.path]
        )
        print(format_profile(prof))
        dest = out / f"profile_{args.profile}.json"
        dest.write_text(json.dumps(prof, indent=2) + "\n")
        print(f"wrote {dest}")
        return 0
    cfg = BenchConfig(
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
    record = run_benchmark(cfg, progress=not args.no_progress)
    paths = write_outputs(record, out, args.name)
    print(paths["md"].read_text(), end="")
    print(f"wrote {paths['md']}, {paths['json'].name} and {paths['png'].name}")
    return 0


def add_benchmark_parser(sub, fmt: type[argparse.HelpFormatter]) -> None:
    """``crackseg benchmark``."""
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
    _what_to_time(b)
    _how_to_time(b)
    _outputs_and_profile(b)
    b.set_defaults(func=_cmd_benchmark)


def _what_to_time(b: argparse.ArgumentParser) -> None:
    """The models and the input sizes."""
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


def _how_to_time(b: argparse.ArgumentParser) -> None:
    """Threads, rounds, batch, the candidate paths, memory and GPU."""
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


def _outputs_and_profile(b: argparse.ArgumentParser) -> None:
    """Accuracy columns, --rescore, the output files, --quick, and --profile."""
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
