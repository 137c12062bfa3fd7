"""Pack the training splits of the six real crack sets for a GPU machine reached through a
64 MiB working-tree limit: three folders (``.gd1``, ``.gd2``, ``.gd3``, each under ~40 MiB,
sent one call at a time and copied to ``/tmp/gd`` there), masks as 1-bit PNG (lossless), images
as they are except UAVCRACK-bridge and ShadowCrack, re-encoded as JPEG quality 85.

    python benchmarks/gpu/pack_data.py   # writes .gd1 .gd2 .gd3 in the repo root (git-ignored)

The test splits are never packed: every reported number is measured here, on the originals.
"""

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT.parent / "shared" / "data"
PLAN = {
    ".gd1": {"crack500": None, "aiglern_trimm": None},
    ".gd2": {"uav_crackx": None},
    ".gd3": {"deepcrack": None, "uavcrack_bridge": 85, "shadowcrack": 85},
}

for pack, sets in PLAN.items():
    total = 0
    for name, quality in sets.items():
        for part in ("train_img", "train_lab"):
            out = ROOT / pack / name / part
            out.mkdir(parents=True, exist_ok=True)
            for f in sorted((SRC / name / part).iterdir()):
                if f.name.startswith("."):
                    continue
                if part.endswith("img"):
                    dst = out / f.name
                    if quality is None:
                        shutil.copy(f, dst)
                    else:
                        Image.open(f).convert("RGB").save(dst, quality=quality, optimize=True)
                else:
                    dst = out / (f.stem + ".png")
                    Image.fromarray(np.array(Image.open(f).convert("L")) > 127).save(
                        dst, optimize=True
                    )
                total += dst.stat().st_size
    print(pack, f"{total / 2**20:.1f} MiB")
