"""Where a model loses ODS on one test set, by the width of the ground-truth cracks.

    python benchmarks/width_breakdown.py --run general=pretrained:carnet_general \
        --run dc_only=runs/zoo/carnet/last.safetensors --data deepcrack:../shared/data/deepcrack \
        --name width_breakdown_deepcrack

Each image's mask gets a mean crack width (mask pixels / skeleton pixels). At each row's
dataset-wide ODS threshold (2 px distance matching, as ``crackseg evaluate``), the record holds,
per width bin, the pooled precision and recall, the mean per-image F, and the median of the
per-image best thresholds; and the images that lose the most F (best threshold vs the ODS one,
weighted by their crack pixels). A model whose best per-image thresholds fall with crack width
draws wide cracks thinner than the masks (recall lost on wide cracks) and thin ones wider
(precision lost on thin cracks): one threshold cannot serve both, which is the gap between OIS
and ODS.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from skimage.morphology import skeletonize
from tqdm.auto import tqdm

from crackseg.data.datasets import build_dataset
from crackseg.inference import Predictor
from crackseg.metrics.protocol import match_counts
from crackseg.models.summary import machine_info

BINS = [(0, 4), (4, 6), (6, 8), (8, 11), (11, 1000)]


def per_image(predictor: Predictor, spec: str, tolerance: float) -> list[dict]:
    data = build_dataset(spec, split="test")
    rows = []
    for i in tqdm(range(len(data)), desc=spec.split("/")[-1], leave=False):
        image, mask = data.sample(i)
        mask = mask.astype(bool)
        c = match_counts(predictor.predict_levels(image), mask, tolerance)
        skeleton = int(skeletonize(mask).sum())
        rows.append({
            "name": data.names[i], "width": float(mask.sum() / max(skeleton, 1)),
            "tp_pred": c.tp_pred, "n_pred": c.n_pred, "tp_gt": c.tp_gt, "n_gt": int(c.n_gt),
        })  # fmt: skip
    return rows


def _f(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    return 2 * p * r / np.maximum(p + r, 1e-12)


def breakdown(rows: list[dict], worst: int = 10) -> dict:
    """ODS, per-width-bin precision / recall at the ODS threshold, and the images losing most."""
    tp = np.array([r["tp_pred"] for r in rows], float)
    npred = np.array([r["n_pred"] for r in rows], float)
    tg = np.array([r["tp_gt"] for r in rows], float)
    ng = np.array([r["n_gt"] for r in rows], float)
    width = np.array([r["width"] for r in rows])
    f_all = _f(tp.sum(0) / np.maximum(npred.sum(0), 1), tg.sum(0) / max(ng.sum(), 1))
    k = int(f_all.argmax())
    f_img = _f(tp / np.maximum(npred, 1), tg / np.maximum(ng[:, None], 1))
    best_k = f_img.argmax(1)
    bins = []
    for lo, hi in BINS:
        s = (width >= lo) & (width < hi) & (ng > 0)
        if not s.any():
            continue
        bins.append({
            "width_px": [lo, hi if hi < 1000 else None], "images": int(s.sum()),
            "precision": round(float(tp[s, k].sum() / max(npred[s, k].sum(), 1)), 4),
            "recall": round(float(tg[s, k].sum() / max(ng[s].sum(), 1)), 4),
            "mean_F": round(float(f_img[s, k].mean()), 4),
            "median_best_threshold": round(float(np.median(best_k[s]) + 1) / 256, 4),
        })  # fmt: skip
    loss = (f_img.max(1) - f_img[:, k]) * ng
    order = np.argsort(-loss)[:worst]
    return {
        "ODS": round(float(f_all[k]), 4),
        "ods_threshold": round((k + 1) / 256, 4),
        "corr_width_best_threshold": round(float(np.corrcoef(width, best_k)[0, 1]), 3),
        "bins": bins,
        "worst": [
            {"name": rows[i]["name"], "width": round(float(width[i]), 1),
             "F_best": round(float(f_img[i].max()), 3), "F_at_ods": round(float(f_img[i, k]), 3),
             "precision": round(float(tp[i, k] / max(npred[i, k], 1)), 3),
             "recall": round(float(tg[i, k] / max(ng[i], 1)), 3)}
            for i in order
        ],
    }  # fmt: skip


def load_predictor(source: str, threads: int) -> Predictor:
    if source.startswith("pretrained:"):
        return Predictor.from_pretrained(source.split(":", 1)[1], precision="fp32", threads=threads)
    return Predictor.from_checkpoint(source, precision="fp32", threads=threads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--run", action="append", required=True,
                    help="ROW=CHECKPOINT (file, run folder, or pretrained:NAME)")  # fmt: skip
    ap.add_argument("--data", required=True, help="dataset spec; its test split is scored")
    ap.add_argument("--name", required=True, help="record name: benchmarks/results/<name>.json")
    ap.add_argument("--tolerance", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    rows = {}
    for item in args.run:
        row, _, source = item.partition("=")
        if not source:
            raise SystemExit(f"--run expects ROW=CHECKPOINT, got {item!r}")
        t0 = time.perf_counter()
        result = breakdown(
            per_image(load_predictor(source, args.threads), args.data, args.tolerance)
        )
        rows[row] = {"checkpoint": source, "seconds": round(time.perf_counter() - t0, 1), **result}
        print(f"{row}: ODS {result['ODS']} at {result['ods_threshold']}")
        for b in result["bins"]:
            print(f"  width {b['width_px']}: {b['images']} images, P {b['precision']} "
                  f"R {b['recall']} F {b['mean_F']}")  # fmt: skip
    record = {
        "what": "ODS lost by crack width: pooled precision / recall per bin of mean mask width at "
        "the row's ODS threshold, distance matching",
        "data": args.data,
        "tolerance": args.tolerance,
        "rows": rows,
        "machine": machine_info(),
    }
    out = Path(args.out) / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
