"""Procedural synthetic crack images with exact masks.

The generator paints a pavement-like surface (asphalt or concrete grain, aggregate, gentle
shading), rasterises a crack geometry (branching random walks, several separate cracks, or an
alligator-like network) into a binary mask, and then darkens the surface *only* inside that mask.
Distractors that real road photos contain are added on top and are never part of the mask:

* ``sunny``: bright light, hard cast shadows with sharp edges, oil stains, lane paint stripes.
* ``rainy``: wet darkening, lower contrast, puddles with sky reflections and specular glints.
* ``night``: dark image, uneven head-light or street-lamp illumination, strong sensor noise.

Everything is drawn from ``np.random.default_rng(seed)``, so the same ``(seed, size, condition)``
always gives byte-identical arrays. It is the built-in data for the demo and for tests; it is not
a substitute for real crack data.
"""

from __future__ import annotations

import json
import math
import pathlib
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage, signal, sparse, spatial

from crackseg.data.io import mask_to_tensor, to_tensor
from crackseg.errors import CrackSegError

CONDITIONS: tuple[str, ...] = ("sunny", "rainy", "night")
GENERATOR_VERSION = "1"
MIN_SIZE = 32

_MIN_MASK_FRACTION = 0.003

Array = np.ndarray


# --------------------------------------------------------------------------------------------
# argument helpers
# --------------------------------------------------------------------------------------------


def _check_condition(condition: str) -> str:
    if condition not in CONDITIONS:
        raise ValueError(
            f"unknown condition {condition!r}; valid conditions are {', '.join(CONDITIONS)}"
        )
    return condition


def _check_size(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        h = w = int(size)
    elif isinstance(size, (tuple, list)) and len(size) == 2:
        h, w = (int(s) for s in size)
    else:
        raise ValueError(f"size must be an int or an (H, W) pair, got {size!r}")
    if h < MIN_SIZE or w < MIN_SIZE:
        raise ValueError(f"size must be at least {MIN_SIZE} pixels on each side, got {(h, w)}")
    return h, w


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    return int(seed)


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    return int(n)


def sample_seed(seed: int, index: int) -> int:
    """Derive the seed of sample ``index`` of a set generated with ``seed``.

    Args:
        seed: Seed of the whole set.
        index: Position of the sample in the set.

    Returns:
        A 32-bit seed that depends deterministically on ``(seed, index)``.
    """
    state = np.random.SeedSequence([_check_seed(seed), int(index)]).generate_state(1)
    return int(state[0])


def conditions_for(condition: str, n: int) -> list[str]:
    """List the condition of each of ``n`` samples.

    Args:
        condition: ``"all"`` cycles through ``sunny``, ``rainy``, ``night``; a single condition
            name is repeated.
        n: Number of samples.

    Returns:
        A list of ``n`` condition names.

    Raises:
        ValueError: If the condition is unknown or ``n`` is negative.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if condition == "all":
        return [CONDITIONS[i % len(CONDITIONS)] for i in range(int(n))]
    if condition not in CONDITIONS:
        raise ValueError(
            f"unknown condition {condition!r}; valid conditions are "
            f"{', '.join(CONDITIONS)} or 'all'"
        )
    return [condition] * int(n)


# --------------------------------------------------------------------------------------------
# noise primitives
# --------------------------------------------------------------------------------------------


def _bspline_matrix(n_out: int, n_in: int, scale: float) -> sparse.csr_matrix:
    """Sparse ``(n_out, n_in)`` matrix of cubic B-spline upsampling by ``scale``."""
    u = np.arange(n_out, dtype=np.float32) / np.float32(scale) + np.float32(1.0)
    i0 = np.floor(u).astype(np.int64)
    f = u - i0
    g = 1.0 - f
    weights = np.stack(
        [g**3 / 6, (3 * f**3 - 6 * f**2 + 4) / 6, (-3 * f**3 + 3 * f**2 + 3 * f + 1) / 6, f**3 / 6],
        axis=1,
    ).astype(np.float32)
    cols = i0[:, None] + np.arange(-1, 3)[None, :]
    indptr = np.arange(0, 4 * n_out + 1, 4)
    return sparse.csr_matrix((weights.ravel(), cols.ravel(), indptr), shape=(n_out, n_in))


def _upsample(small: Array, shape: tuple[int, int], scale: float) -> Array:
    """Cubic B-spline upsampling of ``small`` by ``scale``, cropped to ``shape``.

    Sparse products are summed in a fixed order in compiled code, so results are reproducible.
    """
    my = _bspline_matrix(shape[0], small.shape[0], scale)
    mx = _bspline_matrix(shape[1], small.shape[1], scale)
    tmp = np.asarray(my @ small)  # (H, gw)
    return np.ascontiguousarray(np.asarray(mx @ tmp.T).T)


def _normalise(x: Array) -> Array:
    sub = x[::4, ::4]
    std = float(sub.std())
    return (x - np.float32(sub.mean())) / np.float32(std if std > 1e-6 else 1.0)


def _grid_shape(shape: tuple[int, int], scale: float) -> tuple[int, int]:
    return int(shape[0] / scale) + 4, int(shape[1] / scale) + 4


def _fractal_noise(
    rng: np.random.Generator, shape: tuple[int, int], scales: tuple[float, ...], decay: float
) -> Array:
    """Zero-mean, unit-std sum of noise octaves with features about ``scales`` pixels wide.

    The first scale gets weight 1, each next one ``decay`` times less. Octaves are summed on
    the grid of the finest one, so only one full-resolution upsampling is paid for.
    """
    fine = max(min(scales), 3.0)
    grid = _grid_shape(shape, fine)
    acc = np.zeros(grid, np.float32)
    amp = 1.0
    for s in scales:
        ratio = max(s, 3.0) / fine
        if ratio < 1.5:
            octave = rng.standard_normal(grid, dtype=np.float32)
        else:
            small = rng.standard_normal(_grid_shape(grid, ratio), dtype=np.float32)
            octave = _normalise(_upsample(small, grid, ratio))
        acc += np.float32(amp) * octave
        amp *= decay
    return _normalise(_upsample(acc, shape, fine))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> Array:
    """Zero-mean, unit-std noise with features about ``scale`` pixels wide."""
    if scale < 3.0:
        white = _uniform_noise(rng, shape)
        return _normalise(ndimage.gaussian_filter(white, 0.4 * max(float(scale), 0.5)))
    return _fractal_noise(rng, shape, (float(scale),), 1.0)


def _ar_series(rng: np.random.Generator, n: int, rho: float, sigma: float) -> Array:
    """First-order autoregressive series (a smooth random wiggle) of length ``n``."""
    e = rng.normal(0.0, sigma, n)
    return signal.lfilter([1.0], [1.0, -rho], e)


def _uniform_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> Array:
    """Zero-mean, unit-variance uniform noise (several times cheaper than Gaussian noise)."""
    u = rng.random(shape, dtype=np.float32)
    u -= np.float32(0.5)
    u *= np.float32(math.sqrt(12.0))
    return u


def _channel_mean(img: Array) -> Array:
    """Mean over the last axis of an (H, W, 3) array, keeping it (faster than ``mean(axis=2)``)."""
    return (img[..., 0:1] + img[..., 1:2] + img[..., 2:3]) * np.float32(1.0 / 3.0)


def _coords(shape: tuple[int, int]) -> tuple[Array, Array]:
    """Broadcastable row (H, 1) and column (1, W) pixel coordinates."""
    h, w = shape
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    return yy, xx


# --------------------------------------------------------------------------------------------
# surface
# --------------------------------------------------------------------------------------------


def _surface(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[Array, Array]:
    """Pavement luminance in [0, 1] (roughly) and an RGB tint for it."""
    h, w = shape
    kind = rng.choice(["asphalt", "asphalt", "concrete"])
    grain = _uniform_noise(rng, shape)
    if kind == "asphalt":
        base = rng.uniform(0.4, 0.58)
        stone_scale = rng.uniform(1.6, 2.8)
        stones = _smooth_noise(rng, shape, stone_scale)
        tone = stones[::-1, ::-1]  # an unrelated-looking field for free
        thr = rng.uniform(0.3, 0.9)
        stone_mask = np.clip((stones - thr) * 3.0, 0.0, 1.0)
        lum = base * (1.0 + 0.06 * grain)
        lum += stone_mask * (rng.uniform(0.06, 0.16) + 0.06 * tone)
        # dark pits between stones
        lum -= np.clip(-stones - 2.0, 0.0, 1.0) * rng.uniform(0.1, 0.2)
        tint = np.array([1.0, 1.0, 1.0], np.float32) + rng.normal(0, 0.015, 3).astype(np.float32)
    else:
        base = rng.uniform(0.6, 0.75)
        fine = _smooth_noise(rng, shape, rng.uniform(1.2, 2.0))
        lum = base * (1.0 + 0.035 * grain + 0.04 * fine)
        # sparse dark pores and light sand grains
        pores = fine[::-1, ::-1]
        lum -= np.clip(pores - 2.3, 0.0, 1.0) * rng.uniform(0.2, 0.4)
        lum += np.clip(-pores - 2.4, 0.0, 1.0) * 0.15
        warm = rng.uniform(0.0, 0.05)
        tint = np.array([1.0 + warm, 1.0 + warm * 0.4, 1.0 - warm], np.float32)
    # mid and large scale blotches (patching, wear, dirt)
    blotch = _fractal_noise(rng, shape, (max(h, w) / 3.0, 48.0, 16.0, 6.0), 0.6)
    lum *= 1.0 + rng.uniform(0.03, 0.08) * blotch
    return lum.astype(np.float32), tint


# --------------------------------------------------------------------------------------------
# crack geometry
# --------------------------------------------------------------------------------------------


class _Canvas:
    """Rasterises polylines of varying width into a depth image (0 = background)."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self.img = Image.new("L", (shape[1], shape[0]), 0)
        self.draw = ImageDraw.Draw(self.img)

    def polyline(self, pts: Array, widths: Array, depth: float) -> None:
        """Draw ``pts`` (N, 2 as x, y) with per-vertex ``widths`` at 8-bit ``depth`` (>0)."""
        value = int(np.clip(round(depth * 255), 1, 255))
        seg_w = np.maximum(1, np.round(0.5 * (widths[1:] + widths[:-1]))).astype(int)
        n = len(seg_w)
        start = 0
        xy = [(float(x), float(y)) for x, y in pts]
        while start < n:
            end = start
            while end + 1 < n and seg_w[end + 1] == seg_w[start]:
                end += 1
            w = int(seg_w[start])
            self.draw.line(xy[start : end + 2], fill=value, width=w, joint="curve")
            if w >= 3:
                for k in (start, end + 1):
                    x, y = xy[k]
                    r = w / 2.0 - 0.25
                    self.draw.ellipse((x - r, y - r, x + r, y + r), fill=value)
            start = end + 1

    def array(self) -> Array:
        """The depth image drawn so far, as uint8 (H, W)."""
        return np.asarray(self.img)


def _walk(
    rng: np.random.Generator, start: Array, theta: float, length: float, step: float
) -> Array:
    """Jagged random walk with a persistent heading; returns (N, 2) points (x, y)."""
    n = max(2, int(length / step))
    heading = theta + _ar_series(rng, n, 0.9, 0.09) + np.cumsum(rng.normal(0, 0.012, n))
    heading = heading + rng.normal(0.0, 0.3, n)  # fine zig-zag, does not accumulate
    steps = step * rng.uniform(0.6, 1.4, n)
    d = np.stack([np.cos(heading) * steps, np.sin(heading) * steps], axis=1)
    pts = np.concatenate([start[None, :], start[None, :] + np.cumsum(d, axis=0)], axis=0)
    return pts


def _width_profile(
    rng: np.random.Generator, n: int, base: float, wmax: float, taper_start: bool
) -> Array:
    """Per-vertex widths in [1, wmax]: a slow random modulation of ``base``, tapered to 1."""
    mod = np.exp(0.35 * _ar_series(rng, n, 0.95, 0.3))
    w = base * mod
    t = np.arange(n, dtype=np.float64)
    taper_len = max(3.0, n * rng.uniform(0.1, 0.3))
    taper = np.clip((n - 1 - t) / taper_len, 0.0, 1.0) ** 0.7
    if taper_start:
        taper = np.minimum(taper, np.clip(t / taper_len, 0.0, 1.0) ** 0.7)
    return np.clip(1.0 + (w - 1.0) * taper, 1.0, wmax)


def _inside(pts: Array, shape: tuple[int, int], margin: float) -> Array:
    """Which (x, y) points lie inside the image enlarged by ``margin``."""
    h, w = shape
    return (
        (pts[:, 0] > -margin)
        & (pts[:, 0] < w + margin)
        & (pts[:, 1] > -margin)
        & (pts[:, 1] < h + margin)
    )


def _clip_walk(pts: Array, shape: tuple[int, int], margin: float = 8.0) -> Array:
    """Cut a walk at the first vertex that leaves the (slightly enlarged) image."""
    ok = _inside(pts, shape, margin)
    bad = np.flatnonzero(~ok)
    return pts[: bad[0] + 1] if bad.size else pts


def _branching_crack(
    rng: np.random.Generator,
    canvas: _Canvas,
    shape: tuple[int, int],
    depth: float,
    wmax: float,
) -> None:
    """One crack: a walk both ways from an interior point, with tapering side branches."""
    h, w = shape
    size = max(h, w)
    step = rng.uniform(2.5, 4.5)
    start = np.array([rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h])
    theta = rng.uniform(0, 2 * np.pi)
    length = rng.uniform(0.5, 1.0) * size
    fwd = _clip_walk(_walk(rng, start, theta, length * rng.uniform(0.4, 0.6), step), shape)
    bwd = _clip_walk(_walk(rng, start, theta + np.pi, length * 0.5, step), shape)
    pts = np.concatenate([bwd[::-1], fwd[1:]], axis=0)
    if len(pts) < 2:
        pts = np.stack([start, start + 1.0])
    lo, hi = [(1.0, 2.5), (2.0, 4.5), (3.5, 8.0)][int(rng.integers(3))]
    base = rng.uniform(min(lo, wmax), min(hi, wmax))
    widths = _width_profile(rng, len(pts), base, wmax, taper_start=True)
    canvas.polyline(pts, widths, depth * rng.uniform(0.85, 1.0))
    _branches(rng, canvas, shape, pts, widths, depth, wmax, size, step, level=0)


def _branches(
    rng: np.random.Generator,
    canvas: _Canvas,
    shape: tuple[int, int],
    pts: Array,
    widths: Array,
    depth: float,
    wmax: float,
    size: int,
    step: float,
    level: int,
) -> None:
    """Side branches leaving ``pts`` at an angle, thinner than their parent where they start."""
    n = len(pts)
    if n < 8:
        return
    n_br = rng.poisson(2.2 if level == 0 else 0.7)
    for _ in range(min(n_br, 6)):
        k = int(rng.integers(n // 8, n - n // 8))
        d = pts[min(k + 1, n - 1)] - pts[max(k - 1, 0)]
        local = math.atan2(d[1], d[0])
        theta = local + rng.choice([-1.0, 1.0]) * rng.uniform(0.35, 1.2)
        length = rng.uniform(0.1, 0.4) * size * (0.6 if level else 1.0)
        bp = _clip_walk(_walk(rng, pts[k], theta, length, step), shape)
        if len(bp) < 3:
            continue
        bw = _width_profile(
            rng, len(bp), max(1.0, widths[k] * rng.uniform(0.4, 0.85)), wmax, taper_start=False
        )
        bw = np.minimum(bw, widths[k])
        canvas.polyline(bp, bw, depth * rng.uniform(0.7, 1.0))
        if level < 1:
            _branches(rng, canvas, shape, bp, bw, depth, wmax, size, step, level + 1)


def _jagged_segment(rng: np.random.Generator, a: Array, b: Array) -> Array:
    """Points from ``a`` to ``b`` with a pinned random bend and a fine zig-zag."""
    length = float(np.hypot(*(b - a)))
    m = max(2, int(length / 3.0))
    t = np.linspace(0.0, 1.0, m + 1)
    walk = np.cumsum(rng.normal(0.0, 1.0, m + 1))
    bridge = walk - t * walk[-1]  # pinned at both ends
    bridge *= 0.06 * length / max(float(np.abs(bridge).max()), 1e-6)
    jitter = rng.normal(0.0, 0.5, m + 1)
    jitter[[0, -1]] = 0.0
    normal = np.array([-(b - a)[1], (b - a)[0]]) / max(length, 1e-6)
    return a[None, :] + t[:, None] * (b - a)[None, :] + (bridge + jitter)[:, None] * normal


def _network(
    rng: np.random.Generator, canvas: _Canvas, shape: tuple[int, int], depth: float, wmax: float
) -> None:
    """Alligator-like network: jagged Voronoi cell edges inside an elliptical patch."""
    h, w = shape
    size = min(h, w)
    cell = max(14.0, rng.uniform(0.08, 0.14) * size)
    cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
    rx, ry = rng.uniform(0.2, 0.45) * w, rng.uniform(0.2, 0.45) * h
    n_pts = max(6, int(math.pi * (rx + cell) * (ry + cell) / cell**2))
    ang = rng.uniform(0, 2 * np.pi, n_pts)
    rad = np.sqrt(rng.uniform(0, 1, n_pts))
    seeds = np.stack(
        [cx + (rx + cell) * rad * np.cos(ang), cy + (ry + cell) * rad * np.sin(ang)], axis=1
    )
    try:
        vor = spatial.Voronoi(seeds)
    except spatial.QhullError:  # degenerate seeds; vanishingly rare
        _branching_crack(rng, canvas, shape, depth, wmax)
        return
    verts = vor.vertices
    r = ((verts[:, 0] - cx) / rx) ** 2 + ((verts[:, 1] - cy) / ry) ** 2
    inside = r < rng.uniform(0.75, 1.15, len(verts))
    wnet = min(wmax, cell / 6.0, rng.uniform(1.5, 3.5))
    ridges = [rv for rv in vor.ridge_vertices if rv[0] >= 0 and rv[1] >= 0]
    keep = rng.random(len(ridges)) < 0.88
    for (i0, i1), ok in zip(ridges, keep, strict=True):
        if not (ok and inside[i0] and inside[i1]):
            continue
        pts = _jagged_segment(rng, verts[i0], verts[i1])
        ww = np.clip(wnet * np.exp(0.3 * _ar_series(rng, len(pts), 0.9, 0.3)), 1.0, wmax)
        canvas.polyline(pts, ww, depth * rng.uniform(0.8, 1.0))


def _crack_depth(rng: np.random.Generator, faint_p: float) -> float:
    """Relative darkening of one crack; faint ones with probability ``faint_p``."""
    if rng.random() < faint_p:
        return float(rng.uniform(0.3, 0.42))
    return float(rng.uniform(0.45, 0.8))


def _crack_layer(rng: np.random.Generator, shape: tuple[int, int], faint_p: float) -> Array:
    """Depth image in [0, 1]: 0 outside cracks, the darkening strength inside."""
    h, w = shape
    wmax = float(np.clip(min(h, w) / 24.0, 2.0, 8.0))
    canvas = _Canvas(shape)
    layout = rng.choice(["single", "multi", "network"], p=[0.5, 0.32, 0.18])
    if layout == "single":
        _branching_crack(rng, canvas, shape, _crack_depth(rng, faint_p), wmax)
    elif layout == "multi":
        for _ in range(int(rng.integers(2, 4))):
            _branching_crack(rng, canvas, shape, _crack_depth(rng, faint_p), wmax)
    else:
        _network(rng, canvas, shape, _crack_depth(rng, faint_p * 0.5), wmax)
        if rng.random() < 0.6:
            _branching_crack(rng, canvas, shape, _crack_depth(rng, faint_p), wmax)
    depth = canvas.array()
    for _ in range(4):
        if np.count_nonzero(depth) >= _MIN_MASK_FRACTION * h * w:
            break
        _branching_crack(rng, canvas, shape, _crack_depth(rng, 0.0), wmax)
        depth = canvas.array()
    return depth.astype(np.float32) / 255.0


def _crack_darkening(rng: np.random.Generator, depth: Array) -> tuple[Array, Array]:
    """Turn the depth image into a darkening factor that is non-zero exactly on the mask."""
    mask = depth > 0
    shape = depth.shape
    # soft profile: crack centres darkest, rims lighter, but never leaving the mask
    core = ndimage.gaussian_filter(mask.astype(np.float32), 0.8)
    profile = np.clip(0.25 + core * 1.1, 0.0, 1.0)
    along = np.clip(0.88 + 0.12 * _smooth_noise(rng, shape, max(shape) / 6.0), 0.7, 1.0)
    idx = np.nonzero(mask)
    debris = 1.0 + 0.12 * _uniform_noise(rng, (len(idx[0]),))
    dark = np.zeros(shape, np.float32)
    dark[idx] = np.clip(depth[idx] * profile[idx] * along[idx] * debris, 0.15, 0.9)
    return mask, dark


# --------------------------------------------------------------------------------------------
# distractors and illumination
# --------------------------------------------------------------------------------------------


def _polygon_mask(shape: tuple[int, int], polys: list[list[tuple[float, float]]]) -> Array:
    """Filled polygons as a float coverage image in {0, 1}."""
    img = Image.new("L", (shape[1], shape[0]), 0)
    draw = ImageDraw.Draw(img)
    for p in polys:
        draw.polygon(p, fill=255)
    return np.asarray(img, dtype=np.float32) / 255.0


def _lane_paint(rng: np.random.Generator, img: Array) -> None:
    """Paint a worn white or yellow lane stripe (solid or dashed) across ``img`` in place."""
    h, w = img.shape[:2]
    size = min(h, w)
    yy, xx = _coords((h, w))
    ang = rng.choice([0.0, np.pi / 2]) + rng.normal(0.0, 0.12)
    nx_, ny_ = -math.sin(ang), math.cos(ang)
    off = rng.uniform(0.15, 0.85) * (h * abs(ny_) + w * abs(nx_))
    dist = (xx - w / 2) * nx_ + (yy - h / 2) * ny_ + (h * abs(ny_) + w * abs(nx_)) / 2 - off
    half = rng.uniform(0.025, 0.05) * size
    alpha = np.clip(half + 0.5 - np.abs(dist), 0.0, 1.0)
    if rng.random() < 0.4:  # dashed line
        along = (xx - w / 2) * math.cos(ang) + (yy - h / 2) * math.sin(ang)
        period = rng.uniform(0.6, 1.2) * size
        phase = rng.uniform(0, period)
        on = np.mod(along + phase, period) < period * rng.uniform(0.45, 0.65)
        alpha = alpha * on
    wear = _smooth_noise(rng, (h, w), rng.uniform(2.0, 4.0)) + 0.6 * _smooth_noise(
        rng, (h, w), 25.0
    )
    alpha *= np.clip(0.9 + 0.5 * wear, 0.0, 1.0) * rng.uniform(0.7, 0.95)
    color = (
        np.array([0.93, 0.93, 0.9], np.float32)
        if rng.random() < 0.65
        else np.array([0.92, 0.75, 0.22], np.float32)
    )
    a = alpha[..., None]
    img *= 1.0 - a
    img += a * color * (0.9 + 0.1 * (_channel_mean(img) / 0.6))


def _oil_stains(rng: np.random.Generator, img: Array) -> None:
    """Darken ``img`` in place with one to three soft, irregular oil stains."""
    h, w = img.shape[:2]
    size = min(h, w)
    yy, xx = _coords((h, w))
    for _ in range(int(rng.integers(1, 4))):
        r = rng.uniform(0.04, 0.14) * size
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        y0, y1 = int(max(0, cy - 2 * r)), int(min(h, cy + 2 * r + 1))
        x0, x1 = int(max(0, cx - 2 * r)), int(min(w, cx + 2 * r + 1))
        if y1 <= y0 or x1 <= x0:
            continue
        sub = (y1 - y0, x1 - x0)
        e = rng.uniform(0.5, 1.0)
        rr = np.sqrt(((xx[:, x0:x1] - cx) / r) ** 2 + ((yy[y0:y1] - cy) / (r * e)) ** 2)
        shape_n = _smooth_noise(rng, sub, max(2.0, r / 3.0))
        field = 1.0 - rr + 0.3 * shape_n
        soft = np.clip(field / 0.4, 0.0, 1.0)
        k = rng.uniform(0.3, 0.55) * soft * (0.75 + 0.25 * np.clip(field * 2, 0, 1))
        tint = np.array([0.95, 1.0, 1.07], np.float32)
        img[y0:y1, x0:x1] *= 1.0 - k[..., None] * tint


def _cast_shadow(rng: np.random.Generator, shape: tuple[int, int]) -> Array:
    """Hard-edged shadow coverage in [0, 1]."""
    h, w = shape
    kind = rng.choice(["edge", "pole", "dapple"], p=[0.45, 0.3, 0.25])
    if kind == "edge":
        ang = rng.uniform(0, 2 * np.pi)
        c = np.array([w / 2, h / 2]) + rng.uniform(-0.3, 0.3, 2) * np.array([w, h])
        d = np.array([math.cos(ang), math.sin(ang)])
        nrm = np.array([-d[1], d[0]])
        far = 3.0 * max(h, w)
        # stepped outline, like a building or a roof edge
        n_steps = int(rng.integers(1, 4))
        ts = np.sort(rng.uniform(-1.0, 1.0, n_steps)) * max(h, w) * 0.5
        pts = [c - d * far]
        shift = 0.0
        for t in ts:
            pts.append(c + d * t + nrm * shift)
            shift += rng.normal(0.0, 0.08) * max(h, w)
            pts.append(c + d * t + nrm * shift)
        pts.append(c + d * far + nrm * shift)
        pts.append(c + d * far + nrm * far)
        pts.append(c - d * far + nrm * far)
        cov = _polygon_mask(shape, [[(float(p[0]), float(p[1])) for p in pts]])
    elif kind == "pole":
        polys = []
        for _ in range(int(rng.integers(1, 3))):
            ang = rng.uniform(0, np.pi)
            d = np.array([math.cos(ang), math.sin(ang)])
            nrm = np.array([-d[1], d[0]])
            c = np.array([rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h])
            half = rng.uniform(0.02, 0.06) * min(h, w)
            far = 2.0 * max(h, w)
            p = [c - d * far - nrm * half, c + d * far - nrm * half * 0.7]
            p += [c + d * far + nrm * half * 0.7, c - d * far + nrm * half]
            polys.append([(float(q[0]), float(q[1])) for q in p])
        cov = _polygon_mask(shape, polys)
    else:
        big = rng.uniform(0.05, 0.1) * max(h, w)
        field = _fractal_noise(rng, shape, (max(h, w) / 2.0, big, rng.uniform(6.0, 12.0)), 0.8)
        cov = (field > rng.uniform(-0.6, 0.4)).astype(np.float32)
    return ndimage.gaussian_filter(cov, rng.uniform(0.5, 1.1))


def _sunny(rng: np.random.Generator, img: Array) -> Array:
    """Bright sunlight, usually with a hard cast shadow lit only by the bluish sky."""
    shape = img.shape[:2]
    img *= rng.uniform(1.05, 1.25)
    if rng.random() < 0.8:
        cov = _cast_shadow(rng, shape)
        strength = rng.uniform(0.45, 0.65)
        sky = np.array([0.95, 0.98, 1.06], np.float32)
        img *= 1.0 - cov[..., None] * (1.0 - (1.0 - strength) * sky)
    return img


def _rainy(rng: np.random.Generator, img: Array, surface_mean: Array) -> Array:
    """Wet darkening, lower contrast, puddles reflecting the sky, specular glints."""
    h, w = img.shape[:2]
    yy, xx = _coords((h, w))
    # wet darkening and lower contrast, as one per-channel affine map
    gain = np.float32(rng.uniform(0.52, 0.7)) * np.array([0.95, 0.98, 1.03], np.float32)
    c = np.float32(rng.uniform(0.65, 0.85))
    mean = surface_mean * gain  # taken before the cracks: every step after them is pointwise
    img *= gain * c
    img += mean * (1 - c)
    # puddles: sharp-edged, with a darker wet rim, reflecting a cloudy sky
    big = rng.uniform(0.12, 0.25) * max(h, w)
    field = _fractal_noise(rng, (h, w), (big, rng.uniform(8.0, 16.0)), 0.25)
    coverage = rng.uniform(0.04, 0.3)
    thr = float(np.quantile(field[::4, ::4], 1.0 - coverage))
    puddle = np.clip((field - thr) / 0.08, 0.0, 1.0)
    rim = np.clip(ndimage.uniform_filter(puddle, 11) * 1.5 - puddle, 0.0, 1.0)
    sky_level = rng.uniform(0.35, 0.6)
    grad = 1.0 + rng.uniform(-0.3, 0.3) * (yy / h - 0.5) + rng.uniform(-0.2, 0.2) * (xx / w - 0.5)
    clouds = 1.0 + 0.2 * _fractal_noise(rng, (h, w), (max(h, w) / 4.0, max(h, w) / 12.0), 0.5)
    refl = sky_level * grad * clouds
    if rng.random() < 0.5:  # dark reflected objects (trees, poles)
        obj = _smooth_noise(rng, (h, w), max(h, w) / 10.0) > 0.8
        refl *= np.where(obj, 0.6, 1.0)
    a = puddle * np.float32(rng.uniform(0.35, 0.65))
    # specular glints of lights, brightest on water
    glints = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(1, 5))):
        gx, gy = rng.uniform(0, w), rng.uniform(0, h)
        sx = rng.uniform(0.01, 0.04) * w
        sy = sx * rng.uniform(1.0, 4.0)
        gxv = np.exp(-(((xx - gx) / sx) ** 2))
        gyv = np.exp(-(((yy - gy) / sy) ** 2))
        glints += (rng.uniform(0.4, 0.9) * gyv) * gxv  # separable Gaussian blob
    glints *= 0.35 + 0.65 * puddle
    # sparkle of wet aggregate
    n_sp = rng.poisson(rng.uniform(0.0003, 0.0012) * h * w)
    sparkle = np.zeros((h, w), np.float32)
    sparkle[rng.integers(0, h, n_sp), rng.integers(0, w, n_sp)] = rng.uniform(0.5, 1.0)
    glints += ndimage.gaussian_filter(sparkle, 0.6, truncate=2.5)
    img *= ((1.0 - 0.25 * rim) * (1.0 - a))[..., None]
    img += (refl * a)[..., None] * np.array([0.92, 0.97, 1.05], np.float32)
    img += glints[..., None] * np.array([1.0, 0.98, 0.93], np.float32)
    return img


def _night(rng: np.random.Generator, img: Array) -> Array:
    """Dark ambient light plus one head-light or street-lamp pool of light."""
    h, w = img.shape[:2]
    yy, xx = _coords((h, w))
    ambient = rng.uniform(0.2, 0.3)
    if rng.random() < 0.5:  # head-light cone from the bottom edge
        cx = rng.uniform(0.3, 0.7) * w
        cy = rng.uniform(1.0, 1.3) * h
        sx = rng.uniform(0.3, 0.6) * w
        sy = rng.uniform(0.6, 1.1) * h
        fall = np.exp(-(((xx - cx) / sx) ** 2) - ((yy - cy) / sy) ** 2)
        tint = np.array([1.0, 0.98, 0.92], np.float32)
    else:  # street lamp: inverse-square-like falloff
        cx = rng.uniform(0.0, 1.0) * w
        cy = rng.uniform(0.0, 1.0) * h
        r0 = rng.uniform(0.25, 0.6) * max(h, w)
        fall = 1.0 / (1.0 + ((xx - cx) ** 2 + (yy - cy) ** 2) / r0**2) ** 1.5
        tint = (
            np.array([1.1, 0.85, 0.55], np.float32)
            if rng.random() < 0.6
            else np.array([0.95, 1.0, 1.08], np.float32)
        )
    peak = rng.uniform(0.5, 0.8)
    illum = (ambient + peak * fall / max(float(fall.max()), 1e-6)).astype(np.float32)
    img *= illum[..., None] * tint
    return img


def _shading(rng: np.random.Generator, img: Array) -> None:
    """Gentle large-scale illumination changes, in place."""
    h, w = img.shape[:2]
    yy, xx = _coords((h, w))
    low = _smooth_noise(rng, (h, w), max(h, w) / 2.0)
    grad = rng.uniform(-0.08, 0.08) * (yy / h - 0.5) + rng.uniform(-0.08, 0.08) * (xx / w - 0.5)
    img *= (1.0 + 0.05 * low + grad)[..., None]


def _sensor_noise(rng: np.random.Generator, img: Array, sigma: float, chroma: float) -> Array:
    """Add read and shot noise (``sigma``, luminance) and colour noise (``chroma``)."""
    lum = _channel_mean(img)
    z = _uniform_noise(rng, img.shape)
    zbar = _channel_mean(z)  # N(0, 1/3), independent of z - zbar
    shot = np.sqrt(np.clip(lum, 0.0, None)) * (sigma * 1.0)
    return img + zbar * (np.sqrt(3.0) * (sigma * 0.45 + shot)) + (z - zbar) * (chroma * 1.22)


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def generate(
    seed: int, size: int | tuple[int, int] = 512, condition: str = "sunny"
) -> tuple[np.ndarray, np.ndarray]:
    """Generate one synthetic pavement image with cracks and its exact mask.

    Args:
        seed: Non-negative integer; the same ``(seed, size, condition)`` always gives the same
            arrays.
        size: Side of a square image, or ``(H, W)``; each side at least 32 pixels.
        condition: One of :data:`CONDITIONS`.

    Returns:
        ``(image, mask)``: ``image`` is uint8 ``(H, W, 3)`` RGB, ``mask`` is uint8 ``(H, W)`` with
        values in {0, 1} marking exactly the darkened crack pixels; it is never empty.

    Raises:
        ValueError: On a negative seed, a size below 32 or an unknown condition.
    """
    seed = _check_seed(seed)
    shape = _check_size(size)
    _check_condition(condition)
    rng = np.random.default_rng([seed, CONDITIONS.index(condition)])

    lum, tint = _surface(rng, shape)
    img = lum[..., None] * tint
    if condition == "sunny":
        if rng.random() < 0.55:
            _lane_paint(rng, img)
        if rng.random() < 0.6:
            _oil_stains(rng, img)
    elif rng.random() < 0.25:
        _lane_paint(rng, img)

    faint_p = {"sunny": 0.2, "rainy": 0.15, "night": 0.05}[condition]
    surface_mean = img[::4, ::4].reshape(-1, 3).mean(axis=0).astype(np.float32)
    depth = _crack_layer(rng, shape, faint_p)
    mask, dark = _crack_darkening(rng, depth)
    if condition == "rainy":  # water in the crack makes it a bit darker
        dark = np.minimum(dark * np.float32(1.15), np.float32(0.92))
    img *= (1.0 - dark)[..., None]

    if condition == "sunny":
        img = _sunny(rng, img)
        noise = (rng.uniform(0.004, 0.01), rng.uniform(0.002, 0.005))
    elif condition == "rainy":
        img = _rainy(rng, img, surface_mean)
        noise = (rng.uniform(0.008, 0.016), rng.uniform(0.003, 0.006))
    else:
        img = _night(rng, img)
        noise = (rng.uniform(0.05, 0.075), rng.uniform(0.012, 0.022))
    _shading(rng, img)
    img = _sensor_noise(rng, img, *noise)

    image = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return image, mask.astype(np.uint8)


def write_dataset(
    out_dir: str | pathlib.Path,
    n: int = 200,
    size: int | tuple[int, int] = 512,
    condition: str = "all",
    seed: int = 0,
    progress: bool = True,
) -> pathlib.Path:
    """Write a synthetic crack dataset to disk.

    Layout: ``out_dir/images/synth_00000.png`` (RGB), ``out_dir/masks/synth_00000.png`` (8-bit,
    0 or 255, same stem) and ``out_dir/manifest.json`` (generator version, seed, size and the
    condition and seed of each image). Image ``i`` uses :func:`sample_seed` ``(seed, i)``.

    Args:
        out_dir: Destination folder; created with its parents if missing.
        n: Number of images (at least 1).
        size: Image side, or ``(H, W)``.
        condition: A name from :data:`CONDITIONS`, or ``"all"`` to cycle through them.
        seed: Seed of the whole set.
        progress: Show a tqdm progress bar.

    Returns:
        ``out_dir`` as a :class:`pathlib.Path`.

    Raises:
        ValueError: On ``n < 1``, a size below 32, a negative seed or an unknown condition, and
            on an ``out_dir`` holding anything this function does not write (see below).

    ``out_dir`` must be new, empty, or hold only what an earlier call wrote (``images/`` and
    ``masks/`` of ``synth_NNNNN.png`` files and ``manifest.json``): a folder holding anything
    else is refused before anything is written, so the manifest always describes the folder.
    In a folder of an earlier call, its manifest and the images and masks this call does not
    rewrite (those beyond ``n``) are removed first; nothing else is ever deleted.
    """
    n = _check_n(n)
    shape = _check_size(size)
    seed = _check_seed(seed)
    conds = conditions_for(condition, n)
    out = pathlib.Path(out_dir)
    stale = _earlier_output(out, n)
    (out / "manifest.json").unlink(missing_ok=True)  # first: a cut-short run leaves none
    for path in stale:
        path.unlink()
    if stale:
        warnings.warn(
            f"removed {len(stale)} images and masks of an earlier, larger crackseg synth set in "
            f"{out} (the new set has {n})",
            stacklevel=2,
        )
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    items: list[dict[str, Any]] = []
    for i in _progress(range(n), progress, "synth"):
        s = sample_seed(seed, i)
        image, mask = generate(s, shape, conds[i])
        name = f"synth_{i:05d}"
        Image.fromarray(image).save(out / "images" / f"{name}.png")
        Image.fromarray(mask * np.uint8(255)).save(out / "masks" / f"{name}.png")
        items.append(
            {
                "name": name,
                "image": f"images/{name}.png",
                "mask": f"masks/{name}.png",
                "condition": conds[i],
                "seed": s,
                "mask_fraction": round(float(mask.mean()), 6),
            }
        )
    manifest = {
        "generator": "crackseg.data.synth",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "size": list(shape),
        "n": n,
        "condition": condition,
        "items": items,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out


_SYNTH_FILE = re.compile(r"synth_\d{5,}\.png")


def _is_synth_manifest(path: pathlib.Path) -> bool:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("generator") == "crackseg.data.synth"


def _earlier_output(out: pathlib.Path, n: int) -> list[pathlib.Path]:
    """The images and masks of an earlier :func:`write_dataset` in ``out`` that a set of ``n``
    does not rewrite. Raises :class:`CrackSegError` when ``out`` holds anything else (or is a
    file), before anything is removed."""
    if not out.exists():
        return []
    if not out.is_dir():
        raise CrackSegError(f"--out {out} is a file: give a folder for the dataset")
    foreign, made = [], []
    for entry in sorted(out.iterdir()):
        if entry.name in ("images", "masks") and entry.is_dir():
            for f in sorted(entry.iterdir()):
                ours = f.is_file() and not f.is_symlink() and _SYNTH_FILE.fullmatch(f.name)
                (made if ours else foreign).append(f)
        elif not (entry.name == "manifest.json" and _is_synth_manifest(entry)):
            foreign.append(entry)
    if foreign:
        shown = ", ".join(str(f.relative_to(out)) for f in foreign[:5])
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        raise CrackSegError(
            f"--out {out} holds files crackseg synth did not write ({shown}{more}): give a new "
            "or empty folder (synth replaces only its own images, masks and manifest.json)"
        )
    keep = {f"synth_{i:05d}.png" for i in range(n)}
    return [f for f in made if f.name not in keep]


def _progress(it: Any, enabled: bool, desc: str) -> Any:
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, desc=desc, unit="img")


class SynthCrackDataset:
    """In-memory synthetic crack set, generated once at construction (a map-style dataset: a
    ``torch.utils.data.DataLoader`` takes it as it is; building it needs no torch).

    Sample ``i`` is ``generate(sample_seed(seed, i), size, conditions[i])``, the same image that
    :func:`write_dataset` writes with the same arguments.

    Attributes:
        names: Sample names, ``synth_00000`` and so on.
        conditions: Condition of each sample.
        seeds: Seed of each sample.
    """

    def __init__(
        self,
        n: int,
        size: int | tuple[int, int] = 256,
        condition: str = "all",
        seed: int = 0,
        transform: Callable[[np.ndarray, np.ndarray], Any] | None = None,
        progress: bool = False,
    ) -> None:
        """Generate the samples.

        Args:
            n: Number of samples (at least 1).
            size: Image side, or ``(H, W)``.
            condition: A name from :data:`CONDITIONS`, or ``"all"`` to cycle through them.
            seed: Seed of the whole set.
            transform: Optional ``transform(image, mask)`` applied in ``__getitem__`` to the raw
                uint8 arrays; its result is returned as is.
            progress: Show a tqdm progress bar while generating.

        Raises:
            ValueError: On ``n < 1``, a size below 32, a negative seed or an unknown condition.
        """
        n = _check_n(n)
        self.shape = _check_size(size)
        seed = _check_seed(seed)
        self.conditions: list[str] = conditions_for(condition, n)
        self.names: list[str] = [f"synth_{i:05d}" for i in range(n)]
        self.seeds: list[int] = [sample_seed(seed, i) for i in range(n)]
        self.transform = transform
        h, w = self.shape
        self._images = np.empty((n, h, w, 3), np.uint8)
        self._masks = np.empty((n, h, w), np.uint8)
        for i in _progress(range(n), progress, "synth"):
            self._images[i], self._masks[i] = generate(
                self.seeds[i], self.shape, self.conditions[i]
            )

    def __len__(self) -> int:
        """Number of samples."""
        return len(self.names)

    def sample(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw arrays of sample ``i``: uint8 ``(H, W, 3)`` image and uint8 ``(H, W)`` 0/1 mask."""
        return self._images[i], self._masks[i]

    def __getitem__(self, i: int) -> Any:
        """``transform(image, mask)`` if a transform is set, else ``(image, mask)`` tensors.

        Without a transform, the image is a normalised float ``(3, H, W)`` tensor and the mask a
        float ``(1, H, W)`` tensor of zeros and ones.
        """
        image, mask = self.sample(i)
        if self.transform is not None:
            return self.transform(image.copy(), mask.copy())
        return to_tensor(image), mask_to_tensor(mask)
