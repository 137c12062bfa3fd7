"""Cracks of known geometry: exact rasterisation, true lengths and widths, conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crackseg.data.geometry import (
    curved_crack,
    polyline_crack,
    straight_crack,
    wavy_crack,
)

WIDTHS = range(1, 13)


@pytest.mark.parametrize("angle", [0.0, 20.0, 30.0, 60.0, 90.0, 160.0])
def test_straight_area_is_length_times_width(angle: float) -> None:
    for w in WIDTHS:
        g = straight_crack((400, 400), 250, w, angle)
        assert g.mask.dtype == bool and g.mask.shape == (400, 400)
        assert g.length_px == 250 and g.width_px == w
        assert g.mask.sum() == pytest.approx(250 * w, rel=0.02), w


@pytest.mark.parametrize("angle", [45.0, 135.0])
def test_diagonal_width_is_quantised_but_close(angle: float) -> None:
    """At 45 degrees pixel centres lie on diagonals 0.707 px apart, so a digital width is a
    multiple of 0.707; the default placement keeps it within 0.4 px of the true width."""
    widths = []
    for w in WIDTHS:
        g = straight_crack((400, 400), 250, w, angle)
        digital = g.mask.sum() / 250
        widths.append(digital)
        assert abs(digital - w) <= 0.4, (w, digital)
        assert (digital * math.sqrt(2)) == pytest.approx(round(digital * math.sqrt(2)), abs=0.05)
    assert len(set(np.round(widths, 3))) == len(widths)  # every width draws differently


def test_width_across_and_length_along_axis_aligned_cracks() -> None:
    for w in WIDTHS:
        h = straight_crack((100, 300), 200, w, 0.0).mask
        cols = h.sum(axis=0)
        assert np.count_nonzero(cols) == 200  # square ends: exactly the length
        assert set(cols[cols > 0].tolist()) == {w}  # every column crosses w pixels
        v = straight_crack((300, 100), 200, w, 90.0).mask
        rows = v.sum(axis=1)
        assert np.count_nonzero(rows) == 200
        assert set(rows[rows > 0].tolist()) == {w}


def test_deterministic_and_placement() -> None:
    a = straight_crack((200, 200), 120, 5, 33.0)
    b = straight_crack((200, 200), 120, 5, 33.0)
    assert np.array_equal(a.mask, b.mask)
    c = straight_crack((200, 200), 120, 5, 33.0, center=(80.3, 90.2))
    assert not np.array_equal(a.mask, c.mask)
    rows, cols = np.nonzero(c.mask)
    assert cols.mean() == pytest.approx(80.3, abs=0.5)
    assert rows.mean() == pytest.approx(90.2, abs=0.5)


def test_angle_convention_counter_clockwise_on_screen() -> None:
    """45 degrees runs from lower left to upper right: x up means row (y) down the array."""
    g45 = straight_crack((200, 200), 120, 3, 45.0)
    g135 = straight_crack((200, 200), 120, 3, 135.0)
    rows, cols = np.nonzero(g45.mask)
    assert np.corrcoef(cols, rows)[0, 1] < -0.99
    rows, cols = np.nonzero(g135.mask)
    assert np.corrcoef(cols, rows)[0, 1] > 0.99
    assert g45.angle_deg == pytest.approx(45.0) and g135.angle_deg == pytest.approx(135.0)
    assert straight_crack((200, 200), 120, 3, 180.0).angle_deg == pytest.approx(0.0, abs=1e-9)
    assert straight_crack((200, 200), 120, 3, -30.0).angle_deg == pytest.approx(150.0)


def test_clipped_at_the_image_border_keeps_true_length() -> None:
    g = straight_crack((50, 100), 300, 4, 0.0)
    assert g.length_px == 300 and g.mask.sum() == 100 * 4


@pytest.mark.parametrize("w", [1, 4, 12])
def test_curved_crack_is_an_annular_sector(w: int) -> None:
    radius, length = 100.0, 300.0
    g = curved_crack((500, 500), length, w, radius, start_deg=20.0)
    assert g.length_px == length and g.width_px == w
    assert g.mask.sum() == pytest.approx(length * w, rel=0.02)
    line = g.centerline
    poly = np.hypot(*np.diff(line, axis=0).T).sum()
    assert poly == pytest.approx(length, rel=1e-3)  # the drawn centreline has the true length
    # every crack pixel lies within w/2 (plus rounding) of the centre circle
    # the circle's centre, from three points of the centreline
    p1, p2, p3 = line[0], line[len(line) // 2], line[-1]
    a = np.array([[p2[0] - p1[0], p2[1] - p1[1]], [p3[0] - p1[0], p3[1] - p1[1]]])
    b = 0.5 * np.array([p2 @ p2 - p1 @ p1, p3 @ p3 - p1 @ p1])
    centre = np.linalg.solve(a, b)
    rows, cols = np.nonzero(g.mask)
    r = np.hypot(cols - centre[0], rows - centre[1])
    assert r.min() >= radius - w / 2 - 1e-6 and r.max() <= radius + w / 2 + 1e-6
    # the middle of the arc sits at the requested (default) centre
    assert np.allclose(p2, [249.5 + 0.04, 249.5 + 0.25], atol=0.1)


def test_wavy_crack_length_is_the_sine_arc_length() -> None:
    flat = wavy_crack((300, 400), 250, 3, 0.0, 100)
    assert flat.length_px == pytest.approx(250.0, rel=1e-9)
    g = wavy_crack((400, 400), 250, 3, 20.0, 125, angle_deg=30.0)
    poly = np.hypot(*np.diff(g.centerline, axis=0).T).sum()
    assert g.length_px > 270  # two full waves of amplitude 20 add about 9 %
    assert poly == pytest.approx(g.length_px, rel=1e-4)
    assert g.mask.sum() == pytest.approx(g.length_px * 3, rel=0.03)
    assert g.angle_deg == pytest.approx(30.0)


def test_polyline_crack_square_ends() -> None:
    pts = np.array([[50.3, 50.25], [150.3, 50.25]])
    mask, length = polyline_crack((100, 200), pts, 4)
    assert length == pytest.approx(100.0)
    assert np.array_equal(mask, straight_crack((100, 200), 100, 4, 0.0, (100.3, 50.25)).mask)


@pytest.mark.parametrize(
    "call",
    [
        lambda: straight_crack((100, 100), 0, 3, 0),
        lambda: straight_crack((100, 100), 50, -1, 0),
        lambda: straight_crack((0, 100), 50, 3, 0),
        lambda: curved_crack((100, 100), 700, 3, 100),  # longer than the circle
        lambda: curved_crack((100, 100), 50, 30, 10),  # wider than the radius allows
        lambda: wavy_crack((100, 100), 50, 3, -1, 20),
        lambda: polyline_crack((100, 100), np.array([[1.0, 1.0]]), 3),
    ],
)
def test_invalid_arguments_raise(call) -> None:
    with pytest.raises(ValueError):
        call()
