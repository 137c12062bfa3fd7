"""Synthetic scenes with known joints / lines and known cracks, for ``line_classifier.py``.

Each scene gives ``(photo, line_mask, crack_mask)``: the photo (uint8 RGB: pavement, masonry or
concrete grain, the joints and cracks darkened, lane paint bright) and the two masks as a
segmentation model would return them: each structure is rasterised with sub-pixel widths
(4x supersampled), blurred a little, thresholded against a smooth noise field (ragged, uneven
edges of about +-0.5 px) and, in half the scenes, broken by random gaps. The same degradation
is applied to joints and to cracks.

Line scenes: ``slab_joints`` (a grid of concrete slab joints, 2-6 px), ``saw_cuts`` (1-3 parallel
thin cuts), ``mortar_grid`` (running-bond brick joints, partly detected), ``paver_grid`` (square
or rectangular pavers / setts, partly detected), ``formwork`` (parallel plank seams and end
joints), ``lane_edges`` (the outer edges of worn solid or dashed lane paint, which a model fires
on). Crack scenes: ``wandering`` (the branching random-walk cracks of the training generator,
:mod:`crackseg.data.synth`), ``alligator`` (its Voronoi networks), ``straight_transverse``
(straight across the image but wobbly at pixel scale, width varying), ``stair_step`` (a crack
following a brick bond in steps, without the joints) and ``cracked_slabs`` (slab joints AND
straight or wandering cracks in one scene, cracks often touching a joint).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from crackseg.data.synth import (
    _ar_series,
    _Canvas,
    _crack_layer,
    _network,
    _sensor_noise,
    _smooth_noise,
    _surface,
)

LINE_SCENES = ("slab_joints", "saw_cuts", "mortar_grid", "paver_grid", "formwork", "lane_edges")
CRACK_SCENES = ("wandering", "alligator", "straight_transverse", "stair_step", "cracked_slabs")
SCENES = LINE_SCENES + CRACK_SCENES

_SS = 4  # supersampling of the line drawings


def _coverage(shape: tuple[int, int], lines: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """Coverage in [0, 1] of polylines ``(points (N, 2) as x, y; width px)``, 4x supersampled."""
    h, w = shape
    img = Image.new("L", (w * _SS, h * _SS), 0)
    draw = ImageDraw.Draw(img)
    for pts, width in lines:
        xy = [(float(x) * _SS + _SS / 2, float(y) * _SS + _SS / 2) for x, y in pts]
        draw.line(xy, fill=255, width=max(1, round(width * _SS)), joint="curve")
    a = np.asarray(img, np.float32).reshape(h, _SS, w, _SS).mean(axis=(1, 3))
    return a / 255.0


def _predicted(rng: np.random.Generator, cov: np.ndarray) -> np.ndarray:
    """What a segmentation model returns for a structure of coverage ``cov``: ragged edges, width
    jitter and (half the time) gaps."""
    shape = cov.shape
    c = cov.copy()
    if rng.random() < 0.5:
        gaps = _smooth_noise(rng, shape, rng.uniform(8.0, 16.0))
        c[gaps < -rng.uniform(1.4, 2.0)] = 0.0
    blurred = ndimage.gaussian_filter(c, 0.5)
    amp = rng.uniform(0.06, 0.2)
    return (blurred + amp * _smooth_noise(rng, shape, rng.uniform(1.5, 3.0))) > 0.5


def _bow(a: np.ndarray, b: np.ndarray, sagitta: float, n: int = 24) -> np.ndarray:
    """Points from ``a`` to ``b`` bowed by ``sagitta`` px in the middle (a slight lens bend)."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    d = b - a
    normal = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-9)
    return a + t * d + (4.0 * sagitta * t * (1 - t)) * normal


class _View:
    """World (u, v) -> image (x, y): rotation by ``angle`` about the image centre."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, int], angle: float | None):
        self.h, self.w = shape
        self.angle = rng.uniform(0, math.pi) if angle is None else angle
        self.c, self.s = math.cos(self.angle), math.sin(self.angle)
        self.extent = math.hypot(self.h, self.w) / 2 + 8

    def __call__(self, u: float, v: float) -> np.ndarray:
        return np.array(
            [self.w / 2 + self.c * u - self.s * v, self.h / 2 + self.s * u + self.c * v]
        )


def _segment(rng, view, u0, v0, u1, v1, width, bow=True):
    a, b = view(u0, v0), view(u1, v1)
    length = float(np.hypot(*(b - a)))
    sag = rng.normal(0.0, 0.002 * length) if bow else 0.0
    return _bow(a, b, sag, max(2, int(length / 8))), width


def _family(rng, view, spacing, width, along_u=True, jitter=0.0):
    e = view.extent
    phase = rng.uniform(0, spacing)
    out = []
    for k in np.arange(-e - phase, e, spacing):
        off = k + rng.normal(0, jitter)
        if along_u:
            out.append(_segment(rng, view, -e, off, e, off, width * rng.uniform(0.85, 1.15)))
        else:
            out.append(_segment(rng, view, off, -e, off, e, width * rng.uniform(0.85, 1.15)))
    return out


def _slab_joints(rng, shape, view=None):
    view = view or _View(rng, shape, None)
    width = rng.uniform(2.0, 6.0)
    lines = _family(rng, view, rng.uniform(120, 260), width, True)
    if rng.random() < 0.7:
        lines += _family(rng, view, rng.uniform(120, 260), width, False)
    return lines


def _saw_cuts(rng, shape):
    view = _View(rng, shape, None)
    e = view.extent
    width = rng.uniform(1.5, 3.0)
    lines = []
    off = rng.uniform(-0.3, 0.3) * min(shape)
    for _ in range(int(rng.integers(1, 4))):
        lines.append(_segment(rng, view, -e, off, e, off, width))
        off += rng.uniform(30, 150)
    return lines


def _bond(rng, shape, course, brick, width, running, keep):
    """Brick / paver joints as unit segments, each kept with probability ``keep``."""
    view = _View(rng, shape, rng.normal(0, 0.3) if rng.random() < 0.7 else None)
    e = view.extent
    lines = []
    v_phase, u_phase = rng.uniform(0, course), rng.uniform(0, brick)
    rows = np.arange(-e - v_phase, e, course)
    for i, v in enumerate(rows):
        shift = (brick / 2 if (running and i % 2) else 0.0) + u_phase
        heads = np.arange(-e - shift, e + brick, brick)
        for u0, u1 in zip(heads[:-1], heads[1:], strict=True):
            w = width * rng.uniform(0.85, 1.15)
            if rng.random() < keep:  # the head joint of this unit
                lines.append(_segment(rng, view, u0, v, u0, v + course, w, bow=False))
            for a, b in ((u0, (u0 + u1) / 2), ((u0 + u1) / 2, u1)):  # its bed joint, in halves
                if rng.random() < keep:
                    lines.append(_segment(rng, view, a, v, b, v, w, bow=False))
    return lines


def _mortar_grid(rng, shape):
    course = rng.uniform(18, 40)
    return _bond(rng, shape, course, course * rng.uniform(2.0, 3.2), rng.uniform(2.0, 5.0), True,
                 rng.uniform(0.5, 1.0))  # fmt: skip


def _paver_grid(rng, shape):
    cell = rng.uniform(25, 70)
    return _bond(rng, shape, cell, cell * rng.uniform(1.0, 2.0), rng.uniform(2.0, 4.0),
                 rng.random() < 0.5, rng.uniform(0.5, 1.0))  # fmt: skip


def _formwork(rng, shape):
    view = _View(rng, shape, rng.normal(math.pi / 2, 0.15))
    e = view.extent
    spacing = rng.uniform(60, 150)
    width = rng.uniform(1.5, 3.0)
    lines = []
    for v in np.arange(-e - rng.uniform(0, spacing), e, spacing):
        lines.append(_segment(rng, view, -e, v, e, v, width))
        for u in rng.uniform(-e, e, rng.poisson(0.8)):  # board end joints
            lines.append(_segment(rng, view, u, v, u, v + spacing, width * 0.8, bow=False))
    return lines


def _stair_step(rng, shape):
    """A crack stepping along a brick bond: alternate bed and head joint runs, jittered."""
    view = _View(rng, shape, rng.normal(0, 0.3) + math.pi * (rng.random() < 0.5))
    course = rng.uniform(18, 40)
    brick = course * rng.uniform(2.0, 3.2)
    half = min(shape) / 2
    u, v = rng.uniform(-0.9, -0.5) * half, rng.uniform(-0.9, -0.5) * half
    pts = [view(u, v)]
    while max(u, v) < half * rng.uniform(0.4, 0.9):
        u += brick * rng.choice([0.5, 1.0])
        pts.append(view(u, v))
        v += course
        pts.append(view(u, v))
    return _jitter_path(rng, np.array(pts), rng.uniform(0.4, 1.2), rng.uniform(1.5, 4.0))


def _jitter_path(rng, corners, fine, base):
    """A crack along the polyline ``corners``: densified, jittered, widths varying."""
    dense = [corners[0]]
    for a, b in zip(corners[:-1], corners[1:], strict=True):
        n = max(2, int(np.hypot(*(b - a)) / 3))
        t = np.linspace(0, 1, n + 1)[1:, None]
        dense.extend(a + t * (b - a))
    pts = np.array(dense)
    pts = pts + rng.normal(0, fine, pts.shape)
    widths = np.clip(base * np.exp(0.3 * _ar_series(rng, len(pts), 0.95, 0.3)), 1.0, 10.0)
    return pts, widths


def _straight_transverse(rng, shape, angle=None):
    """Straight across the image, but meandering at pixel scale and varying in width."""
    h, w = shape
    theta = rng.normal(0.0, 0.25) if angle is None else angle
    c = np.array([rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h])
    d = np.array([math.cos(theta), math.sin(theta)])
    normal = np.array([-d[1], d[0]])
    half = rng.uniform(0.35, 0.8) * math.hypot(h, w)
    step = rng.uniform(2.0, 4.0)
    t = np.arange(-half, half, step)
    slow = _ar_series(rng, len(t), 0.97, 1.0)
    slow *= rng.uniform(0.5, 3.0) / max(float(np.std(slow)), 1e-6)
    fine = rng.normal(0.0, rng.uniform(0.3, 1.0), len(t))
    pts = c + t[:, None] * d + (slow + fine)[:, None] * normal
    base = rng.uniform(1.5, 6.0)
    widths = np.clip(base * np.exp(0.3 * _ar_series(rng, len(t), 0.95, 0.3)), 1.0, 10.0)
    inside = (pts[:, 0] > -8) & (pts[:, 0] < w + 8) & (pts[:, 1] > -8) & (pts[:, 1] < h + 8)
    return pts[inside], widths[inside]


def _crack_canvas(rng, shape, scene):
    canvas = _Canvas(shape)
    wmax = float(np.clip(min(shape) / 24.0, 2.0, 8.0))
    if scene == "wandering":
        return (_crack_layer(rng, shape, 0.0) > 0).astype(np.float32)
    if scene == "alligator":
        _network(rng, canvas, shape, 0.8, wmax)
    elif scene == "stair_step":
        canvas.polyline(*_stair_step(rng, shape), 0.8)
    elif scene in ("straight_transverse", "cracked_slabs"):
        for _ in range(int(rng.integers(1, 3))):
            pts, widths = _straight_transverse(rng, shape)
            if len(pts) >= 2:
                canvas.polyline(pts, widths, 0.8)
        if scene == "cracked_slabs" and rng.random() < 0.5:
            return np.maximum(canvas.array() > 0, _crack_layer(rng, shape, 0.0) > 0).astype(
                np.float32
            )
    return (canvas.array() > 0).astype(np.float32)


def _lane_edges(rng, shape, img):
    """Worn lane paint on ``img`` (in place); the mask a model gives along the paint's edges."""
    view = _View(rng, shape, rng.normal(math.pi / 2, 0.3))
    e = view.extent
    width = rng.uniform(15, 40)
    v = rng.uniform(-0.3, 0.3) * min(shape)
    stripes = []
    for _ in range(int(rng.integers(1, 3))):
        if rng.random() < 0.5:
            stripes.append(_segment(rng, view, -e, v, e, v, width))
        else:
            dash, gap = rng.uniform(60, 150), rng.uniform(60, 150)
            for u in np.arange(-e - rng.uniform(0, dash + gap), e, dash + gap):
                stripes.append(_segment(rng, view, u, v, u + dash, v, width, bow=False))
        v += width + rng.uniform(10, 120)
    cov = _coverage(shape, stripes)
    wear = _smooth_noise(rng, shape, rng.uniform(1.5, 3.0))
    paint = ndimage.gaussian_filter(cov, 0.7) + rng.uniform(0.05, 0.2) * wear > 0.5
    paint = ndimage.binary_opening(paint, iterations=2)  # no specks of paint off the stripe
    alpha = paint * np.clip(0.85 + 0.1 * _smooth_noise(rng, shape, 4.0), 0, 1)
    img *= 1.0 - alpha[..., None]
    img += alpha[..., None] * np.array([0.9, 0.9, 0.86], np.float32)
    band = rng.uniform(1.5, 3.0)
    dist = ndimage.distance_transform_edt(~paint)
    return (dist > 0) & (dist <= band)


def render(scene: str, seed: int, size: int = 384) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(photo uint8 (H, W, 3), line_mask bool, crack_mask bool)`` of one scene."""
    if scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}; one of {', '.join(SCENES)}")
    rng = np.random.default_rng([seed, SCENES.index(scene)])
    shape = (size, size)
    lum, tint = _surface(rng, shape)
    img = lum[..., None] * tint
    lines_mask = np.zeros(shape, bool)
    cracks_mask = np.zeros(shape, bool)
    makers = {
        "slab_joints": _slab_joints,
        "saw_cuts": _saw_cuts,
        "mortar_grid": _mortar_grid,
        "paver_grid": _paver_grid,
        "formwork": _formwork,
        "cracked_slabs": _slab_joints,
    }
    if scene in makers:
        cov = _coverage(shape, makers[scene](rng, shape))
        img *= (1.0 - 0.55 * cov)[..., None]
        lines_mask = _predicted(rng, cov)
    elif scene == "lane_edges":
        lines_mask = _lane_edges(rng, shape, img)
        lines_mask = _predicted(rng, lines_mask.astype(np.float32))
    if scene in CRACK_SCENES:
        cov = _crack_canvas(rng, shape, scene)
        img *= (1.0 - 0.6 * cov)[..., None]
        cracks_mask = _predicted(rng, cov)
    img = _sensor_noise(rng, img, rng.uniform(0.004, 0.012), 0.003)
    photo = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return photo, lines_mask & ~cracks_mask, cracks_mask
