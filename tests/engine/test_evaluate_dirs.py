"""Scoring folders of probability maps: pairing, reading and the report files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crackseg.engine.evaluate import (
    evaluate_dirs,
    evaluate_maps,
    find_pairs,
    format_table,
    read_prob_map,
    write_report,
)


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def crack(shape=(16, 20), row=8) -> np.ndarray:
    gt = np.zeros(shape, np.uint8)
    gt[row, 2:18] = 255
    return gt


def test_find_pairs_prob_and_mask_suffixes(tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    save(pred / "a_prob.png", crack())
    save(pred / "b_prob.png", crack())
    save(pred / "a_mask.png", crack())  # crackseg's own outputs beside the maps: ignored
    save(pred / "a_overlay.png", np.zeros((16, 20, 3), np.uint8))
    save(gt / "a.png", crack())
    save(gt / "b_mask.bmp", crack())  # CRACK500-style name, other extension
    pairs = find_pairs(pred, gt)
    assert [(s, p.name, g.name) for s, p, g in pairs] == [
        ("a", "a_prob.png", "a.png"),
        ("b", "b_prob.png", "b_mask.bmp"),
    ]


def test_find_pairs_plain_names_and_exact_gt_preferred(tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    save(pred / "x.png", crack())
    save(pred / "y.tif", crack())
    save(gt / "x.png", crack())
    save(gt / "x_mask.png", crack())
    save(gt / "y_mask.jpg", crack())
    (gt / "notes.txt").write_text("not an image")
    pairs = find_pairs(pred, gt)
    assert [(s, g.name) for s, _, g in pairs] == [("x", "x.png"), ("y", "y_mask.jpg")]


def test_find_pairs_errors(tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    gt.mkdir()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_pairs(pred, gt)
    pred.mkdir()
    with pytest.raises(FileNotFoundError, match="no prediction maps"):
        find_pairs(pred, gt)
    for i in range(7):
        save(pred / f"img{i}_prob.png", crack())
    save(gt / "img0.png", crack())
    with pytest.raises(FileNotFoundError, match=r"6 of 7 .*img1_prob\.png.*and 1 more"):
        find_pairs(pred, gt)


def test_size_mismatch_names_the_files(tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    save(pred / "a_prob.png", crack((16, 20)))
    save(gt / "a.png", crack((20, 16)))
    with pytest.raises(ValueError, match=r"size mismatch for 'a'.*a_prob\.png.*a\.png"):
        evaluate_dirs(pred, gt, progress=False)


def test_read_prob_map_formats(tmp_path):
    levels = np.arange(0, 256, dtype=np.uint8).reshape(16, 16)
    np.testing.assert_array_equal(read_prob_map(save(tmp_path / "l.png", levels)), levels)
    wide = levels.astype(np.uint16) * 257
    np.testing.assert_array_equal(read_prob_map(save(tmp_path / "w.png", wide)), levels)


def test_evaluate_dirs_writes_report(tmp_path):
    pred, gt, out = tmp_path / "pred", tmp_path / "gt", tmp_path / "out"
    # a: perfect; b: 1 px off (found within tolerance 2), half confidence; c: empty gt, clean
    save(pred / "a_prob.png", crack())
    save(gt / "a.png", crack())
    save(pred / "b_prob.png", crack(row=9) // 2)
    save(gt / "b_mask.png", crack(row=8))
    save(pred / "c_prob.png", np.zeros((16, 20), np.uint8))
    save(gt / "c.png", np.zeros((16, 20), np.uint8))
    result = evaluate_dirs(pred, gt, out_dir=out, tolerance=2, progress=False)
    s = result.summary
    assert s["ODS"] == 1.0 and s["OIS"] == 1.0 and s["AP"] == pytest.approx(1.0)
    assert s["num_images"] == 3 and s["num_empty_gt"] == 1
    # fixed threshold 0.5, exact pixels: b (level 127 < 128) predicts nothing
    assert s["F1@t"] == pytest.approx(2 * 16 / (2 * 16 + 16))
    assert s["IoU@t"] == pytest.approx(0.5)

    metrics = json.loads((out / "metrics.json").read_text())
    for key in (
        "ODS",
        "OIS",
        "AP",
        "tolerance",
        "matching",
        "num_thresholds",
        "ods_threshold",
        "precision",
        "recall",
        "F1@t",
        "IoU@t",
        "mIoU@t",
        "fixed_threshold",
        "num_images",
    ):
        assert key in metrics, key
    assert metrics["matching"] == "distance" and metrics["tolerance"] == 2.0
    assert len(metrics["pr_curve"]["precision"]) == 255
    with (out / "per_image.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["name"] for r in rows] == ["a", "b", "c"]
    assert [int(r["n_gt"]) for r in rows] == [16, 16, 0]
    assert float(rows[1]["best_f"]) == 1.0 and float(rows[1]["F1@t"]) == 0.0
    assert (out / "pr_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = format_table(result)
    assert "ODS" in table and "1.0000" in table and "3 images" in table


def test_float_maps_and_their_pngs_score_the_same(tmp_path):
    rng = np.random.default_rng(0)
    gt = rng.random((24, 24)) < 0.1
    prob = rng.random((24, 24))
    a = evaluate_maps([("x", prob, gt)], progress=False)
    png = save(tmp_path / "x.png", np.rint(prob * 255).astype(np.uint8))
    b = evaluate_maps([("x", read_prob_map(png), gt)], progress=False)
    for key in ("ODS", "OIS", "AP", "F1@t", "IoU@t"):
        assert a.summary[key] == b.summary[key]


def test_evaluate_maps_rejects_bad_arguments():
    gt = np.zeros((4, 4), bool)
    with pytest.raises(ValueError, match="matching"):
        evaluate_maps([("x", gt * 1.0, gt)], matching="hungarian", progress=False)
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate_maps([], progress=False)


def test_bsds_matching_through_the_engine(tmp_path):
    from crackseg.metrics.bsds import require_pyedgeeval

    try:
        require_pyedgeeval()
    except ImportError:
        pytest.skip("optional pyedgeeval not usable")
    gt = np.zeros((16, 24), bool)
    gt[7:10, 2:22] = True  # 3 px wide
    result = evaluate_maps([("x", gt * 1.0, gt)], matching="bsds", num_thresholds=5, progress=False)
    assert result.summary["matching"] == "bsds"
    assert result.summary["ODS"] == pytest.approx(1.0, abs=0.1)
    paths = write_report(result, tmp_path)
    assert json.loads(paths["metrics"].read_text())["matching"] == "bsds"


def test_masks_without_predictions_are_an_error_or_counted(tmp_path):
    """Scoring 1 of 3 images as if it were the data set is a silent wrong score."""
    from crackseg.engine.evaluate import EvaluationError

    pred, gt, out = tmp_path / "pred", tmp_path / "gt", tmp_path / "out"
    save(pred / "a_prob.png", crack())
    for stem in ("a", "b_mask", "c"):  # b is CRACK500-named: counted once, as image b
        save(gt / f"{stem}.png", crack())
    with pytest.raises(EvaluationError, match=r"2 of 3 ground-truth masks.*b_mask\.png, c\.png"):
        find_pairs(pred, gt)
    result = evaluate_dirs(pred, gt, out_dir=out, allow_missing=True, progress=False)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_images"] == 1 and metrics["num_missing_predictions"] == 2
    assert "not scored: 2" in format_table(result)


def test_prob_map_colour_grey_nan(tmp_path):
    from crackseg.engine.evaluate import EvaluationError

    levels = np.arange(0, 256, dtype=np.uint8).reshape(16, 16)
    grey_rgb = save(tmp_path / "g.png", np.stack([levels] * 3, axis=2))
    np.testing.assert_array_equal(read_prob_map(grey_rgb), levels)  # grey saved as RGB: fine
    heat = save(tmp_path / "h.png", np.stack([levels, 255 - levels, levels * 0], axis=2))
    with pytest.raises(EvaluationError, match=r"h\.png is a colour image.*--color-maps"):
        read_prob_map(heat)
    assert read_prob_map(heat, color=True).shape == (16, 16)
    f = np.full((4, 4), 0.5, np.float32)
    f[1, 1] = np.nan
    Image.fromarray(f, mode="F").save(tmp_path / "n.tif")
    with pytest.raises(EvaluationError, match=r"n\.tif holds 1 NaN"):
        read_prob_map(tmp_path / "n.tif")
    gt = np.zeros((4, 4), bool)
    with pytest.raises(EvaluationError, match="'x' holds 1 NaN"):
        evaluate_maps([("x", f, gt)], progress=False)


def test_inverted_mask_gets_a_warning_naming_it(tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    save(pred / "a_prob.png", crack())
    save(gt / "a.png", 255 - crack())
    with pytest.warns(UserWarning, match=r"a\.png marks 95% of its pixels as crack.*inverted"):
        evaluate_dirs(pred, gt, progress=False)
    with pytest.warns(UserWarning, match="ground truth of 'x'.*inverted"):
        evaluate_maps([("x", np.zeros((4, 4)), np.ones((4, 4), bool))], progress=False)
