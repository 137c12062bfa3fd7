"""``crackseg predict`` survey options end to end (issue 26): severity schemes, markers,
GeoJSON and sections, on generated photos with known cracks.

The model is replaced by :class:`DarkIsCrack` (dark pixels are cracks), so each photo's
cracks are exactly the dark strokes drawn into it and the rest of the path (reading, EXIF,
tiling, thresholds, measurement, outputs) is the one ``crackseg predict`` always runs.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crackseg.cli import main
from crackseg.inference import cli as predict_cli
from crackseg.inference.predictor import MEAN, STD, Predictor


class DarkIsCrack:
    """A backend whose logits say "crack" where the photo is darker than 35 % grey."""

    size_divisor = 8

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        rgb = batch * np.asarray(STD, np.float32)[:, None, None] + np.asarray(MEAN)[:, None, None]
        grey = rgb.mean(axis=1, keepdims=True)
        return ((0.35 - grey) * 60.0).astype(np.float32)


@pytest.fixture()
def dark_model(monkeypatch):
    monkeypatch.setattr(
        predict_cli, "predictor_from_args", lambda *a, **k: Predictor(DarkIsCrack(), name="dark")
    )


def textured(size: tuple[int, int] = (240, 320), seed: int = 0) -> np.ndarray:
    """A light, grainy concrete-like background (no pixel dark enough to be a crack)."""
    rng = np.random.default_rng(seed)
    grey = 170 + rng.normal(0, 12, size).clip(-40, 40)
    return np.repeat(grey.astype(np.uint8)[:, :, None], 3, axis=2)


def with_crack(image: np.ndarray, row: int, c0: int, c1: int, width: int) -> np.ndarray:
    """A dark horizontal crack ``width`` px wide, a little wavy so it is not a joint."""
    out = image.copy()
    for c in range(c0, c1):
        r = row + int(round(3 * np.sin(c / 17.0)))
        out[r : r + width, c] = 40
    return out


def predict(tmp_path: Path, photo: Path, *extra: str) -> int:
    return main(["predict", str(photo), "--out", str(tmp_path / "out"), "--quiet", *extra])


def test_severity_scheme_from_the_command_line(tmp_path, dark_model):
    photo = tmp_path / "wall.png"
    Image.fromarray(with_crack(textured(), 100, 40, 280, 4)).save(photo)
    assert predict(tmp_path, photo, "--mm-per-px", "0.1", "--severity-scheme", "en1992",
                   "--exposure", "xc2") == 0  # fmt: skip
    with open(tmp_path / "out" / "cracks.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["severity_scheme"] == "en1992" and row["severity"] == "over"  # ~0.4 mm > 0.3
    assert float(row["limit_mm"]) == 0.3
    assert float(row["over_limit_mm"]) == pytest.approx(float(row["max_width_mm"]) - 0.3, abs=2e-3)
    record = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert record["severity_scheme"]["name"] == "en1992"
    assert record["severity_scheme"]["exposure"] == "XC2"
    assert "Severity (en1992, XC2)" in (tmp_path / "out" / "report.html").read_text()


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--exposure", "XZ9", "--severity-scheme", "en1992"], ["--exposure XZ9", "XC1"]),
        (["--severity-scheme", "en1992"], ["needs --exposure"]),
        (["--severity-scheme", "asphalt"], ["--severity-scheme asphalt", "bre-251"]),
        (["--exposure", "XC1"], ["en1992 only"]),
    ],
)
def test_bad_severity_options_are_one_line_and_exit_2(tmp_path, capsys, extra, words):
    photo = tmp_path / "p.png"
    Image.fromarray(textured()).save(photo)
    assert predict(tmp_path, photo, "--measure", *extra) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and all(w in err[0] for w in words), err
    assert not (tmp_path / "out").exists()


def test_help_offers_the_schemes(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = capsys.readouterr().out
    for name in ("--severity-scheme", "astm-d6433", "bre-251", "en1992", "--exposure"):
        assert name in text
