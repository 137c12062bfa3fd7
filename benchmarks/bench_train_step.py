"""CPU training-step time of the models, side by side in one run.

    python benchmarks/bench_train_step.py          # carnet vs carnet_resnet34, fp32 and bf16
    python benchmarks/bench_train_step.py --models carnet --threads 1 --runs 30

One step is what ``crackseg train`` does per iteration with the shipped recipes: a batch of four
256x256 crops through the model (with the auxiliary side outputs where the model has them),
BCE with positive weighting + Dice, backward, and an Adam update; channels-last tensors, and
bf16 autocast in the ``bf16`` mode. Data loading is left out (it runs in a worker process in
training). Steps are timed round-robin across models and modes, so machine load hits all of them
alike; the median is reported with the projected wall time of a 6,000-step recipe. Results go to
``benchmarks/results/train_step_cpu.json`` with the CPU model and flags: compare the ratios, not
the seconds, across machines.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import crackseg
from crackseg.bench import time_round_robin
from crackseg.engine.losses import CrackLoss
from crackseg.engine.train import training_loss
from crackseg.models.summary import machine_info


def make_step(name: str, bf16: bool, batch: int, size: int, aux_weight: float = 0.4):
    """Build one model + optimizer and return a closure that runs one training step."""
    torch.manual_seed(0)
    model = crackseg.create_model(name).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = CrackLoss("bce+dice", "auto")
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = (torch.rand(batch, 1, size, size) > 0.95).float()

    def step() -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = training_loss(model, model, criterion, x, y, aux_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", nargs="*", default=["carnet", "carnet_resnet34"])
    ap.add_argument("--modes", nargs="*", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--runs", type=int, default=15, help="timed steps per model and mode")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--recipe-steps", type=int, default=6000, help="for the projected wall time")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_step_cpu.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.models:
        if name not in crackseg.list_models():
            raise SystemExit(
                f"bench_train_step: error: unknown model {name!r}; "
                f"choose from {', '.join(crackseg.list_models())}"
            )
    keys = [(m, mode) for m in args.models for mode in args.modes]
    steps = {k: make_step(k[0], k[1] == "bf16", args.batch, args.size) for k in keys}
    # 2 warm-up rounds (oneDNN primitive caches, allocator), then round-robin timed rounds
    runners = {f"{m}/{mode}": fn for (m, mode), fn in steps.items()}
    by_label = time_round_robin(runners, args.runs, warmup=2)
    times = {k: [ms / 1000 for ms in by_label[f"{k[0]}/{k[1]}"]] for k in keys}
    ref = statistics.median(times[keys[0]])
    rows = []
    for (m, mode), ts in times.items():
        med = statistics.median(ts)
        rows.append(
            {
                "model": m,
                "mode": mode,
                "sec_per_step_median": med,
                "sec_per_step_min": min(ts),
                "crops_per_sec": args.batch / med,
                "recipe_minutes": med * args.recipe_steps / 60,
                f"vs_{keys[0][0]}_{keys[0][1]}": med / ref,
            }
        )
    result = {
        "batch": [args.batch, 3, args.size, args.size],
        "step": "forward (+aux) + bce+dice + backward + Adam, channels-last",
        "runs": args.runs,
        "threads": args.threads,
        "recipe_steps": args.recipe_steps,
        "bf16_note": "bf16 autocast is fast only on CPUs with AVX512-BF16 or AMX; "
        "`amp: auto` in crackseg train uses it only there",
        "machine": machine_info(),
        "date": time.strftime("%Y-%m-%d"),
        "steps": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    head = ("model", "mode", "s/step", "crops/s", "min/recipe", "ratio")
    print("{:20s} {:5s} {:>7s} {:>8s} {:>10s} {:>6s}".format(*head))
    for r in rows:
        print(
            f"{r['model']:20s} {r['mode']:5s} {r['sec_per_step_median']:7.3f} "
            f"{r['crops_per_sec']:8.1f} {r['recipe_minutes']:10.1f} "
            f"{r['sec_per_step_median'] / ref:6.2f}"
        )
    print(f"{result['machine']['cpu']}, {args.threads} threads, wrote {args.out}")


if __name__ == "__main__":
    main()
