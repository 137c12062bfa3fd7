"""Cracks of known geometry, for validating crack measurement.

Each function rasterises a crack whose true centreline length and width are known exactly (or by
dense numerical integration) into a boolean mask, so that :func:`crackseg.inference.measure.
measure_cracks` can be checked against ground truth.

Conventions:

* **Coordinates.** Pixel ``(row r, column c)`` has its centre at ``(x, y) = (c, r)``: x grows to
  the right along the image's columns, y grows *down* along its rows.
* **Angles** are in degrees. ``0`` is along the image x axis (horizontal), ``90`` is the image
  vertical; angles grow counter-clockwise *as seen on screen*, so the direction of angle ``a`` is
  ``(dx, dy) = (cos a, -sin a)`` and a 45-degree crack runs from lower left to upper right. A crack
  has no head or tail, so its angle is reported in ``[0, 180)``.
* **Rasterisation** is exact and geometric: a pixel belongs to the crack when its *centre* lies
  within ``width_px / 2`` of the centreline, measured perpendicularly to it (the foot of the
  perpendicular must fall on the centreline). The ends are therefore cut square ("butt" ends),
  not rounded, so the crack's tip-to-tip extent equals its centreline length and its area is
  ``length * width`` up to pixelisation. Distances are computed for the pixels of a bounding box
  around the crack only, vectorised with numpy.
* **Default placement.** With ``center=None`` the crack is centred on the image centre shifted by
  a fraction of a pixel (:data:`DEFAULT_OFFSET`), so that no pixel centre lies exactly on the
  crack's border: a horizontal crack of integer width ``w`` then covers exactly ``w`` rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import integrate

__all__ = [
    "DEFAULT_OFFSET",
    "GeometricCrack",
    "curved_crack",
    "polyline_crack",
    "straight_crack",
    "wavy_crack",
]

#: Sub-pixel shift ``(dx, dy)`` of the default centre from the image centre (avoids ties).
DEFAULT_OFFSET: tuple[float, float] = (0.04, 0.25)


@dataclass(frozen=True)
class GeometricCrack:
    """A rasterised crack and its true geometry.

    Attributes:
        mask: Boolean ``(H, W)`` crack mask.
        length_px: True centreline length in pixels (tip to tip).
        width_px: True width in pixels (constant along the crack).
        angle_deg: Direction of a straight crack in ``[0, 180)`` (see the module conventions);
            for a curved crack, the direction of its chord (tip to tip).
        centerline: ``(N, 2)`` float array of ``(x, y)`` points along the centreline.
    """

    mask: np.ndarray
    length_px: float
    width_px: float
    angle_deg: float
    centerline: np.ndarray


def _shape(shape: Sequence[int]) -> tuple[int, int]:
    if len(shape) != 2 or min(int(s) for s in shape) <= 0:
        raise ValueError(f"shape must be a positive (H, W) pair, got {tuple(shape)!r}")
    return int(shape[0]), int(shape[1])


def _center(shape_hw: tuple[int, int], center: tuple[float, float] | None) -> tuple[float, float]:
    if center is not None:
        return float(center[0]), float(center[1])
    h, w = shape_hw
    return (w - 1) / 2 + DEFAULT_OFFSET[0], (h - 1) / 2 + DEFAULT_OFFSET[1]


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _box(
    points: np.ndarray, margin: float, shape_hw: tuple[int, int]
) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
    """Row/column slices of the pixels within ``margin`` of ``points``' bounding box, clipped to
    the image, and the pixel-centre coordinates ``(x, y)`` of that box (broadcastable)."""
    h, w = shape_hw
    x0 = max(0, math.floor(points[:, 0].min() - margin))
    x1 = min(w, math.ceil(points[:, 0].max() + margin) + 1)
    y0 = max(0, math.floor(points[:, 1].min() - margin))
    y1 = min(h, math.ceil(points[:, 1].max() + margin) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    xs = np.arange(x0, x1, dtype=np.float64)[None, :]
    ys = np.arange(y0, y1, dtype=np.float64)[:, None]
    return slice(y0, y1), slice(x0, x1), xs, ys


def _angle_of(dx: float, dy: float) -> float:
    """Undirected angle of the vector ``(dx, dy)`` (image coordinates) in ``[0, 180)``."""
    a = math.degrees(math.atan2(-dy, dx)) % 180.0
    return 0.0 if a >= 180.0 - 1e-9 else a


def straight_crack(
    shape: Sequence[int],
    length_px: float,
    width_px: float,
    angle_deg: float,
    center: tuple[float, float] | None = None,
) -> GeometricCrack:
    """A straight crack: a ``length_px`` by ``width_px`` rectangle at ``angle_deg``.

    Args:
        shape: Mask shape ``(H, W)``.
        length_px: Centreline length in pixels.
        width_px: Width in pixels.
        angle_deg: Direction in degrees, 0 = horizontal, 90 = vertical, counter-clockwise on
            screen (see the module docstring).
        center: Centre ``(x, y)`` of the crack in pixel coordinates; by default the image
            centre shifted by :data:`DEFAULT_OFFSET`.

    Returns:
        The mask and true geometry. Parts outside the image are clipped from the mask but not
        from ``length_px``.
    """
    hw = _shape(shape)
    _check_positive(length_px=length_px, width_px=width_px)
    cx, cy = _center(hw, center)
    a = math.radians(angle_deg)
    ux, uy = math.cos(a), -math.sin(a)
    half = length_px / 2
    ends = np.array([[cx - half * ux, cy - half * uy], [cx + half * ux, cy + half * uy]])
    mask = np.zeros(hw, dtype=bool)
    box = _box(ends, width_px / 2 + 1, hw)
    if box is not None:
        rows, cols, xs, ys = box
        along = (xs - cx) * ux + (ys - cy) * uy
        across = -(xs - cx) * uy + (ys - cy) * ux
        mask[rows, cols] = (np.abs(along) <= half) & (np.abs(across) <= width_px / 2)
    return GeometricCrack(mask, float(length_px), float(width_px), _angle_of(ux, uy), ends)


def curved_crack(
    shape: Sequence[int],
    length_px: float,
    width_px: float,
    radius_px: float,
    start_deg: float = 0.0,
    center: tuple[float, float] | None = None,
) -> GeometricCrack:
    """A crack along a circular arc of radius ``radius_px`` and arc length ``length_px``.

    The mask is the annular sector of pixel centres whose distance ``r`` from the circle's
    centre satisfies ``|r - radius_px| <= width_px / 2`` and whose polar angle lies within the
    arc (radial, square ends), so its area is exactly ``length_px * width_px`` before
    pixelisation.

    Args:
        shape: Mask shape ``(H, W)``.
        length_px: Arc length of the centreline in pixels; at most ``2 * pi * radius_px``
            (a full circle is not a crack with two tips).
        width_px: Width in pixels; less than ``2 * radius_px``.
        radius_px: Radius of the centreline circle (1 / curvature).
        start_deg: Polar angle where the arc starts (module angle convention); it runs
            counter-clockwise on screen from there.
        center: Where the *midpoint of the arc* lies ``(x, y)``; by default the image centre
            shifted by :data:`DEFAULT_OFFSET`.

    Returns:
        The mask and true geometry; ``angle_deg`` is the direction of the chord.
    """
    hw = _shape(shape)
    _check_positive(length_px=length_px, width_px=width_px, radius_px=radius_px)
    sweep = length_px / radius_px
    if sweep >= 2 * math.pi:
        raise ValueError("length_px must be shorter than the circle (2 * pi * radius_px)")
    if width_px >= 2 * radius_px:
        raise ValueError("width_px must be less than 2 * radius_px")
    mx, my = _center(hw, center)
    a0 = math.radians(start_deg)
    mid = a0 + sweep / 2
    # circle centre such that the arc's midpoint lands on (mx, my); y is flipped on screen
    ox, oy = mx - radius_px * math.cos(mid), my + radius_px * math.sin(mid)
    t = np.linspace(a0, a0 + sweep, max(8, math.ceil(length_px) * 2 + 1))
    line = np.stack([ox + radius_px * np.cos(t), oy - radius_px * np.sin(t)], axis=1)
    mask = np.zeros(hw, dtype=bool)
    box = _box(line, width_px / 2 + 1, hw)
    if box is not None:
        rows, cols, xs, ys = box
        dx, dy = xs - ox, ys - oy
        r = np.hypot(dx, dy)
        # polar angle measured from the arc's start, counter-clockwise on screen, in [0, 2 pi)
        phi = np.mod(np.arctan2(-dy, dx) - a0, 2 * math.pi)
        mask[rows, cols] = (np.abs(r - radius_px) <= width_px / 2) & (phi <= sweep)
    chord = line[-1] - line[0]
    return GeometricCrack(
        mask, float(length_px), float(width_px), _angle_of(chord[0], chord[1]), line
    )


def polyline_crack(
    shape: Sequence[int], points: np.ndarray, width_px: float
) -> tuple[np.ndarray, float]:
    """Rasterise a crack of constant width along a polyline with square ends.

    A pixel is in the crack when its centre is within ``width_px / 2`` of the polyline and its
    nearest point on the polyline is not one of the two end points approached from beyond
    (i.e. the perpendicular foot falls on the polyline): the ends are cut square. For a smooth
    curve sample it densely (segments of a pixel or less).

    Args:
        shape: Mask shape ``(H, W)``.
        points: ``(N, 2)`` array of ``(x, y)`` vertices, ``N >= 2``.
        width_px: Width in pixels.

    Returns:
        ``(mask, polyline_length_px)``.
    """
    hw = _shape(shape)
    _check_positive(width_px=width_px)
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 2:
        raise ValueError("points must be an (N, 2) array with N >= 2")
    seg = np.diff(pts, axis=0)
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    keep = np.concatenate([[True], seg_len > 1e-12])
    pts = pts[keep]
    seg = np.diff(pts, axis=0)
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    n = len(seg)
    if n == 0:
        raise ValueError("points must not all coincide")
    mask = np.zeros(hw, dtype=bool)
    box = _box(pts, width_px / 2 + 1, hw)
    if box is None:
        return mask, float(seg_len.sum())
    rows, cols, _, _ = box
    y_off, x_off = rows.start, cols.start
    best = np.full((rows.stop - rows.start, cols.stop - cols.start), np.inf)
    capped = np.zeros(best.shape, dtype=bool)  # nearest point is an end point from beyond
    margin = width_px / 2 + 1
    for i in range(n):
        sub = _box(pts[i : i + 2], margin, hw)
        if sub is None:
            continue
        r, c, xs, ys = sub
        (px, py), (vx, vy), ln = pts[i], seg[i], seg_len[i]
        t = ((xs - px) * vx + (ys - py) * vy) / (ln * ln)
        tc = np.clip(t, 0.0, 1.0)
        d = np.hypot(xs - (px + tc * vx), ys - (py + tc * vy))
        cap = np.zeros(d.shape, dtype=bool)
        if i == 0:
            cap |= t < 0
        if i == n - 1:
            cap |= t > 1
        view = (slice(r.start - y_off, r.stop - y_off), slice(c.start - x_off, c.stop - x_off))
        closer = d < best[view]
        best[view] = np.where(closer, d, best[view])
        capped[view] = np.where(closer, cap, capped[view])
    mask[rows, cols] = (best <= width_px / 2) & ~capped
    return mask, float(seg_len.sum())


def wavy_crack(
    shape: Sequence[int],
    span_px: float,
    width_px: float,
    amplitude_px: float,
    wavelength_px: float,
    angle_deg: float = 0.0,
    center: tuple[float, float] | None = None,
) -> GeometricCrack:
    """A sine-shaped crack: ``v = amplitude * sin(2 pi u / wavelength)`` for ``u`` in
    ``[-span / 2, span / 2]`` along a base direction at ``angle_deg``.

    The true length is the sine's arc length, integrated numerically (``scipy.integrate.quad``,
    relative error below 1e-9); the mask is drawn with :func:`polyline_crack` on a polyline of
    about four vertices per pixel of length.

    Args:
        shape: Mask shape ``(H, W)``.
        span_px: Extent of the crack along its base direction, in pixels.
        width_px: Width in pixels (measured perpendicularly to the curve).
        amplitude_px: Sine amplitude in pixels; keep ``width_px / 2`` below the radius of
            curvature at the crests, ``wavelength**2 / (4 pi**2 amplitude)``.
        wavelength_px: Sine wavelength in pixels.
        angle_deg: Base direction (module angle convention).
        center: Centre ``(x, y)``; by default the image centre shifted by
            :data:`DEFAULT_OFFSET`.

    Returns:
        The mask and true geometry; ``angle_deg`` is the base direction.
    """
    hw = _shape(shape)
    _check_positive(span_px=span_px, width_px=width_px, wavelength_px=wavelength_px)
    if not (math.isfinite(amplitude_px) and amplitude_px >= 0):
        raise ValueError(f"amplitude_px must be a non-negative number, got {amplitude_px!r}")
    k = 2 * math.pi / wavelength_px

    def speed(u: float) -> float:
        return math.sqrt(1.0 + (amplitude_px * k * math.cos(k * u)) ** 2)

    half = span_px / 2
    length, _ = integrate.quad(speed, -half, half, limit=500, epsabs=0.0, epsrel=1e-11)
    cx, cy = _center(hw, center)
    a = math.radians(angle_deg)
    ux, uy = math.cos(a), -math.sin(a)
    u = np.linspace(-half, half, max(16, math.ceil(length * 4) + 1))
    v = amplitude_px * np.sin(k * u)
    line = np.stack([cx + u * ux - v * uy, cy + u * uy + v * ux], axis=1)
    mask, _ = polyline_crack(hw, line, width_px)
    return GeometricCrack(mask, float(length), float(width_px), _angle_of(ux, uy), line)
