"""Inference-side levers of the shipped model, scored on every test split from one set of maps.

    python benchmarks/map_levers.py            # benchmarks/results/map_levers.json
    python benchmarks/map_levers.py --quick    # 8 images per set, /tmp

The shipped weights predict each test photo once (fp32, native scale, through
:class:`crackseg.inference.Predictor`); every lever then reuses those 8-bit maps:

- ``native``: the maps as they are (the reference row);
- ``hysteresis_N``: Canny-style edge linking on the map: a pixel's level is raised by up to ``N``
  levels where it connects (8-connected), through pixels no more than ``N`` below, to a more
  confident pixel
  (grey reconstruction by dilation of the map under ``map + N``,
  ``skimage.morphology.reconstruction``); thresholding the result at ``t`` is hysteresis
  thresholding with thresholds ``t`` and ``t - N / 255``;
- ``auto_W``: ``scale="auto"``'s rule with a width cut of ``W`` px (the Predictor's default is
  5): where the native mask's median crack width exceeds ``W``, the mean of the native map and
  the half-size map (``Predictor.wants_second_scale``, ``average_levels``); a sweep of the cut;
- ``tta`` (``--tta-sets``, DeepCrack by default: 8x the compute): the mean of the 8 dihedral
  views (``Predictor(tta=True)``, ``crackseg predict --tta``).

ODS / OIS / AP at each tolerance with the protocol of ``crackseg evaluate``. ``scale="auto"`` is
measured by ``cross_dataset.py --run NAME=CKPT@auto`` (``cross_scale_auto.json``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from skimage.morphology import reconstruction
from tqdm.auto import tqdm

from crackseg.data.datasets import build_dataset
from crackseg.engine.evaluate import evaluate_maps
from crackseg.inference import Predictor
from crackseg.inference.predictor import average_levels
from crackseg.models.summary import machine_info


def hysteresis(levels: np.ndarray, n: int) -> np.ndarray:
    """Levels raised by up to ``n`` where they join a more confident pixel (see the module)."""
    seed = levels.astype(np.float32)
    return reconstruction(seed, np.minimum(seed + n, 255), method="dilation").astype(np.uint8)


def scores(items: list, tolerances: list[float]) -> dict:
    out = {}
    for tol in tolerances:
        s = evaluate_maps(iter(items), tolerance=tol, progress=False, check_gt=False).summary
        keys = ("ODS", "OIS", "AP", "ods_threshold")
        out[f"{tol:g}px"] = {k: round(float(s[k]), 6) for k in keys}
    return out


def main() -> None:
    from cross_dataset import DATA, SETS  # beside this script

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default="carnet_general")
    ap.add_argument("--data-root", default=str(DATA))
    ap.add_argument("--hysteresis", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--auto-widths", type=float, nargs="+", default=[4, 5, 6, 7])
    ap.add_argument("--tta-sets", nargs="*", default=["deepcrack"])
    ap.add_argument("--tolerances", type=float, nargs="+", default=[2.0, 0.0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="8 images per set, written to /tmp")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out = Path(args.out or ("/tmp" if args.quick else Path(__file__).parent / "results"))

    t0 = time.perf_counter()
    run = dict(precision="fp32", threads=args.threads)
    native = Predictor.from_pretrained(args.weights, **run)
    tta = Predictor.from_pretrained(args.weights, tta=True, **run)
    half = Predictor.from_pretrained(args.weights, scale=0.5, **run)
    levers = ["native", *(f"hysteresis_{n}" for n in args.hysteresis)]
    levers += [f"auto_{w:g}" for w in args.auto_widths] + ["tta"]
    cells: dict[str, dict] = {lever: {} for lever in levers}
    for name, spec in SETS.items():
        data = build_dataset(spec.format(root=args.data_root), split="test")
        count = min(len(data), 8) if args.quick else len(data)
        items, halves, tta_items = [], [], []
        for i in tqdm(range(count), desc=name, leave=False):
            image, mask = data.sample(i)
            items.append((data.names[i], native.predict_levels(image), mask.astype(bool)))
            halves.append(half.predict_levels(image))
            if name in args.tta_sets:
                tta_items.append((data.names[i], tta.predict_levels(image), mask.astype(bool)))
        cells["native"][name] = scores(items, args.tolerances)
        for n in args.hysteresis:
            linked = [(k, hysteresis(m, n), g) for k, m, g in items]
            cells[f"hysteresis_{n}"][name] = scores(linked, args.tolerances)
        for w in args.auto_widths:
            wide = [native.wants_second_scale(m, native.threshold, w) for _, m, _ in items]
            fused = [
                (k, average_levels(m, h) if second else m, g)
                for (k, m, g), h, second in zip(items, halves, wide, strict=True)
            ]
            cells[f"auto_{w:g}"][name] = scores(fused, args.tolerances)
        if tta_items:
            cells["tta"][name] = scores(tta_items, args.tolerances)
        row = "  ".join(f"{lever} {c[name]['2px']['ODS']:.4f}" for lever, c in cells.items()
                        if name in c)  # fmt: skip
        print(f"{name:16s} {row}", flush=True)

    means = {
        lever: {
            f"{tol:g}px": round(float(np.mean([c[f"{tol:g}px"]["ODS"] for c in row.values()])), 6)
            for tol in args.tolerances
        }
        for lever, row in cells.items()
        if len(row) == len(SETS)
    }
    record = {
        "what": "inference-side levers of the shipped model on every test split: ODS / OIS / AP "
        "(distance matching) of the native maps, of hysteresis-linked maps, of scale='auto' with "
        "width cuts around its default (5 px) and of 8-view TTA",
        "weights": args.weights,
        "quick": args.quick,
        "tolerances": args.tolerances,
        "cells": cells,
        "mean_ods_over_sets": means,
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": machine_info(),
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / "map_levers.json"
    path.write_text(json.dumps(record, indent=2))
    print(json.dumps(means, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
