"""Hand-computed checks of the evaluation protocol (crackseg.metrics.protocol)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from crackseg.metrics import (
    Confusion,
    ImageCounts,
    confusion_at_threshold,
    dataset_fixed_threshold_scores,
    fixed_threshold_scores,
    match_counts,
    quantize,
    summarize,
    threshold_levels,
    thresholds,
)
from crackseg.metrics.protocol import (
    _dilate_disk,
    _disk_ops_sparse,
    _max_disk,
    disk_footprint,
)


def line_gt(shape=(20, 20), rows=(5, 15), col=10) -> np.ndarray:
    gt = np.zeros(shape, dtype=bool)
    gt[rows[0] : rows[1], col] = True
    return gt


def shifted_line(dy: int, dx: int, value: float = 1.0, shape=(20, 20)) -> np.ndarray:
    prob = np.zeros(shape)
    prob[5 + dy : 15 + dy, 10 + dx] = value
    return prob


# --------------------------------------------------------------------------- thresholds


def test_thresholds_follow_bsds_spacing_and_hit_every_level():
    np.testing.assert_allclose(thresholds(99), np.arange(1, 100) / 100)
    np.testing.assert_array_equal(threshold_levels(255), np.arange(1, 256))
    # predicted iff p >= t: check the integer levels against the float rule on every level
    for n in (1, 9, 99, 254, 255):
        t = thresholds(n)
        levels = threshold_levels(n)
        q = np.arange(256)
        expected = (q[None, :] / 255.0) >= t[:, None] - 1e-12
        np.testing.assert_array_equal(q[None, :] >= levels[:, None], expected)


@pytest.mark.parametrize("bad", [0, 256, 2.5])
def test_num_thresholds_out_of_range_is_rejected(bad):
    with pytest.raises(ValueError, match="num_thresholds"):
        thresholds(bad)


def test_quantize_float_and_uint8_agree_and_logits_are_rejected():
    p = np.array([[0.0, 0.5, 1.0, 0.2]])
    np.testing.assert_array_equal(quantize(p), [[0, 128, 255, 51]])
    u = np.array([[0, 128, 255, 51]], dtype=np.uint8)
    assert quantize(u) is u
    np.testing.assert_array_equal(quantize(p > 0.4), [[0, 255, 255, 0]])
    with pytest.raises(ValueError, match="sigmoid"):
        quantize(np.array([[-3.0, 4.0]]))
    with pytest.raises(ValueError, match="sigmoid"):
        quantize(np.array([[np.nan, 0.5]]))


# --------------------------------------------------------------------------- tolerance


def test_disk_footprint_edges():
    assert disk_footprint(0).sum() == 1
    assert disk_footprint(1).sum() == 5
    assert disk_footprint(2).sum() == 13  # (2, 0) in, (1, 2) at sqrt(5) out
    assert disk_footprint(np.sqrt(5)).sum() == 21


@pytest.mark.parametrize(
    ("dy", "dx", "tol", "tp_pred", "tp_gt"),
    [
        (0, 0, 0, 10, 10),  # exact
        (0, 1, 0, 0, 0),  # 1 px off, exact matching: nothing
        (0, 1, 2, 10, 10),
        (0, 2, 2, 10, 10),  # exactly at distance 2: counts
        (0, 2, 1.99, 0, 0),  # just inside the edge: does not
        (0, 3, 2, 0, 0),  # 3 px off
        (0, 3, 3, 10, 10),
        # diagonal: the end pixels of the shifted line are sqrt(5) ~ 2.24 from the line
        (1, 2, 2, 9, 9),
        (1, 2, 2.2, 9, 9),
        (1, 2, 2.24, 10, 10),
        (-1, -2, 2, 9, 9),
    ],
)
def test_offset_line_tolerance(dy, dx, tol, tp_pred, tp_gt):
    c = match_counts(shifted_line(dy, dx), line_gt(), tolerance=tol, num_thresholds=9)
    assert c.n_gt == 10
    np.testing.assert_array_equal(c.n_pred, 10)  # prob 1.0: predicted at every threshold
    np.testing.assert_array_equal(c.tp_pred, tp_pred)
    np.testing.assert_array_equal(c.tp_gt, tp_gt)


def test_single_pixel_at_distance_exactly_two():
    gt = np.zeros((9, 9), bool)
    gt[4, 4] = True
    prob = np.zeros((9, 9))
    prob[4, 6] = 1.0
    assert match_counts(prob, gt, tolerance=2).tp_gt[0] == 1
    assert match_counts(prob, gt, tolerance=1.999).tp_gt[0] == 0
    prob = np.zeros((9, 9))
    prob[5, 6] = 1.0  # sqrt(5) away
    assert match_counts(prob, gt, tolerance=2).tp_pred[0] == 0
    assert match_counts(prob, gt, tolerance=2.25).tp_pred[0] == 1


def test_distance_rule_is_not_one_to_one():
    # a 3-px-wide prediction around a 1-px line: every predicted pixel is near the line
    gt = line_gt()
    prob = np.zeros((20, 20))
    prob[5:15, 9:12] = 1.0
    c = match_counts(prob, gt, tolerance=1, num_thresholds=1)
    assert (c.tp_pred[0], c.n_pred[0], c.tp_gt[0], c.n_gt) == (30, 30, 10, 10)


# --------------------------------------------------------------------------- vectorised == naive


def naive_counts(prob, gt, tol, n):
    """Per-threshold loop with brute-force pairwise distances (the definition, written plainly)."""
    q = quantize(prob)
    ys, xs = np.mgrid[0 : q.shape[0], 0 : q.shape[1]]
    pts = np.stack([ys.ravel(), xs.ravel()], 1).astype(float)
    d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))  # all pixel pairs
    close = d <= tol + 1e-9
    g = gt.ravel()
    near_gt = (close & g[None, :]).any(1)
    tp_pred, n_pred, tp_gt = [], [], []
    for t in thresholds(n):
        pred = (q.ravel() / 255.0) >= t - 1e-12
        n_pred.append(pred.sum())
        tp_pred.append((pred & near_gt).sum())
        tp_gt.append(((close & pred[None, :]).any(1) & g).sum())
    return np.array(tp_pred), np.array(n_pred), np.array(tp_gt), int(g.sum())


@pytest.mark.parametrize("tol", [0, 1, 1.5, 2, np.sqrt(8), 3, 4.5, 9])
def test_histogram_counts_equal_naive_loop(tol):
    rng = np.random.default_rng(int(tol * 10))
    prob = rng.random((17, 23)) ** 3
    gt = rng.random((17, 23)) < 0.08
    for n in (255, 99):
        c = match_counts(prob, gt, tolerance=tol, num_thresholds=n)
        tp_pred, n_pred, tp_gt, n_gt = naive_counts(prob, gt, tol, n)
        np.testing.assert_array_equal(c.tp_pred, tp_pred)
        np.testing.assert_array_equal(c.n_pred, n_pred)
        np.testing.assert_array_equal(c.tp_gt, tp_gt)
        assert c.n_gt == n_gt


def test_histogram_counts_equal_naive_loop_dense_ground_truth():
    # dense ground truth: tolerances 6 and 9 take the whole-image filter path
    rng = np.random.default_rng(7)
    prob = rng.random((15, 19))
    gt = rng.random((15, 19)) < 0.7
    for tol in (2, 6, 9):
        c = match_counts(prob, gt, tolerance=tol, num_thresholds=99)
        tp_pred, n_pred, tp_gt, n_gt = naive_counts(prob, gt, tol, 99)
        np.testing.assert_array_equal(c.tp_pred, tp_pred)
        np.testing.assert_array_equal(c.tp_gt, tp_gt)


@pytest.mark.parametrize("radius", [1, 2, 2.5, 3.9, 4.5, 7, 8.5, 10])
def test_sparse_and_filter_disk_operations_agree(radius):
    rng = np.random.default_rng(3)
    q = rng.integers(0, 256, (31, 37)).astype(np.uint8)
    for density in (0.02, 0.3):
        gt = rng.random(q.shape) < density
        near, reach = _disk_ops_sparse(q, gt, radius)
        np.testing.assert_array_equal(near, _dilate_disk(gt, radius))
        np.testing.assert_array_equal(reach, _max_disk(q, radius)[gt])
        np.testing.assert_array_equal(
            _max_disk(q, radius),
            ndimage.maximum_filter(q, footprint=disk_footprint(radius), mode="constant"),
        )


# --------------------------------------------------------------------------- summary


def test_perfect_prediction():
    gt = line_gt()
    s = summarize([match_counts(gt.astype(float), gt)])
    assert s["ODS"] == 1.0 and s["OIS"] == 1.0 and s["OIS_pooled"] == 1.0
    assert s["AP"] == pytest.approx(1.0)


def test_all_zero_prediction():
    gt = line_gt()
    c = match_counts(np.zeros((20, 20)), gt)
    np.testing.assert_array_equal(c.n_pred, 0)
    s = summarize([c])
    assert s["ODS"] == 0.0 and s["OIS"] == 0.0 and s["AP"] == 0.0
    np.testing.assert_array_equal(s["curve_precision"], 1.0)  # nothing predicted: P = 1
    np.testing.assert_array_equal(s["curve_recall"], 0.0)


def test_empty_ground_truth_rules():
    empty = np.zeros((20, 20), bool)
    # nothing predicted: perfect
    clean = summarize([match_counts(np.zeros((20, 20)), empty)])
    assert clean["ODS"] == 1.0 and clean["OIS"] == 1.0 and clean["num_empty_gt"] == 1
    # a false positive at probability 1.0: wrong at every threshold
    fp1 = np.zeros((20, 20))
    fp1[3, 3] = 1.0
    s = summarize([match_counts(fp1, empty)])
    assert s["OIS"] == 0.0 and s["ODS"] == 0.0
    # a false positive at 0.6: OIS picks a threshold above it, best F 1 there
    fp06 = np.zeros((20, 20))
    fp06[3, 3] = 0.6  # level 153
    s = summarize([match_counts(fp06, empty)])
    assert s["OIS"] == 1.0
    assert s["image_best_threshold"][0] == pytest.approx(154 / 256)
    # mixed with a perfect image: the empty image adds only false positives to the sums
    gt = line_gt()
    s = summarize([match_counts(gt.astype(float), gt), match_counts(fp1, empty)])
    assert s["precision"] == pytest.approx(10 / 11) and s["recall"] == 1.0
    assert s["ODS"] == pytest.approx(20 / 21)
    assert s["OIS"] == pytest.approx(0.5)
    assert s["AP"] == pytest.approx(10 / 11)
    assert s["num_empty_gt"] == 1


def test_two_images_where_ods_and_ois_differ():
    # Image A: 4 crack pixels at 0.9 and 4 far false positives at 0.3.
    # Image B: 4 crack pixels at 0.2, nothing else. Exact matching.
    gt_a = np.zeros((10, 10), bool)
    gt_a[1, 1:5] = True
    prob_a = np.zeros((10, 10))
    prob_a[1, 1:5] = 0.9
    prob_a[8, 5:9] = 0.3  # level 76
    gt_b = np.zeros((10, 10), bool)
    gt_b[5, 2:6] = True
    prob_b = gt_b * 0.2  # level 51
    ca = match_counts(prob_a, gt_a, tolerance=0)
    cb = match_counts(prob_b, gt_b, tolerance=0)
    # counts at t = 0.25 (k = 64): A predicts its 4 cracks and 4 FPs, B nothing
    k = 63
    assert thresholds(255)[k] == pytest.approx(64 / 256)
    assert (ca.tp_pred[k], ca.n_pred[k], ca.tp_gt[k]) == (4, 8, 4)
    assert (cb.tp_pred[k], cb.n_pred[k], cb.tp_gt[k]) == (0, 0, 0)
    s = summarize([ca, cb])
    # per image best F is 1 for both; over the data set: t <= 0.2: P = 8/12, R = 1, F = 0.8;
    # 0.2 < t <= 0.3: P = R = 0.5; 0.3 < t <= 0.9: P = 1, R = 0.5, F = 2/3
    assert s["OIS"] == 1.0
    assert s["OIS_pooled"] == 1.0
    assert s["ODS"] == pytest.approx(0.8)
    assert s["ods_threshold"] == pytest.approx(1 / 256)  # ties go to the lowest threshold
    assert (s["precision"], s["recall"]) == (pytest.approx(2 / 3), 1.0)
    # AP, step rule: recall 0 -> 0.5 at P = 1, then 0.5 -> 1 at P = 2/3
    assert s["AP"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    np.testing.assert_allclose(s["image_best_f"], [1.0, 1.0])
    np.testing.assert_allclose(s["image_best_threshold"], [77 / 256, 1 / 256])


def test_ap_counts_a_recall_dip_once():
    # recall (ascending threshold) 1.0, 0.6, 0.8, 0.5, 0: from the top, 0 -> 0.5 at P = 1,
    # 0.5 -> 0.8 at P = 0.9, the dip to 0.6 adds nothing, 0.8 -> 1.0 at P = 0.5
    n_gt = 10
    c = ImageCounts(
        tp_pred=np.array([5, 6, 9, 5, 0]),
        n_pred=np.array([10, 6, 10, 5, 0]),
        tp_gt=np.array([10, 6, 8, 5, 0]),
        n_gt=n_gt,
    )
    s = summarize([c])
    np.testing.assert_allclose(s["curve_recall"], [1.0, 0.6, 0.8, 0.5, 0.0])
    assert s["AP"] == pytest.approx(0.5 * 1 + 0.3 * 0.9 + 0.2 * 0.5)


def test_summarize_rejects_mixed_threshold_counts():
    gt = line_gt()
    with pytest.raises(ValueError, match="same number"):
        summarize([match_counts(gt * 1.0, gt, num_thresholds=9), match_counts(gt * 1.0, gt)])
    with pytest.raises(ValueError):
        summarize([])
    assert isinstance(match_counts(gt * 1.0, gt), ImageCounts)


# --------------------------------------------------------------------------- fixed threshold


def test_fixed_threshold_hand_values():
    gt = np.zeros((4, 4), bool)
    gt[0, :] = True  # 4 crack pixels
    prob = np.zeros((4, 4))
    prob[0, :3] = [0.9, 0.5, 0.7]  # 0.5 exactly is predicted (p >= t)
    prob[0, 3] = 0.498  # level 127: not predicted
    prob[3, 3] = 0.6  # false positive
    c = confusion_at_threshold(prob, gt, 0.5)
    assert c == Confusion(tp=3, fp=1, fn=1, tn=11)
    s = fixed_threshold_scores(prob, gt, 0.5)
    assert s["precision"] == pytest.approx(0.75) and s["recall"] == pytest.approx(0.75)
    assert s["F1"] == pytest.approx(0.75)
    assert s["IoU"] == pytest.approx(3 / 5)
    assert s["mIoU"] == pytest.approx((3 / 5 + 11 / 13) / 2)
    # uint8 maps use the same rule: 128 >= ceil(127.5), 127 is not
    assert confusion_at_threshold((prob * 255).round().astype(np.uint8), gt, 0.5) == c


def test_fixed_threshold_empty_cases_and_dataset_sum():
    empty = np.zeros((4, 4), bool)
    s = fixed_threshold_scores(np.zeros((4, 4)), empty)
    assert s["F1"] == 1.0 and s["IoU"] == 1.0 and s["mIoU"] == 1.0
    s = fixed_threshold_scores(np.zeros((4, 4)), ~empty)
    assert s["F1"] == 0.0 and s["IoU"] == 0.0 and s["precision"] == 1.0
    # data set: counts are summed first (not a mean of per-image scores)
    a = Confusion(tp=3, fp=1, fn=0, tn=12)
    b = Confusion(tp=0, fp=0, fn=4, tn=12)
    d = dataset_fixed_threshold_scores([a, b])
    assert d["F1"] == pytest.approx(6 / 11)
    assert d["IoU"] == pytest.approx(3 / 8)
    assert d["mIoU"] == pytest.approx((3 / 8 + 24 / 29) / 2)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in size"):
        match_counts(np.zeros((4, 5)), np.zeros((5, 4), bool))
