"""Validation-split effect of precise BN: RUN/last_raw.safetensors vs RUN/last.safetensors.

    crackseg recalibrate RUN                      # writes RUN/last.safetensors, keeps last_raw
    python benchmarks/precise_bn_val.py RUN [RUN ...]

Scores both checkpoints on the validation split the run carved from its *training* data (the
split training validated on; the test set is never read), ODS / OIS / AP at 2 px and 0 px.
This is the measurement precise BN was adopted on. Results go to
``benchmarks/results/precise_bn_val.json`` with the machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from crackseg.engine.train import load_config, split_data, validate
from crackseg.models.summary import machine_info
from crackseg.models.weights_io import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run folders holding last.safetensors and last_raw")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "precise_bn_val.json"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for run in map(Path, args.runs):
        missing = [f for f in ("config.yaml", "last.safetensors", "last_raw.safetensors")
                   if not (run / f).exists()]  # fmt: skip
        if missing:
            raise SystemExit(
                f"precise_bn_val: error: {run} lacks {', '.join(missing)} "
                f"(run `crackseg recalibrate {run}` first)"
            )
        cfg = load_config(run / "config.yaml")
        _, val_set, _, val_idx = split_data(cfg)
        row = {"run": run.name, "model": cfg.model, "train_data": cfg.train_data,
               "val_images": len(val_idx)}  # fmt: skip
        for tag in ("last_raw", "last"):
            model, _ = load_model(run / f"{tag}.safetensors")
            for tol in (2.0, 0.0):
                m = validate(model, val_set, val_idx, torch.device("cpu"), tol)
                row[f"{tag}@{tol:g}px"] = {k: m[k] for k in ("ODS", "OIS", "AP")}
        rows.append(row)
        print(
            f"{run.name}: val ODS 2px {row['last_raw@2px']['ODS']:.4f} -> "
            f"{row['last@2px']['ODS']:.4f}, 0px {row['last_raw@0px']['ODS']:.4f} -> "
            f"{row['last@0px']['ODS']:.4f} ({len(val_idx)} images)"
        )
    result = {
        "what": "validation split carved from train; last_raw = as trained, last = precise BN",
        "machine": machine_info(),
        "date": time.strftime("%Y-%m-%d"),
        "runs": rows,
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
