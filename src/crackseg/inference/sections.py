"""Survey sections along the drive (``predict --section-m M``) and the report's offline map.

Automated pavement surveys report distress per fixed-length section of the road (AASHTO R 85,
*Quantifying Cracks in Asphalt Pavement Surfaces from Collected Pavement Images*: crack length
per section, split by severity). Here the photos with GPS are put in the order they were taken
(EXIF ``DateTimeOriginal``, then position, then name), the track is the polyline through their
positions, and a photo belongs to the section its cumulative distance along the track falls in:
section ``k`` covers ``[k M, (k + 1) M)``. Distances between consecutive photos are taken on
the local tangent plane (:func:`.geo.enu_to_lonlat`'s radii; exact enough between photos a few
metres to a few hundred metres apart). ``sections.csv`` lists per section its extent, the
photos in it, and the crack length in metres (photos with a scale only), in total and per
severity class of the run's scheme. :func:`map_svg` draws the photo positions coloured by crack
density as an inline SVG: no tiles, no network.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["map_svg", "ordered_track", "section_rows", "survey_html", "write_sections_csv"]

_R_DEG = math.pi / 180.0 * 6371008.8  # metres per degree of a great circle (mean radius)


def _en(origin: Mapping[str, float], gps: Mapping[str, float]) -> tuple[float, float]:
    """East / north metres of ``gps`` from ``origin`` (flat, equirectangular at the origin)."""
    east = (gps["lon"] - origin["lon"]) * _R_DEG * math.cos(math.radians(origin["lat"]))
    return east, (gps["lat"] - origin["lat"]) * _R_DEG


def ordered_track(photos: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], float]]:
    """The photos with GPS in drive order, each with its cumulative distance along the track."""
    located = [p for p in photos if "lat" in (p.get("gps") or {}) and "lon" in p["gps"]]
    located.sort(
        key=lambda p: (
            p["gps"].get("taken") is None,
            p["gps"].get("taken") or "",
            p["gps"]["lat"],
            p["gps"]["lon"],
            p["name"],
        )
    )
    out: list[tuple[Mapping[str, Any], float]] = []
    along = 0.0
    for i, p in enumerate(located):
        if i:
            along += math.hypot(*_en(located[i - 1]["gps"], p["gps"]))
        out.append((p, along))
    return out


def _summary(photo: Mapping[str, Any]) -> Mapping[str, Any]:
    return photo.get("summary") or {}


def section_rows(
    photos: Sequence[Mapping[str, Any]], section_m: float, labels: Sequence[str]
) -> list[dict[str, Any]]:
    """One row per section (columns in the module docstring), empty sections included."""
    track = ordered_track(photos)
    if not track:
        return []
    count = int(track[-1][1] // section_m) + 1
    rows: list[dict[str, Any]] = []
    for k in range(count):
        members = [p for p, d in track if int(d // section_m) == k]
        scaled = [p for p in members if _summary(p).get("total_length_m") is not None]
        row: dict[str, Any] = {
            "section": k + 1,
            "start_m": round(k * section_m, 3),
            "end_m": round((k + 1) * section_m, 3),
            "photo_count": len(members),
            "photos_with_scale": len(scaled),
            "crack_count": sum(int(_summary(p).get("crack_count", 0)) for p in members),
            "crack_length_m": round(sum(p["summary"]["total_length_m"] for p in scaled), 4),
        }
        for label in labels:
            row[f"{label}_m"] = round(
                sum(
                    ((p["summary"].get("by_severity") or {}).get(label) or {}).get("length_m", 0.0)
                    for p in scaled
                ),
                4,
            )
        row["first_image"] = members[0]["name"] if members else None
        row["last_image"] = members[-1]["name"] if members else None
        rows.append(row)
    return rows


def _density(photo: Mapping[str, Any]) -> tuple[float, str]:
    s = photo.get("summary") or {}
    if s.get("density_m_per_m2") is not None:
        return float(s["density_m_per_m2"]), "m/m\u00b2"
    return float(s.get("density_px_per_mpx") or 0.0), "px/Mpx"


def _colour(t: float) -> str:
    """Green (0) through yellow to red (1)."""
    t = min(max(t, 0.0), 1.0)
    r, g = (int(255 * min(1.0, 2 * t)), int(200 * min(1.0, 2 * (1 - t))))
    return f"rgb({r},{g},40)"


def map_svg(photos: Sequence[Mapping[str, Any]], width: int = 640, height: int = 360) -> str:
    """An inline SVG of the photos' positions along the track, coloured by crack density."""
    track = ordered_track(photos)
    if not track:
        return ""
    origin = track[0][0]["gps"]
    pts = [_en(origin, p["gps"]) for p, _ in track]
    xs, ys = [e for e, _ in pts], [n for _, n in pts]
    span = max(max(xs) - min(xs), max(ys) - min(ys), 1.0)
    pad = 24
    k = min(width - 2 * pad, height - 2 * pad) / span
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2

    def xy(e: float, n: float) -> tuple[float, float]:
        return width / 2 + (e - cx) * k, height / 2 - (n - cy) * k

    dens = [_density(p) for p, _ in track]
    top = max((d for d, _ in dens), default=0.0) or 1.0
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(e, n) for e, n in pts))
    dots = []
    for (p, along), (e, n), (d, unit) in zip(track, pts, dens, strict=True):
        x, y = xy(e, n)
        tip = html.escape(f"{p['name']}: {d:.3g} {unit} at {along:.0f} m", quote=True)
        dots.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="{_colour(d / top)}" '
            f'stroke="#223" stroke-width="1" data-name="{html.escape(p["name"], quote=True)}">'
            f"<title>{tip}</title></circle>"
        )
    bar = round(10 ** math.floor(math.log10(span / 3))) if span >= 3 else 1
    return (
        f'<svg id="survey-map" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="Photo positions by crack '
        f'density"><rect width="{width}" height="{height}" fill="#f8f9fb"/>'
        f'<polyline points="{path}" fill="none" stroke="#9aa6b4" stroke-width="2"/>'
        + "".join(dots)
        + f'<line x1="{pad}" y1="{height - 10}" x2="{pad + bar * k:.1f}" y2="{height - 10}" '
        f'stroke="#223" stroke-width="2"/><text x="{pad}" y="{height - 14}" font-size="11">'
        f'{bar:g} m</text><text x="{width - pad}" y="16" font-size="11" '
        f'text-anchor="end">north up; green low, red high crack density</text></svg>'
    )


def survey_html(
    photos: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]], section_m: float | None
) -> str:
    """The report's survey section: the map and (with ``section_m``) the section table."""
    svg = map_svg(photos)
    if not svg:
        return ""
    table = ""
    if rows:
        keys = list(rows[0])
        head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(r.get(k, '')))}</td>" for k in keys) + "</tr>"
            for r in rows
        )
        table = (
            f'<div class="panel" id="sections"><h3>Sections of {section_m:g} m</h3>'
            f'<div class="tablebox"><table><thead><tr>{head}</tr></thead><tbody>{body}'
            "</tbody></table></div></div>"
        )
    return (
        '<section id="survey"><h2>Survey</h2><div class="panel" id="map">'
        f"{svg}</div>{table}</section>"
    )


def write_sections_csv(rows: Sequence[Mapping[str, Any]], path: Any) -> Any:
    """``sections.csv``, atomically (the crack tables' writer); the path."""
    import csv

    from crackseg.atomic import atomic_text

    columns = list(rows[0]) if rows else ["section", "start_m", "end_m", "photo_count"]

    def write(f: Any) -> None:
        writer = csv.DictWriter(f, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})

    return atomic_text(path, write, newline="")
