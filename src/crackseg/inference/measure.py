"""Crack measurement on a binary crack mask: length, width, orientation and severity.

:func:`measure_cracks` splits a boolean ``(H, W)`` mask into crack instances and measures each
one; :func:`image_summary` adds them up per image; :func:`write_cracks_csv` and
:func:`write_cracks_json` save the results atomically. ``crackseg predict --measure
[--mm-per-px F]`` uses them.

Conventions (shared with :mod:`crackseg.data.geometry`): pixel ``(row r, column c)`` has its
centre at ``(x, y) = (c, r)``; angles are in degrees, ``0`` along the image x axis (horizontal),
``90`` along the image vertical, growing counter-clockwise as seen on screen, reported in
``[0, 180)``. Bounding boxes are ``(x0, y0, x1, y1)`` in pixels with ``x1`` and ``y1``
exclusive (``mask[y0:y1, x0:x1]`` holds the crack). Every output column carries its unit.

Instances. A crack is a group of 8-connected mask pixels in which fragments separated by a gap
of at most ``2 * ceil(closing_px / 2)`` pixels (2 by default) count as one: the groups are the
8-connected components of the mask dilated ``ceil(closing_px / 2)`` times by a 3 x 3 square.
(A morphological closing alone does not join them: it cannot bridge a break in a
one-pixel-wide oblique crack, because the disk never fits in the neck between the two ends.)
Each crack is then closed with a disk of radius ``closing_px``, which smooths its outline and
bridges small breaks in cracks a few pixels wide; the closed crack gives the skeleton (length,
direction, junctions) and its enclosed cells, while area and widths are measured on the crack's
ORIGINAL pixels (closing fattens). A break the closing bridges counts in the length, one it
does not bridge does not. All of this runs per crack on its padded bounding-box crop
(``scipy.ndimage.find_objects``), and the distance transform is evaluated only at the pixels
it is needed for, so no float array of the image's (or even a crop's) size is ever made: the
full-size arrays are one boolean and one int32 label image (about 5 bytes per pixel beside
the mask for an 8000 x 6000 image with a few hundred cracks). Cracks shorter than
``min_length_px`` are dropped as noise; the rest are numbered 1, 2, ... in raster order of
their first pixel.

Length. The closed crack is skeletonised (scikit-image ``skeletonize``, Lee's method) and spurs
are pruned: an end branch (junction to free end) shorter than ``spur_factor`` times the
distance-transform radius at its junction is boundary noise, not a branch. The skeleton graph
comes from :class:`~.skeleton.SkeletonGraph` (skan's construction). Each branch's pixel chain is
smoothed (Gaussian, sigma ``smooth_sigma_px``, ends held fixed by point reflection) before its
polyline length is taken, because a raw 8-connected chain over-counts oblique lines (a 30-degree
line is 7 % too long with steps of 1 and sqrt(2)). Thinning also stops short of each free end by
about the crack's half width, so each free end adds ``d - 0.5``, where ``d`` is the Euclidean
distance transform at the end pixel (distance to the nearest background pixel centre beyond the
tip) and the half pixel takes that back from the background pixel's centre to its edge.

Width. The Euclidean distance transform ``d`` of the crack's original pixels (the distance from
a pixel's centre to the nearest background pixel's centre, exactly what
``scipy.ndimage.distance_transform_edt`` gives, here read from a k-d tree of the crack's
outline) is sampled on the skeleton. Across a crack ``d`` is a tent of slope 1 whose
peak lies between two pixels for an even digital width, so ``2 d - 1`` (exact for odd widths)
is one pixel short for even ones. Sampling ``d`` one pixel either side of the skeleton along
the local normal (``p`` and ``q``, bilinear) reads both flanks of the tent: the tent height is
``(p + q) / 2 + 1`` and, with the crack's edge half a pixel before the first background pixel,
the local width is ``w = p + q + 1`` -- exact for every integer width of an axis-aligned crack.
Along an oblique edge the background pixel centres lie anywhere from 0 to 1 px beyond the
edge, not 0.5 on average, so ``p + q + 1`` reads up to about half a pixel low there; each
crack's width profile is therefore shifted by one constant so that its length-weighted mean
equals ``area_px / length_px`` (the mean width of any strip, exact up to pixelisation). The
reported mean width is that mean; the maximum and 90th percentile come from the shifted
profile. Skeleton pixels within a junction's radius of a junction (where ``d`` measures the
junction, not a crack) and pixels of gaps bridged by the closing are left out of the profile.
On the cracks of :mod:`crackseg.data.geometry` (widths 1 to 12 px, straight at any angle,
arcs, sines) the mean width is within 0.4 px and the length within 2 % of the truth.

Orientation rule. The crack's principal direction is the orientation of the first principal
axis (PCA) of its skeleton pixel coordinates, as an angle ``angle_deg`` in ``[0, 180)``. Its
angle to the road axis ``road_axis_deg`` (default 90: the image's vertical axis, i.e. a road
running up the image), folded into ``[0, 90]``, decides the class: at most
``orientation_tolerance_deg`` (30) -> ``"longitudinal"``; at least ``90 - 30 = 60`` (within 30
degrees of perpendicular) -> ``"transverse"``; otherwise ``"diagonal"``. A crack is
``"alligator"`` (a network, whatever its direction) when its closed component encloses at least
``alligator_loops`` (2) separate background cells of at least ``min_cell_px`` (16) pixels each,
or its pruned skeleton has at least ``alligator_junctions`` (6) junctions (clusters of
skeleton pixels with three or more neighbours). A straight or gently curved single crack has
no cells and, after spur pruning, no junctions, so it is never ``"alligator"``.

Severity (only with ``mm_per_px``) is by the MAXIMUM width in millimetres, in the classes of the
scheme ``severity`` names (:mod:`crackseg.inference.severity`: ``astm-d6433``, the default, with
the ASTM D6433 asphalt edges low < 10 mm, medium 10 to 75 mm, high > 75 mm; ``bre-251`` for
masonry; ``en1992`` for concrete against an exposure class's limit); applying the edges to the
maximum width is the conservative reading. A severity that rests on a width under one pixel is
marked ``severity_note = "sub-pixel"``.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from crackseg.atomic import atomic_text

from .lines import (
    CRACK,
    LINE,
    SPLIT_REASON,
    Branch,
    Instance,
    LineVerdict,
    classify_lines,
    counts_in_totals,
    line_branches,
    smooth_chain,
)
from .severity import DEFAULT_SCHEME, SUB_PIXEL, SeverityScheme, get_scheme
from .skeleton import SkeletonGraph

__all__ = [
    "ORIENTATIONS",
    "SEVERITIES",
    "Crack",
    "crack_rows",
    "image_summary",
    "line_pixels",
    "measure_cracks",
    "typical_width_px",
    "write_cracks_csv",
    "write_cracks_json",
]

#: Orientation classes, in display order.
ORIENTATIONS: tuple[str, ...] = ("longitudinal", "transverse", "diagonal", "alligator")
#: Severity classes of the default scheme (ASTM D6433), in display order.
SEVERITIES: tuple[str, ...] = ("low", "medium", "high")

_EIGHT = np.ones((3, 3), dtype=bool)
_ROUND = 3  # decimals of the numbers in rows


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius * radius


@dataclass(frozen=True)
class Crack:
    """One measured crack (one connected component after closing).

    Attributes:
        id: 1-based index in the image (raster order of the first pixel).
        length_px: Length along the crack (all branches), in pixels.
        mean_width_px: Mean width (``area_px / length_px``), in pixels.
        max_width_px: Largest local width, in pixels.
        p90_width_px: 90th percentile of the local widths, in pixels.
        area_px: Number of (original, not closed) mask pixels.
        bbox: ``(x0, y0, x1, y1)`` in pixels, ``x1`` and ``y1`` exclusive.
        angle_deg: Principal direction in ``[0, 180)`` (0 horizontal, 90 vertical,
            counter-clockwise on screen).
        orientation: ``"longitudinal"``, ``"transverse"``, ``"diagonal"`` or ``"alligator"``.
        severity: The class of the severity scheme (ASTM D6433: ``"low"``, ``"medium"``,
            ``"high"``), or ``None`` without ``mm_per_px``.
        mm_per_px: Scale, millimetres per pixel, or ``None``.
        junction_count: Junctions of the pruned skeleton.
        cell_count: Enclosed background cells (loops) of the closed component.
        severity_scheme: The scheme behind ``severity`` (``None`` without ``mm_per_px``).
        severity_note: ``"sub-pixel"`` when the severity rests on a width under one pixel.
        limit_mm: en1992: the exposure class's ``w_max``; ``over_limit_mm``: the maximum width
            minus it (negative: within the limit).
        branches: The skeleton's branches, points ``(row, col)`` in image pixels (for maps).
    """

    id: int
    length_px: float
    mean_width_px: float
    max_width_px: float
    p90_width_px: float
    area_px: int
    bbox: tuple[int, int, int, int]
    angle_deg: float
    orientation: str
    severity: str | None
    mm_per_px: float | None = None
    junction_count: int = 0
    cell_count: int = 0
    kind: str = CRACK
    line: LineVerdict | None = None
    severity_scheme: str | None = None
    severity_note: str | None = None
    limit_mm: float | None = None
    over_limit_mm: float | None = None
    branches: tuple[Branch, ...] = field(default=(), compare=False, repr=False)
    footprint: tuple[int, int, np.ndarray] | None = field(default=None, compare=False, repr=False)

    def _mm(self, px: float) -> float | None:
        return None if self.mm_per_px is None else px * self.mm_per_px

    @property
    def length_mm(self) -> float | None:
        """Length in millimetres (``None`` without ``mm_per_px``)."""
        return self._mm(self.length_px)

    @property
    def mean_width_mm(self) -> float | None:
        """Mean width in millimetres (``None`` without ``mm_per_px``)."""
        return self._mm(self.mean_width_px)

    @property
    def max_width_mm(self) -> float | None:
        """Maximum width in millimetres (``None`` without ``mm_per_px``)."""
        return self._mm(self.max_width_px)

    @property
    def p90_width_mm(self) -> float | None:
        """90th-percentile width in millimetres (``None`` without ``mm_per_px``)."""
        return self._mm(self.p90_width_px)

    @property
    def area_mm2(self) -> float | None:
        """Area in square millimetres (``None`` without ``mm_per_px``)."""
        return None if self.mm_per_px is None else self.area_px * self.mm_per_px**2

    def as_row(self) -> dict[str, Any]:
        """A flat dict whose column names carry their units.

        Columns: ``id``, ``length_px``, ``mean_width_px``, ``max_width_px``, ``p90_width_px``,
        ``area_px2``, ``bbox_x0_px``, ``bbox_y0_px``, ``bbox_x1_px``, ``bbox_y1_px`` (exclusive
        ``x1``/``y1``), ``angle_deg``, ``orientation``, ``severity``, ``kind`` (``crack`` or
        ``joint_or_line``, :mod:`crackseg.inference.lines`), ``junction_count``,
        ``cell_count``; with ``mm_per_px`` also ``mm_per_px``, ``length_mm``,
        ``mean_width_mm``, ``max_width_mm``, ``p90_width_mm``, ``area_mm2``,
        ``severity_scheme`` and ``severity_note`` (``sub-pixel`` or empty), and with the
        ``en1992`` scheme ``limit_mm`` and ``over_limit_mm``. Floats are rounded to 3 decimals.
        """
        row: dict[str, Any] = {"id": self.id, "length_px": round(self.length_px, _ROUND)}
        if self.mm_per_px is not None:
            row["length_mm"] = round(self.length_px * self.mm_per_px, _ROUND)
        for name in ("mean_width", "max_width", "p90_width"):
            px = getattr(self, f"{name}_px")
            row[f"{name}_px"] = round(px, _ROUND)
            if self.mm_per_px is not None:
                row[f"{name}_mm"] = round(px * self.mm_per_px, _ROUND)
        row["area_px2"] = int(self.area_px)
        if self.mm_per_px is not None:
            row["area_mm2"] = round(self.area_px * self.mm_per_px**2, _ROUND)
        for key, value in zip(("x0", "y0", "x1", "y1"), self.bbox, strict=True):
            row[f"bbox_{key}_px"] = int(value)
        row["angle_deg"] = round(self.angle_deg, _ROUND)
        row["orientation"] = self.orientation
        row["severity"] = self.severity
        if self.mm_per_px is not None:
            row["severity_scheme"] = self.severity_scheme
            row["severity_note"] = self.severity_note
            if self.limit_mm is not None:
                row["limit_mm"] = self.limit_mm
                row["over_limit_mm"] = self.over_limit_mm
        row["kind"] = self.kind
        row["junction_count"] = int(self.junction_count)
        row["cell_count"] = int(self.cell_count)
        if self.mm_per_px is not None:
            row["mm_per_px"] = self.mm_per_px
        return row


# --------------------------------------------------------------------------------------------
# per-crack geometry
# --------------------------------------------------------------------------------------------


def typical_width_px(mask: np.ndarray, min_pixels: int = 20) -> float:
    """The median crack width of a mask in pixels: ``2 d - 1`` over its skeleton pixels, ``d``
    the distance transform (the width rule of :func:`measure_cracks`, without closing, pruning,
    smoothing or sub-pixel sampling: a quick reading of how wide the cracks of a whole photo come
    out; exact across axis-aligned cracks of odd width, up to ~1.2 px narrow on oblique ones).

    Returns 0 for a mask with fewer than ``min_pixels`` crack pixels. Memory grows with the
    cracks' outline, not the image: a k-d tree of boundary pixels stands in for the distance
    transform, so this is cheap on an 8000 x 6000 mask too.
    """
    fg = np.asarray(mask, dtype=bool)
    if fg.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {fg.shape}")
    if np.count_nonzero(fg) < min_pixels:
        return 0.0
    skeletonize, _ = _skeleton_tools()
    fg = np.pad(fg, 1)
    rows, cols = np.nonzero(np.asarray(skeletonize(fg, method="lee"), dtype=bool))
    if not len(rows):
        return 0.0
    return float(np.median(2.0 * _SparseEDT(fg)[rows, cols] - 1.0))


class _SparseEDT:
    """The Euclidean distance transform of a crack crop, evaluated only where it is asked for.

    ``edt[rows, cols]`` equals ``scipy.ndimage.distance_transform_edt(fg)[rows, cols]``: the
    distance from a crack pixel's centre to the nearest background pixel centre (0 on the
    background). The nearest background pixel always touches the crack (any other has a
    neighbour closer to the query), so a k-d tree of those boundary pixels answers exactly,
    in memory proportional to the crack's outline rather than to its bounding box.
    ``fg`` must have a background border (it is a zero-padded crop).
    """

    def __init__(self, fg: np.ndarray) -> None:
        from scipy.spatial import cKDTree

        self.fg = fg
        ring = np.argwhere(ndi.binary_dilation(fg, structure=_EIGHT) & ~fg)
        self.tree = cKDTree(ring) if len(ring) else None

    def __getitem__(self, index: tuple[Any, Any]) -> Any:
        rows = np.asarray(index[0], dtype=np.intp)
        cols = np.asarray(index[1], dtype=np.intp)
        scalar = rows.ndim == 0 and cols.ndim == 0
        r, c = np.broadcast_arrays(np.atleast_1d(rows), np.atleast_1d(cols))
        out = np.zeros(r.shape, dtype=np.float64)
        h, w = self.fg.shape
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        sel = inside.copy()
        sel[inside] = self.fg[r[inside], c[inside]]
        if self.tree is not None and sel.any():
            out[sel] = self.tree.query(np.stack([r[sel], c[sel]], axis=-1))[0]
        return float(out[0]) if scalar else out

    def bilinear(self, points: np.ndarray) -> np.ndarray:
        """Bilinear interpolation at ``(N, 2)`` float ``(row, col)`` points (0 outside)."""
        r0 = np.floor(points[:, 0]).astype(np.intp)
        c0 = np.floor(points[:, 1]).astype(np.intp)
        fr, fc = points[:, 0] - r0, points[:, 1] - c0
        corners = self[np.stack([r0, r0, r0 + 1, r0 + 1]), np.stack([c0, c0 + 1, c0, c0 + 1])]
        top = corners[0] * (1 - fc) + corners[1] * fc
        bottom = corners[2] * (1 - fc) + corners[3] * fc
        return top * (1 - fr) + bottom * fr


def _skeleton_tools() -> tuple[Any, Any]:
    """``(skimage.morphology.skeletonize, SkeletonGraph)``."""
    from skimage.morphology import skeletonize

    return skeletonize, SkeletonGraph


def _skeleton_graph(skel: np.ndarray) -> Any | None:
    """The :class:`~.skeleton.SkeletonGraph` of a skeleton image, or ``None`` when it has fewer
    than 2 pixels."""
    _, Skeleton = _skeleton_tools()

    if np.count_nonzero(skel) < 2:
        return None
    # pixels without any neighbour (e.g. two isolated dots left by thinning or spur pruning)
    # carry no length and make no path, so they are dropped
    neighbours = ndi.convolve(skel.astype(np.uint8), np.ones((3, 3), np.uint8), mode="constant")
    isolated = skel & (neighbours <= 1)
    if isolated.any():
        skel[isolated] = False
        if np.count_nonzero(skel) < 2:
            return None
    return Skeleton(skel)


def _prune_spurs(skel: np.ndarray, dist: _SparseEDT, spur_factor: float) -> Any | None:
    """Remove short end branches in place (up to 8 rounds); the final skeleton graph.

    An end branch (free end to junction) is a spur when its chain length plus its tip
    extension is below ``spur_factor`` times the distance transform at its junction. At each
    junction at least one branch is kept, so pruning never empties a skeleton.
    """
    for _ in range(8):
        graph = _skeleton_graph(skel)
        if graph is None or spur_factor <= 0:
            return graph
        deg = graph.degrees
        coords = graph.coordinates
        lengths = graph.path_lengths()
        paths = graph.paths_list()
        candidates: dict[int, list[tuple[float, int]]] = {}
        long_at: set[int] = set()
        for i, path in enumerate(paths):
            a, b = int(path[0]), int(path[-1])
            da, db = deg[a], deg[b]
            if da == 1 and db >= 3:
                tip, junction = a, b
            elif db == 1 and da >= 3:
                tip, junction = b, a
            else:
                for node in (a, b):
                    if deg[node] >= 3:
                        long_at.add(node)
                continue
            ty, tx = coords[tip]
            jy, jx = coords[junction]
            extent = lengths[i] + max(dist[ty, tx] - 0.5, 0.0)
            if extent < spur_factor * max(dist[jy, jx], 1.0):
                candidates.setdefault(junction, []).append((extent, i))
            else:
                long_at.add(junction)
        if not candidates:
            return graph
        removed = False
        for junction, items in candidates.items():
            items.sort()
            if junction not in long_at:
                items = items[:-1]  # keep the longest branch at a junction of spurs only
            for _, i in items:
                nodes = [int(n) for n in paths[i] if deg[int(n)] < 3]
                if nodes:
                    rc = coords[nodes]
                    skel[rc[:, 0], rc[:, 1]] = False
                    removed = True
        if not removed:
            return graph
    return _skeleton_graph(skel)


def _count_cells(component: np.ndarray, min_cell_px: int) -> int:
    """Enclosed background regions (4-connected) of at least ``min_cell_px`` pixels.

    ``component`` must have a background border (it is a zero-padded crop), so the outside is
    the background region that holds the corner pixel.
    """
    background, n = ndi.label(~component, output=np.int32)
    if n <= 1:
        return 0
    sizes = np.zeros(n + 1, dtype=np.int64)
    for i in range(0, background.shape[0], 512):  # in bands: bincount widens to int64
        sizes += np.bincount(background[i : i + 512].ravel(), minlength=n + 1)
    sizes[0] = 0
    sizes[background[0, 0]] = 0  # the outside
    return int(np.count_nonzero(sizes >= max(1, min_cell_px)))


def _principal_angle(rows: np.ndarray, cols: np.ndarray) -> float:
    """Undirected angle in ``[0, 180)`` of the first principal axis of pixel coordinates."""
    if len(rows) < 2:
        return 0.0
    x = cols.astype(np.float64) - cols.mean()
    y = rows.astype(np.float64) - rows.mean()
    cov = np.array([[np.dot(x, x), np.dot(x, y)], [np.dot(x, y), np.dot(y, y)]])
    vals, vecs = np.linalg.eigh(cov)
    vx, vy = vecs[:, int(np.argmax(vals))]
    angle = math.degrees(math.atan2(-vy, vx)) % 180.0
    return 0.0 if angle >= 180.0 - 1e-9 else angle


def _orientation(angle_deg: float, road_axis_deg: float, tolerance_deg: float) -> str:
    off = abs((angle_deg - road_axis_deg + 90.0) % 180.0 - 90.0)  # in [0, 90]
    if off <= tolerance_deg:
        return "longitudinal"
    if off >= 90.0 - tolerance_deg:
        return "transverse"
    return "diagonal"


@dataclass
class _Geometry:
    length_px: float
    mean_width_px: float
    max_width_px: float
    p90_width_px: float
    area_px: int
    angle_deg: float
    junction_count: int
    cell_count: int
    branches: list[Branch] = field(default_factory=list)


def _measure_component(
    closed: np.ndarray,
    original: np.ndarray,
    spur_factor: float,
    smooth_sigma_px: float,
    min_cell_px: int,
) -> _Geometry:
    """Measure one crack from its zero-padded crops (closed component, original pixels)."""
    skeletonize, _ = _skeleton_tools()
    area = int(np.count_nonzero(original))
    dist = _SparseEDT(original)
    skel = np.asarray(skeletonize(closed, method="lee"), dtype=bool)
    if not skel.any():  # cannot happen for a non-empty component, but stay safe
        skel = closed.copy()
    graph = _prune_spurs(skel, dist, spur_factor)
    cells = _count_cells(closed, min_cell_px)

    if graph is None:  # a single skeleton pixel: a blob
        r, c = np.nonzero(skel)
        d = float(dist[r[0], c[0]]) if len(r) else 0.0
        length = 2.0 * max(d - 0.5, 0.5)
        rows, cols = np.nonzero(original if area else closed)
        mean = area / length
        return _Geometry(length, mean, mean, mean, area, _principal_angle(rows, cols), 0, cells)

    deg = graph.degrees
    coords = graph.coordinates.astype(np.intp)
    junction_mask = np.zeros(skel.shape, dtype=bool)
    jn = coords[deg >= 3]
    junction_mask[jn[:, 0], jn[:, 1]] = True
    junctions = int(ndi.label(junction_mask, structure=_EIGHT)[1]) if len(jn) else 0

    length = 0.0
    widths: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    chains: list[tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]] = []
    for path in graph.paths_list():
        ids = np.asarray(path, dtype=np.intp)
        c = coords[ids]
        sm = smooth_chain(c, smooth_sigma_px)
        if len(sm) < 2:
            continue
        seg = np.hypot(*np.diff(sm, axis=0).T)
        length += float(seg.sum())
        own = np.zeros(len(c))  # length each pixel stands for
        own[:-1] += seg / 2
        own[1:] += seg / 2
        tangent = np.gradient(sm, axis=0)
        tangent /= np.maximum(np.hypot(tangent[:, 0], tangent[:, 1]), 1e-12)[:, None]
        normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
        p = dist.bilinear(sm + normal)
        q = dist.bilinear(sm - normal)
        local = p + q + 1.0
        keep = dist[c[:, 0], c[:, 1]] > 0  # not a pixel of a gap bridged by the closing
        along = np.concatenate([[0.0], np.cumsum(seg)])
        radii = [0.0, 0.0]  # junction radius at each end (0: a free end)
        for k, (end, pos) in enumerate(((ids[0], along), (ids[-1], along[-1] - along))):
            if deg[end] >= 3:  # near a junction d measures the junction, not the crack
                jy, jx = coords[end]
                radii[k] = max(float(dist[jy, jx]), 1.0)
                keep &= pos > radii[k]
        widths.append(local[keep])
        weights.append(own[keep])
        chains.append((c, local, keep, (radii[0], radii[1])))
    ends = coords[deg == 1]
    if len(ends):
        length += float(np.maximum(dist[ends[:, 0], ends[:, 1]] - 0.5, 0.0).sum())
    dots = coords[deg == 0]  # isolated skeleton pixels: fragments a pixel or two across
    if len(dots):
        length += float(2.0 * np.maximum(dist[dots[:, 0], dots[:, 1]] - 0.5, 0.5).sum())
    length = max(length, 1.0)
    mean = area / length

    w = np.concatenate(widths) if widths else np.zeros(0)
    wt = np.concatenate(weights) if weights else np.zeros(0)
    shift = 0.0
    if len(w) and wt.sum() > 0:
        shift = mean - float(np.average(w, weights=wt))
        w = np.maximum(w + shift, 0.0)
        max_w, p90 = float(w.max()), float(np.percentile(w, 90))
    else:
        max_w = p90 = mean
    angle = _principal_angle(coords[:, 0], coords[:, 1])
    branches = [
        Branch(c.astype(np.float64), np.where(keep, np.maximum(local + shift, 0.0), np.nan), ends)
        for c, local, keep, ends in chains
    ]
    return _Geometry(length, mean, max_w, p90, area, angle, junctions, cells, branches)


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rules:
    """The parameters of :func:`measure_cracks`, as one value for the per-crack step."""

    mm_per_px: float | None
    road_axis_deg: float
    min_length_px: float
    scheme: SeverityScheme
    orientation_tolerance_deg: float
    alligator_loops: int
    alligator_junctions: int
    min_cell_px: int
    spur_factor: float
    smooth_sigma_px: float


def _component_crack(
    index: int,
    sl: tuple[slice, slice],
    labels: np.ndarray,
    m: np.ndarray,
    disk: np.ndarray | None,
    pad: int,
    rules: _Rules,
    crack_id: int,
) -> tuple[Crack, list[Branch]] | None:
    """Measure connected group ``index`` of ``labels`` (its bounding slice ``sl``): the crack and
    its skeleton branches in image coordinates, or None when it is noise."""
    y0, x0 = sl[0].start, sl[1].start
    original_crop = np.pad((labels[sl] == index) & m[sl], pad)
    if disk is not None:
        closed_crop = ndi.binary_closing(original_crop, structure=disk) | original_crop
    else:
        closed_crop = original_crop
    geo = _measure_component(
        closed_crop, original_crop, rules.spur_factor, rules.smooth_sigma_px, rules.min_cell_px
    )
    if geo.length_px < rules.min_length_px or geo.area_px == 0:
        return None
    rows, cols = np.nonzero(original_crop)
    bbox = (
        int(x0 + cols.min() - pad),
        int(y0 + rows.min() - pad),
        int(x0 + cols.max() - pad + 1),
        int(y0 + rows.max() - pad + 1),
    )
    loops, junctions = rules.alligator_loops, rules.alligator_junctions
    network = geo.cell_count >= loops or geo.junction_count >= junctions
    orientation = (
        "alligator"
        if network
        else _orientation(geo.angle_deg, rules.road_axis_deg, rules.orientation_tolerance_deg)
    )
    offset = np.array([y0 - pad, x0 - pad], dtype=np.float64)
    shifted = [Branch(b.points + offset, b.widths, b.junction_radius) for b in geo.branches]
    verdict = None
    if rules.mm_per_px is not None:
        verdict = rules.scheme.classify(geo.max_width_px * rules.mm_per_px, rules.mm_per_px)
    return (
        Crack(
            id=crack_id,
            length_px=geo.length_px,
            mean_width_px=geo.mean_width_px,
            max_width_px=geo.max_width_px,
            p90_width_px=geo.p90_width_px,
            area_px=geo.area_px,
            bbox=bbox,
            angle_deg=geo.angle_deg,
            orientation=orientation,
            severity=None if verdict is None else verdict.label,
            mm_per_px=None if rules.mm_per_px is None else float(rules.mm_per_px),
            junction_count=geo.junction_count,
            cell_count=geo.cell_count,
            severity_scheme=None if verdict is None else rules.scheme.name,
            severity_note=None if verdict is None else verdict.note,
            limit_mm=None if verdict is None else verdict.limit_mm,
            over_limit_mm=None if verdict is None else verdict.over_limit_mm,
            branches=tuple(shifted),
        ),
        shifted,
    )


def measure_cracks(
    mask: np.ndarray,
    mm_per_px: float | None = None,
    road_axis_deg: float = 90.0,
    closing_px: int = 2,
    min_length_px: float = 10.0,
    severity: SeverityScheme | str = DEFAULT_SCHEME,
    *,
    orientation_tolerance_deg: float = 30.0,
    alligator_loops: int = 2,
    alligator_junctions: int = 6,
    min_cell_px: int = 16,
    spur_factor: float = 2.0,
    smooth_sigma_px: float = 2.0,
    image: np.ndarray | None = None,
    line_classes: bool = True,
) -> list[Crack]:
    """Split a binary crack mask into cracks and measure each one (see the module docstring).

    Args:
        mask: ``(H, W)`` crack mask; nonzero means crack.
        mm_per_px: Millimetres per pixel; enables the ``_mm`` values and the severity class.
        road_axis_deg: Direction of the road in the image (module angle convention); 90 means
            the road runs up the image.
        closing_px: Radius of the disk closing applied to each crack; fragments separated
            by a gap of up to ``2 * ceil(closing_px / 2)`` pixels are joined into one crack
            (0: no closing and no joining, plain 8-connected components).
        min_length_px: Cracks shorter than this are dropped as noise.
        severity: The severity scheme (:func:`.severity.get_scheme`, or its name) that sorts
            cracks by their maximum width in mm (only with ``mm_per_px``).
        orientation_tolerance_deg: Half-width of the longitudinal and transverse sectors.
        alligator_loops: Enclosed cells that make a crack ``"alligator"``.
        alligator_junctions: Skeleton junctions that make a crack ``"alligator"``.
        min_cell_px: Smallest enclosed background region counted as a cell, in pixels.
        spur_factor: End branches shorter than this times the junction's radius are pruned.
        smooth_sigma_px: Gaussian smoothing of skeleton branches before taking lengths.

    Returns:
        The cracks, numbered from 1 in raster order of their first pixel.

    Raises:
        ValueError: On a mask that is not 2-D or on invalid parameters.
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {m.shape}")
    m = m.astype(bool, copy=False)
    if mm_per_px is not None and not (math.isfinite(mm_per_px) and mm_per_px > 0):
        raise ValueError(f"mm_per_px must be a positive number, got {mm_per_px!r}")
    if closing_px < 0:
        raise ValueError(f"closing_px must be >= 0, got {closing_px!r}")
    scheme = get_scheme(severity) if isinstance(severity, str) else severity
    if not m.any():
        return []

    r = int(closing_px)
    k = (r + 1) // 2
    grouped = ndi.binary_dilation(m, structure=_EIGHT, iterations=k) if k else m
    labels, _ = ndi.label(grouped, structure=_EIGHT)
    del grouped
    disk = _disk(r) if r else None
    pad = r + 2
    cracks: list[Crack] = []
    found: list[tuple[int, tuple[slice, slice], list[Branch]]] = []  # label, slice, branches
    rules = _Rules(
        mm_per_px, road_axis_deg, min_length_px, scheme, orientation_tolerance_deg,
        alligator_loops, alligator_junctions, min_cell_px, spur_factor, smooth_sigma_px,
    )  # fmt: skip
    for index, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        got = _component_crack(index, sl, labels, m, disk, pad, rules, len(cracks) + 1)
        if got is not None:
            cracks.append(got[0])
            found.append((index, sl, got[1]))
    if line_classes and cracks:
        cracks = _with_kinds(cracks, found, labels, m, image, (disk, pad, rules))
    return cracks


def _instances(cracks: Sequence[Crack], found: Sequence[tuple[int, Any, list[Branch]]]):
    return [
        Instance(branches, c.mean_width_px, c.junction_count, c.cell_count)
        for c, (_, _, branches) in zip(cracks, found, strict=True)
    ]


def _split_joints(
    crack: Crack,
    index: int,
    branches: list[Branch],
    flags: list[int],
    labels: np.ndarray,
    mask: np.ndarray,
    remeasure: tuple[np.ndarray | None, int, _Rules],
) -> list[tuple[Crack, tuple[int, Any, list[Branch]], bool]]:
    """Split group ``index`` of ``labels`` between the joints that run through it (``flags``,
    :func:`.lines.line_branches`) and the rest: each pixel goes with its nearest skeleton
    branch; each joint (its pieces on both sides of a crack that crosses it) and each connected
    part of the rest gets a new label (``labels`` is updated) and is measured again as an
    instance of its own (parts below the noise rule are dropped). Returns the parts, each with
    its ``found`` entry and whether it is a joint."""
    disk, pad, rules = remeasure
    x0, y0, x1, y1 = crack.bbox
    m = 4
    sy, sx = slice(max(y0 - m, 0), y1 + m), slice(max(x0 - m, 0), x1 + m)
    region = labels[sy, sx] == index
    seeds = np.zeros(region.shape, np.int32)  # 1: the rest, 2 + j: joint j
    for want_joint in (True, False):  # the rest drawn over joints at shared junction pixels
        for b, joint in zip(branches, flags, strict=True):
            if (joint >= 0) != want_joint:
                continue
            pts = np.rint(b.points - [sy.start, sx.start]).astype(np.intp)
            ok = (pts >= 0).all(1) & (pts[:, 0] < region.shape[0]) & (pts[:, 1] < region.shape[1])
            seeds[pts[ok, 0], pts[ok, 1]] = 2 + joint if want_joint else 1
    if not (seeds >= 2).any() or not (seeds == 1).any():
        return []
    nearest = ndi.distance_transform_edt(seeds == 0, return_distances=False, return_indices=True)
    part = np.where(region, seeds[nearest[0], nearest[1]], 0)
    pieces = [(part == j, True) for j in range(2, int(part.max()) + 1)]
    rest, n = ndi.label(part == 1, structure=_EIGHT)
    pieces += [(rest == k, False) for k in range(1, n + 1)]
    out = []
    top = int(labels.max())
    for piece, is_joint in pieces:
        rows, cols = np.nonzero(piece)
        if not len(rows):
            continue
        top += 1
        labels[sy, sx][piece] = top
        full = (slice(sy.start + rows.min(), sy.start + rows.max() + 1),
                slice(sx.start + cols.min(), sx.start + cols.max() + 1))  # fmt: skip
        got = _component_crack(top, full, labels, mask, disk, pad, rules, crack.id)
        if got is not None:
            out.append((got[0], (top, full, got[1]), is_joint))
    return out


def _with_kinds(
    cracks: list[Crack],
    found: list[tuple[int, tuple[slice, slice], list[Branch]]],
    labels: np.ndarray,
    mask: np.ndarray,
    image: np.ndarray | None,
    remeasure: tuple[np.ndarray | None, int, _Rules],
) -> list[Crack]:
    """The cracks with their ``kind`` and line features (:func:`.lines.classify_lines`), the
    joints that run through a crack split off it (:func:`_split_joints`) and the cracks
    renumbered in order; the pixels of each ``joint_or_line`` instance are kept (tight
    bounding-box crop) for drawing."""
    from dataclasses import replace

    verdicts = classify_lines(_instances(cracks, found), image)
    joints: set[int] = set()  # positions (in the new list) of joints split off a crack
    if any(v.kind == CRACK and len(f[2]) > 1 for v, f in zip(verdicts, found, strict=True)):
        new_cracks, new_found = [], []
        for crack, entry, verdict in zip(cracks, found, verdicts, strict=True):
            parts = []
            if verdict.kind == CRACK and len(entry[2]) > 1:
                inst = Instance(entry[2], crack.mean_width_px, crack.junction_count)
                flags = line_branches(inst, image)
                if max(flags) >= 0:
                    parts = _split_joints(crack, entry[0], entry[2], flags, labels, mask, remeasure)
            if not parts:
                parts = [(crack, entry, False)]
            for part, part_entry, is_joint in parts:
                if is_joint:
                    joints.add(len(new_cracks))
                new_cracks.append(part)
                new_found.append(part_entry)
        if joints:
            cracks, found = new_cracks, new_found
            verdicts = classify_lines(_instances(cracks, found), image)
    out = []
    rows = zip(cracks, found, verdicts, strict=True)
    for i, (crack, (index, _sl, _), verdict) in enumerate(rows):
        if i in joints and verdict.kind != LINE:
            verdict = replace(verdict, kind=LINE, reason=SPLIT_REASON)
        footprint = None
        if verdict.kind == LINE:
            x0, y0, x1, y1 = crack.bbox
            footprint = (y0, x0, (labels[y0:y1, x0:x1] == index) & mask[y0:y1, x0:x1])
        out.append(replace(crack, id=i + 1, kind=verdict.kind, line=verdict, footprint=footprint))
    return out


def image_summary(
    cracks: Sequence[Crack],
    shape_hw: tuple[int, int],
    mm_per_px: float | None = None,
    keep_lines: bool = False,
    severity: SeverityScheme | str = DEFAULT_SCHEME,
) -> dict[str, Any]:
    """Totals for one image.

    Args:
        cracks: The image's cracks from :func:`measure_cracks`.
        shape_hw: Image size ``(H, W)`` in pixels.
        mm_per_px: Scale; by default the cracks' own ``mm_per_px`` when they all share one.
        keep_lines: count ``joint_or_line`` instances in the totals and classes too (by
            default they are left out and reported apart, as ``line_count`` /
            ``line_length_px``).
        severity: The scheme the cracks were classified by (its classes make ``by_severity``).

    Returns:
        ``crack_count``, ``height_px``, ``width_px``, ``total_length_px``, ``total_area_px2``,
        ``max_width_px`` (over cracks, 0 without cracks), ``density_px_per_mpx`` (crack
        length per megapixel of image), ``by_orientation`` (``{class: {"count",
        "length_px"}}`` for every class) and ``by_severity`` (the same per severity class,
        empty without a scale); with a scale also ``mm_per_px``, ``total_length_m``,
        ``total_area_mm2``, ``max_width_mm``, ``imaged_area_m2``, ``density_m_per_m2``
        (metres of crack per square metre imaged), ``length_m`` in every class entry,
        ``severity_scheme`` (its ``exposure`` and ``limit_mm`` for en1992),
        ``min_resolvable_width_mm`` (one pixel) and ``sub_pixel_count`` (cracks whose severity
        rests on a sub-pixel width).
    """
    scheme = get_scheme(severity) if isinstance(severity, str) else severity
    h, w = (int(s) for s in shape_hw)
    if h <= 0 or w <= 0:
        raise ValueError(f"shape_hw must be positive, got {tuple(shape_hw)!r}")
    if mm_per_px is None:
        scales = {c.mm_per_px for c in cracks}
        if len(scales) == 1:
            mm_per_px = scales.pop()
    lines = [c for c in cracks if not counts_in_totals(c.kind, keep_lines)]
    cracks = [c for c in cracks if counts_in_totals(c.kind, keep_lines)]
    length_px = float(sum(c.length_px for c in cracks))
    area_px = int(sum(c.area_px for c in cracks))
    max_width = float(max((c.max_width_px for c in cracks), default=0.0))
    out: dict[str, Any] = {
        "crack_count": len(cracks),
        "height_px": h,
        "width_px": w,
        "total_length_px": round(length_px, _ROUND),
        "total_area_px2": area_px,
        "max_width_px": round(max_width, _ROUND),
        "density_px_per_mpx": round(length_px / (h * w / 1e6), _ROUND),
        "line_count": len(lines),
        "line_length_px": round(float(sum(c.length_px for c in lines)), _ROUND),
        "keep_lines": bool(keep_lines),
    }

    def classes(names: Iterable[str], key: str) -> dict[str, dict[str, Any]]:
        table: dict[str, dict[str, Any]] = {}
        for name in names:
            members = [c for c in cracks if getattr(c, key) == name]
            px = float(sum(c.length_px for c in members))
            entry: dict[str, Any] = {"count": len(members), "length_px": round(px, _ROUND)}
            if mm_per_px is not None:
                entry["length_m"] = round(px * mm_per_px / 1000.0, 6)
            table[name] = entry
        return table

    out["by_orientation"] = classes(ORIENTATIONS, "orientation")
    out["by_severity"] = classes(scheme.labels, "severity") if mm_per_px is not None else {}
    if mm_per_px is not None:
        s = float(mm_per_px)
        out["severity_scheme"] = scheme.name
        if scheme.exposure is not None:
            out["exposure"], out["limit_mm"] = scheme.exposure, scheme.limit_mm
        out["min_resolvable_width_mm"] = s
        out["sub_pixel_count"] = sum(c.severity_note == SUB_PIXEL for c in cracks)
        imaged_m2 = h * w * (s / 1000.0) ** 2
        out["mm_per_px"] = s
        out["total_length_m"] = round(length_px * s / 1000.0, 6)
        out["total_area_mm2"] = round(area_px * s * s, _ROUND)
        out["max_width_mm"] = round(max_width * s, _ROUND)
        out["imaged_area_m2"] = round(imaged_m2, 6)
        out["density_m_per_m2"] = round(length_px * s / 1000.0 / imaged_m2, 6)
    return out


def line_pixels(cracks: Iterable[Crack], shape_hw: tuple[int, int]) -> np.ndarray | None:
    """Mask of the ``joint_or_line`` instances (drawn in their own colour), or None if none."""
    out = None
    for c in cracks:
        if c.kind == LINE and c.footprint is not None:
            y0, x0, fp = c.footprint
            if out is None:
                out = np.zeros(shape_hw, bool)
            out[y0 : y0 + fp.shape[0], x0 : x0 + fp.shape[1]] |= fp
    return out


def crack_rows(cracks: Iterable[Crack], image: str) -> list[dict[str, Any]]:
    """Rows for :func:`write_cracks_csv`: ``{"image": image, **crack.as_row()}`` per crack."""
    return [{"image": image, **c.as_row()} for c in cracks]


def write_cracks_csv(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write crack rows as CSV, atomically; the path.

    Columns are the union of the rows' keys in order of first appearance, with ``image``
    first; a value a row lacks (or ``None``) is written as an empty cell.

    Args:
        rows: One dict per crack, e.g. from :func:`crack_rows`.
        path: Output file.

    Returns:
        The path written.
    """
    columns: list[str] = ["image"]
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)

    def write(f: Any) -> None:
        writer = csv.DictWriter(f, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})

    return atomic_text(path, write, newline="")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Crack):
        return value.as_row()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def write_cracks_json(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` (e.g. per-image summaries and crack rows) as JSON, atomically; the path.

    numpy scalars and arrays are converted, and a :class:`Crack` is written as its
    :meth:`Crack.as_row`. NaN and infinity are refused (``ValueError``): they are not JSON.

    Args:
        obj: JSON-serialisable object.
        path: Output file.

    Returns:
        The path written.
    """

    def write(f: Any) -> None:
        json.dump(obj, f, indent=2, allow_nan=False, default=_json_default)
        f.write("\n")

    return atomic_text(path, write)
