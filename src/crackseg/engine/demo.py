"""crackseg demo: the whole job on built-in synthetic data, in a few minutes on a laptop CPU.

Generates a small synthetic crack set (sunny / rainy / night), trains CarNet on it, evaluates on
held-out synthetic images (F1 / IoU at 0.5, plus ODS / OIS / AP), predicts on unseen images and
writes overlays, probability maps and metrics.json to the output folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..data.synth import SynthCrackDataset
from ..inference.predict import overlay
from ..inference.predictor import Predictor
from ..models.summary import count_params, machine_info
from ..models.weights_io import load_model
from .evaluate import evaluate_maps
from .train import TrainConfig, train

# Full demo: ~3 minutes of training on 2 CPU cores. Quick: seconds, for tests.
PRESETS = {
    "full": dict(
        n_train=160,
        n_test=12,
        train_size=256,
        test_size=384,
        crop=160,
        batch=4,
        iterations=480,
        val_every=160,
        warmup=30,
        lr=2e-3,
        bn_recalib=100,
    ),
    "quick": dict(
        n_train=8,
        n_test=3,
        train_size=96,
        test_size=96,
        crop=64,
        batch=2,
        iterations=6,
        val_every=3,
        warmup=2,
        lr=1e-3,
        bn_recalib=4,
    ),
}


def run_demo(out_dir: str | Path = "crackseg-demo", quick: bool = False, seed: int = 0) -> dict:
    """Run the demo; returns the metrics dict that is also written to ``OUT/metrics.json``."""
    p = PRESETS["quick" if quick else "full"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    threads = torch.get_num_threads()

    print(f"[1/4] generating {p['n_train']} training and {p['n_test']} test images (synthetic)")
    train_set = SynthCrackDataset(p["n_train"], size=p["train_size"], seed=seed, progress=True)
    test_set = SynthCrackDataset(
        p["n_test"], size=p["test_size"], seed=seed + 10_000, progress=False
    )

    print(f"[2/4] training CarNet for {p['iterations']} steps on {threads} CPU thread(s)")
    cfg = TrainConfig(
        model="carnet",
        crop_size=p["crop"],
        batch_size=p["batch"],
        iterations=p["iterations"],
        val_every=p["val_every"],
        warmup_iters=p["warmup"],
        lr=p["lr"],
        bn_recalib=p["bn_recalib"],
        # unweighted BCE + Dice keeps probabilities calibrated, so 0.5 is a sensible threshold
        # (positive weighting widens the predicted cracks beyond the masks at 0.5)
        loss="bce+dice",
        pos_weight=None,
        val_fraction=0.1,
        scale=(0.75, 1.25),
        num_workers=0,
        out_dir=str(out / "run"),
        seed=seed,
        log_every=10,
    )
    summary = train(cfg, train_set=train_set, overwrite=True)  # the demo's own run: rerunnable
    model, _ = load_model(out / "run" / "best.safetensors")

    print(f"[3/4] evaluating on {len(test_set)} unseen synthetic images")
    predictor = Predictor.from_model(model)
    items = []
    for i in tqdm(range(len(test_set)), desc="predict", leave=False):
        image, mask = test_set.sample(i)
        items.append((test_set.names[i], predictor.predict_levels(image), mask.astype(bool)))
    levels = [q for _, q, _ in items]
    s = evaluate_maps(items, tolerance=2.0, progress=False).summary
    metrics = {
        "F1@0.5": s["F1@t"],
        "IoU@0.5": s["IoU@t"],
        "precision@0.5": s["precision@t"],
        "recall@0.5": s["recall@t"],
        "ODS@2px": s["ODS"],
        "OIS@2px": s["OIS"],
        "AP@2px": s["AP"],
        "matching": "exact pixels at threshold 0.5; distance-transform, 2 px for ODS/OIS/AP",
        "num_test_images": len(test_set),
        "test_conditions": list(test_set.conditions),
        "train_steps": summary["steps"],
        "best_val_ODS": summary["best_val_ODS"],
        "params": count_params(model),
        "quick": quick,
        "machine": machine_info(),
        "threads": threads,
    }

    print("[4/4] writing predictions")
    files = {}
    for i in range(min(3, len(test_set))):
        image, mask = test_set.sample(i)
        stem = f"{i:02d}_{test_set.conditions[i]}"
        ov = overlay(image, levels[i] / 255.0, 0.5, gt=mask)
        Image.fromarray(np.concatenate([image, ov], axis=1)).save(out / f"{stem}_overlay.png")
        Image.fromarray(levels[i]).save(out / f"{stem}_prob.png")
        files[stem] = [f"{stem}_overlay.png", f"{stem}_prob.png"]
    metrics["files"] = files
    metrics["wall_s"] = time.perf_counter() - t0
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))

    print()
    print(f"  CarNet ({metrics['params'] / 1e6:.2f} M params), trained {summary['steps']} steps")
    print(
        f"  test F1@0.5 {metrics['F1@0.5']:.3f}   IoU@0.5 {metrics['IoU@0.5']:.3f}   "
        f"ODS {metrics['ODS@2px']:.3f}  OIS {metrics['OIS@2px']:.3f}  AP {metrics['AP@2px']:.3f}"
    )
    print(f"  wall time {metrics['wall_s']:.0f} s")
    print(
        f"  results in {out.resolve()}/ : metrics.json, *_overlay.png (red = predicted crack, "
        "blue = missed), *_prob.png (probability x 255), run/ (checkpoints, log.csv)"
    )
    return metrics
