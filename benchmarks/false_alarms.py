"""False alarms on crack-free photos, models side by side (issue 24, item 1).

    python benchmarks/false_alarms.py \
        --run shipped=pretrained:default \
        --run field=$HOME/.cache/crackseg-runs/carnet_field/best.safetensors \
        --name false_alarms

First builds (or reuses) the project's crack-free validation set under ``--set-dir`` (default
``~/.cache/crackseg-false-alarms``; deterministic, so a rebuild gives the same photos), one
sub-folder per surface group:

* ``paveseg_road``: ``negatives/test_img`` (the one held-out crack-free PaveSeg survey photo;
  the five of ``negatives/train_img`` are training data of ``carnet_field`` and left out);
* ``crops_<set>``: crack-free crops of the **test** split of each of the six real crack sets (no
  model trains on a test split): ``--crop`` px squares on a grid of half-crop steps, kept when no
  labelled crack pixel lies inside or within ``--margin`` px, at most one per photo (the first in
  raster order), at most ``--per-group`` per set;
* ``synthetic_<scene>``: ``crackseg.data.hardneg`` scenes with ``crack_p=0`` (masonry mortar,
  board-formed concrete, slab joints and covers, lane markings, thin shadows) at ``--size`` px,
  from the set seed 9001, checked disjoint from every seed a ``hardneg:`` training spec uses.

Each run goes through :func:`crackseg.engine.false_alarms.false_alarms` (the ``crackseg
evaluate --negatives`` path: ``crackseg predict --measure``'s threshold and noise rule) and the
record ``benchmarks/results/<name>.json`` holds, per run, the overall and per-group figures, the
set's manifest (which photo each file is), and the machine.

A caveat on ``crops_*``: a faint crack its annotator did not label is a real crack in a
"crack-free" crop, so those groups over-count false alarms a little, equally for every model.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
from cross_dataset import DATA, SETS  # this folder's script: the six test sets
from PIL import Image
from scipy import ndimage
from tqdm.auto import tqdm

from crackseg.data.datasets import build_dataset
from crackseg.data.hardneg import SCENES, generate_hard
from crackseg.data.synth import sample_seed
from crackseg.engine.evaluate import load_predictor
from crackseg.engine.false_alarms import false_alarms
from crackseg.models.summary import machine_info

SYNTH_SEED = 9001
VERSION = 1  # bump when the recipe below changes: a cached set of another version is rebuilt


def training_seeds(n: int = 20_000) -> set[int]:
    """Every sample seed a ``hardneg:N`` spec (N <= n) draws, in any split."""
    return {sample_seed(100 + s, i) for s in (0, 1, 2) for i in range(n)}


def crack_free_crops(
    mask: np.ndarray, crop: int, margin: int, stride: int | None = None
) -> list[tuple[int, int]]:
    """Top-left corners of the crops (on a grid of ``stride`` steps, default half a crop) with
    no labelled crack within ``margin`` px, in raster order."""
    near = ndimage.binary_dilation(mask, iterations=margin) if mask.any() else mask
    h, w = mask.shape
    step = stride or crop // 2
    return [(y, x) for y in range(0, h - crop + 1, step) for x in range(0, w - crop + 1, step)
            if not near[y : y + crop, x : x + crop].any()]  # fmt: skip


def predictor_for(spec: str, precision: str = "fp32"):
    """The predictor of ``CHECKPOINT[@val|@THRESHOLD]`` (see ``--run``)."""
    ckpt, _, threshold = spec.partition("@")
    predictor, _ = load_predictor(ckpt, precision=precision)
    if threshold == "val":
        predictor.threshold = val_threshold(predictor, Path(ckpt))
    elif threshold:
        predictor.threshold = float(threshold)
    return predictor, ckpt


def build_set(out: Path, root: Path, crop: int, margin: int, per_group: int, size: int) -> dict:
    """Write the crack-free set to ``out`` (see the module docstring); return its manifest."""
    manifest: dict[str, list[dict]] = {}
    neg = root / "negatives" / "test_img"
    if neg.is_dir():
        (out / "paveseg_road").mkdir(parents=True, exist_ok=True)
        manifest["paveseg_road"] = []
        for f in sorted(neg.iterdir()):
            Image.open(f).save(out / "paveseg_road" / f"{f.stem}.png")
            manifest["paveseg_road"].append({"file": f"{f.stem}.png", "source": f"negatives/{f}"})
    for name, spec in SETS.items():
        data = build_dataset(spec.format(root=root), split="test")
        group, rows = f"crops_{name}", []
        (out / group).mkdir(parents=True, exist_ok=True)
        for i in tqdm(range(len(data)), desc=group, leave=False):
            image, mask = data.sample(i)
            found = crack_free_crops(mask, crop, margin)
            if not found:
                continue
            y, x = found[0]
            fname = f"{data.names[i]}_y{y}_x{x}.png"
            Image.fromarray(image[y : y + crop, x : x + crop]).save(out / group / fname)
            rows.append({"file": fname, "source": f"{name}/test/{data.names[i]}", "y": y, "x": x})
            if len(rows) == per_group:
                break
        if rows:
            manifest[group] = rows
        else:  # every photo of the set is mostly crack (small crops of one crack)
            (out / group).rmdir()
    used = training_seeds()
    for k, scene in enumerate(SCENES):
        group, rows = f"synthetic_{scene}", []
        (out / group).mkdir(parents=True, exist_ok=True)
        for i in range(per_group):
            seed = sample_seed(SYNTH_SEED, k * 10_000 + i)
            assert seed not in used, f"seed {seed} is a training seed"
            image, mask = generate_hard(seed, size, scene, crack_p=0.0)
            assert not mask.any()
            Image.fromarray(image).save(out / group / f"{seed}.png")
            rows.append({"file": f"{seed}.png", "source": f"hardneg seed {seed} {scene}"})
        manifest[group] = rows
    return manifest


def ensure_set(args) -> dict:
    out = Path(args.set_dir).expanduser()
    recipe = {
        "version": VERSION,
        "crop": args.crop,
        "margin": args.margin,
        "per_group": args.per_group,
        "size": args.size,
    }
    stamp = out / "manifest.json"
    if stamp.exists():
        cached = json.loads(stamp.read_text())
        if cached.get("recipe") == recipe:
            return cached
        shutil.rmtree(out)  # a set of another recipe, built by this script: no stale photo stays
    elif out.exists() and any(out.iterdir()):
        raise SystemExit(f"--set-dir {out} holds files but no manifest.json: give an empty folder")
    root = Path(args.data_root)
    manifest = build_set(out, root, args.crop, args.margin, args.per_group, args.size)
    record = {"recipe": recipe, "groups": manifest}
    stamp.write_text(json.dumps(record, indent=1))
    return record


def val_threshold(predictor, checkpoint: Path) -> float:
    """The ODS threshold (2 px) of ``predictor`` on the validation split of the run holding
    ``checkpoint`` (its ``config.yaml``), as benchmarks/make_pretrained.py computes it."""
    from crackseg.engine.evaluate import evaluate_maps
    from crackseg.engine.train import load_config, split_data

    cfg = load_config(checkpoint.parent / "config.yaml")
    _, val_set, _, val_idx = split_data(cfg)
    maps = []
    for i in tqdm(val_idx, desc="validation threshold", leave=False):
        image, mask = val_set.sample(i)
        maps.append((str(i), predictor.predict_levels(image), mask.astype(bool)))
    val = evaluate_maps(maps, tolerance=2.0, progress=False).summary
    return round(float(val["ods_threshold"]), 6)


def markdown(record: dict) -> str:
    groups = list(next(iter(record["rows"].values()))["groups"])
    head = "| run | " + " | ".join(groups) + " | all | pixels |"
    lines = [head, "|" + " --- |" * (len(groups) + 3)]
    for name, row in record["rows"].items():
        cells = [f"{row['groups'][g]['photo_share']:.1%}" for g in groups]
        o = row["overall"]
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {o['photo_share']:.1%} | "
            f"{o['pixel_share']:.3%} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--run",
        action="append",
        required=True,
        help="NAME=CHECKPOINT[@val|@THRESHOLD] (repeatable); @val: the ODS threshold (2 px) on the "
        "run's validation split, as make_pretrained.py sets it for shipped weights (a run's own "
        "checkpoint carries none and would run at 0.5)",
    )
    ap.add_argument("--name", default="false_alarms")
    ap.add_argument("--set-dir", default="~/.cache/crackseg-false-alarms")
    ap.add_argument("--data-root", default=str(DATA))
    ap.add_argument("--crop", type=int, default=160)
    ap.add_argument("--margin", type=int, default=16)
    ap.add_argument("--per-group", type=int, default=40)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    manifest = ensure_set(args)
    record = {
        "what": "false alarms on crack-free photos (crackseg evaluate --negatives): share of "
        "photos with a reported crack of kind crack, share of pixels marked; per surface group",
        "set": manifest,
        "set_dir": str(Path(args.set_dir).expanduser()),
        "rows": {},
        "machine": machine_info(),
    }
    for spec in args.run:
        name, ckpt = spec.split("=", 1)
        predictor, ckpt = predictor_for(ckpt, args.precision)
        t0 = time.perf_counter()
        result = false_alarms(predictor, record["set_dir"])
        record["rows"][name] = {
            "checkpoint": ckpt,
            "predictor": predictor.describe(),
            "seconds": round(time.perf_counter() - t0, 1),
            "overall": result["overall"],
            "groups": result["groups"],
            "per_image": result["per_image"],
        }
    out = Path(args.out) / f"{args.name}.json"
    out.write_text(json.dumps(record, indent=1))
    print(markdown(record))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
