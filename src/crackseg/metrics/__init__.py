"""Evaluation metrics: the threshold sweep (ODS / OIS / AP) and fixed-threshold F1 / IoU.

See :mod:`crackseg.metrics.protocol` for the rules (thresholds, matching, AP, empty ground truth)
and :mod:`crackseg.metrics.bsds` for the optional one-to-one BSDS matching (``pyedgeeval``).
"""

from crackseg.metrics.bsds import bsds_counts
from crackseg.metrics.protocol import (
    Confusion,
    ImageCounts,
    confusion_at_threshold,
    dataset_fixed_threshold_scores,
    fixed_threshold_scores,
    match_counts,
    prf_curve,
    quantize,
    scores_from_confusion,
    summarize,
    threshold_levels,
    thresholds,
)

__all__ = [
    "Confusion",
    "ImageCounts",
    "bsds_counts",
    "confusion_at_threshold",
    "dataset_fixed_threshold_scores",
    "fixed_threshold_scores",
    "match_counts",
    "prf_curve",
    "quantize",
    "scores_from_confusion",
    "summarize",
    "threshold_levels",
    "thresholds",
]
