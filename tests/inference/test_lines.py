"""The line classifier on known geometry, the ``kind`` column and ``--keep-lines``."""

from __future__ import annotations

import csv
import json

import numpy as np
import torch
from PIL import Image

from crackseg.data.geometry import straight_crack
from crackseg.inference.lines import CRACK, LINE, SPLIT_REASON, counts_in_totals
from crackseg.inference.measure import image_summary, line_pixels, measure_cracks
from crackseg.inference.predictor import Predictor
from crackseg.inference.run import PredictJob, collect_inputs, run_predict


def _wandering(mask: np.ndarray, y0: float, seed: int) -> None:
    """A random-walk crack across ``mask`` whose width changes along it."""
    rng = np.random.default_rng(seed)
    y = y0
    for x in range(30, mask.shape[1] - 30):
        y += rng.normal(0, 0.8)
        w = 1 + int(2 * abs(np.sin(x / 20)))
        mask[int(y) : int(y) + w + 1, x] = True


def _transverse(mask: np.ndarray, y0: int, seed: int) -> None:
    """Straight across the image overall, wobbly at pixel scale, its width stepping 1-3 px."""
    rng = np.random.default_rng(seed)
    for x in range(30, mask.shape[1] - 30):
        y = y0 + int(round(1.5 * np.sin(x / 7.0) + rng.normal(0, 0.5)))
        mask[y : y + 2 + (x // 40) % 3, x] = True


def _kinds(mask, **kw):
    return [c.kind for c in sorted(measure_cracks(mask, **kw), key=lambda c: c.bbox[1])]


def test_a_ruler_straight_even_line_is_a_joint_and_cracks_stay_cracks():
    mask = np.zeros((320, 420), bool)
    mask |= straight_crack(mask.shape, 360, 4, 0.0, center=(210, 60)).mask  # a sawn joint
    _wandering(mask, 150, seed=0)
    _transverse(mask, 250, seed=1)
    assert _kinds(mask) == [LINE, CRACK, CRACK]
    assert _kinds(mask, line_classes=False) == [CRACK, CRACK, CRACK]


def test_a_grid_of_joints_is_lines():
    mask = np.zeros((400, 400), bool)
    for k in range(1, 4):  # slabs 100 px square, joints 3 px wide
        mask[k * 100 : k * 100 + 3, 10:390] = True
        mask[10:390, k * 100 : k * 100 + 3] = True
    cracks = measure_cracks(mask)
    assert cracks and all(c.kind == LINE for c in cracks)
    lines = line_pixels(cracks, mask.shape)
    assert lines is not None and (lines <= mask).all() and lines.sum() > 0.9 * mask.sum()


def test_a_joint_crossed_by_a_crack_is_split_off_it():
    """One connected blob: a sawn joint and a crack that wanders across it. The joint (both its
    pieces) becomes one joint_or_line; the crack keeps its own length only."""
    mask = np.zeros((360, 420), bool)
    mask[20:340, 208:212] = True  # a 4 px joint, 320 px long
    crack_only = np.zeros_like(mask)
    _wandering(crack_only, 180, seed=3)
    mask |= crack_only
    alone = measure_cracks(crack_only)
    assert [c.kind for c in alone] == [CRACK]
    cracks = measure_cracks(mask)
    lines = [c for c in cracks if c.kind == LINE]
    kept = [c for c in cracks if c.kind == CRACK]
    assert len(lines) == 1 and lines[0].length_px > 280
    assert lines[0].line.reason in (SPLIT_REASON, "long straight line")
    crack_length = sum(c.length_px for c in kept)
    assert kept and abs(crack_length - alone[0].length_px) < 0.1 * alone[0].length_px
    assert [c.id for c in cracks] == list(range(1, len(cracks) + 1))
    # without the classifier the blob is one crack, joint included
    whole = measure_cracks(mask, line_classes=False)
    assert len(whole) == 1 and whole[0].length_px > alone[0].length_px + 280


def test_a_straight_transverse_crack_is_not_split():
    mask = np.zeros((320, 420), bool)
    _transverse(mask, 150, seed=4)
    _wandering(mask, 152, seed=5)  # a second crack branching off it
    assert {c.kind for c in measure_cracks(mask)} == {CRACK}


def test_totals_leave_lines_out_unless_kept():
    mask = np.zeros((320, 420), bool)
    mask |= straight_crack(mask.shape, 360, 4, 0.0, center=(210, 60)).mask
    _wandering(mask, 200, seed=2)
    cracks = measure_cracks(mask)
    joint = next(c for c in cracks if c.kind == LINE)
    crack = next(c for c in cracks if c.kind == CRACK)
    s = image_summary(cracks, mask.shape)
    assert s["crack_count"] == 1 and s["total_length_px"] == round(crack.length_px, 3)
    assert s["line_count"] == 1 and s["line_length_px"] == round(joint.length_px, 3)
    kept = image_summary(cracks, mask.shape, keep_lines=True)
    assert kept["crack_count"] == 2 and kept["line_count"] == 0
    assert kept["total_length_px"] > s["total_length_px"] + 300
    assert [r["kind"] for r in (c.as_row() for c in cracks)].count(LINE) == 1
    assert not counts_in_totals(LINE) and counts_in_totals(LINE, keep_lines=True)


class DarkIsCrack(torch.nn.Module):
    """A 'model' that calls dark pixels cracks, so the predicted mask is the drawn one."""

    size_divisor, supports_aux = 1, False  # crackseg.models.contract

    def forward(self, x):
        return (-x.mean(1, keepdim=True) - 0.5) * 40


def _scene(path):
    mask = np.zeros((320, 420), bool)
    mask |= straight_crack(mask.shape, 360, 4, 0.0, center=(210, 60)).mask
    _wandering(mask, 200, seed=3)
    photo = np.full((*mask.shape, 3), 170, np.uint8)
    photo[mask] = 20
    Image.fromarray(photo).save(path)


def test_predict_keep_lines_changes_totals_and_overlay_colours(tmp_path):
    _scene(tmp_path / "slab.png")
    predictor = Predictor.from_model(DarkIsCrack(), threshold=0.5)
    items = collect_inputs([str(tmp_path / "slab.png")])
    results = {}
    for keep in (False, True):
        out = tmp_path / f"out_{keep}"
        run_predict(predictor, items, PredictJob(out=out, measure=True, keep_lines=keep,
                                                 progress=False))  # fmt: skip
        record = json.loads((out / "predictions.json").read_text())
        with open(out / "cracks.csv") as f:
            rows = list(csv.DictReader(f))
        results[keep] = (record, rows, np.asarray(Image.open(out / "slab_overlay.jpg")))
    (rec, rows, overlay), (kept, kept_rows, _) = results[False], results[True]
    assert sorted(r["kind"] for r in rows) == [CRACK, LINE] == sorted(r["kind"] for r in kept_rows)
    s, sk = rec["images"][0]["summary"], kept["images"][0]["summary"]
    assert s["crack_count"] == 1 and s["line_count"] == 1 and sk["crack_count"] == 2
    assert rec["keep_lines"] is False and kept["keep_lines"] is True
    joint = overlay[58:62, 100:300].reshape(-1, 3).mean(0)  # the joint: blue, not red
    assert joint[2] > joint[0] + 40
    assert "joint_or_line" in (tmp_path / "out_False" / "report.html").read_text()
