"""One-to-one BSDS matching (crackseg.metrics.bsds) against direct pyedgeeval calls.

The BSDS matcher is randomised (random sparse outlier edges in its assignment graph, seeded from
the clock), so two calls on the same maps may differ by a matched pixel or two: agreement is
pinned within that slack.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from scipy import ndimage

from crackseg.metrics import bsds_counts, match_counts, summarize, threshold_levels
from crackseg.metrics.bsds import max_dist_fraction, require_pyedgeeval


def needs_pyedgeeval() -> None:
    """Skip unless the optional extra imports completely (pyedgeeval, opencv, scikit-image)."""
    try:
        require_pyedgeeval()
    except ImportError as exc:
        pytest.skip(f"optional pyedgeeval not usable: {exc.__cause__ or exc}")


SLACK_PX = 3  # matched pixels a randomised BSDS assignment may lose on these small maps


def test_missing_pyedgeeval_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyEdgeEval", None)  # makes the import fail
    with pytest.raises(ImportError, match=r'pip install "crackseg\[bsds\]"'):
        require_pyedgeeval()
    with pytest.raises(ImportError, match="bsds"):
        bsds_counts(np.zeros((4, 4)), np.zeros((4, 4), bool))


def test_max_dist_fraction_is_pixels_over_diagonal():
    assert max_dist_fraction(2, (30, 40)) * 50 == pytest.approx(2, abs=1e-5)
    assert max_dist_fraction(0, (30, 40)) > 0  # pyedgeeval rejects 0


def fixture_map(seed: int, shape=(24, 30)):
    """A smooth random probability map and a 3-px-wide crack band crossing it."""
    rng = np.random.default_rng(seed)
    gt = np.zeros(shape, bool)
    rows = (np.linspace(6, 17, shape[1]) + rng.integers(-1, 2, shape[1])).astype(int)
    for x, y in enumerate(rows):
        gt[y - 1 : y + 2, x] = True
    noise = ndimage.gaussian_filter(rng.random(shape), 1.0)
    prob = np.clip(0.8 * ndimage.gaussian_filter(gt * 1.0, 1.0) + 0.6 * noise - 0.2, 0, 1)
    return (prob * 255).round().astype(np.uint8), gt


@pytest.mark.parametrize("tol", [1, 2, 3])
def test_counts_agree_with_direct_pyedgeeval(tol):
    needs_pyedgeeval()
    from pyEdgeEval.common.binary_label import evaluate_boundaries_threshold
    from pyEdgeEval.preprocess import binary_thin

    n = 9
    for seed in (0, 1):
        q, gt = fixture_map(seed)
        mine = bsds_counts(q, gt, tolerance=tol, num_thresholds=n)
        count_r, sum_r, count_p, sum_p = evaluate_boundaries_threshold(
            thresholds=threshold_levels(n).astype(np.float64),
            pred=q.astype(np.float64),
            gt=binary_thin(gt),
            max_dist=tol / math.hypot(*q.shape),
            apply_thinning=True,
        )
        # thinning is deterministic: the pixel totals agree exactly
        np.testing.assert_array_equal(mine.n_gt, sum_r)
        np.testing.assert_array_equal(mine.n_pred, sum_p)
        # the matched pixels agree up to the matcher's randomness
        np.testing.assert_allclose(mine.tp_gt, count_r, atol=SLACK_PX)
        np.testing.assert_allclose(mine.tp_pred, count_p, atol=SLACK_PX)
        assert mine.tp_pred.max() > 0 and mine.tp_pred.min() < mine.n_pred.max()  # not trivial


def test_summary_agrees_with_pyedgeeval_metrics():
    needs_pyedgeeval()
    from pyEdgeEval.common.binary_label import calculate_metrics
    from pyEdgeEval.common.metrics import compute_rec_prec_f1

    n = 9
    maps = [fixture_map(seed) for seed in (2, 3, 4)]
    counts = [bsds_counts(q, gt, tolerance=2, num_thresholds=n) for q, gt in maps]
    s = summarize(counts)

    def eval_single(i):
        c = counts[i]
        return c.tp_gt, np.full(n, c.n_gt), c.tp_pred, c.n_pred

    # pyedgeeval's calculate_metrics takes sample dicts; feed it our counts directly
    samples = [{"name": str(i), "i": i} for i in range(3)]
    _, per_threshold, overall = calculate_metrics(
        lambda sample: eval_single(sample["i"]), thresholds=n, samples=samples, nproc=1
    )
    f_theirs = np.array([row["f1"] for row in per_threshold])
    _, _, f_mine = compute_rec_prec_f1(
        sum(c.tp_gt for c in counts),
        sum(c.n_gt for c in counts) * np.ones(n),
        sum(c.tp_pred for c in counts),
        sum(c.n_pred for c in counts),
    )
    np.testing.assert_allclose(s["curve_f"], f_theirs)
    np.testing.assert_allclose(f_mine, f_theirs)
    assert s["ODS"] == pytest.approx(f_theirs.max())
    # pyedgeeval interpolates between thresholds, so its ODS is a little higher
    assert s["ODS"] <= overall["ODS_f1"] + 1e-12 and overall["ODS_f1"] - s["ODS"] < 0.02
    assert s["OIS_pooled"] == pytest.approx(overall["OIS_f1"])


@pytest.mark.parametrize(("shift", "f"), [(0, 1.0), (1, 1.0), (2, 1.0), (3, 0.0)])
def test_straight_line_both_matchers_agree(shift, f):
    needs_pyedgeeval()
    gt = np.zeros((20, 40), bool)
    gt[10, 5:35] = True  # a thin crack, 30 px long
    prob = np.zeros((20, 40))
    prob[10 + shift, 5:35] = 1.0  # the same crack, shifted across it
    dist = summarize([match_counts(prob, gt, tolerance=2, num_thresholds=5)])
    bsds = summarize([bsds_counts(prob, gt, tolerance=2, num_thresholds=5)])
    assert dist["ODS"] == f
    assert bsds["ODS"] == pytest.approx(f, abs=SLACK_PX / 30)


def test_thinning_the_ground_truth_lifts_the_recall_cap():
    needs_pyedgeeval()
    gt = np.zeros((20, 40), bool)
    gt[9:12, :] = True  # a crack 3 px wide
    prob = gt.astype(float)  # predicted perfectly
    thick = bsds_counts(prob, gt, tolerance=2, num_thresholds=3, thin_gt=False)
    recall_thick = thick.tp_gt[0] / thick.n_gt
    assert recall_thick == pytest.approx(1 / 3, abs=0.05)  # capped near 1 / width
    thinned = summarize([bsds_counts(prob, gt, tolerance=2, num_thresholds=3)])
    assert thinned["ODS"] == 1.0


def test_empty_ground_truth_counts_false_positives():
    needs_pyedgeeval()
    prob = np.zeros((12, 12))
    prob[4, 2:9] = 1.0
    c = bsds_counts(prob, np.zeros((12, 12), bool), tolerance=2, num_thresholds=3)
    assert c.n_gt == 0
    np.testing.assert_array_equal(c.tp_pred, 0)
    np.testing.assert_array_equal(c.n_pred, 7)
