"""Does the fast path change the answer? Tiled and bf16 maps against whole-image fp32 maps.

    python benchmarks/predict_parity.py [--checkpoint FILE] [--data deepcrack:PATH]

On the test split, every image is predicted by :class:`crackseg.inference.Predictor` as:

- ``fp32_whole``: the reference, fp32, NCHW, whole image (what ``crackseg evaluate`` does);
- ``fp32_tiled``: fp32 with tiles forced far smaller than the image (``--tile`` px, ``--overlap``
  px, smooth blending), so every image is stitched from several tiles;
- ``bf16_whole``: bf16 autocast with channels-last (the automatic CPU path on native-bf16 CPUs);
- ``bf16_tiled``: both at once.

Recorded per variant: ODS / OIS / AP at 2 px and 0 px, their change from ``fp32_whole``, and
the largest and mean absolute difference of the 8-bit maps. Writes
``benchmarks/results/<name>.json`` with the machine.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from crackseg.data.datasets import build_dataset
from crackseg.engine.evaluate import evaluate_maps
from crackseg.inference import Predictor
from crackseg.models.summary import machine_info

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "deepcrack"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--checkpoint", help="default: the shipped pretrained CarNet")
    ap.add_argument("--data", default=f"deepcrack:{DATA}")
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--overlap", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="first N images only (0 = all)")
    ap.add_argument("--name", default="predict_parity")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()

    variants = {
        "fp32_whole": dict(precision="fp32", channels_last=False),
        "fp32_tiled": dict(precision="fp32", channels_last=False, tile_size=args.tile,
                           overlap=args.overlap),
        "bf16_whole": dict(precision="bf16", channels_last=True),
        "bf16_tiled": dict(precision="bf16", channels_last=True, tile_size=args.tile,
                           overlap=args.overlap),
    }  # fmt: skip
    predictors = {}
    for name, kw in variants.items():
        kw = {"threads": args.threads, "threshold": 0.5, **kw}
        predictors[name] = (
            Predictor.from_checkpoint(args.checkpoint, **kw)
            if args.checkpoint
            else Predictor.from_pretrained(**kw)
        )
    data = build_dataset(args.data, split="test")
    n = len(data) if not args.limit else min(args.limit, len(data))
    maps: dict[str, list] = {k: [] for k in variants}
    diffs: dict[str, list] = {k: [] for k in variants}
    tiles = 0
    for i in tqdm(range(n), desc="predict"):
        image, mask = data.sample(i)
        ref = None
        for name, pred in predictors.items():
            q = pred.predict_levels(image)
            if ref is None:
                ref = q
            d = np.abs(q.astype(np.int16) - ref.astype(np.int16))
            diffs[name].append((int(d.max()), float(d.mean())))
            maps[name].append((data.names[i], q, mask.astype(bool)))
        tiles += predictors["fp32_tiled"].num_tiles(*image.shape[:2])
    record: dict = {
        "what": "tiled / bf16 prediction against whole-image fp32 on a test split",
        "data": args.data,
        "images": n,
        "tile": args.tile,
        "overlap": args.overlap,
        "mean_tiles_per_image": round(tiles / n, 2),
        "checkpoint": args.checkpoint or "shipped default",
        "variants": {},
    }
    base: dict = {}
    for name in variants:
        row: dict = {}
        for tol in (2.0, 0.0):
            s = evaluate_maps(iter(maps[name]), tolerance=tol, progress=False).summary
            key = f"{tol:g}px"
            row[key] = {k: round(float(s[k]), 6) for k in ("ODS", "OIS", "AP")}
            if name == "fp32_whole":
                base[key] = row[key]
            row[key]["dODS"] = round(row[key]["ODS"] - base[key]["ODS"], 6)
        row["max_level_diff"] = max(d[0] for d in diffs[name])
        row["mean_abs_level_diff"] = round(float(np.mean([d[1] for d in diffs[name]])), 5)
        record["variants"][name] = {**variants[name], **row}
        print(name, json.dumps(row))
    record["machine"] = machine_info()
    out = Path(args.out) / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
