"""Params, FLOPs and CPU latency of every registered model, side by side in one run.

    python benchmarks/bench_models.py                      # all models, 512x512, 2 threads
    python benchmarks/bench_models.py --models carnet carnet_resnet34 --runs 30
    python benchmarks/bench_models.py --channels-last --bf16  # the fast CPU mode

Latency is the median of ``--runs`` timed forward passes at batch 1 (after warm-up), measured
round-robin across models so that machine load affects all of them alike; ratios to CarNet are
the comparable numbers across machines. Results go to ``benchmarks/results/models_cpu.json``
(``models_cpu_nhwc_bf16.json`` etc. for the other modes) with the CPU model and flags.

One mode for all models; ``crackseg benchmark`` (``benchmarks/zoo_benchmark.py``) finds each
model's fastest verified path and adds p90, throughput, memory and the torchvision references.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import crackseg
from crackseg.bench import FastPath, prepare, time_round_robin
from crackseg.models.summary import count_flops, count_params, machine_info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", nargs="*", default=None, help="default: every registered model")
    ap.add_argument("--size", nargs=2, type=int, default=[512, 512], metavar=("H", "W"))
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--channels-last", action="store_true", help="NHWC tensors (oneDNN)")
    ap.add_argument(
        "--bf16", action="store_true", help="bf16 autocast (fast only with AVX512-BF16 / AMX)"
    )
    ap.add_argument("--out", default=None, help="default: results/models_cpu[_nhwc][_bf16].json")
    args = ap.parse_args()
    if args.out is None:
        suffix = ("_nhwc" if args.channels_last else "") + ("_bf16" if args.bf16 else "")
        args.out = str(Path(__file__).parent / "results" / f"models_cpu{suffix}.json")
    torch.set_num_threads(args.threads)
    h, w = args.size
    names = args.models or crackseg.list_models()
    models = {n: crackseg.create_model(n).eval() for n in names}
    x = torch.randn(1, 3, h, w)
    path = FastPath("mode", channels_last=args.channels_last, bf16=args.bf16)
    runners = {n: prepare(m, path, x).bind(x) for n, m in models.items()}
    # 3 warm-up rounds, then round-robin: load drifts hit every model alike
    times = time_round_robin(runners, args.runs, warmup=3)
    rows = []
    for n, m in models.items():
        flops = count_flops(m, (1, 3, h, w))
        rows.append(
            {
                "model": n,
                "params": count_params(m),
                "flops": flops,
                "gmacs": flops / 2e9,
                "latency_ms_median": statistics.median(times[n]),
                "latency_ms_min": min(times[n]),
                "fps": 1000 / statistics.median(times[n]),
            }
        )
    ref = next((r for r in rows if r["model"] == "carnet"), rows[0])
    for r in rows:
        r["latency_vs_carnet"] = r["latency_ms_median"] / ref["latency_ms_median"]
    result = {
        "input": [1, 3, h, w],
        "runs": args.runs,
        "threads": args.threads,
        "channels_last": args.channels_last,
        "bf16_autocast": args.bf16,
        "flops_note": "FLOPs = 2 x MACs, conv/matmul only (torch.utils.flop_counter)",
        "machine": machine_info(),
        "date": time.strftime("%Y-%m-%d"),
        "models": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    head = ("model", "params M", "GFLOPs", "ms (med)", "FPS", "x CarNet")
    print("{:24s} {:>9s} {:>8s} {:>9s} {:>6s} {:>9s}".format(*head))
    for r in rows:
        print(
            f"{r['model']:24s} {r['params'] / 1e6:9.3f} {r['flops'] / 1e9:8.2f} "
            f"{r['latency_ms_median']:9.1f} {r['fps']:6.1f} {r['latency_vs_carnet']:9.2f}"
        )
    print(f"{result['machine']['cpu']}, {args.threads} threads, wrote {args.out}")


if __name__ == "__main__":
    main()
