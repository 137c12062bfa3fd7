"""Mask post-processing shared by predict, evaluate and the service: wide cracks filled whole.

A model trained mostly on thin cracks often marks a wide crack (a spall, an open masonry crack)
along its two dark edges only and leaves its middle below the threshold, so measured widths and
areas come out too small exactly where severity is decided. :func:`fill_between_edges` fills a
pixel when, along one of four directions (horizontal, vertical, both diagonals), crack pixels lie
on **both** sides within ``max_gap`` px in total, and the model still gives it at least
``min_level`` (some evidence of crack, not bare pavement between two cracks).
"""

from __future__ import annotations

import numpy as np


def _run_lengths(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance (px) from each pixel to the nearest True pixel before it / after it along
    axis 1 (``inf`` when there is none)."""
    h, w = mask.shape
    idx = np.arange(w, dtype=np.float32)[None, :].repeat(h, 0)
    last = np.where(mask, idx, -np.inf)
    np.maximum.accumulate(last, axis=1, out=last)
    before = idx - last
    nxt = np.where(mask, idx, np.inf)[:, ::-1]
    nxt = np.minimum.accumulate(nxt, axis=1)[:, ::-1]
    after = nxt - idx
    return before, after


def _skew(a: np.ndarray, fill) -> np.ndarray:
    """Shear rows so that the main diagonals of ``a`` become columns (row ``i`` shifted by
    ``i``); :func:`_unskew` reverses it."""
    h, w = a.shape
    out = np.full((h, w + h - 1), fill, a.dtype)
    for i in range(h):
        out[i, i : i + w] = a[i]
    return out


def _unskew(a: np.ndarray, w: int) -> np.ndarray:
    return np.stack([a[i, i : i + w] for i in range(a.shape[0])])


def _between(mask: np.ndarray, max_gap: int) -> np.ndarray:
    """Pixels off ``mask`` with mask pixels on both sides, along rows, within ``max_gap``."""
    before, after = _run_lengths(mask)
    return ~mask & (before + after <= max_gap + 1)


def fill_between_edges(
    mask: np.ndarray, levels: np.ndarray, max_gap: int = 24, min_level: int = 64
) -> np.ndarray:
    """``mask`` with the gaps between two crack edges filled (see the module docstring).

    Args:
        mask: ``(H, W)`` bool crack mask (the thresholded map).
        levels: ``(H, W)`` uint8 probability levels the mask came from.
        max_gap: widest gap filled, px (the width of the missed middle).
        min_level: a filled pixel needs at least this level (64 = p 0.25).
    """
    mask = np.asarray(mask, bool)
    if not mask.any() or max_gap <= 0:
        return mask.copy()
    fill = _between(mask, max_gap) | _between(mask.T, max_gap).T  # rows, columns
    for flip in (False, True):  # the two diagonals: a sheared copy turns one into columns
        m = mask[:, ::-1] if flip else mask
        d = _unskew(_between(_skew(m, False).T, max_gap).T, m.shape[1])
        fill |= d[:, ::-1] if flip else d
    return mask | (fill & (np.asarray(levels) >= min_level))
