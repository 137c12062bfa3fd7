"""Hard-negative mining (issue 24): crack-free training photos on which a model reports a crack.

    python benchmarks/mine_negatives.py \
        --checkpoint $HOME/.cache/crackseg-runs/carnet_field/best.safetensors@val \
        --out $HOME/.cache/crackseg-mined

Candidates, all from **training** data (no test photo, no photo of the false-alarm set):

* crack-free crops of the train splits of the six real crack sets (``--crop`` px on a grid of
  ``--crop`` steps, no labelled crack within ``--margin`` px; every such crop of every photo);
* the five crack-free PaveSeg training photos (``negatives/train_img``), whole;
* ``crackseg.data.hardneg`` crack-free scenes at ``--size`` px from the training stream (set seed
  100, samples ``--synthetic-from`` onwards, so not the samples ``hardneg:800`` already draws).

Each is run through the model as ``crackseg predict --measure`` would (its threshold, the crack
table's noise rule); those with at least one reported crack are written, with an all-zero mask,
as ``OUT/train_img/*.png`` + ``OUT/train_lab/*.png`` (a ``deepcrack:OUT`` training spec), and
``OUT/mined.json`` lists each file's source and what fired (length of the longest crack).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from false_alarms import DATA, SETS, crack_free_crops, predictor_for  # this folder's script
from PIL import Image
from tqdm.auto import tqdm

from crackseg.data.datasets import build_dataset
from crackseg.data.hardneg import SCENES, generate_hard
from crackseg.data.io import read_image
from crackseg.data.synth import sample_seed
from crackseg.engine.false_alarms import score_photo


def candidates(args):
    """``(name, source, image)`` of every candidate (see the module docstring)."""
    root = Path(args.data_root)
    for name, spec in SETS.items():
        data = build_dataset(spec.format(root=root), split="train")
        for i in range(len(data)):
            image, mask = data.sample(i)
            for y, x in crack_free_crops(mask, args.crop, args.margin, stride=args.crop):
                crop = image[y : y + args.crop, x : x + args.crop]
                yield f"{name}_{data.names[i]}_y{y}_x{x}", f"{name}/train/{data.names[i]}", crop
    for f in sorted((root / "negatives" / "train_img").glob("*.jpg")):
        yield f"negatives_{f.stem}", f"negatives/train/{f.stem}", read_image(f)
    for i in range(args.synthetic_from, args.synthetic_from + args.synthetic):
        seed, scene = sample_seed(100, i), SCENES[i % len(SCENES)]
        image, _ = generate_hard(seed, args.size, scene, crack_p=0.0)
        yield f"hardneg_{seed}_{scene}", f"hardneg train seed {seed} {scene}", image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="CHECKPOINT[@val|@THRESHOLD]")
    ap.add_argument("--out", required=True)
    ap.add_argument("--data-root", default=str(DATA))
    ap.add_argument("--crop", type=int, default=192)
    ap.add_argument("--margin", type=int, default=16)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--synthetic", type=int, default=1500)
    ap.add_argument("--synthetic-from", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    predictor, _ = predictor_for(args.checkpoint)
    out = Path(args.out).expanduser()
    (out / "train_img").mkdir(parents=True, exist_ok=False)
    (out / "train_lab").mkdir()
    mined, seen = [], 0
    for name, source, image in tqdm(candidates(args), desc="mining", unit="photo"):
        seen += 1
        row = score_photo(predictor, image)
        if row["cracks"]:
            Image.fromarray(image).save(out / "train_img" / f"{name}.png")
            Image.fromarray(np.zeros(image.shape[:2], np.uint8)).save(
                out / "train_lab" / f"{name}.png"
            )
            mined.append({"file": f"{name}.png", "source": source, "longest_px": row["longest_px"]})
    record = {
        "checkpoint": args.checkpoint,
        "threshold": predictor.threshold,
        "candidates": seen,
        "mined": mined,
        "args": vars(args),
    }
    (out / "mined.json").write_text(json.dumps(record, indent=1))
    groups = {}
    for m in mined:
        key = m["source"].split("/")[0].split(" ")[0]
        groups[key] = groups.get(key, 0) + 1
    print(f"{len(mined)} of {seen} candidates fired: {groups}; wrote {out}")


if __name__ == "__main__":
    main()
