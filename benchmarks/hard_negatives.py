"""False alarms on crack-free look-alikes: mortar joints, formwork seams, slab joints, lane paint.

    python benchmarks/hard_negatives.py --run general=runs/carnet_general/last.safetensors \
        --run general_hn=runs/carnet_general_hn/last.safetensors --name hard_negatives

Scores each checkpoint on held-out synthetic hard-negative scenes (``crackseg.data.hardneg``,
test seeds: never the training images) WITHOUT cracks: every predicted crack pixel is a false
alarm. Per scene: the fraction of pixels predicted crack at threshold 0.5, and the fraction of
images holding a predicted crack of at least ``--min-px`` pixels (what a user would see as a
false crack). Also the synthetic cracked scenes (crack_p = 1): ODS at 2 px, so a model that
"wins" by predicting nothing is visible. Writes ``benchmarks/results/<name>.json``.

This is a proxy (procedural scenes, not photos) for the real failure the held-out masonry,
formwork and survey-vehicle photos showed; read it beside the real cross-dataset matrix.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from crackseg.data.hardneg import SCENES, generate_hard
from crackseg.data.synth import sample_seed
from crackseg.engine.evaluate import evaluate_maps
from crackseg.inference import Predictor
from crackseg.models.summary import machine_info

TEST_SEED = 9001  # training uses seeds 100 + {0: train, 2: val}; see data/datasets.py


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--run", action="append", required=True, help="ROW=CHECKPOINT")
    ap.add_argument("--n", type=int, default=20, help="images per scene (default: 20)")
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--min-px", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--name", default="hard_negatives")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()

    rows = {}
    for item in args.run:
        row, _, ckpt = item.partition("=")
        pred = Predictor.from_checkpoint(ckpt, precision="fp32", threads=args.threads,
                                         threshold=0.5)  # fmt: skip
        scenes, cracked = {}, []
        for s, scene in enumerate(SCENES):
            fp, alarms = [], 0
            for i in range(args.n):
                seed = sample_seed(TEST_SEED + s, i)
                image, _ = generate_hard(seed, args.size, scene, crack_p=0.0)
                mask = pred.predict(image).mask
                fp.append(float(mask.mean()))
                labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
                sizes = np.bincount(labels.ravel())[1:] if n else np.array([0])
                alarms += int(sizes.max() >= args.min_px)
                image, gt = generate_hard(seed, args.size, scene, crack_p=1.0)
                cracked.append((f"{scene}_{i}", pred.predict_levels(image), gt.astype(bool)))
            scenes[scene] = {
                "false_pixel_rate": round(float(np.mean(fp)), 6),
                "images_with_false_crack": round(alarms / args.n, 4),
            }
        s = evaluate_maps(iter(cracked), tolerance=2.0, progress=False).summary
        rows[row] = {
            "checkpoint": ckpt,
            "crack_free": scenes,
            "mean_false_pixel_rate": round(
                float(np.mean([v["false_pixel_rate"] for v in scenes.values()])), 6
            ),
            "mean_images_with_false_crack": round(
                float(np.mean([v["images_with_false_crack"] for v in scenes.values()])), 4
            ),
            "cracked_ODS_2px": round(float(s["ODS"]), 6),
        }
        print(row, json.dumps(rows[row]))
    record = {
        "what": "false alarms on crack-free synthetic look-alikes; ODS on the same scenes cracked",
        "images_per_scene": args.n,
        "size": args.size,
        "threshold": 0.5,
        "min_false_crack_px": args.min_px,
        "rows": rows,
        "machine": machine_info(),
    }
    out = Path(args.out) / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
