"""Where a photo and its cracks are: EXIF GPS in, RFC 7946 GeoJSON out (``predict --geojson``).

:func:`read_photo_info` reads a photo's position (EXIF GPS latitude, longitude, altitude),
heading (``GPSImgDirection``), time (``DateTimeOriginal``) and camera (``FocalLengthIn35mmFilm``;
a drone's height above its take-off point from the XMP ``drone-dji:RelativeAltitude``) with
Pillow (``Image.getexif().get_ifd(0x8825)``). :func:`write_geojson` writes ``cracks.geojson``:
a FeatureCollection in WGS 84 longitude / latitude (RFC 7946: no ``crs`` member), one Feature
per photo (a Point at its position, ``geometry: null`` without GPS) and one per crack.

Placing cracks. A photo taken looking straight down (``view="nadir"``) with a known scale maps
pixel ``(x, y)`` to the ground at ``s = mm_per_px / 1000`` metres per pixel around the photo
centre, the image's top edge pointing to ``heading`` (degrees clockwise from north: EXIF
``GPSImgDirection`` or ``--heading``; north when neither is known, recorded as such):
``right = (x - cx) s``, ``up = (cy - y) s``, ``east = right cos h + up sin h``,
``north = up cos h - right sin h``. East / north metres become degrees on the local tangent
plane of the WGS 84 ellipsoid (meridian and prime-vertical radii of curvature at the photo's
latitude). Over a photo's few metres this is exact to far below a millimetre (the neglected
terms grow with ``(d / R)^2``, ``R`` ~ 6400 km), so no projection library (pyproj) is needed.
A crack becomes a LineString along its skeleton (a MultiLineString when it branches), its
pixel polyline kept in ``pixel_polyline``. An oblique photo, or one without a scale, cannot
be mapped pixel by pixel: its cracks are Points at the photo position.

Scale from EXIF (``exif-gsd``, an estimate): ground sample distance
``H * 43.27 mm / (f35 * diagonal_px)``, with ``H`` the camera's height above the ground and
``f35`` the 35 mm equivalent focal length (defined on the 43.27 mm diagonal of a 36 x 24 mm
frame). ``H`` must be a height above the ground: the XMP ``RelativeAltitude`` that drones write
(above take-off, so right for flat sites). EXIF ``GPSAltitude`` is above sea level and is not
used for it: over ground at 300 m it would make the scale many times too large.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "PhotoInfo",
    "enu_to_lonlat",
    "feature_collection",
    "gsd_mm_per_px",
    "pixel_polylines",
    "read_photo_info",
    "write_geojson",
]

#: WGS 84 semi-major axis (m) and first eccentricity squared.
WGS84_A = 6378137.0
WGS84_E2 = 6.69437999014e-3
#: Diagonal of the 36 x 24 mm frame that 35 mm equivalent focal lengths refer to.
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
#: Decimals of longitude / latitude written (1e-7 degrees: about 1 cm).
DECIMALS = 7
#: Tolerance of the pixel polylines' simplification (Douglas-Peucker), px.
SIMPLIFY_PX = 0.75

_GPS_IFD, _EXIF_IFD = 0x8825, 0x8769
_RELATIVE_ALT = re.compile(rb"RelativeAltitude(?:=\"|>)\s*([+-]?[0-9.]+)")


@dataclass(frozen=True)
class PhotoInfo:
    """What a photo's metadata says about where and how it was taken (``None``: not known)."""

    lat: float | None = None
    lon: float | None = None
    alt_m: float | None = None
    heading_deg: float | None = None
    taken: str | None = None  # EXIF DateTimeOriginal, "YYYY:MM:DD HH:MM:SS"
    focal_35mm: float | None = None
    relative_alt_m: float | None = None

    @property
    def has_position(self) -> bool:
        return self.lat is not None and self.lon is not None

    def record(self) -> dict[str, Any]:
        """The fields of this photo's ``gps`` entry in ``predictions.json``."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def _ratio(value: Any) -> float:
    if isinstance(value, tuple) and len(value) == 2:  # an old-style (numerator, denominator)
        return float(value[0]) / float(value[1])
    return float(value)


def _degrees(dms: Any, ref: Any, negative: str) -> float | None:
    try:
        d, m, s = (_ratio(v) for v in dms)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = d + m / 60.0 + s / 3600.0
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    if str(ref).strip().upper() == negative:
        value = -value
    return value if math.isfinite(value) else None


def _number(value: Any) -> float | None:
    try:
        v = _ratio(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return v if math.isfinite(v) else None


def read_photo_info(path: str | Path) -> PhotoInfo:
    """Position, heading, time and camera of a photo from its EXIF (and XMP); an empty
    :class:`PhotoInfo` for a file without them or one Pillow cannot open."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            exif = im.getexif()
            gps = exif.get_ifd(_GPS_IFD)
            sub = exif.get_ifd(_EXIF_IFD)
            xmp = im.info.get("xmp") or b""
    except (OSError, ValueError, SyntaxError):
        return PhotoInfo()
    lat = _degrees(gps.get(2), gps.get(1, "N"), "S") if 2 in gps else None
    lon = _degrees(gps.get(4), gps.get(3, "E"), "W") if 4 in gps else None
    if lat is not None and not -90 <= lat <= 90 or lon is not None and not -180 <= lon <= 180:
        lat = lon = None
    alt = _number(gps.get(6)) if 6 in gps else None
    if alt is not None and gps.get(5) in (1, b"\x01"):
        alt = -alt  # below sea level
    heading = _number(gps.get(17)) if 17 in gps else None
    taken = sub.get(0x9003) or exif.get(0x0132)
    f35 = _number(sub.get(0xA405)) if 0xA405 in sub else None
    rel = _RELATIVE_ALT.search(xmp if isinstance(xmp, bytes) else str(xmp).encode())
    return PhotoInfo(
        lat=lat,
        lon=lon,
        alt_m=alt,
        heading_deg=None if heading is None else heading % 360.0,
        taken=str(taken).strip() if taken else None,
        focal_35mm=f35 if f35 and f35 > 0 else None,
        relative_alt_m=float(rel.group(1)) if rel else None,
    )


def gsd_mm_per_px(info: PhotoInfo, width_px: int, height_px: int) -> float | None:
    """The ground sample distance of a nadir photo (mm per px) from its height above the
    ground and 35 mm equivalent focal length (module docstring), or ``None`` when unknown."""
    h = info.relative_alt_m
    if h is None or h <= 0 or info.focal_35mm is None:
        return None
    diagonal_px = math.hypot(width_px, height_px)
    return h * 1000.0 * FULL_FRAME_DIAGONAL_MM / (info.focal_35mm * diagonal_px)


def enu_to_lonlat(lat: float, lon: float, east_m: Any, north_m: Any) -> tuple[Any, Any]:
    """Longitude and latitude of points ``east_m`` / ``north_m`` metres from ``(lat, lon)`` on
    the local tangent plane (exact to well under a millimetre over tens of metres)."""
    phi = math.radians(lat)
    w = math.sqrt(1.0 - WGS84_E2 * math.sin(phi) ** 2)
    meridian = WGS84_A * (1.0 - WGS84_E2) / w**3
    normal = WGS84_A / w
    lat_out = lat + np.degrees(np.asarray(north_m, float) / meridian)
    lon_out = lon + np.degrees(np.asarray(east_m, float) / (normal * math.cos(phi)))
    return lon_out, lat_out


def pixel_polylines(cracks: Sequence[Any]) -> dict[str, list[list[list[float]]]]:
    """Each crack's skeleton branches as ``[[x, y], ...]`` pixel polylines, simplified
    (Douglas-Peucker, :data:`SIMPLIFY_PX`), by crack id (as text: a JSON key); single-point
    branches dropped."""
    import cv2

    out: dict[str, list[list[list[float]]]] = {}
    for c in cracks:
        lines = []
        for b in getattr(c, "branches", ()):
            xy = np.asarray(b.points, np.float32)[:, ::-1].reshape(-1, 1, 2)
            if len(xy) < 2:
                continue
            simple = cv2.approxPolyDP(xy, SIMPLIFY_PX, False).reshape(-1, 2)
            if len(simple) >= 2:
                lines.append(np.round(simple.astype(float), 2).tolist())
        out[str(c.id)] = lines
    return out


def _placer(photo: Mapping[str, Any], view: str):
    """``(x, y) px -> [lon, lat]`` for a mapped nadir photo with GPS and a scale, else None."""
    gps = photo.get("gps") or {}
    scale = photo.get("mm_per_px")
    if view != "nadir" or scale is None or "lat" not in gps or "lon" not in gps:
        return None
    s = float(scale) / 1000.0
    h = math.radians(float(photo.get("heading_deg") or 0.0))
    cx, cy = (float(photo["width"]) - 1) / 2.0, (float(photo["height"]) - 1) / 2.0

    def place(xy: Sequence[Sequence[float]]) -> list[list[float]]:
        p = np.asarray(xy, float)
        right, up = (p[:, 0] - cx) * s, (cy - p[:, 1]) * s
        east = right * math.cos(h) + up * math.sin(h)
        north = up * math.cos(h) - right * math.sin(h)
        lon, lat = enu_to_lonlat(gps["lat"], gps["lon"], east, north)
        pairs = np.round(np.stack([lon, lat], axis=1), DECIMALS)
        return pairs.tolist()

    return place


_CRACK_PROPERTIES = (
    "kind",
    "length_px",
    "length_m",
    "mean_width_mm",
    "max_width_mm",
    "angle_deg",
    "orientation",
    "severity",
    "severity_scheme",
    "severity_note",
    "limit_mm",
    "over_limit_mm",
)


def _photo_feature(photo: Mapping[str, Any], view: str) -> dict[str, Any]:
    gps = photo.get("gps") or {}
    summary = photo.get("summary") or {}
    props: dict[str, Any] = {
        "feature": "photo",
        "image": photo["name"],
        "source": photo.get("source"),
        "taken": gps.get("taken"),
        "view": view,
        "heading_deg": photo.get("heading_deg"),
        "heading_source": photo.get("heading_source"),
        "mm_per_px": photo.get("mm_per_px"),
        "mm_per_px_source": photo.get("mm_per_px_source"),
        "crack_count": summary.get("crack_count"),
        "total_length_m": summary.get("total_length_m"),
        "density_m_per_m2": summary.get("density_m_per_m2"),
    }
    geometry = None
    if "lat" in gps and "lon" in gps:
        point = [round(gps["lon"], DECIMALS), round(gps["lat"], DECIMALS)]
        if gps.get("alt_m") is not None:
            point.append(round(float(gps["alt_m"]), 2))
        geometry = {"type": "Point", "coordinates": point}
    else:
        props["note"] = "no GPS in the photo's EXIF: position unknown"
    return {"type": "Feature", "geometry": geometry, "properties": props}


def _crack_feature(photo: Mapping[str, Any], row: Mapping[str, Any], place, point) -> dict:
    lines = (photo.get("polylines") or {}).get(str(row["id"]), [])
    scale = photo.get("mm_per_px")
    props: dict[str, Any] = {"feature": "crack", "image": photo["name"], "id": row["id"]}
    for key in _CRACK_PROPERTIES:
        props[key] = row.get(key)
    if scale is not None:
        props["length_m"] = round(float(row["length_px"]) * float(scale) / 1000.0, 6)
    props["mm_per_px_source"] = photo.get("mm_per_px_source")
    props["pixel_polyline"] = lines
    geometry = None
    if place is not None and lines:
        placed = [place(line) for line in lines]
        geometry = (
            {"type": "LineString", "coordinates": placed[0]}
            if len(placed) == 1
            else {"type": "MultiLineString", "coordinates": placed}
        )
        props["placed"] = "skeleton"
    elif point is not None:
        geometry = {"type": "Point", "coordinates": point["coordinates"][:2]}
        props["placed"] = "photo position"
    return {"type": "Feature", "geometry": geometry, "properties": props}


def feature_collection(photos: Sequence[Mapping[str, Any]], view: str = "nadir") -> dict:
    """The GeoJSON FeatureCollection of done photo records (``name``, ``source``, ``width``,
    ``height``, ``gps``, ``heading_deg``, ``mm_per_px``, ``summary``, ``cracks`` rows and
    ``polylines``): per photo a photo Feature, then one Feature per crack."""
    features = []
    for photo in photos:
        feature = _photo_feature(photo, view)
        features.append(feature)
        place = _placer(photo, view)
        for row in photo.get("cracks") or []:
            features.append(_crack_feature(photo, row, place, feature["geometry"]))
    return {"type": "FeatureCollection", "features": features}


def write_geojson(photos: Sequence[Mapping[str, Any]], path: str | Path, view: str = "nadir"):
    """:func:`feature_collection` written atomically to ``path`` (the crack tables' writer)."""
    from .measure import write_cracks_json

    return write_cracks_json(feature_collection(photos, view), path)
