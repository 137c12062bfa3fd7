"""Procedural hard-negative scenes: crack look-alikes that must not be segmented as cracks.

A crack segmenter trained on pavement photos tends to fire on line-like structures that are not
cracks. This module paints such structures, photo-like, so that a model can be taught (or tested)
to ignore them:

* ``masonry``: brick and block walls (running, third and stack bond), mortar joints lighter or
  darker than the units, recessed-joint shadows, weathered unit texture.
* ``formwork``: board-formed concrete: plank seams (dark gaps or light grout fins) with a wood
  grain imprint between them, board end joints, tie holes in a grid, bug holes, run-off stains.
* ``joints``: concrete (sometimes asphalt) slabs with straight saw-cut or sealed joints, and a
  manhole or utility cover with its gap, frame and collar.
* ``road_markings``: asphalt with worn white or yellow lane paint (solid, dashed, double), road
  studs with their shadows, tyre marks, patches with sealed borders, sealed longitudinal joints.
* ``shadows``: asphalt or concrete under thin soft cast shadows of poles, wires and branches.

The structured scene is drawn in an axis-aligned "world" canvas and seen through a random
camera (scale, rotation, mild perspective), then blurred a little. With probability ``crack_p``
real cracks are added with the crack helpers of :mod:`crackseg.data.synth` (and, on masonry,
stair-step cracks that follow the mortar joints); the mask marks exactly the darkened crack
pixels and never the look-alikes. Lighting, colour balance and sensor noise come last.

The same ``(seed, size, scene, crack_p)`` always gives byte-identical arrays; for a fixed
``(seed, size, scene)`` the scene itself does not depend on ``crack_p``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from scipy import ndimage

from crackseg.data.io import mask_to_tensor, to_tensor
from crackseg.data.synth import (
    _bspline_matrix,
    _Canvas,
    _check_n,
    _check_seed,
    _check_size,
    _crack_darkening,
    _crack_layer,
    _fractal_noise,
    _normalise,
    _sensor_noise,
    _smooth_noise,
    _uniform_noise,
    _width_profile,
    sample_seed,
)

SCENES: tuple[str, ...] = ("masonry", "formwork", "joints", "road_markings", "shadows")

Array = np.ndarray
_TAG = 0x68_6E_65_67  # "hneg": keeps these streams apart from synth.py's
_SKY = np.array([0.93, 0.97, 1.08], np.float32)  # tint of light in a shadow (sky only)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _check_scene(scene: str) -> str:
    if scene != "any" and scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}; valid scenes are {', '.join(SCENES)} or 'any'")
    return scene


def scenes_for(scene: str, n: int) -> list[str]:
    """Scene of each of ``n`` samples: ``"any"`` cycles through :data:`SCENES`."""
    _check_scene(scene)
    if scene == "any":
        return [SCENES[i % len(SCENES)] for i in range(n)]
    return [scene] * n


def _aniso_noise(rng: np.random.Generator, shape: tuple[int, int], sy: float, sx: float) -> Array:
    """Zero-mean unit-std noise with features about ``sy`` tall and ``sx`` wide."""
    sy, sx = max(float(sy), 1.0), max(float(sx), 1.0)
    grid = (int(shape[0] / sy) + 4, int(shape[1] / sx) + 4)
    small = rng.standard_normal(grid, dtype=np.float32)
    tmp = np.asarray(_bspline_matrix(shape[0], grid[0], sy) @ small)
    out = np.asarray(_bspline_matrix(shape[1], grid[1], sx) @ tmp.T).T
    return _normalise(np.ascontiguousarray(out, dtype=np.float32))


def _grid(shape: tuple[int, int]) -> tuple[Array, Array]:
    """Broadcastable world coordinates: rows ``Y`` (H, 1) and columns ``X`` (1, W)."""
    return (
        np.arange(shape[0], dtype=np.float32)[:, None],
        np.arange(shape[1], dtype=np.float32)[None, :],
    )


def _line_alpha(dist: Array, half: float) -> Array:
    """Anti-aliased coverage of a band of half-width ``half`` given distance to its centre."""
    return np.clip(half + 0.5 - dist, 0.0, 1.0)


def _periodic_dist(v: Array, period: float, phase: float) -> Array:
    """Distance of ``v`` to the nearest of the lines ``phase + k * period``."""
    return np.abs(np.mod(v - phase + period / 2.0, period) - period / 2.0)


def _blend(img: Array, alpha: Array, color: Array) -> None:
    """``img = (1 - alpha) * img + alpha * color`` in place; ``color`` (3,) or (H, W, 3)."""
    a = alpha[..., None]
    img *= 1.0 - a
    img += a * color


def _pavement(rng: np.random.Generator, shape: tuple[int, int], kind: str) -> tuple[Array, Array]:
    """Asphalt or concrete luminance (mean about 0.5-0.7) and an RGB tint."""
    grain = _uniform_noise(rng, shape)
    if kind == "asphalt":
        base = rng.uniform(0.32, 0.55)
        stones = _smooth_noise(rng, shape, rng.uniform(1.6, 2.8))
        stone_mask = np.clip((stones - rng.uniform(0.3, 0.9)) * 3.0, 0.0, 1.0)
        lum = base * (1.0 + 0.07 * grain)
        lum += stone_mask * (rng.uniform(0.05, 0.15) + 0.05 * stones[::-1, ::-1])
        lum -= np.clip(-stones - 2.0, 0.0, 1.0) * rng.uniform(0.1, 0.2)
        tint = np.array([1.0, 1.0, 1.0], np.float32) + rng.normal(0, 0.015, 3).astype(np.float32)
    else:
        base = rng.uniform(0.55, 0.75)
        fine = _smooth_noise(rng, shape, rng.uniform(1.2, 2.0))
        lum = base * (1.0 + 0.035 * grain + 0.04 * fine)
        pores = fine[::-1, ::-1]
        lum -= np.clip(pores - 2.3, 0.0, 1.0) * rng.uniform(0.2, 0.4)
        lum += np.clip(-pores - 2.4, 0.0, 1.0) * 0.12
        warm = rng.uniform(-0.02, 0.06)
        tint = np.array([1.0 + warm, 1.0 + warm * 0.4, 1.0 - warm], np.float32)
    blotch = _fractal_noise(rng, shape, (max(shape) / 3.0, 48.0, 16.0), 0.6)
    lum *= 1.0 + rng.uniform(0.03, 0.09) * blotch
    return lum.astype(np.float32), tint


def _scale_choice(rng: np.random.Generator, base: float, spread: float = 0.12) -> float:
    return float(base + rng.normal(0.0, spread))


# --------------------------------------------------------------------------------------------
# camera: image pixel -> world pixel homography
# --------------------------------------------------------------------------------------------


def _view(
    rng: np.random.Generator, shape: tuple[int, int], angle: float, scale: float, persp: float
) -> tuple[Array, tuple[int, int]]:
    """Homography ``M`` (image (x, y, 1) -> world) and the world canvas shape that it needs."""
    h, w = shape
    c, s = math.cos(angle), math.sin(angle)
    g = rng.normal(0.0, persp / max(h, w), 2)
    a = np.array(
        [[scale * c, -scale * s, 0.0], [scale * s, scale * c, 0.0], [g[0], g[1], 1.0]],
        np.float64,
    )
    centre = np.array([[1.0, 0.0, -w / 2.0], [0.0, 1.0, -h / 2.0], [0.0, 0.0, 1.0]])
    m = a @ centre
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64).T
    q = m @ corners
    q = q[:2] / q[2]
    lo = q.min(axis=1) - 4.0
    hi = q.max(axis=1) + 4.0
    shift = np.array([[1.0, 0.0, -lo[0]], [0.0, 1.0, -lo[1]], [0.0, 0.0, 1.0]])
    m = shift @ m
    wshape = (int(math.ceil(hi[1] - lo[1])), int(math.ceil(hi[0] - lo[0])))
    return m, wshape


def _warp(world: Array, m: Array, shape: tuple[int, int]) -> Array:
    """Sample the (Hw, Ww, 3) ``world`` at the image pixels mapped by ``m`` (bilinear)."""
    h, w = shape
    yy = np.arange(h, dtype=np.float64)[:, None] + 0.5
    xx = np.arange(w, dtype=np.float64)[None, :] + 0.5
    d = m[2, 0] * xx + m[2, 1] * yy + m[2, 2]
    wx = ((m[0, 0] * xx + m[0, 1] * yy + m[0, 2]) / d - 0.5).astype(np.float32)
    wy = ((m[1, 0] * xx + m[1, 1] * yy + m[1, 2]) / d - 0.5).astype(np.float32)
    out = np.empty((h, w, world.shape[2]), np.float32)
    for ch in range(world.shape[2]):
        out[..., ch] = ndimage.map_coordinates(
            world[..., ch], [wy, wx], order=1, mode="nearest", prefilter=False
        )
    return out


def _to_world(m: Array, pts: Array) -> Array:
    """Map (N, 2) image points (x, y) to world points with ``m``."""
    hom = np.concatenate([pts + 0.5, np.ones((len(pts), 1))], axis=1) @ m.T
    return hom[:, :2] / hom[:, 2:3] - 0.5


def _to_image(m: Array, pts: Array) -> Array:
    """Map (N, 2) world points (x, y) to image points with the inverse of ``m``."""
    inv = np.linalg.inv(m)
    hom = np.concatenate([pts + 0.5, np.ones((len(pts), 1))], axis=1) @ inv.T
    return hom[:, :2] / hom[:, 2:3] - 0.5


# a world crack: (points (N, 2) as world x, y; width in world pixels)
_WorldCrack = tuple[Array, float]
_StairFn = Callable[[np.random.Generator, Array], list[_WorldCrack]]


# --------------------------------------------------------------------------------------------
# scenes (world space)
# --------------------------------------------------------------------------------------------

_BRICKS = np.array(
    [
        [0.60, 0.30, 0.23],  # red
        [0.48, 0.26, 0.21],  # brown-red
        [0.70, 0.44, 0.30],  # orange
        [0.78, 0.67, 0.50],  # buff
        [0.62, 0.61, 0.58],  # grey concrete block
        [0.86, 0.85, 0.81],  # painted
        [0.34, 0.28, 0.27],  # dark engineering brick
        [0.55, 0.50, 0.44],  # sandstone-ish block
    ],
    np.float32,
)


def _stair_cracks(
    crng: np.random.Generator,
    starts: Array,
    *,
    oy: float,
    bh: float,
    bl: float,
    ww: int,
    jw: float,
    n_rows: int,
    shifts: Array,
    row_jit: Array,
) -> list[_WorldCrack]:
    """Stair-step cracks along the joints of the wall :func:`_masonry` drew (its bond: row
    offset ``oy``, unit height ``bh`` and length ``bl``, joint width ``jw``, row shifts and
    jitter), one from near each world point in ``starts``."""
    cracks: list[_WorldCrack] = []
    for sx, sy in starts:
        r = int(np.clip(np.floor((sy + oy) / bh), 0, n_rows - 2))
        direction = crng.choice([-1.0, 1.0])
        heads = shifts[r] - bl * 4.0 + bl * np.arange(-2, int(ww / bl) + 8)
        x = float(heads[np.argmin(np.abs(heads - sx))])  # the nearest head joint
        y = r * bh - oy
        pts = [(x, y)]
        for _ in range(int(crng.integers(3, 12))):
            through = crng.random() < 0.12  # now and then it cracks a unit instead
            y_next = y + bh
            if through:
                x = x + crng.normal(0.0, 0.15 * bl)
            pts.append((x, y_next))
            r += 1
            if r >= n_rows - 1:
                break
            heads = shifts[r] - bl * 4.0 + bl * np.arange(-2, int(ww / bl) + 8)
            ahead = heads[(heads - x) * direction > 0.2 * bl]
            if ahead.size == 0:
                break
            x = float(ahead[np.argmin(np.abs(ahead - x))])
            y = y_next
            pts.append((x, y))
        arr = np.asarray(pts, np.float64)
        arr[:, 1] += row_jit[np.clip(np.round((arr[:, 1] + oy) / bh).astype(int), 0, n_rows)]
        width = float(np.clip(crng.uniform(0.8, 1.0) * jw * 0.6, 1.0, 4.0))
        cracks.append((arr, width))
    return cracks


def _masonry(rng: np.random.Generator, wshape: tuple[int, int]) -> tuple[Array, _StairFn]:
    """Brick / block wall in world space, plus a maker of stair-step joint cracks."""
    hw, ww = wshape
    yy, xx = _grid(wshape)
    bond = rng.choice(["running", "running", "running", "third", "stack"])
    block = rng.random() < (0.7 if bond == "stack" else 0.3)
    bh = rng.uniform(28.0, 64.0) if block else rng.uniform(13.0, 34.0)
    bl = bh * (rng.uniform(1.8, 2.3) if block else rng.uniform(2.6, 3.5))
    jw = float(np.clip(rng.uniform(2.0, 12.0), 2.0, max(2.0, bh * 0.3)))
    oy, ox = rng.uniform(0, bh), rng.uniform(0, bl)
    n_rows = int((hw + oy) / bh) + 3
    row_shift = {"running": 0.5, "third": 1.0 / 3.0, "stack": 0.0}[str(bond)]
    shifts = (np.arange(n_rows) * row_shift % 1.0) * bl + rng.normal(0.0, 0.06 * jw, n_rows)
    shifts += ox
    row_jit = rng.normal(0.0, 0.05 * jw, n_rows + 1)  # bed joints not perfectly level

    v = yy + oy
    row = np.floor(v / bh).astype(np.int64)  # (H, 1)
    u = xx + bl * 4.0 - shifts[row]  # (H, W)
    col = np.floor(u / bl).astype(np.int64)
    dv = v - row * bh
    d_bed = np.minimum(dv - row_jit[row], bh - dv + row_jit[row + 1])
    du = u - col * bl
    d_head = np.minimum(du, bl - du)
    edge = 0.35 * _smooth_noise(rng, wshape, 1.5) + 0.5 * _smooth_noise(rng, wshape, 5.0)
    edge = np.maximum(edge, 0.0) * rng.uniform(0.5, 1.4)  # chipped unit arrises
    dist = np.minimum(d_bed, d_head) - edge
    joint = _line_alpha(dist, jw / 2.0)

    # units: palette colour, per-unit variation, weathering
    base = _BRICKS[int(rng.integers(len(_BRICKS)))] * rng.uniform(0.85, 1.12)
    base = base * (1.0 + rng.normal(0.0, 0.02, 3)).astype(np.float32)
    table = rng.normal(0.0, 1.0, (4096, 4)).astype(np.float32)
    uid = np.mod(row * 7919 + col * 104729, 4096)
    unit_var = rng.uniform(0.04, 0.12)
    per = table[uid]  # (H, W, 4)
    bright = 1.0 + unit_var * per[..., 0]
    # per-unit colour: more or less saturated around the palette colour, barely any hue shift
    chroma = (base / float(base.mean()) - 1.0).astype(np.float32)
    hue = 1.0 + rng.uniform(0.1, 0.4) * per[..., 1:2] * chroma + 0.008 * per[..., 1:4]
    grain = _uniform_noise(rng, wshape)
    speck = _smooth_noise(rng, wshape, rng.uniform(1.2, 2.2))
    weather = _fractal_noise(rng, wshape, (max(wshape) / 2.5, 40.0, 12.0, 4.0), 0.7)
    tex = 1.0 + rng.uniform(0.03, 0.07) * grain + rng.uniform(0.03, 0.09) * speck
    tex += rng.uniform(0.04, 0.1) * weather
    tex -= np.clip(speck - 2.2, 0.0, 1.0) * rng.uniform(0.2, 0.45)  # pits
    arris = np.clip((dist - jw / 2.0) / rng.uniform(2.0, 5.0), 0.0, 1.0)
    tex *= 1.0 - rng.uniform(0.03, 0.12) * (1.0 - arris)
    units = (bright * tex)[..., None] * hue * base

    # mortar: lighter or darker than the units, sandy
    unit_lum = float(base.mean())
    if rng.random() < 0.6:
        m_lum = min(0.92, unit_lum * rng.uniform(1.2, 1.7) + 0.05)
    else:
        m_lum = unit_lum * rng.uniform(0.4, 0.75)
    m_col = m_lum * (np.array([1.02, 1.0, 0.96], np.float32) + rng.normal(0, 0.02, 3))
    m_tex = 1.0 + rng.uniform(0.06, 0.12) * grain[::-1] + 0.05 * weather
    mortar = m_tex[..., None] * m_col.astype(np.float32)
    # recessed joints: the upper / side edge casts a thin shadow onto the mortar
    dy, dx = int(rng.integers(1, 3)), int(rng.integers(-2, 3))
    shadow = joint * (1.0 - np.roll(joint, (dy, dx), axis=(0, 1)))
    mortar *= (1.0 - rng.uniform(0.15, 0.45) * shadow)[..., None]

    img = units * (1.0 - joint[..., None]) + mortar * joint[..., None]
    if rng.random() < 0.3:  # grime or efflorescence blotches over the wall
        blot = _fractal_noise(rng, wshape, (80.0, 25.0, 8.0, 3.0), 0.7)
        blot = np.clip(blot - rng.uniform(0.8, 1.6), 0.0, 1.0) * rng.uniform(0.15, 0.35)
        if rng.random() < 0.4:
            _blend(img, blot, np.array([0.86, 0.85, 0.82], np.float32))
        else:
            img *= (1.0 - blot)[..., None]

    walls = dict(oy=oy, bh=bh, bl=bl, ww=ww, jw=jw, n_rows=n_rows, shifts=shifts, row_jit=row_jit)
    return img, partial(_stair_cracks, **walls)


def _formwork(rng: np.random.Generator, wshape: tuple[int, int]) -> Array:
    """Board-formed concrete: plank seams, wood-grain imprint, tie holes, bug holes."""
    hw, ww = wshape
    yy, xx = _grid(wshape)
    lum, tint = _pavement(rng, wshape, "concrete")
    lum = lum * rng.uniform(0.85, 1.1)

    # boards run along world x; seams every 40-150 px
    pitch = rng.uniform(40.0, 150.0)
    widths = pitch * rng.uniform(0.85, 1.15, int(hw / (0.8 * pitch)) + 4)
    if rng.random() < 0.3:  # mixed board widths
        widths = rng.uniform(40.0, 150.0, len(widths))
    bounds = np.cumsum(widths) - rng.uniform(0, widths[0])
    board = np.searchsorted(bounds, yy[:, 0])  # (H,)
    lower = np.where(board > 0, bounds[np.maximum(board - 1, 0)], -1e9)
    upper = bounds[np.minimum(board, len(bounds) - 1)]
    wob = 0.6 * _aniso_noise(rng, (1, ww), 1.0, rng.uniform(30.0, 90.0))  # (1, W)
    amp = rng.uniform(-1.0, 1.0, len(bounds) + 1).astype(np.float32)
    d_lo = np.abs(yy - lower[:, None] - amp[board][:, None] * wob)
    d_up = np.abs(upper[:, None] + amp[board + 1][:, None] * wob - yy)
    d_seam = np.minimum(d_lo, d_up)

    # wood grain imprint, different for each board
    streak = _aniso_noise(rng, wshape, rng.uniform(1.0, 2.0), rng.uniform(25.0, 70.0))
    shift_x = rng.integers(0, ww, len(bounds) + 1)
    cols = np.mod(np.arange(ww)[None, :] + shift_x[board][:, None], ww)
    streak = np.take_along_axis(streak, cols, axis=1)
    warp = 6.0 * _aniso_noise(rng, wshape, 15.0, 60.0)
    period = rng.uniform(4.0, 10.0)
    rings = np.sin((yy + warp + 17.0 * board[:, None]) * (2 * np.pi / period))
    grain_amp = rng.uniform(0.02, 0.07)
    lum = lum * (1.0 + grain_amp * (0.7 * streak + 0.5 * rings))
    tone = rng.normal(0.0, rng.uniform(0.03, 0.08), len(bounds) + 1).astype(np.float32)
    lum = lum * (1.0 + tone[board])[:, None]
    # boards' edges lose a little paste: slightly darker rims near the seams
    lum = lum * (1.0 - rng.uniform(0.0, 0.06) * np.exp(-d_seam / 6.0))

    # seams: thin dark gaps or light grout fins (1-4 px), sometimes a fin with a shadow
    sw = rng.uniform(1.0, 4.0)
    edge = 0.25 * _smooth_noise(rng, wshape, 4.0)
    seam = _line_alpha(d_seam + edge, sw / 2.0)
    kind = rng.choice(["dark", "light", "fin"], p=[0.6, 0.15, 0.25])
    if kind == "dark":
        lum = lum * (1.0 - rng.uniform(0.3, 0.6) * seam)
    elif kind == "light":
        lum = lum * (1.0 + rng.uniform(0.18, 0.35) * seam)
    else:
        lum = lum * (1.0 + rng.uniform(0.12, 0.3) * seam)
        below = np.roll(seam, int(rng.choice([-2, 2])), axis=0) * (1.0 - seam)
        lum = lum * (1.0 - rng.uniform(0.15, 0.35) * below)

    # board end (butt) joints: short perpendicular seams inside single boards
    for b in range(len(bounds)):
        if rng.random() > 0.35:
            continue
        y0 = int(max(0, bounds[b - 1] if b else 0))
        y1 = int(min(hw, bounds[b]))
        if y1 - y0 < 3:
            continue
        xe = rng.uniform(0, ww)
        a = _line_alpha(np.abs(xx - xe), sw / 2.0)
        lum[y0:y1] = lum[y0:y1] * (1.0 - 0.35 * a)

    # tie holes in a grid
    if rng.random() < 0.8:
        sx = rng.uniform(60.0, 200.0)
        sy = max(40.0, float(pitch) * int(rng.integers(1, 3)))
        r = rng.uniform(3.0, 8.0)
        dx = _periodic_dist(xx, sx, rng.uniform(0, sx))
        dy = _periodic_dist(yy, sy, rng.uniform(0, sy))
        rd = np.sqrt(dx * dx + dy * dy)
        hole = np.clip(r + 0.5 - rd, 0.0, 1.0)
        ring = np.clip(r * 1.8 + 0.5 - rd, 0.0, 1.0) * (1.0 - hole)
        if rng.random() < 0.7:  # open, shadowed hole
            lum = lum * (1.0 - rng.uniform(0.4, 0.7) * hole) * (1.0 + 0.05 * ring)
        else:  # plugged with a grey mortar cone
            lum = lum * (1.0 - 0.3 * np.clip(r + 0.5 - np.abs(rd - r), 0, 1) * (rd < r + 1))
            lum = lum * (1.0 + rng.uniform(-0.1, 0.15) * hole)
    # bug holes (air voids)
    n_bug = rng.poisson(rng.uniform(0.0002, 0.0012) * hw * ww)
    pits = np.zeros(wshape, np.float32)
    pits[rng.integers(0, hw, n_bug), rng.integers(0, ww, n_bug)] = 1.0
    pits = np.clip(ndimage.gaussian_filter(pits, rng.uniform(0.8, 1.6)) * 8.0, 0.0, 1.0)
    lum = lum * (1.0 - 0.5 * pits)
    # run-off stains streaking along world y
    if rng.random() < 0.4:
        st = _aniso_noise(rng, wshape, rng.uniform(40.0, 120.0), rng.uniform(3.0, 10.0))
        lum = lum * (1.0 - rng.uniform(0.05, 0.15) * np.clip(st - 0.3, 0.0, 1.5))
    return lum[..., None] * tint


def _cover(
    rng: np.random.Generator, img: Array, wshape: tuple[int, int], centre: tuple[float, float]
) -> None:
    """A round manhole or square utility cover with gap, frame and collar, in place."""
    yy, xx = _grid(wshape)
    cx, cy = centre
    size = min(wshape)
    dx, dy = xx - cx, yy - cy
    if rng.random() < 0.6:
        rad = rng.uniform(0.12, 0.3) * size
        d = np.sqrt(dx * dx + dy * dy)
        pattern_r = d
    else:
        rad = rng.uniform(0.1, 0.22) * size
        d = np.maximum(np.abs(dx), np.abs(dy))
        pattern_r = d
    collar_w = rad * rng.uniform(0.15, 0.45)
    frame_w = rng.uniform(3.0, 9.0)
    gap_w = rng.uniform(1.5, 4.0)
    collar = np.clip(rad + collar_w + 0.5 - d, 0.0, 1.0)
    if rng.random() < 0.7:
        img *= (1.0 + rng.uniform(-0.25, 0.12) * collar)[..., None]
    metal = np.array([0.34, 0.33, 0.32], np.float32) * rng.uniform(0.7, 1.3)
    frame = np.clip(rad + 0.5 - d, 0.0, 1.0)
    _blend(img, frame, metal * 1.15)
    cover = np.clip(rad - frame_w - gap_w + 0.5 - d, 0.0, 1.0)
    if rng.random() < 0.5:  # raised concentric rings / bars
        ptn = np.sin(pattern_r * (2 * np.pi / rng.uniform(6.0, 14.0)))
    else:  # checker of raised studs
        p = rng.uniform(6.0, 14.0)
        ptn = np.sin(xx * (2 * np.pi / p)) * np.sin(yy * (2 * np.pi / p))
    rust = _fractal_noise(rng, wshape, (40.0, 10.0), 0.6)
    col = metal * (1.0 + rng.uniform(0.04, 0.1) * ptn + 0.08 * rust)[..., None]
    rusty = rng.uniform(0.0, 0.06) * np.clip(rust, 0.0, 1.5)[..., None]
    col = col * (1.0 + rusty * np.array([1.0, 0.3, -0.5], np.float32))
    _blend(img, cover, col.astype(np.float32))
    gap = np.clip(gap_w / 2.0 + 0.5 - np.abs(d - (rad - frame_w - gap_w / 2.0)), 0.0, 1.0)
    img *= (1.0 - rng.uniform(0.5, 0.8) * gap)[..., None]


def _joints(rng: np.random.Generator, wshape: tuple[int, int]) -> Array:
    """Concrete (or asphalt) slabs with straight saw-cut / sealed joints and a utility cover."""
    hw, ww = wshape
    yy, xx = _grid(wshape)
    kind = "asphalt" if rng.random() < 0.25 else "concrete"
    lum, tint = _pavement(rng, wshape, kind)
    size = min(wshape)
    if kind == "concrete" and rng.random() < 0.4:  # broom / tining finish
        tine = _aniso_noise(rng, wshape, rng.uniform(20.0, 80.0), rng.uniform(1.0, 2.0))
        lum = lum * (1.0 + rng.uniform(0.02, 0.05) * tine)
    sp_a = rng.uniform(0.4, 1.3) * size
    sp_b = rng.uniform(0.4, 1.3) * size
    ph_a, ph_b = rng.uniform(0, sp_a), rng.uniform(0, sp_b)
    slab = np.floor((yy - ph_a) / sp_a) * 31 + np.floor((xx - ph_b) / sp_b)
    tone = rng.normal(0.0, 0.05, 64).astype(np.float32)
    lum = lum * (1.0 + tone[np.mod(slab.astype(np.int64), 64)])
    img = lum[..., None] * tint
    edge = 0.45 * _smooth_noise(rng, wshape, 2.5)
    sets = [_periodic_dist(yy, sp_a, ph_a) + 0 * xx]
    if rng.random() < 0.75:
        sets.append(_periodic_dist(xx, sp_b, ph_b) + 0 * yy)
    for dist in sets:
        style = rng.choice(["saw", "sealed", "open"], p=[0.45, 0.4, 0.15])
        if style == "saw":
            jw = rng.uniform(3.0, 7.0)
            a = _line_alpha(dist + edge * 0.5, jw / 2.0)
            arris = _line_alpha(np.abs(dist - jw / 2.0 - 1.0), 0.8) * (1.0 - a)
            img *= (1.0 - rng.uniform(0.4, 0.65) * a + rng.uniform(0.0, 0.1) * arris)[..., None]
        elif style == "sealed":
            jw = rng.uniform(5.0, 15.0)
            if rng.random() < 0.3:  # overbanded sealant: a thin smear either side
                over = _line_alpha(dist + 1.5 * np.abs(edge), jw * rng.uniform(0.6, 1.0))
                _blend(img, over * rng.uniform(0.2, 0.45), np.full(3, 0.15, np.float32))
            a = _line_alpha(dist + 0.3 * edge, jw / 2.0)
            seal = np.float32(rng.uniform(0.07, 0.22)) * (1.0 + 0.1 * edge)[..., None]
            _blend(img, a, seal * np.array([1.0, 1.0, 1.02], np.float32))
        else:
            jw = rng.uniform(6.0, 15.0)
            a = _line_alpha(dist + 0.8 * edge, jw / 2.0)
            dirt = (0.22 + 0.04 * _uniform_noise(rng, wshape))[..., None] * np.array(
                [1.0, 0.95, 0.85], np.float32
            )
            _blend(img, a, dirt)
    if rng.random() < 0.6:
        _cover(rng, img, wshape, (rng.uniform(0.3, 0.7) * ww, rng.uniform(0.3, 0.7) * hw))
    return img


def _stud(
    rng: np.random.Generator, img: Array, wshape: tuple[int, int], x: float, y: float
) -> None:
    """A raised pavement marker at world (x, y), with its shadow, in place."""
    sl, sw = rng.uniform(10.0, 20.0), rng.uniform(7.0, 13.0)
    if rng.random() < 0.5:
        sl, sw = sw, sl
    pad = int(max(sl, sw)) + 10
    x0, y0 = int(x) - pad, int(y) - pad
    x1, y1 = int(x) + pad, int(y) + pad
    if x1 <= 0 or y1 <= 0 or x0 >= wshape[1] or y0 >= wshape[0]:
        return
    big = Image.new("L", ((x1 - x0) * 2, (y1 - y0) * 2), 0)
    sh = Image.new("L", big.size, 0)
    cx, cy = (x - x0) * 2, (y - y0) * 2
    box = (cx - sl, cy - sw, cx + sl, cy + sw)
    off = rng.uniform(2.0, 6.0, 2) * 2
    ImageDraw.Draw(sh).rounded_rectangle(
        (box[0] + off[0], box[1] + off[1], box[2] + off[0], box[3] + off[1]), radius=4, fill=255
    )
    ImageDraw.Draw(big).rounded_rectangle(box, radius=4, fill=255)
    half = ((x1 - x0), (y1 - y0))
    body = np.asarray(big.resize(half, Image.BILINEAR), np.float32) / 255.0
    shadow = np.asarray(sh.resize(half, Image.BILINEAR), np.float32) / 255.0
    shadow = ndimage.gaussian_filter(shadow, rng.uniform(0.8, 2.0))
    # crop to the canvas
    ya, yb = max(0, y0), min(wshape[0], y1)
    xa, xb = max(0, x0), min(wshape[1], x1)
    sub = (slice(ya - y0, yb - y0), slice(xa - x0, xb - x0))
    patch = img[ya:yb, xa:xb]
    patch *= (1.0 - rng.uniform(0.4, 0.65) * shadow[sub])[..., None]
    col = np.array([0.86, 0.86, 0.83], np.float32) * rng.uniform(0.8, 1.05)
    ys = np.arange(yb - ya, dtype=np.float32)[:, None] + (ya - y0)
    xs = np.arange(xb - xa, dtype=np.float32)[None, :] + (xa - x0)
    refl = np.array(
        [[0.85, 0.12, 0.1], [0.95, 0.65, 0.1], [0.95, 0.95, 0.92], [0.2, 0.4, 0.85]], np.float32
    )[int(rng.integers(4))]
    # reflector strip on one side of the body
    along = (xs - cx / 2) / max(sl / 2, 1.0) if sl >= sw else (ys - cy / 2) / max(sw / 2, 1.0)
    strip = (np.abs(along) > 0.55).astype(np.float32)
    shade = 1.0 - 0.15 * np.clip((ys - cy / 2) / max(sw / 2, 1.0), -1, 1)
    colour = col * shade[..., None] * (1.0 - strip[..., None]) + refl * strip[..., None]
    _blend(patch, body[sub], colour.astype(np.float32))


def _patches(rng: np.random.Generator, img: Array, lum: Array, tint: Array, wshape) -> None:
    """Re-laid rectangles of fresher or older asphalt, often with a sealed border, into ``img``."""
    hw, ww = wshape
    for _ in range(int(rng.poisson(0.6))):
        pw, ph = rng.uniform(0.2, 0.8) * ww, rng.uniform(0.15, 0.6) * hw
        px, py = rng.uniform(-0.1, 0.9) * ww, rng.uniform(-0.1, 0.9) * hw
        ang = rng.normal(0.0, 0.04)
        c, s = math.cos(ang), math.sin(ang)
        corners = [(0, 0), (pw, 0), (pw, ph), (0, ph)]
        poly = [(px + c * a - s * b, py + s * a + c * b) for a, b in corners]
        img_m = Image.new("L", (ww, hw), 0)
        ImageDraw.Draw(img_m).polygon(poly, fill=255)
        inside = np.asarray(img_m, np.float32) / 255.0
        fresh = (lum[::-1, ::-1] * rng.uniform(0.7, 1.15))[..., None] * tint
        _blend(img, inside, fresh)
        if rng.random() < 0.6:
            border = Image.new("L", (ww, hw), 0)
            bw = int(rng.integers(2, 7))
            ImageDraw.Draw(border).line(poly + [poly[0]], fill=255, width=bw, joint="curve")
            b = np.asarray(border, np.float32) / 255.0
            b = ndimage.gaussian_filter(b, 0.6) * np.clip(
                1.0 + 0.4 * _smooth_noise(rng, wshape, 3.0), 0, 1
            )
            _blend(img, b * rng.uniform(0.6, 0.9), np.full(3, 0.1, np.float32))


def _road_markings(rng: np.random.Generator, wshape: tuple[int, int]) -> Array:
    """Asphalt with lane paint, road studs, tyre marks, patches and sealed joints (world x =
    direction of travel)."""
    hw, ww = wshape
    yy, xx = _grid(wshape)
    size = min(wshape)
    lum, tint = _pavement(rng, wshape, "asphalt" if rng.random() < 0.85 else "concrete")
    img = lum[..., None] * tint
    mean_lum = float(lum[::4, ::4].mean())

    _patches(rng, img, lum, tint, wshape)

    # tyre marks: dark smooth bands along the direction of travel, often in pairs
    for _ in range(int(rng.poisson(1.0))):
        y0 = rng.uniform(0.1, 0.9) * hw
        curve = rng.normal(0.0, 0.15) * (xx - ww / 2) ** 2 / ww + rng.normal(0, 0.08) * xx
        half = rng.uniform(4.0, 20.0)
        fade = np.clip(0.6 + 0.6 * _aniso_noise(rng, (1, ww), 1.0, ww / 4.0), 0.0, 1.0)
        dark = rng.uniform(0.06, 0.22)
        offsets = [0.0]
        if rng.random() < 0.5:
            offsets.append(rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.6) * hw)
        for off in offsets:
            d = np.abs(yy - y0 - off - curve)
            band = np.exp(-((d / half) ** 4))
            if rng.random() < 0.3:  # skid: streaky tread lines
                band = band * (0.6 + 0.4 * np.sin(d * (2 * np.pi / rng.uniform(3.0, 6.0))))
            img *= (1.0 - dark * band * fade)[..., None]

    # a sealed longitudinal joint
    if rng.random() < 0.3:
        y0 = rng.uniform(0.1, 0.9) * hw
        d = np.abs(yy - y0 - 2.0 * _aniso_noise(rng, (1, ww), 1.0, 50.0))
        a = _line_alpha(d + 0.6 * _smooth_noise(rng, wshape, 2.0), rng.uniform(2.0, 7.0))
        _blend(img, a * rng.uniform(0.6, 0.95), np.full(3, 0.1, np.float32))

    # lane paint: solid / dashed / double, white or yellow, worn, sharp edges
    n_lines = int(rng.choice([1, 1, 2, 3]))
    ys = np.sort(rng.uniform(0.1, 0.9, n_lines)) * hw
    wear = _smooth_noise(rng, wshape, rng.uniform(1.5, 3.0)) + 0.7 * _fractal_noise(
        rng, wshape, (40.0, 12.0), 0.6
    )
    rag = 0.5 * _smooth_noise(rng, wshape, 1.5)
    studs: list[tuple[float, float]] = []
    for y0 in ys:
        lw = rng.uniform(7.0, 30.0)
        yellow = rng.random() < 0.35
        colour = (
            np.array([0.9, 0.72, 0.2], np.float32)
            if yellow
            else np.array([0.92, 0.92, 0.9], np.float32)
        ) * rng.uniform(0.85, 1.05)
        centres = [y0]
        if rng.random() < 0.2:
            centres = [y0 - lw * 0.5 - 4.0, y0 + lw * 0.5 + 4.0]  # double line
            lw *= 0.7
        ang = rng.normal(0.0, 0.01)
        dashed = rng.random() < 0.5
        period = rng.uniform(0.8, 2.2) * size
        duty = rng.uniform(0.35, 0.65)
        phase = rng.uniform(0, period)
        worn = rng.uniform(-0.2, 0.8)
        for yc in centres:
            d = np.abs(yy - yc - ang * xx) + rag
            a = _line_alpha(d, lw / 2.0)
            if dashed:
                on = np.mod(xx + phase, period)
                a = a * np.clip(period * duty + 0.5 - on, 0.0, 1.0) * np.clip(on + 0.5, 0, 1)
            a = a * np.clip(1.2 + 0.6 * wear - worn, 0.0, 1.0)
            paint = colour * (0.88 + 0.12 * lum / mean_lum)[..., None]
            _blend(img, a, paint)
        if rng.random() < 0.4:  # studs along the line, or in the gaps of a dashed line
            spacing = period if dashed else rng.uniform(0.5, 1.5) * size
            start = (period * (duty + 1.0) / 2.0 - phase) if dashed else rng.uniform(0, spacing)
            for x in np.arange(start % spacing - spacing, ww + spacing, spacing):
                studs.append((float(x), float(y0 + ang * x)))
    if not studs and rng.random() < 0.3:
        y0 = rng.uniform(0.2, 0.8) * hw
        spacing = rng.uniform(0.4, 1.2) * size
        studs = [(float(x), float(y0)) for x in np.arange(rng.uniform(0, spacing), ww, spacing)]
    for x, y in studs:
        _stud(rng, img, wshape, x, y)
    return img


# --------------------------------------------------------------------------------------------
# shadows (image space)
# --------------------------------------------------------------------------------------------


def _tree(
    rng: np.random.Generator,
    draw: ImageDraw.ImageDraw,
    p: Array,
    theta: float,
    length: float,
    width: float,
    level: int,
    ss: float,
) -> None:
    """Recursive, wiggly branch shadow drawn at supersampling factor ``ss``."""
    n = max(3, int(length / 6.0))
    heading = theta + np.cumsum(rng.normal(0.0, 0.08, n))
    step = length / n
    pts = [p]
    for hd in heading:
        pts.append(pts[-1] + step * np.array([math.cos(hd), math.sin(hd)]))
    ws = np.linspace(width, width * 0.6, n)
    for k in range(n):
        a, b = pts[k] * ss, pts[k + 1] * ss
        wk = max(1, int(round(ws[k] * ss)))
        draw.line([tuple(a), tuple(b)], fill=255, width=wk)
        r = wk / 2.0
        draw.ellipse((b[0] - r, b[1] - r, b[0] + r, b[1] + r), fill=255)
    if level <= 0 or width < 1.0:
        if rng.random() < 0.2:  # a few leaf blobs at the tip
            for _ in range(int(rng.integers(1, 4))):
                c = (pts[-1] + rng.normal(0.0, 6.0, 2)) * ss
                r = rng.uniform(1.5, 4.0) * ss
                draw.ellipse((c[0] - r, c[1] - r, c[0] + r * 1.5, c[1] + r), fill=255)
        return
    for _ in range(int(rng.integers(2, 4))):
        k = int(rng.integers(n // 3, n + 1))
        t = heading[min(k, n - 1)] + rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.9)
        _tree(
            rng,
            draw,
            pts[k],
            t,
            length * rng.uniform(0.45, 0.75),
            width * rng.uniform(0.5, 0.7),
            level - 1,
            ss,
        )


def _thin_shadows(rng: np.random.Generator, shape: tuple[int, int]) -> Array:
    """Coverage in [0, 1] of thin soft shadows of poles, wires and branches."""
    h, w = shape
    size = max(h, w)
    ss = 2  # supersampling for smooth edges
    big = Image.new("L", (w * ss, h * ss), 0)
    draw = ImageDraw.Draw(big)
    kinds = rng.choice(["pole", "wires", "branches"], size=int(rng.integers(1, 3)), replace=False)
    cov = np.zeros(shape, np.float32)
    for kind in kinds:
        draw.rectangle((0, 0, w * ss, h * ss), fill=0)
        ang = rng.uniform(0, np.pi)
        d = np.array([math.cos(ang), math.sin(ang)])
        nrm = np.array([-d[1], d[0]])
        c = np.array([rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h])
        if kind == "pole":
            half = rng.uniform(3.0, 14.0)
            taper = rng.uniform(0.6, 1.0)
            far = 1.5 * size
            t0 = rng.uniform(-far, -0.2 * size) if rng.random() < 0.5 else -far
            p = [c + d * t0 - nrm * half, c + d * far - nrm * half * taper]
            p += [c + d * far + nrm * half * taper, c + d * t0 + nrm * half]
            draw.polygon([tuple(q * ss) for q in p], fill=255)
            if rng.random() < 0.4:  # a sign or lamp head at the pole's shadow end
                e = c + d * t0
                r = rng.uniform(8.0, 20.0)
                draw.ellipse(tuple(np.r_[e - r, e + r] * ss), fill=255)
            sigma = rng.uniform(0.8, 2.5)
        elif kind == "wires":
            n_w = int(rng.integers(1, 5))
            gap = rng.uniform(6.0, 30.0)
            for k in range(n_w):
                t = np.linspace(-1.5 * size, 1.5 * size, 60)
                sag = rng.uniform(-0.05, 0.05) * (t / size) ** 2 * size
                off = (k - n_w / 2.0) * gap * rng.uniform(0.8, 1.2)
                pts = c[None, :] + t[:, None] * d[None, :] + (off + sag)[:, None] * nrm[None, :]
                wk = max(1, int(round(rng.uniform(1.0, 3.0) * ss)))
                draw.line([tuple(q * ss) for q in pts], fill=255, width=wk, joint="curve")
            sigma = rng.uniform(0.6, 1.5)
        else:
            side = int(rng.integers(4))
            start = {
                0: np.array([rng.uniform(0, w), -5.0]),
                1: np.array([w + 5.0, rng.uniform(0, h)]),
                2: np.array([rng.uniform(0, w), h + 5.0]),
                3: np.array([-5.0, rng.uniform(0, h)]),
            }[side]
            theta = math.atan2(c[1] - start[1], c[0] - start[0])
            _tree(
                rng,
                draw,
                start,
                theta,
                rng.uniform(0.3, 0.6) * size,
                rng.uniform(4.0, 12.0),
                int(rng.integers(2, 4)),
                ss,
            )
            sigma = rng.uniform(0.8, 3.0)
        layer = np.asarray(big.resize((w, h), Image.BILINEAR), np.float32) / 255.0
        layer = ndimage.gaussian_filter(layer, sigma)
        cov = np.maximum(cov, layer * rng.uniform(0.7, 1.0))
    return cov


# --------------------------------------------------------------------------------------------
# cracks, lighting, camera
# --------------------------------------------------------------------------------------------


def _stair_depth(
    rng: np.random.Generator, shape: tuple[int, int], m: Array, cracks: list[_WorldCrack]
) -> Array:
    """Rasterise world-space stair-step cracks into an image-space depth image in [0, 1]."""
    canvas = _Canvas(shape)
    scale = math.sqrt(abs(np.linalg.det(m[:2, :2])))
    for pts, width in cracks:
        # resample densely and jitter a little so that the crack is not ruler-straight
        seg = [
            np.linspace(pts[i], pts[i + 1], max(2, int(np.hypot(*(pts[i + 1] - pts[i])) / 3)))
            for i in range(len(pts) - 1)
        ]
        dense = np.concatenate([s[:-1] for s in seg] + [pts[-1:]], axis=0)
        dense = dense + rng.normal(0.0, 0.35, dense.shape)
        img_pts = _to_image(m, dense)
        wmax = max(1.0, width * 1.5 / scale)
        widths = _width_profile(rng, len(img_pts), width / scale, wmax, taper_start=True)
        canvas.polyline(img_pts, widths, rng.uniform(0.5, 0.85))
    return canvas.array().astype(np.float32) / 255.0


def _lighting(rng: np.random.Generator, img: Array) -> Array:
    """Exposure, white balance, illumination gradient and vignetting."""
    h, w = img.shape[:2]
    yy, xx = _grid((h, w))
    warm, green = rng.normal(0.0, 0.03), rng.normal(0.0, 0.008)
    gain = rng.uniform(0.8, 1.2) * np.array([1.0 + warm, 1.0 + green, 1.0 - warm], np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    ramp = ((xx / w - 0.5) * math.cos(ang) + (yy / h - 0.5) * math.sin(ang)) * rng.uniform(0, 0.35)
    low = rng.uniform(0.0, 0.08) * _smooth_noise(rng, (h, w), max(h, w) / 2.0)
    r2 = ((xx / w - 0.5) ** 2 + (yy / h - 0.5) ** 2) * 2.0
    vig = 1.0 - rng.uniform(0.0, 0.25) * r2
    img *= ((1.0 + ramp + low) * vig)[..., None] * gain
    return img


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def generate_hard(
    seed: int, size: int | tuple[int, int] = 256, scene: str = "any", crack_p: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Generate one hard-negative scene, with real cracks with probability ``crack_p``.

    Args:
        seed: Non-negative integer; the same ``(seed, size, scene, crack_p)`` always gives the
            same arrays.
        size: Side of a square image, or ``(H, W)``; each side at least 32 pixels.
        scene: One of :data:`SCENES`, or ``"any"`` to pick one from the seed.
        crack_p: Probability in [0, 1] that the scene also gets real cracks.

    Returns:
        ``(image, mask)``: uint8 ``(H, W, 3)`` RGB image and bool ``(H, W)`` mask of exactly the
        crack pixels (empty when no crack was drawn). Look-alike structures are never masked.

    Raises:
        ValueError: On a negative seed, a size below 32, an unknown scene or ``crack_p``
            outside [0, 1].
    """
    seed = _check_seed(seed)
    shape = _check_size(size)
    _check_scene(scene)
    if not 0.0 <= float(crack_p) <= 1.0:
        raise ValueError(f"crack_p must be in [0, 1], got {crack_p!r}")
    if scene == "any":
        scene = SCENES[int(np.random.default_rng([seed, _TAG]).integers(len(SCENES)))]
    k = SCENES.index(scene)
    rng = np.random.default_rng([seed, _TAG, k, 0])  # the scene
    crng = np.random.default_rng([seed, _TAG, k, 1])  # the cracks
    frng = np.random.default_rng([seed, _TAG, k, 2])  # light and noise
    h, w = shape

    # camera
    scale = float(np.clip(_scale_choice(rng, 1.0, 0.15), 0.75, 1.3))
    if scene in ("masonry", "formwork"):
        base = 0.0 if scene == "masonry" or rng.random() < 0.6 else np.pi / 2
        angle = base + (rng.normal(0.0, 0.06) if rng.random() < 0.8 else rng.uniform(-0.8, 0.8))
    elif scene == "road_markings":
        angle = rng.choice([0.0, np.pi / 2, np.pi / 2]) + rng.normal(0.0, 0.08)
    else:
        angle = rng.uniform(0, 2 * np.pi)
    m, wshape = _view(rng, shape, float(angle), scale, persp=rng.uniform(0.0, 0.35))

    stairs: _StairFn | None = None
    if scene == "masonry":
        world, stairs = _masonry(rng, wshape)
    elif scene == "formwork":
        world = _formwork(rng, wshape)
    elif scene == "joints":
        world = _joints(rng, wshape)
    elif scene == "road_markings":
        world = _road_markings(rng, wshape)
    else:
        lum, tint = _pavement(rng, wshape, "asphalt" if rng.random() < 0.6 else "concrete")
        world = lum[..., None] * tint
    img = _warp(world.astype(np.float32), m, shape)
    blur = rng.uniform(0.2, 0.8)
    img = ndimage.gaussian_filter(img, (blur, blur, 0.0))

    # real cracks: the mask is exactly the darkened pixels
    mask = np.zeros(shape, bool)
    if crng.random() < crack_p:
        depth = np.zeros(shape, np.float32)
        mode = crng.random()
        if stairs is not None and mode < 0.75:
            n_st = int(crng.integers(1, 3))
            starts = np.stack(
                [crng.uniform(0.1, 0.9, n_st) * w, crng.uniform(0.0, 0.5, n_st) * h], 1
            )
            depth = _stair_depth(crng, shape, m, stairs(crng, _to_world(m, starts)))
        if stairs is None or mode > 0.45 or not depth.any():
            depth = np.maximum(depth, _crack_layer(crng, shape, 0.2))
        mask, dark = _crack_darkening(crng, depth)
        img *= (1.0 - dark)[..., None]

    if scene == "shadows" or frng.random() < 0.1:
        cov = _thin_shadows(frng, shape)
        strength = frng.uniform(0.3, 0.6) if scene == "shadows" else frng.uniform(0.2, 0.4)
        img *= 1.0 - cov[..., None] * (1.0 - (1.0 - strength) * _SKY)
    img = _lighting(frng, img)
    img = _sensor_noise(frng, img, frng.uniform(0.004, 0.014), frng.uniform(0.002, 0.005))
    image = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return image, mask


class HardNegativeDataset(torch.utils.data.Dataset):
    """Hard-negative scenes, generated lazily (and cached) on first access.

    Sample ``i`` is ``generate_hard(sample_seed(seed, i), size, scenes[i], crack_p)``.

    Attributes:
        names: Sample names, ``hardneg_00000`` and so on.
        scenes: Scene of each sample.
        seeds: Seed of each sample.
    """

    def __init__(
        self,
        n: int,
        size: int | tuple[int, int] = 256,
        scene: str = "any",
        seed: int = 0,
        transform: Callable[[np.ndarray, np.ndarray], Any] | None = None,
        crack_p: float = 0.5,
        cache: bool = True,
    ) -> None:
        """Set the samples up (nothing is generated yet).

        Args:
            n: Number of samples (at least 1).
            size: Image side, or ``(H, W)``.
            scene: A name from :data:`SCENES`, or ``"any"`` to cycle through them.
            seed: Seed of the whole set.
            transform: Optional ``transform(image, mask)`` applied in ``__getitem__`` to the raw
                uint8 arrays; its result is returned as is.
            crack_p: Probability that a sample also has real cracks.
            cache: Keep generated samples in memory.

        Raises:
            ValueError: On ``n < 1``, a size below 32, a negative seed, an unknown scene or a
                ``crack_p`` outside [0, 1].
        """
        n = _check_n(n)
        self.shape = _check_size(size)
        seed = _check_seed(seed)
        if not 0.0 <= float(crack_p) <= 1.0:
            raise ValueError(f"crack_p must be in [0, 1], got {crack_p!r}")
        self.crack_p = float(crack_p)
        self.scenes: list[str] = scenes_for(scene, n)
        self.names: list[str] = [f"hardneg_{i:05d}" for i in range(n)]
        self.seeds: list[int] = [sample_seed(seed, i) for i in range(n)]
        self.transform = transform
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None

    def __len__(self) -> int:
        """Number of samples."""
        return len(self.names)

    def sample(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw arrays of sample ``i``: uint8 ``(H, W, 3)`` image and uint8 ``(H, W)`` 0/1 mask."""
        i = range(len(self))[i]
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        image, mask = generate_hard(self.seeds[i], self.shape, self.scenes[i], self.crack_p)
        out = (image, mask.astype(np.uint8))
        if self._cache is not None:
            self._cache[i] = out
        return out

    def __getitem__(self, i: int) -> Any:
        """``transform(image, mask)`` if a transform is set, else ``(image, mask)`` tensors."""
        image, mask = self.sample(i)
        if self.transform is not None:
            return self.transform(image.copy(), mask.copy())
        return to_tensor(image), mask_to_tensor(mask)
