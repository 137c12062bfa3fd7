"""One-to-one (BSDS) matching through the optional ``pyedgeeval`` package.

This is the matching of the BSDS boundary benchmark used by the FPHBN line of crack papers: at
each threshold the prediction is thinned to one-pixel lines and its pixels are matched one-to-one
to ground-truth pixels (a minimum-cost bipartite assignment) within the tolerance. It is exact
but slow (one assignment problem per image and distinct threshold), so it is opt-in
(``crackseg evaluate --matching bsds``); the default is the distance-transform rule of
:mod:`crackseg.metrics.protocol`.

**The ground truth is thinned too.** The benchmark was written for boundary maps, which are
already one pixel wide. Crack masks are regions several pixels wide: matching a thinned
prediction one-to-one against a region mask of width ``w`` leaves most ground-truth pixels
without a partner, so recall is capped near ``1 / w`` (measured: ODS 0.17 on maps that score
0.93 by the distance rule). Both sides are therefore thinned to centre lines (the BSDS/MATLAB
``bwmorph(..., 'thin')`` operation, pyedgeeval's ``binary_thin``) before matching; ``n_gt`` then
counts centre-line pixels, not mask pixels. Pass ``thin_gt=False`` to match against the raw
mask anyway.

**Tolerance.** pyedgeeval's ``max_dist`` is a fraction of the image diagonal; a tolerance of
``r`` pixels is passed as ``(r + 1e-6) / sqrt(H^2 + W^2)`` so that pairs at exactly ``r`` pixels
match, and ``r = 0`` (which pyedgeeval rejects) becomes exact pixel matching.

**The matcher is randomised**, as in the original BSDS benchmark: its assignment graph gets
random sparse outlier edges from a generator seeded by the clock, so repeated runs on the same
maps may differ by a matched pixel or so per image (measured: about one call in twenty loses one
match of thirty on a clean line). This is negligible on a real test set but visible on toy maps.

Thresholds, quantisation and the per-threshold counts are those of the protocol module, so
:func:`crackseg.metrics.protocol.summarize` turns these counts into ODS / OIS / AP as usual.
Images with empty ground truth: every (thinned) predicted pixel is a false positive.

Install the extra with ``pip install "crackseg[bsds]"`` (pyedgeeval builds from source with a
C++ compiler; it imports opencv and scikit-image).
"""

from __future__ import annotations

import contextlib
import io
import math
from types import ModuleType
from typing import Any

import numpy as np

from crackseg.metrics.protocol import (
    NUM_LEVELS,
    ImageCounts,
    _check_pair,
    _suffix_sum,
    threshold_levels,
)

__all__ = ["bsds_counts", "max_dist_fraction", "require_pyedgeeval", "thin"]

INSTALL_HINT = 'pip install "crackseg[bsds]"'


def require_pyedgeeval() -> ModuleType:
    """Import ``pyEdgeEval`` or raise ``ImportError`` with the install command."""
    try:
        # pyEdgeEval prints a note about an optional .mat reader on import: keep stdout clean.
        with contextlib.redirect_stdout(io.StringIO()):
            import pyEdgeEval  # noqa: F401
            from pyEdgeEval import correspond_pixels  # noqa: F401
            from pyEdgeEval.preprocess import binary_thin  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "matching='bsds' needs the optional pyedgeeval package (one-to-one BSDS matching); "
            f"install it with: {INSTALL_HINT}   (or use the default matching='distance')"
        ) from exc
    return pyEdgeEval


def _pyedgeeval_functions() -> tuple[Any, Any]:
    require_pyedgeeval()
    from pyEdgeEval import correspond_pixels
    from pyEdgeEval.preprocess import binary_thin

    return correspond_pixels, binary_thin


def thin(mask: np.ndarray) -> np.ndarray:
    """Thin a binary mask to one-pixel centre lines (pyedgeeval's ``binary_thin``)."""
    _, binary_thin = _pyedgeeval_functions()
    mask = np.asarray(mask).astype(bool)
    if not mask.any():
        return mask.copy()
    return np.asarray(binary_thin(mask)).astype(bool)


def max_dist_fraction(tolerance: float, shape: tuple[int, int]) -> float:
    """pyedgeeval's ``max_dist`` (fraction of the diagonal) for a tolerance in pixels."""
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    return (tolerance + 1e-6) / math.hypot(shape[0], shape[1])


def bsds_counts(
    prob: np.ndarray,
    gt: np.ndarray,
    tolerance: float = 2.0,
    num_thresholds: int = 255,
    thin_gt: bool = True,
) -> ImageCounts:
    """Counts of one image at every threshold with one-to-one BSDS matching.

    At each threshold the binary prediction ``prob >= t`` is thinned and matched one-to-one to the
    (thinned, unless ``thin_gt=False``) ground truth with pyedgeeval's ``correspond_pixels``
    within ``tolerance`` pixels. ``tp_pred`` / ``tp_gt`` are the matched pixels on each side
    (equal up to the assignment), ``n_pred`` the thinned predicted pixels and ``n_gt`` the
    thinned ground-truth pixels. Thresholds whose binary map equals the previous one's reuse its
    counts.
    """
    correspond_pixels, _ = _pyedgeeval_functions()
    q, gt = _check_pair(prob, gt)
    gt_ref = thin(gt) if thin_gt else gt.copy()
    n_gt = int(np.count_nonzero(gt_ref))
    levels = threshold_levels(num_thresholds)
    above = _suffix_sum(np.bincount(q.ravel(), minlength=NUM_LEVELS + 1))
    max_dist = max_dist_fraction(tolerance, q.shape)

    tp_pred = np.zeros(levels.shape, dtype=np.int64)
    n_pred = np.zeros(levels.shape, dtype=np.int64)
    tp_gt = np.zeros(levels.shape, dtype=np.int64)
    cache: dict[int, tuple[int, int, int]] = {}  # pixels >= level -> counts (same set)
    for i, level in enumerate(levels):
        key = int(above[level])
        if key not in cache:
            pred = thin(q >= level)
            npred = int(np.count_nonzero(pred))
            if n_gt == 0 or npred == 0:
                cache[key] = (0, npred, 0)
            else:
                match_pred, match_gt, _, _ = correspond_pixels(pred, gt_ref, max_dist=max_dist)
                cache[key] = (
                    int(np.count_nonzero(match_pred > 0)),
                    npred,
                    int(np.count_nonzero(match_gt > 0)),
                )
        tp_pred[i], n_pred[i], tp_gt[i] = cache[key]
    return ImageCounts(tp_pred=tp_pred, n_pred=n_pred, tp_gt=tp_gt, n_gt=n_gt)
