"""Cracks versus joints and lines: the line-structure classifier of crack measurement.

Joints, saw cuts, mortar and paver joints, formwork seams and the edges of lane paint are what a
crack segmenter most often fires on that is not a crack. They are straight (at every scale, down
to the pixel), of even width, long, and often parallel to one another or on a grid; cracks wander.
:func:`classify_lines` reads each crack instance of :func:`crackseg.inference.measure.
measure_cracks` from its pruned skeleton branches and local widths (and, when given, the photo)
and calls it ``"crack"`` or ``"joint_or_line"``; measurement keeps both in its tables with a
``kind`` column and leaves ``joint_or_line`` out of the totals and severity unless asked
(:func:`counts_in_totals`, the one place that rule lives).

Features (all in pixels of the mask; the thresholds are :class:`LineParams`):

* **pieces**: each skeleton branch, less the junction zones at its ends, is smoothed (Gaussian,
  sigma 1 px) and cut into straight pieces by Douglas-Peucker (tolerance ``max(1.5, 0.4 w)``,
  ``w`` the mean width). A piece is *straight* when it is at least ``max(10, 3 w)`` long, its
  points lie within ``rms_px`` (RMS) of their fitted line (``max(0.6, 0.12 w)``) and its
  pixel-scale **wobble** -- the RMS of the chain smoothed at sigma 1 about the chain smoothed at
  sigma 6, across the piece -- is at most ``max(0.35, 0.06 w)``. A joint's centreline wobbles
  by its edge noise only (about 0.2 px); a crack that looks straight overall still meanders
  around the aggregate (0.4 px and more).
* **straight share**: the length of the straight pieces along the main direction (within 6
  degrees) over the instance's length; with several pieces they must also be collinear.
* **width range**: the 90th minus the 10th percentile of the local widths (free ends left out,
  they taper); *even* when at most ``max(1.8 px, 0.35 w)``. A crack's width changes along it.
* **grid share**: skeleton points whose tangent is within 12 degrees of one of the two dominant
  directions (at least 60 degrees apart) are projected on that direction's normal; offsets
  windows ``2 * max(1, 0.25 w)`` px wide holding at least ``max(10, 3 w)`` points are straight
  lines. The grid share is the share of all points on such lines; the **off-line run** is the
  longest stretch of a branch off them (a crack attached to a joint grid is one long run).
* **alignment**: how many other instances classified ``joint_or_line`` on their own run
  parallel or at a right angle to this one (within 3 degrees).
* **paint edge** (with the photo): the grey level 2 and 4 px beyond each side of the line; the
  median difference across it, on pieces where the same side is the brighter one at >= 85 % of
  the points, as a fraction of full scale (lane paint beside asphalt: 0.2-0.5).

Decision, conservatively (a ``joint_or_line`` hides a crack from the totals, which is worse than
a joint counted):

1. *one straight line* (straight share >= 0.9, collinear; or one grid line holding >= 90 % of
   the points), of even width and long (``max(80, 12 w)`` px) -> ``joint_or_line``;
2. *a grid* (two directions, grid share >= 0.8, off-line run at most ``max(20, 5 w)`` px, and
   either >= 2 junctions or an enclosed cell with >= 3 lines, or a cross / T of long lines) ->
   ``joint_or_line`` (mortar, pavers, setts, slab joints, a manhole frame);
3. then, with the instances of 1 and 2 as context: a shorter straight line of even width that
   is aligned with one of them, or that runs along a paint edge (contrast >= 0.1, which also
   doubles the wobble and RMS allowed: worn paint has ragged edges), and a shape of straight
   pieces in two directions (an L, a T, a step) aligned with at least two of them ->
   ``joint_or_line``;
4. everything else -> ``crack``: wandering, branching and network cracks, straight transverse
   cracks (which wobble at pixel scale and vary in width), steps along brick joints with no
   grid around them.

A joint that a crack touches or crosses is one connected instance with it, and that instance is
a crack by the rules above. :func:`line_branches` finds the joints inside such an instance: its
skeleton branches are joined across junctions into chains where they continue one another in a
straight line, and a chain that passes rule 1 on its own (one straight line, even width, long) is
a joint; measurement then splits the instance's pixels between its joints and the rest
(:func:`crackseg.inference.measure.measure_cracks`), so the crack is measured without the joint
and the joint is drawn and tabled as ``joint_or_line``.

The features of each instance are returned with its kind (:class:`LineVerdict`), so that
``cracks.json`` can say why an instance was called a line. Validated by
``benchmarks/line_classifier.py`` (synthetic scenes of known joints and cracks, the real crack
masks of the test sets, and the shipped model's false alarms).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "CRACK",
    "KINDS",
    "LINE",
    "Branch",
    "Instance",
    "LineParams",
    "LineVerdict",
    "SPLIT_REASON",
    "classify_lines",
    "counts_in_totals",
    "line_branches",
    "smooth_chain",
]

CRACK = "crack"
LINE = "joint_or_line"
#: The kinds of a crack instance, in display order.
KINDS: tuple[str, ...] = (CRACK, LINE)


def counts_in_totals(kind: str | None, keep_lines: bool = False) -> bool:
    """Whether an instance of ``kind`` counts in totals and severity (``None``: a crack).

    ``joint_or_line`` instances count only with ``keep_lines`` (``--keep-lines``).
    """
    return keep_lines or kind != LINE


@dataclass(frozen=True)
class Branch:
    """One branch of a crack's pruned skeleton.

    Attributes:
        points: ``(N, 2)`` float ``(row, col)`` of its 8-connected pixel chain.
        widths: ``(N,)`` local widths in px, NaN where not measured (junction zones, gaps).
        junction_radius: Distance-transform radius of the junction at each end, 0 at a free end.
    """

    points: np.ndarray
    widths: np.ndarray
    junction_radius: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class Instance:
    """What the classifier reads of one crack instance."""

    branches: Sequence[Branch]
    mean_width_px: float
    junction_count: int = 0
    cell_count: int = 0


@dataclass(frozen=True)
class LineParams:
    """Thresholds of :func:`classify_lines` (the module docstring says what each one does)."""

    angle_tol_deg: float = 6.0
    max_rms_px: float = 0.6
    max_rms_widths: float = 0.08
    max_wobble_px: float = 0.35
    max_wobble_widths: float = 0.05
    max_width_range_px: float = 1.8
    max_width_range_widths: float = 0.35
    min_piece_px: float = 10.0
    min_piece_widths: float = 3.0
    min_long_px: float = 100.0
    min_aligned_px: float = 30.0
    min_aligned_widths: float = 6.0
    min_wobbly_piece_px: float = 40.0
    min_wobbly_piece_widths: float = 8.0
    grid_width_slack: float = 1.2
    wobbly_slack: float = 1.25
    min_long_widths: float = 20.0
    min_share: float = 0.9
    min_grid_share: float = 0.75
    min_square_share: float = 0.75
    min_shape_share_aligned: float = 0.6
    max_offline_px: float = 24.0
    max_offline_widths: float = 6.0
    min_paint: float = 0.12
    min_paint_bright: float = 0.5
    min_paint_px: float = 40.0
    min_paint_widths: float = 8.0
    paint_relax: float = 2.0


@dataclass(frozen=True)
class LineVerdict:
    """The kind of one instance and the features it was decided on."""

    kind: str
    reason: str
    straight_share: float
    grid_share: float
    wobble_px: float
    rms_px: float
    width_range_px: float | None
    offline_run_px: float | None
    aligned_count: int
    paint_contrast: float | None

    def as_row(self) -> dict[str, Any]:
        """The features as flat columns (``line_`` prefix, units in the names)."""
        return {
            "line_reason": self.reason,
            "line_straight_share": self.straight_share,
            "line_grid_share": self.grid_share,
            "line_wobble_px": self.wobble_px,
            "line_rms_px": self.rms_px,
            "line_width_range_px": self.width_range_px,
            "line_offline_run_px": self.offline_run_px,
            "line_aligned_count": self.aligned_count,
            "line_paint_contrast": self.paint_contrast,
        }


def smooth_chain(coords: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-smoothed ``(N, 2)`` chain with its two ends held in place (point reflection)."""
    c = np.asarray(coords, dtype=np.float64)
    if len(c) < 3 or sigma <= 0:
        return c
    k = min(int(3 * sigma) + 1, len(c) - 1)
    pre = 2 * c[0] - c[1 : k + 1][::-1]
    post = 2 * c[-1] - c[-k - 1 : -1][::-1]
    padded = np.concatenate([pre, c, post])
    return ndi.gaussian_filter1d(padded, sigma, axis=0, mode="nearest")[k:-k]


# --------------------------------------------------------------------------------------------
# geometry helpers
# --------------------------------------------------------------------------------------------


def _arc(p: np.ndarray) -> np.ndarray:
    """Arc length at each point of a chain."""
    if len(p) < 2:
        return np.zeros(len(p))
    return np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(p, axis=0).T))])


def _angle_diff(a: float, b: float) -> float:
    """Difference of two undirected angles, in [0, 90]."""
    return abs((a - b + 90.0) % 180.0 - 90.0)


def _douglas_peucker(p: np.ndarray, eps: float) -> list[int]:
    """Vertex indices of the Douglas-Peucker simplification of a chain."""
    keep = {0, len(p) - 1}
    stack = [(0, len(p) - 1)]
    while stack:
        i, j = stack.pop()
        if j - i < 2:
            continue
        a, d = p[i], p[j] - p[i]
        seg = p[i + 1 : j]
        n = math.hypot(*d)
        if n < 1e-9:
            dist = np.hypot(*(seg - a).T)
        else:
            dist = np.abs(d[0] * (seg[:, 1] - a[1]) - d[1] * (seg[:, 0] - a[0])) / n
        k = int(np.argmax(dist))
        if dist[k] > eps:
            keep.add(i + 1 + k)
            stack += [(i, i + 1 + k), (i + 1 + k, j)]
    return sorted(keep)


def _fit(p: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Principal line of points: (angle in [0, 180), RMS distance to it, unit direction)."""
    q = p - p.mean(axis=0)
    vals, vecs = np.linalg.eigh(q.T @ q / max(len(p), 1))
    d = vecs[:, 1]
    return math.degrees(math.atan2(-d[0], d[1])) % 180.0, math.sqrt(max(vals[0], 0.0)), d


def _trimmed(b: Branch) -> np.ndarray:
    """A branch's points without the junction zones at its ends (radius + 1 px)."""
    s = _arc(b.points)
    lo = b.junction_radius[0] + 1.0 if b.junction_radius[0] > 0 else 0.0
    hi = s[-1] - (b.junction_radius[1] + 1.0 if b.junction_radius[1] > 0 else 0.0)
    return b.points[(s >= lo) & (s <= hi)]


@dataclass
class _Piece:
    length: float
    angle: float
    rms: float
    wobble: float
    direction: np.ndarray
    points: np.ndarray


def _pieces(inst: Instance) -> tuple[list[_Piece], float]:
    """The straight pieces of every branch (Douglas-Peucker) and the branches' total length."""
    eps = max(1.5, 0.4 * inst.mean_width_px)
    out: list[_Piece] = []
    total = 0.0
    for b in inst.branches:
        p = _trimmed(b)
        if len(p) < 3:
            continue
        fine = smooth_chain(p, 1.0)
        s = _arc(fine)
        total += s[-1]
        vertices = _douglas_peucker(fine, eps)
        for i, j in zip(vertices[:-1], vertices[1:], strict=True):
            if j - i < 2:
                continue
            seg = fine[i : j + 1]
            angle, rms, d = _fit(seg)
            normal = np.array([-d[1], d[0]])
            detail = seg - smooth_chain(seg, 6.0)  # per piece: no corner is smoothed across
            wobble = float(np.sqrt(np.mean((detail @ normal) ** 2)))
            out.append(_Piece(s[j] - s[i], angle, rms, wobble, d, seg))
    return out, total


def _width_range(branches: Sequence[Branch]) -> float | None:
    """``p90 - p10`` of the local widths with the free ends (tapers) left out; ``None`` when
    fewer than 5 widths are left."""
    ws = []
    for b in branches:
        w = b.widths
        if not np.isfinite(w).any():
            continue
        s = _arc(b.points)
        cut = float(np.nanmedian(w)) + 2.0
        sel = np.ones(len(w), bool)
        if b.junction_radius[0] == 0:
            sel &= s > cut
        if b.junction_radius[1] == 0:
            sel &= s < s[-1] - cut
        ws.append(w[sel])
    w = np.concatenate(ws) if ws else np.zeros(0)
    w = w[np.isfinite(w)]
    if len(w) < 5:
        return None
    p10, p90 = np.percentile(w, [10, 90])
    return float(p90 - p10)


# --------------------------------------------------------------------------------------------
# grid support
# --------------------------------------------------------------------------------------------


@dataclass
class _Grid:
    share: float = 0.0
    offline_run: float | None = None
    lines: list[list[float]] | None = None  # support (points) of each line, per direction
    angles: list[float] | None = None


def _dominant(angles: np.ndarray, away_from: float | None = None) -> float | None:
    """The most frequent tangent direction (1-degree bins, smoothed), optionally at least 60
    degrees from ``away_from``."""
    hist = np.bincount(np.floor(angles).astype(int) % 180, minlength=180).astype(float)
    hist = ndi.gaussian_filter1d(hist, 2.0, mode="wrap")
    if away_from is not None:
        off = np.abs((np.arange(180) + 0.5 - away_from + 90.0) % 180.0 - 90.0)
        hist[off < 60.0] = 0.0
    return float(np.argmax(hist)) + 0.5 if hist.max() > 0 else None


def _lines_along(
    pts: np.ndarray, sel: np.ndarray, theta: float, delta: float, support: float
) -> tuple[np.ndarray, list[float]]:
    """Greedy offset windows (``2 delta`` wide, >= ``support`` points) of the points ``sel``
    projected on the normal of direction ``theta``: the points on a line, and each line's
    support."""
    t = math.radians(theta)
    rho = pts[sel] @ np.array([math.cos(t), math.sin(t)])  # the (row, col) normal of theta
    order = np.argsort(rho)
    rho, sel = rho[order], sel[order]
    free = np.ones(len(sel), bool)
    on: list[np.ndarray] = []
    lines: list[float] = []
    while free.any():
        r = rho[free]
        hi = np.searchsorted(r, r + 2 * delta, side="right")
        count = hi - np.arange(len(r))
        k = int(np.argmax(count))
        if count[k] < support:
            break
        idx = np.flatnonzero(free)[k : hi[k]]
        on.append(sel[idx])
        free[idx] = False
        lines.append(float(count[k]))
    return (np.concatenate(on) if on else np.zeros(0, np.intp)), lines


def _grid(inst: Instance, tol_deg: float = 12.0) -> _Grid:
    """Skeleton points on straight lines of the two dominant directions (module docstring)."""
    chains, tangents = [], []
    for b in inst.branches:
        p = _trimmed(b)
        if len(p) < 3:
            continue
        d = np.gradient(smooth_chain(p, 2.0), axis=0)
        chains.append(smooth_chain(p, 1.0))
        tangents.append(np.degrees(np.arctan2(-d[:, 0], d[:, 1])) % 180.0)
    if not chains or sum(len(c) for c in chains) < 10:
        return _Grid()
    pts, ang = np.concatenate(chains), np.concatenate(tangents)
    width = inst.mean_width_px
    delta, support = max(1.0, 0.25 * width), max(10.0, 3.0 * width)
    on = np.zeros(len(pts), bool)
    grid = _Grid(lines=[], angles=[])
    theta = _dominant(ang)
    for _ in range(2):
        if theta is None:
            break
        sel = np.flatnonzero((np.abs((ang - theta + 90.0) % 180.0 - 90.0) <= tol_deg) & ~on)
        members, lines = _lines_along(pts, sel, theta, delta, support)
        on[members] = True
        if lines:
            grid.lines.append(lines)
            grid.angles.append(theta)
        theta = _dominant(ang, away_from=theta)
    grid.share = float(on.mean())
    runs, start = [], 0
    for c in chains:  # the longest stretch of a branch off the lines, in points (~px)
        off = ~on[start : start + len(c)]
        start += len(c)
        if off.any():
            edges = np.flatnonzero(np.diff(np.concatenate([[0], off.view(np.int8), [0]])))
            runs.append(int((edges[1::2] - edges[::2]).max()))
    grid.offline_run = float(max(runs, default=0))
    return grid


# --------------------------------------------------------------------------------------------
# paint edge
# --------------------------------------------------------------------------------------------


def _side_grey(image: np.ndarray, pts: np.ndarray, normal: np.ndarray, offsets) -> np.ndarray:
    """Mean grey level of ``image`` at ``pts + offset * normal`` over the offsets (NaN outside)."""
    h, w = image.shape[:2]
    vals = []
    for off in offsets:
        q = np.rint(pts + off * normal).astype(np.intp)
        ok = (q[:, 0] >= 0) & (q[:, 0] < h) & (q[:, 1] >= 0) & (q[:, 1] < w)
        q = np.clip(q, 0, [h - 1, w - 1])
        v = image[q[:, 0], q[:, 1]].astype(np.float64)
        if v.ndim == 2:
            v = v.mean(axis=1)
        vals.append(np.where(ok, v, np.nan))
    if not vals:
        return np.zeros(len(pts))
    stack = np.stack(vals)
    seen = np.isfinite(stack).sum(axis=0)
    total = np.nansum(stack, axis=0)
    return np.where(seen > 0, total / np.maximum(seen, 1), np.nan)  # all outside: NaN


def _paint(
    image: np.ndarray | None, pieces: list[_Piece], width: float, min_len: float, min_bright: float
):
    """Length-weighted contrast across the pieces at least ``min_len`` long (module docstring);
    ``None`` without a photo or such pieces."""
    if image is None:
        return None
    img = np.asarray(image)
    scale = 255.0 if img.dtype == np.uint8 else 1.0
    total = score = 0.0
    offsets = (width / 2 + 2.0, width / 2 + 4.0)
    for p in pieces:
        if p.length < min_len:
            continue
        normal = np.array([-p.direction[1], p.direction[0]])
        pts = p.points[:: max(1, len(p.points) // 64)]
        with np.errstate(invalid="ignore"):
            d = _side_grey(img, pts, normal, offsets) - _side_grey(img, pts, -normal, offsets)
        d = d[np.isfinite(d)]
        if len(d) < 5:
            continue
        med = float(np.median(d))
        total += p.length
        bright = np.nanmedian(_side_grey(img, pts, normal if med > 0 else -normal, offsets))
        if np.mean(np.sign(d) == np.sign(med)) >= 0.85 and bright / scale >= min_bright:
            score += p.length * abs(med) / scale
    return score / total if total > 0 else None


# --------------------------------------------------------------------------------------------
# reading and decision
# --------------------------------------------------------------------------------------------


@dataclass
class _Reading:
    """Everything the decision uses about one instance."""

    total: float
    share: float
    angle: float | None
    wobble: float
    rms: float
    width_range: float | None
    grid: _Grid
    paint: float | None
    square_share: float = 0.0
    offline_ok: bool = False
    wobbly_long: bool = False
    fairly_even: bool = False
    square_angles: list[float] | None = None
    one_line: bool = False
    even: bool = False
    long: bool = False


def _straight(pieces: list[_Piece], inst: Instance, prm: LineParams, relax: float):
    """The straight pieces (long enough, small RMS and wobble; both limits times ``relax``)."""
    w = inst.mean_width_px
    min_len = max(prm.min_piece_px, prm.min_piece_widths * w)
    max_rms = relax * max(prm.max_rms_px, prm.max_rms_widths * w)
    max_wob = relax * max(prm.max_wobble_px, prm.max_wobble_widths * w)
    return [p for p in pieces if p.length >= min_len and p.rms <= max_rms and p.wobble <= max_wob]


def _straight_share(pieces: list[_Piece], total: float, inst: Instance, prm: LineParams, relax):
    """(share of the length in straight collinear pieces along the main direction, angle)."""
    w = inst.mean_width_px
    straight = _straight(pieces, inst, prm, relax)
    if not straight or total <= 0:
        return 0.0, None
    main = max(straight, key=lambda p: p.length).angle
    family = [p for p in straight if _angle_diff(p.angle, main) <= prm.angle_tol_deg]
    if len(family) > 1 and _fit(np.concatenate([p.points for p in family]))[1] > max(1.0, 0.3 * w):
        return 0.0, main  # parallel but not collinear
    return sum(p.length for p in family) / total, _fit(np.concatenate([p.points for p in family]))[
        0
    ]


def _square_share(straight: list[_Piece], total: float, prm: LineParams):
    """(share of the length in straight pieces along two directions >= 60 degrees apart, the two
    directions); (0, None) without pieces in two such directions."""
    if total <= 0 or not straight:
        return 0.0, None
    first = max(straight, key=lambda p: p.length).angle
    across = [p for p in straight if _angle_diff(p.angle, first) >= 60.0]
    if not across:
        return 0.0, None
    second = max(across, key=lambda p: p.length).angle
    tol = prm.angle_tol_deg
    on = [p for p in straight if min(_angle_diff(p.angle, a) for a in (first, second)) <= tol]
    return sum(p.length for p in on) / total, [first, second]


def _read(inst: Instance, image: np.ndarray | None, prm: LineParams) -> _Reading:
    """Every feature of one instance. Along a paint edge the straightness limits are relaxed
    (times ``paint_relax``): worn paint has ragged edges."""
    w = inst.mean_width_px
    pieces, total = _pieces(inst)
    min_piece = max(prm.min_piece_px, prm.min_piece_widths * w)
    paint = _paint(image, pieces, w, min_piece, prm.min_paint_bright)
    relax = prm.paint_relax if paint is not None and paint >= prm.min_paint else 1.0
    share, angle = _straight_share(pieces, total, inst, prm, relax)
    needs_grid = inst.junction_count or inst.cell_count or share < prm.min_share
    grid = _grid(inst) if needs_grid else _Grid()
    weight = sum(p.length for p in pieces) or 1.0
    r = _Reading(
        total=total,
        share=share,
        angle=angle,
        wobble=sum(p.wobble * p.length for p in pieces) / weight,
        rms=sum(p.rms * p.length for p in pieces) / weight,
        width_range=_width_range(inst.branches),
        grid=grid,
        paint=paint,
    )
    one_grid_line = bool(grid.lines) and len(grid.lines) == 1 and len(grid.lines[0]) == 1
    r.one_line = r.share >= prm.min_share or (
        inst.junction_count > 0 and one_grid_line and grid.share >= prm.min_share
    )
    if r.angle is None and one_grid_line:
        r.angle = grid.angles[0]
    r.square_share, r.square_angles = _square_share(_straight(pieces, inst, prm, relax), total, prm)
    limit = max(prm.max_width_range_px, prm.max_width_range_widths * w)
    r.even = r.width_range is not None and r.width_range <= limit
    r.fairly_even = r.width_range is not None and r.width_range <= prm.grid_width_slack * limit
    r.long = total >= max(prm.min_long_px, prm.min_long_widths * w)
    offline = max(prm.max_offline_px, prm.max_offline_widths * w)
    r.offline_ok = grid.offline_run is not None and grid.offline_run <= offline
    straight = {id(p) for p in _straight(pieces, inst, prm, relax * prm.wobbly_slack)}
    min_long_piece = max(prm.min_wobbly_piece_px, prm.min_wobbly_piece_widths * w)
    r.wobbly_long = any(p.length >= min_long_piece and id(p) not in straight for p in pieces)
    return r


def _pieces_ok(r: _Reading) -> bool:
    """The guards of every many-piece reading (grid, shape): no long stretch off the straight
    lines, no long piece that is not straight, and a fairly even width."""
    return r.offline_ok and not r.wobbly_long and r.fairly_even


def _is_grid(inst: Instance, r: _Reading, prm: LineParams, min_lines: int = 3) -> bool:
    """Straight lines in two directions carry the instance, with no long stretch off them."""
    g = r.grid
    w = inst.mean_width_px
    if not g.lines or len(g.lines) < 2 or g.share < prm.min_grid_share or not _pieces_ok(r):
        return False
    n = sum(len(lines) for lines in g.lines)
    long = max(prm.min_long_px, prm.min_long_widths * w)
    crossing = inst.junction_count >= 1 and n >= 2 and min(min(x) for x in g.lines) >= long
    network = (inst.junction_count >= 2 or inst.cell_count >= 1) and n >= min_lines
    return crossing or network


def _directions(r: _Reading) -> list[float]:
    """The directions an instance's alignment is judged on: its two grid or square directions,
    else its line's."""
    if r.grid.angles and len(r.grid.angles) == 2 and r.grid.share > r.square_share:
        return list(r.grid.angles)
    if r.square_angles and r.square_share >= r.share:
        return list(r.square_angles)
    return [] if r.angle is None else [r.angle]


def classify_lines(
    instances: Sequence[Instance],
    image: np.ndarray | None = None,
    params: LineParams | None = None,
) -> list[LineVerdict]:
    """The kind of each crack instance and its features (see the module docstring).

    Args:
        instances: One :class:`Instance` per crack of an image (the image's other instances
            are the context for alignment).
        image: The photo (``(H, W)`` grey or ``(H, W, 3)``, uint8 or float in [0, 1]), in the
            coordinates of the branches, for the paint-edge cue; ``None`` leaves it out.
        params: Thresholds; the defaults when ``None``.

    Returns:
        One :class:`LineVerdict` per instance, in order.
    """
    prm = params or LineParams()
    reads = [_read(inst, image, prm) for inst in instances]
    first: list[str | None] = []
    for inst, r in zip(instances, reads, strict=True):
        if r.one_line and r.even and r.long:
            first.append("long straight line")
        elif _is_grid(inst, r, prm):
            first.append("grid")
        else:
            first.append(None)
    context = [(i, _directions(r)) for i, r in enumerate(reads) if first[i] is not None]
    for i, (inst, r) in enumerate(zip(instances, reads, strict=True)):
        long = max(prm.min_long_px, prm.min_long_widths * inst.mean_width_px)
        if first[i] is None and r.grid.lines and all(max(x) >= long for x in r.grid.lines):
            context.append((i, list(r.grid.angles)))  # long straight lines inside a crack
    out = []
    for i, (inst, r) in enumerate(zip(instances, reads, strict=True)):
        aligned = _aligned(i, _directions(r), context, prm.angle_tol_deg / 2)
        reason = first[i] or _second(inst, r, aligned, prm)
        kind = LINE if reason in _LINE_REASONS else CRACK
        out.append(_verdict(kind, reason, r, aligned))
    return out


_LINE_REASONS = {"long straight line", "grid", "aligned with lines", "paint edge", "on a grid"}
#: The reason given to the joints :func:`line_branches` splits off a crack.
SPLIT_REASON = "straight line through a crack"


def _chains(inst: Instance, tol: float) -> list[list[int]]:
    """Branches joined across junctions where they continue one another in a straight line:
    two branches with ends at one junction join when the points of both (and of everything
    already joined to either) fit one line within ``tol`` px RMS."""
    bs = inst.branches
    group = list(range(len(bs)))

    def root(i: int) -> int:
        while group[i] != i:
            group[i] = group[group[i]]
            i = group[i]
        return i

    trimmed = [_trimmed(b) for b in bs]
    candidates = []
    for i in range(len(bs)):
        for j in range(i + 1, len(bs)):
            if len(trimmed[i]) < 3 or len(trimmed[j]) < 3:
                continue
            for ei, ej in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
                ri = bs[i].junction_radius[0 if ei == 0 else 1]
                rj = bs[j].junction_radius[0 if ej == 0 else 1]
                if ri <= 0 or rj <= 0:
                    continue
                gap = math.hypot(*(bs[i].points[ei] - bs[j].points[ej]))
                if gap <= 2.0 * max(ri, rj) + 3.0:
                    rms = _fit(np.concatenate([trimmed[i], trimmed[j]]))[1]
                    candidates.append((rms, i, j))
                    break
    for rms, i, j in sorted(candidates):
        a, b = root(i), root(j)
        if rms > tol or a == b:
            continue
        members = [k for k in range(len(bs)) if root(k) in (a, b)]
        if _fit(np.concatenate([trimmed[k] for k in members if len(trimmed[k])]))[1] <= tol:
            group[b] = a
    chains: dict[int, list[int]] = {}
    for k in range(len(bs)):
        chains.setdefault(root(k), []).append(k)
    return list(chains.values())


def line_branches(
    inst: Instance, image: np.ndarray | None = None, params: LineParams | None = None
) -> list[int]:
    """Which skeleton branches of a crack instance are joints or lines running through it.

    Branches are joined into straight chains across junctions (a joint a crack crosses is two
    branches that continue one another); a chain that is one straight line of even width and
    long enough by rule 1 of the module docstring, read on its own, is a joint. Every
    branch of a one-branch instance, and of an instance that is all joints, is reported as
    not a joint: those are decided whole by :func:`classify_lines`.

    Args:
        inst: The instance (branches in image coordinates when ``image`` is given).
        image: The photo, for the paint-edge cue, as in :func:`classify_lines`.
        params: Thresholds; the defaults when ``None``.

    Returns:
        One number per branch of ``inst``, in order: the joint it belongs to (0, 1, ...; the
        branches of one joint share a number), or -1 for a branch that is not a joint.
    """
    prm = params or LineParams()
    n = len(inst.branches)
    flags = [-1] * n
    if n < 2:
        return flags
    joints = 0
    for chain in _chains(inst, max(1.0, 0.3 * inst.mean_width_px)):
        branches = [inst.branches[k] for k in chain]
        widths = np.concatenate([b.widths for b in branches])
        widths = widths[np.isfinite(widths)]
        w = float(widths.mean()) if len(widths) >= 5 else inst.mean_width_px
        r = _read(Instance(branches, w), image, prm)
        if r.one_line and r.even and r.long:
            for k in chain:
                flags[k] = joints
            joints += 1
    return [-1] * n if min(flags) >= 0 else flags


def _aligned(i: int, dirs: list[float], context: list[tuple[int, list[float]]], tol: float) -> int:
    """How many context instances (not ``i``) run parallel or square to every one of ``dirs``."""
    if not dirs:
        return 0
    n = 0
    for j, other in context:
        if j == i or not other:
            continue
        if all(
            any(_angle_diff(a, b) <= tol or abs(_angle_diff(a, b) - 90.0) <= tol for b in other)
            for a in dirs
        ):
            n += 1
    return n


def _paint_ok(inst: Instance, r: _Reading, prm: LineParams) -> bool:
    """Runs along a paint edge over at least ``max(40, 8 w)`` px."""
    long = r.total >= max(prm.min_paint_px, prm.min_paint_widths * inst.mean_width_px)
    return long and r.paint is not None and r.paint >= prm.min_paint


def _second(inst: Instance, r: _Reading, aligned: int, prm: LineParams) -> str:
    """The reason of an instance that is not a line on its own evidence."""
    if r.one_line:
        if not r.even:
            return "uneven width"
        if aligned >= 1 and r.total >= max(
            prm.min_aligned_px, prm.min_aligned_widths * inst.mean_width_px
        ):
            return "aligned with lines"
        if _paint_ok(inst, r, prm):
            return "paint edge"
        return "short"
    g = r.grid
    if not _pieces_ok(r):
        return "not straight"
    squareness = max(r.square_share, g.share if g.lines and len(g.lines) == 2 else 0.0)
    if aligned >= 2 and squareness >= prm.min_shape_share_aligned:
        return "on a grid"
    if inst.junction_count >= 1 and aligned >= 1 and squareness >= prm.min_square_share:
        return "on a grid"
    if squareness >= prm.min_square_share and _paint_ok(inst, r, prm):
        return "paint edge"
    if squareness >= prm.min_square_share:
        return "straight pieces, no grid around"
    return "not straight"


def _verdict(kind: str, reason: str, r: _Reading, aligned: int) -> LineVerdict:
    def rnd(v: float | None) -> float | None:
        return None if v is None else round(float(v), 3)

    return LineVerdict(
        kind=kind,
        reason=reason,
        straight_share=round(min(r.share, 1.0), 3),
        grid_share=round(r.grid.share, 3),
        wobble_px=round(r.wobble, 3),
        rms_px=round(r.rms, 3),
        width_range_px=rnd(r.width_range),
        offline_run_px=rnd(r.grid.offline_run),
        aligned_count=int(aligned),
        paint_contrast=rnd(r.paint),
    )
