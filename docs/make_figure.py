"""Regenerate ``docs/report.png``, the README's picture of ``crackseg predict --measure``.

    python docs/make_figure.py            # needs Debian's chromium for the screenshot

Photos: synthetic pavement (``crackseg.data.synth``) and hard-negative scenes with cracks
(``crackseg.data.hardneg``), since the real datasets' photos may not be redistributed.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

from crackseg.cli import main
from crackseg.data.hardneg import generate_hard
from crackseg.data.synth import generate

HERE = Path(__file__).resolve().parent


def main_() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        Image.fromarray(generate(seed=7, size=(600, 800), condition="sunny")[0]).save(
            photos / "asphalt_sunny.jpg", quality=92
        )
        Image.fromarray(generate(seed=11, size=(600, 800), condition="rainy")[0]).save(
            photos / "asphalt_rain.jpg", quality=92
        )
        for scene, seed in (("masonry", 3), ("joints", 5), ("road_markings", 2)):
            img = generate_hard(seed, size=(600, 800), scene=scene, crack_p=1.0)[0]
            Image.fromarray(img).save(photos / f"{scene}.jpg", quality=92)
        out = Path(tmp) / "out"
        main(["predict", str(photos), "--measure", "--mm-per-px", "1", "--out", str(out),
              "--quiet", "--precision", "fp32"])  # fmt: skip
        chromium = shutil.which("chromium") or "/usr/bin/chromium"
        shot = Path(tmp) / "shot.png"
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={tmp}/profile", f"--screenshot={shot}",
             "--window-size=1280,1250", (out / "report.html").as_uri()],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        Image.open(shot).convert("RGB").save(HERE / "report.png", optimize=True)
    print(f"wrote {HERE / 'report.png'}")


if __name__ == "__main__":
    main_()
