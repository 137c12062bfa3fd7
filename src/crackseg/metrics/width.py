"""Recall by crack width: are wide cracks found whole, or only along their two edges?

ODS pools every crack pixel, so a model that marks the two edges of a 20 px crack and misses its
middle loses little ODS on a set of thin cracks, yet its width and area measurements are wrong
exactly where severity is decided. This module gives each ground-truth pixel the **local width**
of its crack and reports, per width band, the share of ground-truth pixels found at a threshold
with the protocol's distance rule (a pixel is found iff a predicted pixel lies within
``tolerance`` of it, as :func:`crackseg.metrics.protocol.match_counts` counts recall).

Local width: the mask's skeleton carries the inscribed-disk width ``2 d - 1`` (``d``: Euclidean
distance to the background, so a 1 px line is 1 px wide and a 7 px band 7 px); every mask
pixel takes the width of its nearest skeleton pixel.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

from crackseg.metrics.protocol import _dilate_disk

#: The issue's bands, in pixels: [low, high).
WIDTH_BANDS: tuple[tuple[float, float], ...] = ((1, 3), (3, 6), (6, 12), (12, math.inf))


def band_name(band: tuple[float, float]) -> str:
    lo, hi = band
    return f">{lo:g}" if math.isinf(hi) else f"{lo:g}-{hi:g}"


def local_width(mask: np.ndarray) -> np.ndarray:
    """Width in px of the crack at each pixel of ``mask`` (0 off the mask), float32."""
    mask = np.asarray(mask, bool)
    out = np.zeros(mask.shape, np.float32)
    if not mask.any():
        return out
    dist = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    skel = skeletonize(mask)
    if not skel.any():
        skel = dist == dist.max()
    width = np.where(skel, 2.0 * dist - 1.0, 0.0)
    _, (iy, ix) = ndimage.distance_transform_edt(~skel, return_indices=True)
    out[mask] = width[iy[mask], ix[mask]]
    return np.maximum(out, 1.0, where=mask, out=out)


def width_counts(
    pred: np.ndarray,
    gt: np.ndarray,
    tolerance: float = 2.0,
    bands: tuple[tuple[float, float], ...] = WIDTH_BANDS,
) -> list[tuple[int, int]]:
    """``(found, total)`` ground-truth pixels per band, for one binary prediction ``pred``."""
    gt = np.asarray(gt, bool)
    if np.asarray(pred).shape != gt.shape:
        raise ValueError(f"prediction {np.asarray(pred).shape} and mask {gt.shape} differ in size")
    found = gt & _dilate_disk(np.ascontiguousarray(pred, dtype=bool), tolerance)
    width = local_width(gt)
    counts = []
    for lo, hi in bands:
        band = gt & (width >= lo) & (width < hi)
        counts.append((int(np.count_nonzero(found & band)), int(np.count_nonzero(band))))
    return counts


def recall_by_width(
    counts: list[list[tuple[int, int]]], bands: tuple[tuple[float, float], ...] = WIDTH_BANDS
) -> dict[str, dict[str, float | int]]:
    """Pool per-image :func:`width_counts` into ``{band: {recall, pixels}}`` (recall None when
    a band holds no pixel)."""
    out = {}
    for k, band in enumerate(bands):
        found = sum(c[k][0] for c in counts)
        total = sum(c[k][1] for c in counts)
        recall = round(found / total, 4) if total else None
        out[band_name(band)] = {"recall": recall, "pixels": total}
    return out
