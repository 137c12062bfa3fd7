"""A photo's scale (millimetres per pixel) and where it came from.

``crackseg predict --marker aruco:SIDE_MM[:DICT]`` looks for a printed ArUco marker of known side
in each photo (OpenCV's ``cv2.aruco.ArucoDetector``, sub-pixel corner refinement) and sets that
photo's scale from it: ``SIDE_MM`` over the mean of the marker's four side lengths in pixels.
Sides that differ by more than :data:`PERSPECTIVE_TOLERANCE` (5 %) mean the photo was not taken
square to the surface: the scale then holds near the marker only, and the record says so
(``perspective: true``). With several markers the largest (most pixels, least relative error) is
used. The marker's own black-and-white pattern is not a crack: its outline, grown by
:data:`MARKER_MARGIN`, is left out of the crack map.

Sources, in order of precedence (:func:`photo_scale`): ``marker``; ``given`` (``--mm-per-px``);
``exif-gsd`` (an estimate from the camera's height and focal length, :mod:`.geo`); none (no mm
values). The smallest width a scale resolves is one pixel (:mod:`.severity`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from crackseg.errors import CrackSegError

__all__ = [
    "DEFAULT_DICTIONARY",
    "MARKER_MARGIN",
    "PERSPECTIVE_TOLERANCE",
    "MarkerFound",
    "MarkerSpec",
    "PhotoScale",
    "find_marker",
    "parse_marker",
    "photo_scale",
]

DEFAULT_DICTIONARY = "DICT_4X4_50"
#: Relative spread of the four side lengths above which the marker is seen in perspective.
PERSPECTIVE_TOLERANCE = 0.05
#: The marker's outline is grown by this share of its side before it is left out of the map.
MARKER_MARGIN = 0.15


@dataclass(frozen=True)
class MarkerSpec:
    """What ``--marker`` asks for: an ArUco marker of ``side_mm`` from ``dictionary``."""

    side_mm: float
    dictionary: str = DEFAULT_DICTIONARY

    def describe(self) -> str:
        return f"aruco:{self.side_mm:g}:{self.dictionary}"


@dataclass(frozen=True)
class MarkerFound:
    """A marker found in a photo: its id, corners ``(4, 2)`` as ``(x, y)`` px, side lengths."""

    marker_id: int
    corners: np.ndarray
    sides_px: tuple[float, float, float, float]
    side_mm: float

    @property
    def mm_per_px(self) -> float:
        """``side_mm`` over the mean side length."""
        return self.side_mm / float(np.mean(self.sides_px))

    @property
    def perspective(self) -> bool:
        """True when the sides differ by more than :data:`PERSPECTIVE_TOLERANCE`."""
        return (max(self.sides_px) - min(self.sides_px)) / float(
            np.mean(self.sides_px)
        ) > PERSPECTIVE_TOLERANCE

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.marker_id,
            "side_mm": self.side_mm,
            "sides_px": [round(s, 2) for s in self.sides_px],
            "corners_px": np.round(self.corners, 2).tolist(),
            "perspective": self.perspective,
        }


@dataclass(frozen=True)
class PhotoScale:
    """A photo's scale: ``mm_per_px`` (or ``None``), its ``source`` and the marker behind it.

    ``searched`` is True when a marker was looked for (found or not)."""

    mm_per_px: float | None = None
    source: str | None = None
    marker: MarkerFound | None = None
    searched: bool = False

    def record(self) -> dict[str, Any]:
        """The fields of this photo's entry in ``predictions.json``."""
        out: dict[str, Any] = {"mm_per_px": self.mm_per_px, "mm_per_px_source": self.source}
        if self.searched:
            out["marker"] = None if self.marker is None else self.marker.describe()
        return out

    def ignore_mask(self, shape_hw: tuple[int, int]) -> np.ndarray | None:
        """The marker's outline grown by :data:`MARKER_MARGIN`: pixels that are not surface."""
        if self.marker is None:
            return None
        import cv2

        c = self.marker.corners
        centre = c.mean(axis=0)
        grown = centre + (c - centre) * (1.0 + 2.0 * MARKER_MARGIN)
        mask = np.zeros(shape_hw, np.uint8)
        cv2.fillConvexPoly(mask, np.round(grown).astype(np.int32), 1)
        return mask.astype(bool)


def parse_marker(text: str) -> MarkerSpec:
    """``aruco:SIDE_MM[:DICT]`` -> :class:`MarkerSpec`; CrackSegError naming ``--marker`` else."""
    import cv2

    parts = str(text).strip().split(":")
    usage = "give aruco:SIDE_MM[:DICT], e.g. aruco:50 or aruco:50:DICT_4X4_50"
    if len(parts) not in (2, 3) or parts[0].lower() != "aruco":
        raise CrackSegError(f"--marker {text}: {usage}")
    try:
        side = float(parts[1])
    except ValueError:
        side = math.nan
    if not (math.isfinite(side) and 0 < side <= 10_000):
        raise CrackSegError(
            f"--marker {text}: the side must be the printed marker's side in mm, > 0 and at "
            f"most 10000 ({usage})"
        )
    name = parts[2].strip().upper() if len(parts) == 3 else DEFAULT_DICTIONARY
    if not name.startswith("DICT_"):
        name = "DICT_" + name
    if not isinstance(getattr(cv2.aruco, name, None), int):
        known = sorted(n for n in dir(cv2.aruco) if n.startswith("DICT_") and n.upper() == n)
        raise CrackSegError(
            f"--marker {text}: unknown ArUco dictionary {name}; give one of {', '.join(known)}"
        )
    return MarkerSpec(side, name)


def find_marker(image: np.ndarray, spec: MarkerSpec) -> MarkerFound | None:
    """The largest marker of ``spec.dictionary`` in an RGB (or grey) uint8 photo, or ``None``."""
    import cv2

    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, spec.dictionary))
    corners, ids, _rejected = cv2.aruco.ArucoDetector(dictionary, params).detectMarkers(grey)
    if ids is None or not len(corners):
        return None
    quads = [np.asarray(c, np.float64).reshape(4, 2) for c in corners]
    best = max(range(len(quads)), key=lambda i: cv2.contourArea(quads[i].astype(np.float32)))
    q = quads[best]
    sides = tuple(float(np.hypot(*(q[(k + 1) % 4] - q[k]))) for k in range(4))
    marker_id = int(np.asarray(ids).reshape(-1)[best])
    return MarkerFound(marker_id, q, sides, spec.side_mm)  # type: ignore[arg-type]


def photo_scale(
    image: np.ndarray,
    given: float | None = None,
    marker: MarkerSpec | None = None,
    estimate: float | None = None,
) -> PhotoScale:
    """The scale of one photo: its marker's, else ``given`` (``--mm-per-px``), else
    ``estimate`` (the EXIF ground sample distance), else none."""
    found = find_marker(image, marker) if marker is not None else None
    searched = marker is not None
    if found is not None:
        return PhotoScale(found.mm_per_px, "marker", found, searched)
    if given is not None:
        return PhotoScale(float(given), "given", None, searched)
    if estimate is not None:
        return PhotoScale(float(estimate), "exif-gsd", None, searched)
    return PhotoScale(None, None, None, searched)
