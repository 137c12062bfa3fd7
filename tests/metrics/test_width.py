"""Recall by crack width on known geometry: bands of known width, a prediction of edges only."""

from __future__ import annotations

import numpy as np
import pytest

from crackseg.metrics.width import WIDTH_BANDS, local_width, recall_by_width, width_counts


def _bands() -> tuple[np.ndarray, dict[int, slice]]:
    """Four horizontal cracks 2, 5, 9 and 21 px wide, 200 px long, on a 160 x 240 image."""
    gt = np.zeros((160, 240), bool)
    rows = {2: slice(10, 12), 5: slice(30, 35), 9: slice(55, 64), 21: slice(90, 111)}
    for r in rows.values():
        gt[r, 20:220] = True
    return gt, rows


def test_local_width_of_bands_of_known_width():
    gt, rows = _bands()
    width = local_width(gt)
    for w, r in rows.items():
        middle = width[r, 60:180]  # away from the ends, where the skeleton forks
        assert np.median(middle) == pytest.approx(w, abs=1.01)
    assert (width[~gt] == 0).all() and (width[gt] >= 1).all()
    assert not local_width(np.zeros((8, 8), bool)).any()


def test_edges_only_loses_the_wide_band():
    gt, rows = _bands()
    edges = np.zeros_like(gt)  # the top and bottom 2 px of each crack
    for r in rows.values():
        for y in (r.start, r.start + 1, r.stop - 2, r.stop - 1):
            edges[y, 20:220] = True
    rec = recall_by_width([width_counts(edges, gt, tolerance=2.0)])
    assert list(rec) == ["1-3", "3-6", "6-12", ">12"]
    assert rec["1-3"]["recall"] == 1.0 and rec["3-6"]["recall"] == 1.0
    assert rec["6-12"]["recall"] == pytest.approx(8 / 9, abs=0.01)  # 9 px: its middle row missed
    assert rec[">12"]["recall"] < 0.5  # the 21 px crack: found 4 + 4 of its 21 rows
    whole = recall_by_width([width_counts(gt, gt)])
    assert all(v["recall"] == 1.0 for v in whole.values())
    nothing = recall_by_width([width_counts(np.zeros_like(gt), gt)])
    assert all(v["recall"] == 0.0 and v["pixels"] > 0 for v in nothing.values())
    empty = recall_by_width([width_counts(gt, np.zeros_like(gt))])
    assert all(v["recall"] is None for v in empty.values()) and len(WIDTH_BANDS) == 4
    with pytest.raises(ValueError, match="differ in size"):
        width_counts(gt[:10], gt)
