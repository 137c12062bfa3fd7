"""False alarms on crack-free photos: counts per photo and per surface group, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from crackseg.cli import main
from crackseg.data.hardneg import generate_hard
from crackseg.engine.false_alarms import false_alarms, find_photos
from crackseg.errors import CrackSegError
from crackseg.inference.predictor import Prediction


class LinePainter:
    """A predictor double that 'sees' a crack exactly where a photo has a black pixel run, so
    the expected counts are known; the measurement behind it is the real one."""

    threshold = 0.5

    def predict(self, image, measure=False, **kwargs):
        from crackseg.inference.measure import measure_cracks

        levels = np.where(image[..., 0] == 0, 255, 0).astype(np.uint8)
        pred = Prediction(levels, self.threshold)
        pred.cracks = measure_cracks(pred.mask, **kwargs)
        return pred


def _photo(path, line_len=0):
    img = np.full((64, 80, 3), 128, np.uint8)
    if line_len:
        img[30:32, 5 : 5 + line_len] = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def test_counts_per_photo_and_group(tmp_path):
    _photo(tmp_path / "pavers" / "a.png", line_len=40)  # a reported crack
    _photo(tmp_path / "pavers" / "b.png")  # clean
    _photo(tmp_path / "slabs" / "c.png", line_len=4)  # shorter than the 10 px noise rule
    _photo(tmp_path / "top.png", line_len=60)
    (tmp_path / "slabs" / "broken.jpg").write_bytes(b"not a jpeg")
    record = false_alarms(LinePainter(), tmp_path, progress=False)
    assert record["overall"]["photos"] == 4 and record["overall"]["with_crack"] == 2
    assert record["overall"]["photo_share"] == 0.5
    assert record["groups"]["pavers"]["photo_share"] == 0.5
    assert record["groups"]["slabs"]["with_crack"] == 0  # the 4 px run is below the noise rule
    assert record["groups"]["slabs"]["pixel_share"] == pytest.approx(8 / (64 * 80), abs=1e-6)
    assert record["groups"]["."]["with_crack"] == 1
    assert [s["image"] for s in record["skipped"]] == ["slabs/broken.jpg"]
    rows = {r["image"]: r for r in record["per_image"]}
    assert rows["pavers/a.png"]["cracks"] == 1 and rows["pavers/b.png"]["cracks"] == 0
    assert rows["top.png"]["longest_px"] > rows["pavers/a.png"]["longest_px"] > 30


def test_missing_or_empty_folder_is_one_clear_error(tmp_path):
    with pytest.raises(CrackSegError, match="not a folder"):
        find_photos(tmp_path / "nope")
    (tmp_path / ".hidden").mkdir()
    _photo(tmp_path / ".hidden" / "x.png")
    with pytest.raises(CrackSegError, match="no images found"):
        find_photos(tmp_path)


def test_cli_on_synthetic_crack_free_scenes(tmp_path, capsys):
    """`crackseg evaluate --checkpoint pretrained:default --negatives DIR` on a tiny folder of
    synthetic crack-free scenes (the generator's crack_p=0): the table, the json and the csv."""
    photos = tmp_path / "photos"
    for scene in ("joints", "masonry"):
        for i in range(2):
            image, mask = generate_hard(70_000 + i, 96, scene, crack_p=0.0)
            assert not mask.any()
            (photos / scene).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(photos / scene / f"{i}.png")
    out = tmp_path / "out"
    args = ["evaluate", "--checkpoint", "pretrained:default", "--negatives", str(photos)]
    assert main([*args, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "false alarms on crack-free photos" in text and "joints" in text and "all" in text
    record = json.loads((out / "false_alarms.json").read_text())
    assert record["overall"]["photos"] == 4 and set(record["groups"]) == {"joints", "masonry"}
    assert record["checkpoint"] == "pretrained:default" and record["predictor"]["threshold"]
    with_crack = sum(r["cracks"] > 0 for r in record["per_image"])
    assert record["overall"]["with_crack"] == with_crack
    csv_lines = (out / "false_alarms.csv").read_text().splitlines()
    assert csv_lines[0].startswith("image,group,") and len(csv_lines) == 5
    assert main(["evaluate", "--checkpoint", "pretrained:default", "--negatives", str(out)]) == 2
    assert "no images found" in capsys.readouterr().err
