"""CPU latency of candidate (widths, blocks) rows for the lean CarNet variants.

    python benchmarks/carnet_lean.py                 # the candidates below, 512x512, 2 threads
    python benchmarks/carnet_lean.py --runs 20 --threads 1

Every candidate is CarNet's olive encoder with another row of stage widths and residual blocks
under the same UFPB decoder. Latency: batch 1, fp32, eager, NCHW, the median of ``--runs``
forward passes after 2 warm-up passes each, measured round-robin across the candidates so that
load from other processes hits all of them alike. The rows chosen for ``carnet_s`` and
``carnet_xs`` in ``crackseg/models/carnet.py`` cite this file's output,
``benchmarks/results/carnet_lean_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import crackseg
from crackseg.models.summary import count_flops, count_params, machine_info

#: name -> (widths, blocks); the olive shape (most blocks at stride 4) kept in every row
CANDIDATES = {
    "carnet34": ((16, 64, 128, 256), (0, 7, 6, 2)),
    "w48_b542": ((16, 48, 96, 192), (0, 5, 4, 2)),
    "w32_b542": ((16, 32, 64, 128), (0, 5, 4, 2)),
    "w32_b331": ((16, 32, 64, 128), (0, 3, 3, 1)),
    "w32x96_b342": ((16, 32, 96, 192), (0, 3, 4, 2)),
    "w24_b321": ((16, 24, 48, 96), (0, 3, 2, 1)),
    "w16_b221": ((16, 16, 32, 64), (0, 2, 2, 1)),
    "w8x24_b321": ((8, 24, 48, 96), (0, 3, 2, 1)),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", nargs=2, type=int, default=[512, 512], metavar=("H", "W"))
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "carnet_lean_cpu.json")
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    h, w = args.size
    models = {
        n: crackseg.create_model("carnet", widths=wd, blocks=bl).eval()
        for n, (wd, bl) in CANDIDATES.items()
    }
    x = torch.randn(1, 3, h, w)
    times: dict[str, list[float]] = {n: [] for n in models}
    with torch.inference_mode():
        for m in models.values():
            for _ in range(2):
                m(x)
        for _ in range(args.runs):
            for n, m in models.items():
                t0 = time.perf_counter()
                m(x)
                times[n].append((time.perf_counter() - t0) * 1000)
    rows = []
    for n, m in models.items():
        flops = count_flops(m, (1, 3, h, w))
        widths, blocks = CANDIDATES[n]
        rows.append(
            {
                "candidate": n,
                "widths": list(widths),
                "blocks": list(blocks),
                "params": count_params(m),
                "gmacs": flops / 2e9,
                "latency_ms_median": statistics.median(times[n]),
                "latency_ms_min": min(times[n]),
                "latency_ms_all": [round(t, 1) for t in times[n]],
            }
        )
    ref = rows[0]["latency_ms_median"]
    for r in rows:
        r["latency_vs_carnet34"] = r["latency_ms_median"] / ref
    result = {
        "input": [1, 3, h, w],
        "runs": args.runs,
        "threads": args.threads,
        "mode": "fp32, eager, NCHW, inference_mode, round-robin",
        "machine": machine_info(),
        "load_average_after": Path("/proc/loadavg").read_text().split()[:3],
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "candidates": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"{'candidate':12s} {'widths':20s} {'blocks':12s} {'params M':>8s} {'GMACs':>6s} "
          f"{'ms med':>7s} {'ms min':>7s} {'x C34':>6s}")  # fmt: skip
    for r in rows:
        print(
            f"{r['candidate']:12s} {str(tuple(r['widths'])):20s} {str(tuple(r['blocks'])):12s} "
            f"{r['params'] / 1e6:8.3f} {r['gmacs']:6.2f} {r['latency_ms_median']:7.1f} "
            f"{r['latency_ms_min']:7.1f} {r['latency_vs_carnet34']:6.2f}"
        )
    print(
        f"{result['machine']['cpu']}, {args.threads} threads, load {result['load_average_after']}"
    )


if __name__ == "__main__":
    main()
