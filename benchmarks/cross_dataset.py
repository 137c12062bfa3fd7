"""Cross-dataset matrix: checkpoints (rows) scored on the test split of every dataset (columns).

    python benchmarks/cross_dataset.py \
        --run dc_only=runs/carnet_deepcrack/last.safetensors \
        --run general=runs/carnet_general/last.safetensors \
        --name cross_dataset [--tolerances 2 0] [--precision fp32] [--scale 1.0]

Every map goes through :class:`crackseg.inference.Predictor` (the path ``crackseg predict``
uses), is scored with the protocol of ``crackseg evaluate`` (distance-transform matching, 255
thresholds), and the record ``benchmarks/results/<name>.json`` holds, per row and column, ODS /
OIS / AP and the ODS threshold at each tolerance, which datasets each row was trained on (from
the run's ``config.yaml``, so held-out cells can be told apart), and the machine. A markdown
table is printed (``*`` marks cells whose dataset was in the row's training data).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from crackseg.data.datasets import build_dataset
from crackseg.engine.evaluate import evaluate_maps
from crackseg.engine.false_alarms import false_alarms
from crackseg.inference import Predictor
from crackseg.inference.cli import parse_scale
from crackseg.metrics.protocol import threshold_level
from crackseg.metrics.width import recall_by_width, width_counts
from crackseg.models.pretrained import get_weights
from crackseg.models.summary import machine_info
from crackseg.models.weights_io import read_metadata, resolve_checkpoint

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SETS = {
    "deepcrack": "deepcrack:{root}/deepcrack",
    "crack500": "crack500:{root}/crack500",
    "uav_crackx": "deepcrack:{root}/uav_crackx",
    "uavcrack_bridge": "deepcrack:{root}/uavcrack_bridge",
    "shadowcrack": "deepcrack:{root}/shadowcrack",
    "aiglern_trimm": "deepcrack:{root}/aiglern_trimm",
}
EXTRA_SETS = {"gaps384": "deepcrack:{root}/gaps384"}  # survey-vehicle motorway crops: --sets
ALL_SETS = {**SETS, **EXTRA_SETS}


def trained_on(checkpoint: Path) -> list[str]:
    """Dataset folder names in the training data of the run holding ``checkpoint``, including
    the data its ``init_weights`` were trained on (a fine-tuned run has seen both)."""
    run = checkpoint if checkpoint.is_dir() else checkpoint.parent
    cfg = run / "config.yaml"
    if cfg.exists():
        config = yaml.safe_load(cfg.read_text())
    else:  # shipped weights: their recipe is in their metadata
        name = read_metadata(checkpoint).get("weights_name") if checkpoint.is_file() else None
        if not name:
            return []
        config = get_weights(json.loads(name)).recipe
    specs = list(config.get("train_data", []))
    init = config.get("init_weights")
    if init:
        if Path(init).exists():
            seen = set(trained_on(Path(init)))
        else:  # shipped weights by name
            seen = set(get_weights(init).recipe.get("train_data", []))
            seen = {
                name for name in ALL_SETS if any(s.rstrip("/").endswith("/" + name) for s in seen)
            }
        return [name for name in ALL_SETS if name in seen or _names(specs, name)]
    return [name for name in ALL_SETS if _names(specs, name)]


def _names(specs: list[str], name: str) -> bool:
    return any(s.rstrip("/").endswith("/" + name) for s in specs)


def score(predictor: Predictor, spec: str, tolerances: list[float]) -> dict:
    """ODS / OIS / AP at each tolerance, and recall by ground-truth crack width at the first
    tolerance's ODS threshold (:mod:`crackseg.metrics.width`)."""
    data = build_dataset(spec, split="test")
    maps = []
    for i in tqdm(range(len(data)), desc=spec.split("/")[-1], leave=False):
        image, mask = data.sample(i)
        maps.append((data.names[i], predictor.predict_levels(image), mask.astype(bool)))
    out = {"images": len(maps)}
    for tol in tolerances:
        s = evaluate_maps(iter(maps), tolerance=tol, progress=False).summary
        out[f"{tol:g}px"] = {
            k: round(float(s[k]), 6) for k in ("ODS", "OIS", "AP", "ods_threshold")
        }
    level = threshold_level(out[f"{tolerances[0]:g}px"]["ods_threshold"])
    counts = [width_counts(levels >= level, gt, tolerances[0]) for _, levels, gt in maps]
    out["recall_by_width"] = recall_by_width(counts)
    return out


def own_threshold(predictor: Predictor, ckpt: str) -> str:
    """The rule behind the predictor's mask threshold; a run's checkpoint carries none, so it
    gets the ODS threshold on its run's validation split (benchmarks/false_alarms.py)."""
    path = resolve_checkpoint(ckpt)
    if "threshold" in read_metadata(path):
        return "stored in the checkpoint"
    from false_alarms import val_threshold  # this folder's script

    predictor.threshold = val_threshold(predictor, path)
    return "ODS threshold (2 px) on the run's validation split"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--run",
        action="append",
        required=True,
        help="ROW=CHECKPOINT[@SCALE] (file or run; @0.5 predicts at half size)",
    )
    ap.add_argument("--merge", help="add the rows to this existing record (same sets)")
    ap.add_argument("--name", required=True, help="record name: benchmarks/results/<name>.json")
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=list(ALL_SETS))
    ap.add_argument("--data-root", default=str(DATA))
    ap.add_argument("--tolerances", nargs="+", type=float, default=[2.0, 0.0])
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"])
    ap.add_argument(
        "--scale", type=parse_scale, default=1.0, help="Predictor scale (1 = native, or auto)"
    )
    ap.add_argument("--tile-size", type=int, default=1024)
    ap.add_argument("--tta", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--negatives",
        help="folder of crack-free photos (benchmarks/false_alarms.py builds one): adds the "
        "false-alarm column (share of photos with a reported crack, at each row's own threshold)",
    )
    ap.add_argument("--note", default=None)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()

    rows = {}
    for item in args.run:
        row, _, ckpt = item.partition("=")
        if not ckpt:
            raise SystemExit(f"--run expects ROW=CHECKPOINT, got {item!r}")
        scale = args.scale
        if "@" in ckpt:
            ckpt, _, at = ckpt.rpartition("@")
            scale = parse_scale(at)
        predictor = Predictor.from_checkpoint(
            ckpt,
            precision=args.precision,
            threads=args.threads,
            tile_size=args.tile_size,
            scale=scale,
            tta=args.tta,
        )
        t0 = time.perf_counter()
        specs = ALL_SETS
        cells = {s: score(predictor, specs[s].format(root=args.data_root), args.tolerances)
                 for s in args.sets}  # fmt: skip
        rows[row] = {
            "checkpoint": ckpt,
            "trained_on": trained_on(Path(ckpt)),
            "scale": scale,
            "seconds": round(time.perf_counter() - t0, 1),
            "cells": cells,
        }
        if args.negatives:
            rule = own_threshold(predictor, ckpt)
            fa = false_alarms(predictor, args.negatives, progress=False)
            rows[row]["false_alarms"] = {
                "threshold": predictor.threshold,
                "threshold_rule": rule,
                "overall": fa["overall"],
                "groups": fa["groups"],
            }
    record = {
        "what": "cross-dataset matrix: ODS / OIS / AP on each test split (distance matching)",
        "predictor": {
            "precision": args.precision,
            "scale": args.scale,
            "tile_size": args.tile_size,
            "tta": args.tta,
        },
        "tolerances": args.tolerances,
        "rows": rows,
        "note": args.note,
        "machine": machine_info(),
    }
    if args.merge:
        old = json.loads(Path(args.merge).read_text())
        record["rows"] = {**old["rows"], **record["rows"]}
        record["note"] = "; ".join(n for n in (old.get("note"), args.note) if n) or None
    out = Path(args.out) / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(markdown(record))
    print(f"wrote {out}")


def markdown(record: dict) -> str:
    """The matrix as markdown: one table per tolerance, ``*`` = dataset seen in training."""
    sets = list(next(iter(record["rows"].values()))["cells"])
    lines = []
    for tol in record["tolerances"]:
        key = f"{tol:g}px"
        lines += [f"ODS at {key} (* = trained on that set's train split)", ""]
        fa = all("false_alarms" in r for r in record["rows"].values())
        extra = " | false alarms on crack-free photos |" if fa else " |"
        lines.append("| trained | " + " | ".join(sets) + " | mean" + extra)
        lines.append("| --- " * (len(sets) + 2 + fa) + "|")
        for row, r in record["rows"].items():
            vals = [r["cells"][s][key]["ODS"] for s in sets]
            marks = ["*" if s in r["trained_on"] else "" for s in sets]
            cells = [f"{v:.3f}{m}" for v, m in zip(vals, marks, strict=True)]
            sc = r.get("scale", 1.0)
            name = row if sc == 1.0 else f"{row} (scale {sc if isinstance(sc, str) else f'{sc:g}'})"
            tail = f" {r['false_alarms']['overall']['photo_share']:.1%} |" if fa else ""
            mean = f" | {sum(vals) / len(vals):.3f} |"
            lines.append(f"| {name} | " + " | ".join(cells) + mean + tail)
        lines.append("")
    return "\n".join(lines + width_markdown(record))


def width_markdown(record: dict) -> list[str]:
    """Recall by ground-truth crack width, pooled over the sets (pixels of every test split)."""
    rows = {n: r for n, r in record["rows"].items() if all("recall_by_width" in c
            for c in r["cells"].values())}  # fmt: skip
    if not rows:
        return []
    bands = list(next(iter(next(iter(rows.values()))["cells"].values()))["recall_by_width"])
    lines = ["recall by ground-truth crack width (px), all test splits pooled, at each set's ODS "
             "threshold", "", "| row | " + " | ".join(bands) + " |", "| --- " * (len(bands) + 1)
             + "|"]  # fmt: skip
    for name, r in rows.items():
        vals = []
        for b in bands:
            cells = [c["recall_by_width"][b] for c in r["cells"].values()]
            total = sum(c["pixels"] for c in cells)
            found = sum(c["recall"] * c["pixels"] for c in cells if c["pixels"])
            vals.append(f"{found / total:.3f}" if total else "-")
        lines.append(f"| {name} | " + " | ".join(vals) + " |")
    return [*lines, ""]


if __name__ == "__main__":
    main()
