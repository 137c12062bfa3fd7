"""The field's evaluation protocol for crack maps: threshold sweep, ODS, OIS, AP, F1 / IoU.

Everything here works on one probability map and one binary ground-truth mask at a time, and on
lists of per-image counts for a data set. The rules, fixed once for the whole package:

**Quantisation and thresholds.** A probability map arrives either as floats in [0, 1] or as
8-bit levels 0..255 (``level = round(p * 255)``); floats are quantised once to those 256 levels,
so a float map and the PNG written from it score identically. The sweep uses ``N`` thresholds
(default 255) placed as in the BSDS benchmark, ``t_k = k / (N + 1)`` for ``k = 1..N``, and a
pixel is *predicted crack at t* when ``p >= t``, i.e. when its level ``q >= ceil(255 * t)``.
With ``N = 255`` the thresholds hit every level 1..255 exactly (level 0 is never predicted);
``N = 99`` gives the classic 0.01..0.99. All thresholds are computed at once from integer
histograms (``np.bincount`` over the 256 levels and a reverse cumulative sum), never by a loop
over thresholds.

**Matching (the distance-transform rule).** With a tolerance ``r`` in pixels: a predicted pixel
is *correct* when the Euclidean distance to the nearest ground-truth pixel is ``<= r``; a
ground-truth pixel is *found* at threshold ``t`` when some pixel within distance ``<= r`` of it
(a disk of radius ``r``) is predicted at ``t``. Distances are compared exactly on squared
integer offsets, so a pixel at distance 2 is inside ``r = 2`` and one at sqrt(5) ~ 2.24 is not.
``r = 0`` is exact pixel matching. This is not one-to-one: two predicted pixels may both be
correct thanks to the same ground-truth pixel (see :mod:`crackseg.metrics.bsds` for the
one-to-one BSDS matching). Hence the two sides of the count are kept apart::

    precision(t) = tp_pred(t) / n_pred(t)     recall(t) = tp_gt(t) / n_gt
    F(t) = 2 P R / (P + R)

With ``r = 0`` ``tp_pred == tp_gt`` is the usual TP, ``n_pred - TP`` is FP and ``n_gt - TP`` FN.

**Undefined ratios (empty predictions, empty ground truth).** One convention everywhere:
precision is 1 when nothing is predicted (no false positive was made), recall is 1 when there is
nothing to find (empty ground truth), and F is 0 when ``P + R == 0``. Consequences:

- an image with crack pixels and nothing predicted has F = 0;
- an image with an *empty* ground truth has F = 1 at a threshold where nothing is predicted and
  F = 0 at one where anything is; its best F (its OIS term) is therefore 1 exactly when the
  highest threshold predicts nothing (no pixel at probability >= t_N), else 0;
- in the data-set sums (ODS, AP, the PR curve) an empty-ground-truth image adds only to
  ``n_pred``: its predicted pixels are pure false positives, and it adds nothing to recall;
- at a threshold where the whole data set predicts nothing the PR curve has precision 1 and
  recall 0 (such points add no area to AP).

**ODS** is the best F over the thresholds with the counts summed over the data set (ties go to
the lowest threshold). **OIS** is the mean over images of each image's best F (the definition in
the crack literature; ``OIS_pooled`` is also reported: F of the counts summed at each image's own
best threshold, as the BSDS/pyedgeeval tool computes "OIS"). **AP** is the area under the data-set
PR curve by the step rule of average precision: thresholds are walked from the highest to the
lowest and ``AP = sum_k (R_k - R_{k-1}) * P_k`` with ``R_0 = 0``, i.e. each recall increment is
weighted by the precision reached there (the definition of scikit-learn's
``average_precision_score``, used by many crack-segmentation papers; it is exactly 1 for a perfect
map and never interpolates optimistically). Recall that is never reached (ground-truth pixels at
probability level 0) adds no area. ``R_k`` is the running maximum of recall, which only matters
under BSDS matching, where thinning can make recall dip as the threshold falls.
The edge-detection toolboxes behind older crack tables (and pyedgeeval's ``AP`` / ``AUC``)
instead interpolate precision on a 0.01 recall grid, so their AP differs slightly from this one;
ODS and OIS are unaffected.

**Fixed threshold.** F1, IoU, precision and recall at one threshold (default 0.5) use exact pixel
matching (tolerance 0) and the same conventions: F1 = 2TP / (2TP + FP + FN) and
IoU = TP / (TP + FP + FN), both 1 when the denominator is 0 (empty ground truth, nothing
predicted). mIoU is the mean of the crack IoU and the background IoU TN / (TN + FP + FN).
Over a data set the confusion counts are summed first, then the scores are computed once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "NUM_LEVELS",
    "Confusion",
    "ImageCounts",
    "confusion_at_threshold",
    "dataset_fixed_threshold_scores",
    "disk_footprint",
    "fixed_threshold_scores",
    "match_counts",
    "prf_curve",
    "quantize",
    "scores_from_confusion",
    "summarize",
    "threshold_level",
    "threshold_levels",
    "thresholds",
]

#: Probability maps are quantised to the 8-bit levels 0..NUM_LEVELS.
NUM_LEVELS = 255

# Slack for comparisons of squared distances against a squared tolerance.
_EPS = 1e-9


# ---------------------------------------------------------------------------------------------
# Quantisation and thresholds
# ---------------------------------------------------------------------------------------------
def quantize(prob: np.ndarray) -> np.ndarray:
    """Return a probability map as uint8 levels 0..255 (``round(p * 255)``).

    Accepts uint8 (returned as is), bool (0 / 255), other integer arrays already in 0..255, and
    floats in [0, 1] (values within 1e-6 outside are clipped). Anything else raises
    ``ValueError``: logits or 0..255 floats are a caller's mistake, not something to guess at.
    """
    prob = np.asarray(prob)
    if prob.ndim != 2:
        raise ValueError(f"expected an (H, W) probability map, got shape {prob.shape}")
    if prob.dtype == np.uint8:
        return prob
    if prob.dtype == np.bool_:
        return prob.astype(np.uint8) * np.uint8(NUM_LEVELS)
    if np.issubdtype(prob.dtype, np.integer):
        if prob.size and (prob.min() < 0 or prob.max() > NUM_LEVELS):
            raise ValueError(
                f"integer probability maps must hold levels 0..{NUM_LEVELS}, "
                f"got {prob.min()}..{prob.max()}"
            )
        return prob.astype(np.uint8)
    if np.issubdtype(prob.dtype, np.floating):
        if prob.size:
            lo, hi = float(np.min(prob)), float(np.max(prob))
            if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -1e-6 or hi > 1 + 1e-6:
                raise ValueError(
                    f"float probability maps must lie in [0, 1], got {lo:.4g}..{hi:.4g} "
                    "(apply a sigmoid to logits first)"
                )
        q = np.rint(np.clip(prob, 0.0, 1.0) * NUM_LEVELS)
        return q.astype(np.uint8)
    raise ValueError(f"unsupported probability map dtype {prob.dtype}")


def _check_num_thresholds(num_thresholds: int) -> int:
    n = int(num_thresholds)
    if n != num_thresholds or not 1 <= n <= NUM_LEVELS:
        raise ValueError(
            f"num_thresholds must be an integer in 1..{NUM_LEVELS}, got {num_thresholds}"
        )
    return n


def thresholds(num_thresholds: int = 255) -> np.ndarray:
    """The sweep's thresholds ``t_k = k / (N + 1)``, ``k = 1..N``, ascending (float64)."""
    n = _check_num_thresholds(num_thresholds)
    return np.arange(1, n + 1, dtype=np.float64) / (n + 1)


def threshold_levels(num_thresholds: int = 255) -> np.ndarray:
    """Integer level for each threshold: predicted iff ``q >= ceil(255 k / (N + 1))`` (exact)."""
    n = _check_num_thresholds(num_thresholds)
    k = np.arange(1, n + 1, dtype=np.int64)
    return -((-NUM_LEVELS * k) // (n + 1))  # integer ceil


def threshold_level(threshold: float) -> int:
    """Integer level of an arbitrary threshold in [0, 1]: ``p >= t`` iff ``q >= ceil(255 t)``."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    return int(np.ceil(round(threshold * NUM_LEVELS, 9)))


# ---------------------------------------------------------------------------------------------
# Per-image counts for the whole sweep
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageCounts:
    """Counts of one image for every threshold of the sweep (arrays ascending in threshold).

    Attributes:
        tp_pred: predicted pixels that are correct (within tolerance of the ground truth).
        n_pred: predicted pixels.
        tp_gt: ground-truth pixels found (a prediction within tolerance).
        n_gt: ground-truth pixels (the same at every threshold).
    """

    tp_pred: np.ndarray
    n_pred: np.ndarray
    tp_gt: np.ndarray
    n_gt: int

    @property
    def num_thresholds(self) -> int:
        return int(self.n_pred.shape[0])


def disk_footprint(radius: float) -> np.ndarray:
    """Boolean disk of all integer offsets ``(dy, dx)`` with ``dy^2 + dx^2 <= radius^2``."""
    if radius < 0:
        raise ValueError(f"tolerance must be >= 0, got {radius}")
    r = int(np.floor(radius + _EPS))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (yy * yy + xx * xx) <= radius * radius + _EPS


def _disk_rectangles(radius: float) -> list[tuple[int, int]]:
    """The disk of :func:`disk_footprint` as a union of centred ``(height, width)`` rectangles.

    For each half-width ``w`` the tallest row band whose offsets all reach ``|dx| <= w``; the
    maximum over a disk is then the maximum of separable (fast) rectangular maximum filters.
    """
    r = int(np.floor(radius + _EPS))
    tallest: dict[int, int] = {}
    for dy in range(r + 1):
        w = int(np.floor(np.sqrt(max(radius * radius - dy * dy, 0.0)) + _EPS))
        while (w + 1) ** 2 + dy * dy <= radius * radius + _EPS:  # guard against sqrt rounding
            w += 1
        tallest[w] = max(tallest.get(w, -1), dy)
    return [(2 * dy + 1, 2 * w + 1) for w, dy in tallest.items()]


def _max_disk(a: np.ndarray, radius: float) -> np.ndarray:
    """Maximum of ``a`` over the disk of ``radius`` around every pixel (outside counts as 0)."""
    from scipy import ndimage  # lazy: prediction needs quantize() alone, not scipy

    if radius < 4:  # a small footprint is cheaper than several separable passes
        return ndimage.maximum_filter(a, footprint=disk_footprint(radius), mode="constant", cval=0)
    out = None
    for size in _disk_rectangles(radius):
        m = ndimage.maximum_filter(a, size=size, mode="constant", cval=0)
        out = m if out is None else np.maximum(out, m, out=out)
    return out


def _dilate_disk(mask: np.ndarray, radius: float) -> np.ndarray:
    """Pixels within Euclidean distance ``<= radius`` of a True pixel of ``mask``."""
    from scipy import ndimage

    if radius > 8:  # the distance transform's cost does not grow with the radius
        d2 = np.rint(np.square(ndimage.distance_transform_edt(~mask)))
        return d2 <= radius * radius + _EPS
    m = mask.view(np.uint8)
    out = None
    for size in _disk_rectangles(radius):
        d = ndimage.maximum_filter(m, size=size, mode="constant", cval=0)
        out = d if out is None else np.maximum(out, d, out=out)
    return out.astype(bool)


def _disk_ops_sparse(q: np.ndarray, gt: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Both disk operations by visiting only the ground-truth pixels (cracks are sparse).

    Returns the mask of pixels within ``radius`` of the ground truth and, for every ground-truth
    pixel (row-major order, as ``q[gt]``), the maximum level within ``radius`` of it. Costs
    ``n_gt * |disk|`` operations instead of whole-image filters.
    """
    r = int(np.floor(radius + _EPS))
    h, w = q.shape
    wp = w + 2 * r
    qp = np.zeros((h + 2 * r, wp), dtype=q.dtype)
    qp[r : r + h, r : r + w] = q
    qflat = qp.ravel()
    ys, xs = np.nonzero(gt)
    base = (ys + r) * wp + (xs + r)
    near = np.zeros(qp.size, dtype=bool)
    reach = np.zeros(base.shape, dtype=q.dtype)
    for dy, dx in np.argwhere(disk_footprint(radius)) - r:
        idx = base + (dy * wp + dx)
        np.maximum(reach, qflat[idx], out=reach)
        near[idx] = True
    return near.reshape(qp.shape)[r : r + h, r : r + w], reach


def _suffix_sum(hist: np.ndarray) -> np.ndarray:
    """``out[L] = sum(hist[L:])`` (the number of pixels with level >= L)."""
    return np.cumsum(hist[::-1])[::-1]


def _check_pair(prob: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q = quantize(prob)
    gt = np.asarray(gt)
    if gt.ndim != 2:
        raise ValueError(f"expected an (H, W) ground-truth mask, got shape {gt.shape}")
    if gt.shape != q.shape:
        raise ValueError(f"probability map {q.shape} and ground truth {gt.shape} differ in size")
    return q, gt.astype(bool, copy=False)


def match_counts(
    prob: np.ndarray,
    gt: np.ndarray,
    tolerance: float = 2.0,
    num_thresholds: int = 255,
) -> ImageCounts:
    """Count matches of one probability map against one mask at every threshold at once.

    Uses the distance-transform rule of the module docstring: a predicted pixel is correct iff its
    Euclidean distance to the nearest ground-truth pixel is ``<= tolerance``; a ground-truth pixel
    is found at ``t`` iff the maximum level within the disk of radius ``tolerance`` around it is
    ``>= t``. Both sides come from 256-bin histograms, so the cost does not depend on
    ``num_thresholds``. The disk operations visit only the ground-truth pixels and the disk's
    offsets when that is cheaper (sparse cracks, small tolerances), else they run as
    whole-image maximum filters / a distance transform; the results are identical.

    Args:
        prob: ``(H, W)`` probabilities, float in [0, 1] or uint8 levels.
        gt: ``(H, W)`` ground truth, bool or {0, 1}.
        tolerance: matching distance in pixels (0 = exact pixel matching).
        num_thresholds: number of thresholds ``N`` (``t_k = k / (N + 1)``).
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    q, gt = _check_pair(prob, gt)
    levels = threshold_levels(num_thresholds)
    n_pred = _suffix_sum(np.bincount(q.ravel(), minlength=NUM_LEVELS + 1))[levels]
    n_gt = int(np.count_nonzero(gt))
    if n_gt == 0:
        zeros = np.zeros(levels.shape, dtype=np.int64)
        return ImageCounts(
            tp_pred=zeros, n_pred=n_pred.astype(np.int64), tp_gt=zeros.copy(), n_gt=0
        )

    if tolerance == 0:
        near_gt, reach_at_gt = gt, q[gt]
    elif n_gt * int(disk_footprint(tolerance).sum()) <= 48 * q.size:
        near_gt, reach_at_gt = _disk_ops_sparse(q, gt, tolerance)
    else:
        near_gt, reach_at_gt = _dilate_disk(gt, tolerance), _max_disk(q, tolerance)[gt]
    tp_pred = _suffix_sum(np.bincount(q[near_gt], minlength=NUM_LEVELS + 1))[levels]
    tp_gt = _suffix_sum(np.bincount(reach_at_gt, minlength=NUM_LEVELS + 1))[levels]
    return ImageCounts(
        tp_pred=tp_pred.astype(np.int64),
        n_pred=n_pred.astype(np.int64),
        tp_gt=tp_gt.astype(np.int64),
        n_gt=n_gt,
    )


# ---------------------------------------------------------------------------------------------
# Data-set summary: ODS, OIS, AP, PR curve
# ---------------------------------------------------------------------------------------------
def prf_curve(
    tp_pred: np.ndarray | float,
    n_pred: np.ndarray | float,
    tp_gt: np.ndarray | float,
    n_gt: np.ndarray | float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F from counts, with the module's conventions for 0 / 0.

    Precision is 1 where ``n_pred == 0``, recall is 1 where ``n_gt == 0``, F is 0 where
    ``P + R == 0``. Inputs broadcast; outputs are float64 arrays.
    """
    tp_pred, n_pred, tp_gt, n_gt = (
        np.asarray(x, dtype=np.float64) for x in (tp_pred, n_pred, tp_gt, n_gt)
    )
    p = np.where(n_pred > 0, tp_pred / np.maximum(n_pred, 1), 1.0)
    r = np.where(n_gt > 0, tp_gt / np.maximum(n_gt, 1), 1.0)
    s = p + r
    f = np.where(s > 0, 2 * p * r / np.where(s > 0, s, 1.0), 0.0)
    return p, r, f


def _average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """Step-rule AP over a curve given in ascending threshold order (see module docstring).

    Recall only grows as the threshold falls under the distance rule; under BSDS matching
    thinning can make it dip, so the increments are taken on the running maximum of recall
    (a dip and its recovery are not counted twice).
    """
    p = precision[::-1]
    r = np.maximum.accumulate(recall[::-1])
    dr = np.diff(np.concatenate([[0.0], r]))
    return float(np.sum(dr * p))


def summarize(counts: Sequence[ImageCounts]) -> dict[str, Any]:
    """Summarise per-image counts of one sweep into the data-set scores.

    Returns a dict with:

    - ``ODS``, ``ods_threshold``, ``precision``, ``recall``: best data-set F and where it is;
    - ``OIS``: mean over images of each image's best F; ``OIS_pooled``: F of the counts summed at
      each image's best threshold (the BSDS tool's "OIS");
    - ``AP``: step-rule area under the data-set PR curve;
    - ``num_images``, ``num_empty_gt``, ``num_thresholds``;
    - arrays ``thresholds``, ``curve_precision``, ``curve_recall``, ``curve_f`` (the PR curve,
      ascending threshold), ``image_best_f`` and ``image_best_threshold`` (per image, in order).

    Rules for empty predictions and empty ground truth are those of the module docstring.
    """
    counts = list(counts)
    if not counts:
        raise ValueError("summarize() needs at least one image")
    n = counts[0].num_thresholds
    if any(c.num_thresholds != n for c in counts):
        raise ValueError("all images must be counted with the same number of thresholds")
    t = thresholds(n)

    tp_pred = np.stack([c.tp_pred for c in counts])  # (images, thresholds)
    n_pred = np.stack([c.n_pred for c in counts])
    tp_gt = np.stack([c.tp_gt for c in counts])
    n_gt = np.array([c.n_gt for c in counts], dtype=np.int64)

    # Data set: counts summed over images, one threshold for all.
    p, r, f = prf_curve(tp_pred.sum(0), n_pred.sum(0), tp_gt.sum(0), n_gt.sum())
    ods_i = int(np.argmax(f))

    # Per image: each image's best threshold.
    _, _, f_img = prf_curve(tp_pred, n_pred, tp_gt, n_gt[:, None])
    best_i = np.argmax(f_img, axis=1)
    rows = np.arange(len(counts))
    image_best_f = f_img[rows, best_i]
    _, _, f_pooled = prf_curve(
        tp_pred[rows, best_i].sum(),
        n_pred[rows, best_i].sum(),
        tp_gt[rows, best_i].sum(),
        n_gt.sum(),
    )

    return {
        "ODS": float(f[ods_i]),
        "ods_threshold": float(t[ods_i]),
        "precision": float(p[ods_i]),
        "recall": float(r[ods_i]),
        "OIS": float(image_best_f.mean()),
        "OIS_pooled": float(f_pooled),
        "AP": _average_precision(p, r),
        "num_images": len(counts),
        "num_empty_gt": int(np.count_nonzero(n_gt == 0)),
        "num_thresholds": n,
        "thresholds": t,
        "curve_precision": p,
        "curve_recall": r,
        "curve_f": f,
        "image_best_f": image_best_f,
        "image_best_threshold": t[best_i],
    }


# ---------------------------------------------------------------------------------------------
# Fixed threshold: F1, IoU, mIoU
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Confusion:
    """Exact pixel confusion counts at one threshold (crack = positive)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(
            self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn
        )


def confusion_at_threshold(prob: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> Confusion:
    """Exact pixel TP / FP / FN / TN with crack predicted where ``prob >= threshold``."""
    q, gt = _check_pair(prob, gt)
    pred = q >= threshold_level(threshold)
    tp = int(np.count_nonzero(pred & gt))
    n_pred = int(np.count_nonzero(pred))
    n_gt = int(np.count_nonzero(gt))
    return Confusion(tp=tp, fp=n_pred - tp, fn=n_gt - tp, tn=gt.size - n_pred - n_gt + tp)


def _ratio(num: int, den: int) -> float:
    return num / den if den > 0 else 1.0


def scores_from_confusion(c: Confusion) -> dict[str, float]:
    """Precision, recall, F1, IoU, background IoU and mIoU from confusion counts.

    Every 0 / 0 is 1 (nothing predicted, nothing to find: nothing wrong).
    """
    iou = _ratio(c.tp, c.tp + c.fp + c.fn)
    iou_bg = _ratio(c.tn, c.tn + c.fp + c.fn)
    return {
        "precision": _ratio(c.tp, c.tp + c.fp),
        "recall": _ratio(c.tp, c.tp + c.fn),
        "F1": _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn),
        "IoU": iou,
        "IoU_background": iou_bg,
        "mIoU": (iou + iou_bg) / 2,
    }


def fixed_threshold_scores(
    prob: np.ndarray, gt: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """F1, IoU, precision, recall (and mIoU) of one image at a fixed threshold, tolerance 0."""
    return scores_from_confusion(confusion_at_threshold(prob, gt, threshold))


def dataset_fixed_threshold_scores(confusions: Iterable[Confusion]) -> dict[str, float]:
    """Data-set scores at a fixed threshold: confusion counts summed first, scored once."""
    total = Confusion()
    for c in confusions:
        total = total + c
    return scores_from_confusion(total)
