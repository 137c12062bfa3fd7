"""A self-contained HTML report of a ``crackseg predict --measure`` run.

:func:`write_html_report` writes ``out_dir/report.html``: one file with no external CSS, scripts,
fonts or images, so it can be mailed or archived on its own. Overlay thumbnails are embedded as
base64 JPEG data URIs (longest side :data:`THUMB_MAX` px, so an 8000x6000 photo adds tens of
kilobytes, not megabytes), and each links to the full-size overlay file beside the report by a
relative path.

The page holds: a header (title, the run's ``meta``, how many images were done and skipped);
totals over all images (cracks, length in px and, with ``mm_per_px``, in metres, density, and
small tables by orientation class and by severity with a bar chart of length by orientation);
a gallery of overlays; one crack table for all images, sortable by clicking a column header
(numerically or alphabetically, toggling ascending/descending); and the files that were skipped,
with their errors. The table can also be sorted from the address:
``report.html#sort=length_px:desc`` (or ``?sort=...``) sorts by that column on load.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from PIL import Image

from crackseg.atomic import atomic_text

from .severity import all_severity_classes

__all__ = ["write_html_report", "crack_table_columns", "THUMB_MAX", "REPORT_NAME"]

#: File name of the report inside ``out_dir``.
REPORT_NAME = "report.html"
#: Longest side of an embedded thumbnail, in pixels (smaller overlays are not enlarged).
THUMB_MAX = 480
#: JPEG quality of the embedded thumbnails.
THUMB_QUALITY = 82

#: Orientation and severity classes in display order; unknown classes follow, sorted.
_ORIENTATION_ORDER = ("longitudinal", "transverse", "diagonal", "block", "alligator", "network")
_SEVERITY_ORDER = tuple(all_severity_classes())  # every scheme's (crackseg.inference.severity)


def _esc(value: Any) -> str:
    """HTML-escape ``value`` (quotes included), ``None`` as an empty string."""
    return "" if value is None else html.escape(str(value), quote=True)


def _num(value: Any) -> float | None:
    """``value`` as a finite float, or ``None``."""
    if value is None or isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _raw(value: float) -> str:
    """A machine-readable number for ``data-v``: integers without ``.0``, floats in full."""
    v = float(value)
    return str(int(v)) if v.is_integer() and abs(v) < 2**53 else repr(v)


def _fmt(value: Any, digits: int = 1, unit: str = "") -> str:
    """A number with thousands separators and ``digits`` decimals; an em dash when missing."""
    v = _num(value)
    if v is None:
        return "\u2014"
    text = f"{v:,.{digits}f}"
    return f"{text}\u202f{unit}" if unit else text


def _fmt_int(value: Any) -> str:
    v = _num(value)
    return "\u2014" if v is None else f"{round(v):,}"


def _ordered(keys: Sequence[str] | set[str], order: Sequence[str]) -> list[str]:
    known = [k for k in order if k in keys]
    return known + sorted(k for k in keys if k not in order)


def _thumbnail(path: Path) -> tuple[str, int, int] | None:
    """A base64 JPEG data URI of ``path`` shrunk to :data:`THUMB_MAX`, with its size.

    ``None`` when the file is missing or not an image. JPEGs are decoded at a reduced scale
    (``draft``), so even very large overlays are thumbnailed quickly.
    """
    try:
        with Image.open(path) as im:
            im.draft("RGB", (THUMB_MAX, THUMB_MAX))
            im = im.convert("RGB")
            im.thumbnail((THUMB_MAX, THUMB_MAX), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=THUMB_QUALITY, optimize=True)
            width, height = im.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    uri = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return uri, width, height


def _href(out_dir: Path, overlay: str) -> str:
    """A relative, percent-encoded link from the report to ``overlay``."""
    p = Path(overlay)
    if p.is_absolute():
        try:
            p = Path(os.path.relpath(p, out_dir))
        except ValueError:  # another drive on Windows: keep the absolute path
            return p.as_uri()
    return quote(p.as_posix(), safe="/")


def _class_totals(
    images: Sequence[Mapping[str, Any]], field: str, crack_field: str
) -> dict[str, dict[str, float]]:
    """Count and length (px) per class over all done images.

    Taken from each image's ``summary[field]``; an image without that summary contributes its
    crack list (``crack[crack_field]``) instead.
    """
    totals: dict[str, dict[str, float]] = {}
    for im in images:
        summary = im.get("summary") or {}
        classes = summary.get(field)
        if classes is None:
            classes = {}
            for c in im.get("cracks") or []:
                key = c.get(crack_field)
                if key is None:
                    continue
                entry = classes.setdefault(str(key), {"count": 0, "length_px": 0.0})
                entry["count"] += 1
                entry["length_px"] += _num(c.get("length_px")) or 0.0
        scale = _num(summary.get("mm_per_px"))
        for key, entry in classes.items():
            t = totals.setdefault(str(key), {"count": 0, "length_px": 0.0})
            t["count"] += int(_num((entry or {}).get("count")) or 0)
            px = _num((entry or {}).get("length_px")) or 0.0
            t["length_px"] += px
            m = _num((entry or {}).get("length_m"))
            if m is None and scale is not None:
                m = px * scale / 1000.0
            if m is not None:
                t["length_m"] = t.get("length_m", 0.0) + m
    return totals


def _image_scale(im: Mapping[str, Any], mm_per_px: float | None) -> float | None:
    """The image's own scale (its summary's ``mm_per_px``: a marker's, say), else the run's."""
    own = _num((im.get("summary") or {}).get("mm_per_px"))
    return own if own is not None and own > 0 else mm_per_px


def _image_length_m(im: Mapping[str, Any], mm_per_px: float | None) -> float | None:
    """Total crack length of an image in metres; ``None`` without a scale."""
    scale = _image_scale(im, mm_per_px)
    if scale is None:
        return None
    m = _num((im.get("summary") or {}).get("total_length_m"))
    return m if m is not None else _image_length_px(im) * scale / 1000.0


def _image_crack_count(im: Mapping[str, Any]) -> int:
    count = _num((im.get("summary") or {}).get("crack_count"))
    return int(count) if count is not None else len(im.get("cracks") or [])


def _image_length_px(im: Mapping[str, Any]) -> float:
    length = _num((im.get("summary") or {}).get("total_length_px"))
    if length is None:
        length = sum(_num(c.get("length_px")) or 0.0 for c in im.get("cracks") or [])
    return length


_CSS = """
:root{--fg:#1d2430;--muted:#5b6675;--line:#dde2e8;--bg:#f4f6f8;--card:#fff;--accent:#2f5d8a;
--accent-soft:#e3ecf5}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,
"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
.wrap{max-width:1320px;margin:0 auto;padding:0 28px 48px}
header.top{background:#1f2a37;color:#f3f5f7;margin-bottom:24px}
header.top .wrap{padding-top:22px;padding-bottom:20px}
h1{font-size:24px;font-weight:600;margin:0 0 4px;letter-spacing:.2px}
.counts{color:#c6ced8;font-size:14px}
.counts b{color:#fff;font-weight:600}
dl.meta{display:flex;flex-wrap:wrap;gap:8px 36px;margin:14px 0 0;font-size:13px}
dl.meta div{min-width:0;max-width:100%}
dl.meta dt{color:#9aa6b4;text-transform:uppercase;font-size:11px;letter-spacing:.6px}
dl.meta dd{margin:0;color:#eef1f4;overflow-wrap:anywhere}
dl.meta div.wide{flex-basis:100%}
dl.meta code{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;color:#dfe6ee}
h2{font-size:18px;font-weight:600;margin:28px 0 12px}
h3{font-size:14px;font-weight:600;margin:0 0 8px;color:var(--muted);text-transform:uppercase;
letter-spacing:.5px}
.stats{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px}
.stat,.panel,.card{background:var(--card);border:1px solid var(--line);border-radius:8px}
.stat{padding:10px 16px}
.stat .v{font-size:22px;font-weight:600;font-variant-numeric:tabular-nums}
.stat .k{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.5px}
.panels{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:12px;
margin-top:12px}
.panel{padding:14px 16px}
table{border-collapse:collapse;width:100%;font-size:13px;font-variant-numeric:tabular-nums}
th,td{padding:5px 9px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
th{font-weight:600;color:var(--muted);background:#f8f9fb}
td.n,th.n{text-align:right}
.bars{margin-top:4px}
.bar+.bar{margin-top:10px}
.bar{display:grid;grid-template-columns:96px 1fr 40px;align-items:center;gap:10px;
font-size:13px;margin:4px 0}
.bar .track{background:var(--accent-soft);border-radius:3px;height:12px;overflow:hidden}
.bar .fill{display:block;background:var(--accent);height:100%}
.bar .val{text-align:right;color:var(--muted);font-variant-numeric:tabular-nums}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:16px}
.card{overflow:hidden;display:flex;flex-direction:column}
.card .thumb{position:relative;display:flex;align-items:center;justify-content:center;
background:#e4e8ed;aspect-ratio:4/3;overflow:hidden}
.card img{position:absolute;inset:0;display:block;width:100%;height:100%;object-fit:contain}
.card .missing{color:var(--muted);font-size:13px}
.card .info{padding:10px 14px 12px}
.card .name{font-weight:600;overflow-wrap:anywhere}
.card .sub{color:var(--muted);font-size:13px;font-variant-numeric:tabular-nums}
.tablebox{background:var(--card);border:1px solid var(--line);border-radius:8px;
max-height:75vh;overflow:auto}
#cracks thead th{position:sticky;top:0;z-index:1;padding:0;white-space:normal;
vertical-align:bottom;box-shadow:inset 0 -1px 0 var(--line)}
#cracks thead th button{all:unset;box-sizing:border-box;display:block;width:100%;
padding:7px 9px;cursor:pointer}
#cracks thead th.n button{text-align:right}
#cracks thead th button:focus-visible{outline:2px solid var(--accent);outline-offset:-2px}
#cracks thead th button::after{content:"\\2195";opacity:.35;margin-left:4px}
#cracks thead th[aria-sort=ascending] button::after{content:"\\2191";opacity:1}
#cracks thead th[aria-sort=descending] button::after{content:"\\2193";opacity:1}
#cracks tbody tr:hover{background:#f3f7fb}
#cracks td a{color:var(--accent);text-decoration:none}
.sev{display:inline-block;padding:0 8px;border-radius:9px;font-size:12px;
background:#e8ecf1;color:#34404d}
.sev-medium{background:#c9d6e4}
.sev-high{background:#45566a;color:#fff}
.empty{color:var(--muted);font-style:italic}
.hint{color:var(--muted);font-size:13px;font-weight:400;margin-left:6px}
.skipped{background:var(--card);border:1px solid var(--line);border-radius:8px;
padding:8px 16px;margin:0;list-style:none}
.skipped li{padding:6px 0;border-bottom:1px solid var(--line)}
.skipped li:last-child{border-bottom:0}
.skipped .err{color:var(--muted);font-size:13px;overflow-wrap:anywhere}
footer{color:var(--muted);font-size:12px;margin-top:36px}
"""

_JS = """
(function () {
  var table = document.getElementById("cracks");
  if (!table) return;
  var tbody = table.tBodies[0];
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var rows = Array.prototype.slice.call(tbody.rows);
  var collator = new Intl.Collator(undefined, {numeric: true, sensitivity: "base"});
  function value(row, col, numeric) {
    var cell = row.cells[col];
    var v = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") :
      cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : cell.textContent;
    v = v.trim();
    if (v === "") return null;
    if (!numeric) return v;
    var x = parseFloat(v);
    return isFinite(x) ? x : null;
  }
  function sortBy(key, dir) {
    var col = -1;
    for (var i = 0; i < heads.length; i++) if (heads[i].getAttribute("data-key") === key) col = i;
    if (col < 0) return false;
    var numeric = heads[col].getAttribute("data-type") !== "str";  /* "num" or "rank" */
    var sign = dir === "desc" ? -1 : 1;
    var keyed = rows.map(function (r, i) { return [value(r, col, numeric), i, r]; });
    keyed.sort(function (a, b) {
      var x = a[0], y = b[0];
      if (x === null || y === null) {  /* missing values last in both directions */
        if (x === y) return a[1] - b[1];
        return x === null ? 1 : -1;
      }
      var c = numeric ? x - y : collator.compare(x, y);
      return c ? sign * c : a[1] - b[1];
    });
    var frag = document.createDocumentFragment();
    keyed.forEach(function (k) { frag.appendChild(k[2]); });
    tbody.appendChild(frag);
    heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
    heads[col].setAttribute("aria-sort", dir === "desc" ? "descending" : "ascending");
    table.setAttribute("data-sorted", key + ":" + dir);
    return true;
  }
  function fromAddress() {
    var spec = new URLSearchParams(location.hash.replace(/^#/, "")).get("sort") ||
      new URLSearchParams(location.search).get("sort");
    if (!spec) return;
    var parts = spec.split(":");
    sortBy(parts[0], parts[1] === "desc" ? "desc" : "asc");
  }
  heads.forEach(function (h) {
    var button = h.querySelector("button");
    if (!button) return;
    button.addEventListener("click", function () {
      var key = h.getAttribute("data-key");
      var dir = h.getAttribute("aria-sort") === "ascending" ? "desc" : "asc";
      if (sortBy(key, dir) && history.replaceState) {
        history.replaceState(null, "", "#sort=" + encodeURIComponent(key) + ":" + dir);
      }
    });
  });
  window.addEventListener("hashchange", fromAddress);
  fromAddress();
})();
"""


def _meta_html(meta: Mapping[str, Any] | None) -> str:
    if not meta:
        return ""
    items = []
    for key, value in meta.items():
        label = str(key).replace("_", " ")
        if isinstance(value, Mapping | list | tuple):
            value = json.dumps(value, default=str)
        if value is None:
            text = "\u2014"
        else:
            text = _esc(value)
        wide = str(key).lower() in ("command", "cmd", "argv")
        if wide:
            items.append(
                f'<div class="wide" data-key="{_esc(key)}"><dt>{_esc(label)}</dt>'
                f"<dd><code>{text}</code></dd></div>"
            )
        else:
            items.append(f'<div data-key="{_esc(key)}"><dt>{_esc(label)}</dt><dd>{text}</dd></div>')
    return '<dl class="meta">' + "".join(items) + "</dl>"


def _total_stats(
    done: Sequence[Mapping[str, Any]], mm_per_px: float | None
) -> tuple[list[tuple[str, str, float | None, str]], bool]:
    """The stat tiles ``(key, label, raw value, shown)`` of the totals, and whether any image
    has a scale (each image's own, or the run's ``--mm-per-px``)."""
    cracks = sum(_image_crack_count(im) for im in done)
    length_px = sum(_image_length_px(im) for im in done)
    lengths_m = [_image_length_m(im, mm_per_px) for im in done]
    length_m = (
        sum(m for m in lengths_m if m is not None)
        if any(m is not None for m in lengths_m)
        else None
    )
    mpx = sum((_num(im.get("width")) or 0) * (_num(im.get("height")) or 0) for im in done) / 1e6
    density_px = length_px / mpx if mpx > 0 else None
    density_m = None
    scaled = [(im, m) for im, m in zip(done, lengths_m, strict=True) if m is not None]
    area_m2 = sum(
        (_num(im.get("width")) or 0)
        * (_num(im.get("height")) or 0)
        * (_image_scale(im, mm_per_px) / 1000.0) ** 2
        for im, _ in scaled
    )
    if area_m2 > 0:
        density_m = sum(m for _, m in scaled) / area_m2
    scale_known = mm_per_px is not None or bool(scaled)

    stats: list[tuple[str, str, float | None, str]] = [
        ("crack_count", "Cracks", cracks, _fmt_int(cracks)),
        ("total_length_px", "Total length (px)", length_px, _fmt(length_px, 0)),
    ]
    if length_m is not None:
        stats.append(("total_length_m", "Total length (m)", length_m, _fmt(length_m, 2)))
    stats.append(("density_px_per_mpx", "Density (px / Mpx)", density_px, _fmt(density_px, 0)))
    if density_m is not None:
        stats.append(("density_m_per_m2", "Density (m / m\u00b2)", density_m, _fmt(density_m, 3)))
    lines = sum(int(_num((im.get("summary") or {}).get("line_count")) or 0) for im in done)
    if lines and not any((im.get("summary") or {}).get("keep_lines") for im in done):
        label = "Joints / lines (blue; not in the totals)"
        stats.append(("line_count", label, lines, _fmt_int(lines)))
    return stats, scale_known


def _totals_html(done: Sequence[Mapping[str, Any]], mm_per_px: float | None) -> str:
    """The totals section: counts, lengths and densities, by orientation and by severity."""
    stats, scale_known = _total_stats(done, mm_per_px)
    tiles = "".join(
        f'<div class="stat" data-stat="{k}" data-v="{"" if raw is None else _raw(raw)}">'
        f'<div class="v">{shown}</div><div class="k">{_esc(label)}</div></div>'
        for k, label, raw, shown in stats
    )

    by_orientation = _class_totals(done, "by_orientation", "orientation")
    by_severity = _class_totals(done, "by_severity", "severity")
    measured = any(
        (im.get("summary") or {}).get("crack_count") is not None or im.get("cracks") for im in done
    )
    if done and not measured:
        return (
            '<section id="totals"><h2>Totals</h2><p class="empty" id="not-measured">'
            "Cracks were not measured: run <code>crackseg predict --measure</code> for crack "
            "counts, lengths and widths.</p></section>"
        )
    return (
        f'<section id="totals"><h2>Totals</h2><div class="stats">{tiles}</div>'
        '<div class="panels">'
        + _class_table(
            "by-orientation",
            "Orientation",
            by_orientation,
            _ORIENTATION_ORDER,
            scale_known,
            mm_per_px,
        )  # fmt: skip
        + _orientation_chart(by_orientation)
        + _class_table(
            "by-severity",
            _severity_title(done),
            by_severity,
            _SEVERITY_ORDER,
            scale_known,
            mm_per_px,
        )  # fmt: skip
        + "</div></section>"
    )


def _class_table(
    name: str,
    title: str,
    totals: dict[str, dict[str, float]],
    order: Sequence[str],
    scale_known: bool,
    mm_per_px: float | None,
) -> str:
    """One class table of the totals (Class, Cracks, Length px, and Length m with a scale)."""
    keys = _ordered(set(totals), order)
    if not keys:
        return (
            f'<div class="panel" id="{name}"><h3>{title}</h3>'
            f'<p class="empty">No {title.lower()} classes.</p></div>'
        )
    m_head = '<th class="n">Length (m)</th>' if scale_known else ""
    body = []
    for k in keys:
        t = totals[k]
        m_cell = ""
        if scale_known:
            m = t.get("length_m")
            if m is None:
                m = t["length_px"] * mm_per_px / 1000.0 if mm_per_px is not None else 0.0
            m_cell = f'<td class="n" data-v="{_raw(m)}">{_fmt(m, 2)}</td>'
        body.append(
            f'<tr data-class="{_esc(k)}"><td>{_esc(k)}</td>'
            f'<td class="n" data-v="{_raw(t["count"])}">{_fmt_int(t["count"])}</td>'
            f'<td class="n" data-v="{_raw(t["length_px"])}">{_fmt(t["length_px"], 0)}</td>'
            f"{m_cell}</tr>"
        )
    return (
        f'<div class="panel" id="{name}"><h3>{title}</h3><table><thead><tr>'
        f'<th>Class</th><th class="n">Cracks</th><th class="n">Length (px)</th>{m_head}'
        f"</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _orientation_chart(totals: dict[str, dict[str, float]]) -> str:
    """Bars of the share of crack length by orientation."""
    keys = _ordered(set(totals), _ORIENTATION_ORDER)
    if not keys:
        return ""
    top = max(t["length_px"] for t in totals.values()) or 1.0
    share_total = sum(t["length_px"] for t in totals.values()) or 1.0
    bars = []
    for k in keys:
        length = totals[k]["length_px"]
        bars.append(
            f'<div class="bar" data-class="{_esc(k)}"><span>{_esc(k)}</span>'
            f'<span class="track"><span class="fill" style="width:{100.0 * length / top:.1f}%">'
            f'</span></span><span class="val">{100.0 * length / share_total:.0f}%</span></div>'
        )
    return (
        '<div class="panel" id="orientation-chart"><h3>Length by orientation</h3>'
        '<div class="bars" role="img" aria-label="Share of crack length by orientation">'
        + "".join(bars)
        + "</div></div>"
    )


def _severity_title(done: Sequence[Mapping[str, Any]]) -> str:
    """``Severity (scheme[, exposure])``, from the images' summaries; ``Severity`` without."""
    names = set()
    for im in done:
        summary = im.get("summary") or {}
        if summary.get("severity_scheme"):
            exposure = summary.get("exposure")
            names.add(summary["severity_scheme"] + (f", {exposure}" if exposure else ""))
    return f"Severity ({'; '.join(sorted(names))})" if names else "Severity"


def _gallery_html(out_dir: Path, done: Sequence[Mapping[str, Any]], mm_per_px: float | None) -> str:
    if not done:
        return '<section id="gallery"><h2>Overlays</h2><p class="empty">No images.</p></section>'
    cards = []
    for i, im in enumerate(done):
        name = str(im.get("name", ""))
        overlay = im.get("overlay")
        thumb = _thumbnail(out_dir / overlay) if overlay else None
        href = _href(out_dir, str(overlay)) if overlay else None
        if thumb is not None:
            uri, tw, th = thumb
            pic = f'<img src="{uri}" width="{tw}" height="{th}" alt="{_esc(name)} overlay">'
        else:
            pic = '<span class="missing">overlay not available</span>'
        if href is not None:
            pic = f'<a class="thumb" href="{_esc(href)}" title="Open full-size overlay">{pic}</a>'
        else:
            pic = f'<div class="thumb">{pic}</div>'
        count = _image_crack_count(im)
        length = _fmt(_image_length_px(im), 0, "px")
        length_m = _image_length_m(im, mm_per_px)
        if length_m is not None:
            length += f" \u00b7 {_fmt(length_m, 2, 'm')}"
        dims = ""
        if im.get("width") and im.get("height"):
            dims = f" \u00b7 {_fmt_int(im['width'])}\u00d7{_fmt_int(im['height'])} px"
        cards.append(
            f'<figure class="card" id="img-{i}" data-name="{_esc(name)}" style="margin:0">{pic}'
            f'<figcaption class="info"><div class="name">{_esc(name)}</div>'
            f'<div class="sub"><span class="count" data-v="{count}">{count:,} '
            f"crack{'' if count == 1 else 's'}</span> \u00b7 "
            f'<span class="length">{length}</span>{dims}</div></figcaption></figure>'
        )
    return (
        '<section id="gallery"><h2>Overlays</h2><div class="gallery">'
        + "".join(cards)
        + "</div></section>"
    )


def crack_table_columns(mm_per_px: float | None) -> list[tuple[str, str, str]]:
    """``(key, header, type)`` of the crack table's columns (the report's and the service page's).

    ``type`` is how the column sorts: ``"num"``, ``"str"``, or ``"rank"`` (severity: low <
    medium < high).
    """
    cols = [
        ("image", "Image", "str"),
        ("id", "ID", "num"),
        ("length_px", "Length (px)", "num"),
        ("mean_width_px", "Mean width (px)", "num"),
        ("max_width_px", "Max width (px)", "num"),
    ]
    if mm_per_px is not None:
        cols += [
            ("length_mm", "Length (mm)", "num"),
            ("mean_width_mm", "Mean width (mm)", "num"),
            ("max_width_mm", "Max width (mm)", "num"),
        ]
    cols += [
        ("orientation", "Orientation", "str"),
        ("severity", "Severity", "rank"),
        ("kind", "Kind", "str"),  # crack, or joint_or_line (left out of the totals by default)
    ]
    return cols


def _table_html(done: Sequence[Mapping[str, Any]], mm_per_px: float | None) -> str:
    scales = [_image_scale(im, mm_per_px) for im in done]
    cols = crack_table_columns(next((x for x in scales if x is not None), None))
    rows = []
    for i, im in enumerate(done):
        name = _esc(im.get("name", ""))
        scale = scales[i]
        for c in im.get("cracks") or []:
            cells = []
            for key, _header, kind in cols:
                if key == "image":
                    cells.append(f'<td data-v="{name}"><a href="#img-{i}">{name}</a></td>')
                    continue
                if kind == "num":
                    v = c.get(key)
                    if v is None and key.endswith("_mm") and scale is not None:
                        px = _num(c.get(key[:-3] + "_px"))
                        v = None if px is None else px * scale
                    v = _num(v)
                    raw = "" if v is None else _raw(v)
                    shown = _fmt_int(v) if key == "id" else _fmt(v, 1 if "length" in key else 2)
                    cells.append(f'<td class="n" data-v="{raw}">{shown}</td>')
                    continue
                v = c.get(key)
                if v is None or v == "":
                    cells.append('<td data-v="">\u2014</td>')
                elif key == "severity":
                    sv = str(v)
                    rank = (
                        _SEVERITY_ORDER.index(sv) if sv in _SEVERITY_ORDER else len(_SEVERITY_ORDER)
                    )
                    cells.append(
                        f'<td data-v="{_esc(sv)}" data-sort="{rank}">'
                        f'<span class="sev sev-{_esc(sv)}">{_esc(sv)}</span></td>'
                    )
                else:
                    cells.append(f'<td data-v="{_esc(v)}">{_esc(v)}</td>')
            rows.append("<tr>" + "".join(cells) + "</tr>")
    if not rows:
        body = '<p class="empty">No cracks detected.</p>'
    else:
        num_class = ' class="n"'
        heads = "".join(
            f'<th data-key="{key}" data-type="{kind}"{num_class if kind == "num" else ""}>'
            f'<button type="button">{_esc(header)}</button></th>'
            for key, header, kind in cols
        )
        body = (
            '<div class="tablebox"><table id="cracks"><thead><tr>'
            + heads
            + "</tr></thead><tbody>\n"
            + "\n".join(rows)
            + "\n</tbody></table></div>"
        )
    hint = ' <small class="hint">click a column header to sort</small>' if rows else ""
    return f'<section id="crack-table"><h2>Cracks ({len(rows):,}){hint}</h2>{body}</section>'


def _skipped_html(skipped: Sequence[Mapping[str, Any]]) -> str:
    if not skipped:
        return ""
    items = "".join(
        f'<li><div class="src">{_esc(im.get("source") or im.get("name"))}</div>'
        f'<div class="err">{_esc(im.get("error") or "skipped")}</div></li>'
        for im in skipped
    )
    return (
        f'<section id="skipped"><h2>Skipped files ({len(skipped)})</h2>'
        f'<ul class="skipped">{items}</ul></section>'
    )


def write_html_report(
    out_dir: str | os.PathLike[str],
    images: Sequence[Mapping[str, Any]],
    title: str = "crackseg report",
    mm_per_px: float | None = None,
    meta: Mapping[str, Any] | None = None,
    survey_html: str = "",
) -> Path:
    """Write ``out_dir/report.html``, a self-contained page about a prediction run; its path.

    ``images`` holds one dict per input image: ``name`` (stem), ``source`` (input path),
    ``width``, ``height``, ``overlay`` (the overlay JPEG's path relative to ``out_dir``),
    ``summary`` (``crack_count``, ``total_length_px``, ``total_length_m``, ``by_orientation``,
    ``by_severity``, ...), ``cracks`` (one dict per crack: ``id``, ``length_px``,
    ``mean_width_px``, ``max_width_px``, ``orientation``, ``severity``, optionally the ``_mm``
    lengths), ``status`` (``"done"`` or ``"skipped"``) and ``error`` (why a file was skipped).
    With ``mm_per_px`` the totals show metres and the crack table gains millimetre columns.
    ``meta`` (model, threshold, command, ...) is shown in the header. ``survey_html`` (the map
    and section table of :func:`crackseg.inference.sections.survey_html`) follows the totals.

    The file is written atomically (:func:`crackseg.atomic.atomic_text`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mm = _num(mm_per_px)
    mm = mm if mm is not None and mm > 0 else None
    done = [im for im in images if im.get("status", "done") != "skipped"]
    skipped = [im for im in images if im.get("status", "done") == "skipped"]

    totals = _totals_html(done, mm)
    counts = (
        f'<div class="counts"><b data-count="done">{len(done):,}</b> '
        f"image{'' if len(done) == 1 else 's'} analysed"
        f' \u00b7 <b data-count="skipped">{len(skipped):,}</b> skipped'
        + (f" \u00b7 scale {mm:g}\u202fmm/px" if mm is not None else "")
        + "</div>"
    )
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="generator" content="crackseg">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>"
        f'<header class="top"><div class="wrap"><h1>{_esc(title)}</h1>{counts}'
        f"{_meta_html(meta)}</div></header>"
        '<main class="wrap">'
        + totals
        + survey_html
        + _gallery_html(out, done, mm)
        + _table_html(done, mm)
        + _skipped_html(skipped)
        + "<footer>Generated by crackseg. Overlays: predicted cracks in red; click a thumbnail"
        " for the full-size image.</footer>" + f"</main><script>{_JS}</script></body></html>\n"
    )

    return atomic_text(out / REPORT_NAME, lambda f: f.write(page), newline="\n")
