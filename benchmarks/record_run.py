"""Score a trained run on a test set at several tolerances and record it with its recipe.

    python benchmarks/record_run.py RUN_DIR --data deepcrack:../shared/data/deepcrack \
        --name carnet_deepcrack [--reference-ods 0.931 0.847]

Predicts every test image with the last and the best checkpoint, evaluates ODS / OIS / AP at
2 px and 0 px (distance-transform matching, 255 thresholds), and writes
``benchmarks/results/<name>.json`` with the resolved training config, the training wall time, the
steps, and the machine (CPU model and flags).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from crackseg.bench import measure_latency
from crackseg.data.datasets import build_dataset
from crackseg.engine.evaluate import evaluate_maps
from crackseg.inference import Predictor
from crackseg.models.summary import count_params, machine_info
from crackseg.models.weights_io import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("run", help="run folder (scores last.safetensors and best.safetensors)")
    ap.add_argument(
        "--report", default="last", choices=["last", "best"], help="the checkpoint quoted as result"
    )
    ap.add_argument("--data", action="append", required=True, help="test dataset spec(s)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--name", required=True, help="result name, e.g. carnet_deepcrack")
    ap.add_argument("--tolerances", nargs="+", type=float, default=[2.0, 0.0])
    ap.add_argument(
        "--reference-ods",
        nargs="*",
        type=float,
        default=None,
        help="reference ODS at the same tolerances, recorded alongside",
    )
    ap.add_argument("--latency", action="store_true", help="also time batch-1 CPU latency")
    ap.add_argument(
        "--tta",
        action="store_true",
        help="also score the reported checkpoint with 8-view test-time augmentation "
        "(recorded as '<report>+tta', never as the reported score)",
    )
    ap.add_argument(
        "--note", default=None, help="how the run was trained (threads, sharing, sessions)"
    )
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()

    run = Path(args.run)
    if not run.is_dir():
        raise SystemExit(f"record_run: error: {run} is not a run folder")
    ds = build_dataset(args.data, split=args.split)
    recipe = yaml.safe_load((run / "config.yaml").read_text())
    tags = [args.report] + [t for t in ("last", "best") if t != args.report]
    # `crackseg recalibrate` keeps the weights as trained in last_raw: score them beside
    tags += [f"{t}_raw" for t in ("last", "best") if (run / f"{t}_raw.safetensors").exists()]
    if args.tta:
        tags.append(f"{args.report}+tta")
    checkpoints = {}
    for tag in tags:
        file_tag, tta = tag.removesuffix("+tta"), tag.endswith("+tta")
        path = run / f"{file_tag}.safetensors"
        if not path.exists():
            continue
        model, meta = load_model(path)
        predictor = Predictor.from_model(model, tta=tta)
        maps = []
        t0 = time.perf_counter()
        for i, name in enumerate(tqdm(ds.names, desc=f"predict ({tag})")):
            image, mask = ds.sample(i)
            maps.append((name, predictor.predict_levels(image), mask.astype(bool)))
        predict_s = time.perf_counter() - t0
        scores = {}
        for tol in args.tolerances:
            s = evaluate_maps(maps, tolerance=tol, progress=False).summary
            scores[f"{tol:g}px"] = {
                k: float(s[k]) for k in ("ODS", "OIS", "AP", "ods_threshold", "F1@t", "IoU@t")
            }
        checkpoints[tag] = {
            "checkpoint": str(path),
            "tta": tta,
            "step": json.loads(meta.get("step", "null")),
            # BN statistics recomputed on training crops: by `crackseg recalibrate` (which keeps
            # a _raw file) or in training (bn_recalib > 0 in the run's config)
            "precise_bn": (run / f"{file_tag}_raw.safetensors").exists()
            or (not file_tag.endswith("_raw") and (recipe.get("bn_recalib") or 0) > 0),
            "scores": scores,
            "predict_s_total": predict_s,
        }
    if args.report not in checkpoints:
        raise SystemExit(f"record_run: error: {run} holds no {args.report}.safetensors")
    state = json.loads((run / "last.json").read_text())
    summary_path = run / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    log_rows = list(csv.DictReader(open(run / "log.csv"))) if (run / "log.csv").exists() else []
    # a resumed run logs again the steps between its checkpoint and the interruption: keep the last
    timed = {int(r["step"]): float(r["sec_per_step"]) for r in log_rows if r.get("sec_per_step")}
    train_s = sum(timed.values())
    model, meta = load_model(run / f"{args.report}.safetensors")
    result = {
        "name": args.name,
        "model": meta.get("model"),
        "params": count_params(model),
        "test_data": args.data,
        "split": args.split,
        "num_images": len(ds),
        "matching": "distance-transform, 255 thresholds",
        "reported_checkpoint": args.report,
        "selection_rule": "fixed before training: the last checkpoint (end of the cosine "
        "schedule); best-by-validation-ODS recorded beside it",
        "scores": checkpoints[args.report]["scores"],
        "checkpoints": checkpoints,
        "reference_ods": dict(
            zip([f"{t:g}px" for t in args.tolerances], args.reference_ods or [], strict=False)
        ),
        "train_steps": state.get("step"),
        "best_val_ods_2px": state.get("best"),
        "best_step": state.get("best_step"),
        "bf16_autocast": summary.get("bf16_autocast"),
        # sum of logged step times (log_every steps each): training only, no validation
        "train_wall_s_estimate": train_s * int(recipe.get("log_every", 1) or 1),
        "sec_per_step_median": statistics.median(timed.values()) if timed else None,
        "train_conditions": args.note,
        "recipe": recipe,
        # latency lives in crackseg benchmark (round-robin, idle machine); only on request here
        "latency_512_cpu": measure_latency(model, 512, 512, runs=20, threads=2)
        if args.latency
        else None,
        "machine": machine_info(),
        "date": time.strftime("%Y-%m-%d"),
    }
    out = Path(args.out) / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    for tag, c in checkpoints.items():
        for tol, sc in c["scores"].items():
            print(
                f"{args.name} {tag} (step {c['step']}) @ {tol}: "
                f"ODS {sc['ODS']:.4f}  OIS {sc['OIS']:.4f}  AP {sc['AP']:.4f}"
            )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
