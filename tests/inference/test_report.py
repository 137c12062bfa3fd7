"""The self-contained HTML report: parsed with the stdlib, and rendered by headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

from crackseg.inference.report import REPORT_NAME, THUMB_MAX, write_html_report

# --------------------------------------------------------------------------- a tiny DOM

_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "wbr",
}


class Node:
    """An element: tag, attributes, children (nodes and text) and its parent."""

    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self, tag: str | None = None, **attrs: str):
        for c in self.children:
            if isinstance(c, Node):
                if (tag is None or c.tag == tag) and all(
                    c.attrs.get(k.rstrip("_").replace("_", "-")) == v for k, v in attrs.items()
                ):
                    yield c
                yield from c.iter(tag, **attrs)

    def find(self, tag: str | None = None, **attrs: str) -> Node | None:
        return next(self.iter(tag, **attrs), None)

    def has_class(self, name: str) -> bool:
        return name in (self.attrs.get("class") or "").split()


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.cur = self.root
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        node = Node(tag, dict(attrs), self.cur)
        self.cur.children.append(node)
        if tag not in _VOID:
            self.cur = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.cur.children.append(Node(tag, dict(attrs), self.cur))

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.cur
        while node is not None and node.tag != tag:
            node = node.parent
        assert node is not None and node.parent is not None, f"stray </{tag}>"
        self.cur = node.parent

    def handle_data(self, data: str) -> None:
        self.cur.children.append(data)


def parse(path: Path) -> tuple[Node, list[str]]:
    """The document tree of ``path`` and the list of start tags met, in order."""
    b = _Builder()
    b.feed(path.read_text(encoding="utf-8"))
    b.close()
    assert b.cur is b.root, f"unclosed <{b.cur.tag}>"
    return b.root, b.tags


def cells(row: Node) -> list[Node]:
    return [c for c in row.children if isinstance(c, Node) and c.tag in ("td", "th")]


def table_rows(doc: Node) -> list[list[Node]]:
    table = doc.find("table", id="cracks")
    assert table is not None
    return [cells(r) for r in table.find("tbody").iter("tr")]


def columns(doc: Node) -> list[str]:
    table = doc.find("table", id="cracks")
    return [th.attrs["data-key"] for th in table.find("thead").iter("th")]


def headers(doc: Node) -> list[str]:
    table = doc.find("table", id="cracks")
    return [" ".join(th.text().split()) for th in table.find("thead").iter("th")]


# --------------------------------------------------------------------------- synthetic run

ORIENTATIONS = ("longitudinal", "transverse", "diagonal")


def make_overlay(path: Path, width: int, height: int, seed: int = 0) -> None:
    """A smooth gray photo with a few red strokes, saved as a JPEG."""
    rng = np.random.default_rng(seed)
    small = rng.integers(90, 170, (max(height // 16, 2), max(width // 16, 2), 3), dtype=np.uint8)
    im = Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)
    a = np.asarray(im).copy()
    a[height // 2 : height // 2 + 3, : width * 2 // 3] = (255, 30, 30)
    Image.fromarray(a).save(path, "JPEG", quality=90)


def make_image(
    out: Path, name: str, width: int, height: int, cracks: list[dict[str, Any]], seed: int = 0
) -> dict[str, Any]:
    overlay = f"{name}_overlay.jpg"
    make_overlay(out / overlay, width, height, seed)
    by_o: dict[str, dict[str, float]] = {}
    by_s: dict[str, dict[str, float]] = {}
    for c in cracks:
        for table, key in ((by_o, c["orientation"]), (by_s, c["severity"])):
            if key is not None:
                e = table.setdefault(key, {"count": 0, "length_px": 0.0})
                e["count"] += 1
                e["length_px"] += c["length_px"]
    total = sum(c["length_px"] for c in cracks)
    return {
        "name": name,
        "source": f"photos/{name}.jpg",
        "width": width,
        "height": height,
        "overlay": overlay,
        "summary": {
            "crack_count": len(cracks),
            "total_length_px": total,
            "total_length_m": None,
            "density_px_per_mpx": total / (width * height / 1e6),
            "density_m_per_m2": None,
            "by_orientation": by_o,
            "by_severity": by_s,
        },
        "cracks": cracks,
        "status": "done",
        "error": None,
    }


def crack(i: int, length: float, width: float, orientation: str, severity: str | None) -> dict:
    return {
        "id": i,
        "length_px": length,
        "mean_width_px": width,
        "max_width_px": 2 * width,
        "orientation": orientation,
        "severity": severity,
    }


NASTY = 'bad <img src=x onerror=alert(1)> & "q" #1'  # no "/": it is a file name too


@pytest.fixture
def run(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    out = tmp_path / "out"
    out.mkdir()
    images = [
        make_image(
            out,
            "road_a",
            960,
            640,
            [
                crack(1, 120.5, 2.25, "longitudinal", "low"),
                crack(2, 33.0, 4.5, "transverse", "high"),
            ],
            seed=1,
        ),
        make_image(out, NASTY, 200, 300, [crack(1, 77.25, 1.5, "diagonal", "medium")], seed=2),
        make_image(out, "clean", 320, 240, [], seed=3),  # done, no cracks
        {
            "name": "broken",
            "source": "photos/broken <1>.jpg",
            "status": "skipped",
            "error": "cannot identify image file 'photos/broken <1>.jpg' & more",
        },
    ]
    return out, images


# --------------------------------------------------------------------------- parsed checks


def test_gallery_cards_thumbnails_and_links(run):
    out, images = run
    path = write_html_report(out, images, meta={"model": "carnet", "threshold": 0.5})
    assert path == out / REPORT_NAME and path.is_file()
    doc, _ = parse(path)
    gallery = doc.find("section", id="gallery")
    cards = [n for n in gallery.iter("figure") if n.has_class("card")]
    done = [im for im in images if im["status"] == "done"]
    assert [c.attrs["data-name"] for c in cards] == [im["name"] for im in done]
    for card, im in zip(cards, done, strict=True):
        img = card.find("img")
        src = img.attrs["src"]
        assert src.startswith("data:image/jpeg;base64,")
        thumb = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        thumb.load()
        assert thumb.format == "JPEG"
        w, h = im["width"], im["height"]
        expect = (w, h) if max(w, h) <= THUMB_MAX else None
        if expect is None:  # shrunk to THUMB_MAX on the long side, aspect kept
            assert max(thumb.size) == THUMB_MAX
            assert abs(thumb.size[0] / thumb.size[1] - w / h) < 0.01
        else:
            assert thumb.size == expect
        assert (int(img.attrs["width"]), int(img.attrs["height"])) == thumb.size
        link = card.find("a")
        href = link.attrs["href"]
        assert "://" not in href and not href.startswith("/")
        assert (out / unquote(href)).is_file()
        assert unquote(href) == im["overlay"]
        assert " ".join(card.find(class_="name").text().split()) == im["name"]
        count = card.find("span", class_="count")
        assert int(count.attrs["data-v"]) == len(im["cracks"])
    assert cards[0].find("img").attrs["width"] == str(THUMB_MAX)  # 960x640 -> 480x320
    assert cards[0].find("img").attrs["height"] == "320"
    counts = {b.attrs["data-count"]: b.text() for b in doc.iter("b") if "data-count" in b.attrs}
    assert counts == {"done": "3", "skipped": "1"}


def test_crack_table_one_row_per_crack_with_values(run):
    out, images = run
    doc, _ = parse(write_html_report(out, images))
    assert columns(doc) == [
        "image",
        "id",
        "length_px",
        "mean_width_px",
        "max_width_px",
        "orientation",
        "severity",
        "kind",
    ]
    assert headers(doc)[2:5] == ["Length (px)", "Mean width (px)", "Max width (px)"]
    expected = [(im["name"], c) for im in images if im["status"] == "done" for c in im["cracks"]]
    rows = table_rows(doc)
    assert len(rows) == len(expected) == 3
    for row, (name, c) in zip(rows, expected, strict=True):
        values = {k: cell.attrs.get("data-v") for k, cell in zip(columns(doc), row, strict=True)}
        assert values["image"] == name
        assert " ".join(row[0].text().split()) == name
        assert int(values["id"]) == c["id"]
        for key in ("length_px", "mean_width_px", "max_width_px"):
            assert float(values[key]) == pytest.approx(c[key])
        assert values["orientation"] == c["orientation"]
        assert values["severity"] == c["severity"]
    # displayed text is the rounded number: 120.5 px, 2.25 -> "2.25", 4.5 max width -> "4.50"
    assert [cell.text() for cell in rows[0][1:5]] == ["1", "120.5", "2.25", "4.50"]
    # severity sorts by rank (low < medium < high), not alphabetically
    sev = columns(doc).index("severity")
    assert [r[sev].attrs["data-sort"] for r in rows] == ["0", "2", "1"]
    assert doc.find("section", id="crack-table").find("h2").text().startswith("Cracks (3)")


def test_totals_and_class_tables(run):
    out, images = run
    doc, _ = parse(write_html_report(out, images))
    stats = {n.attrs["data-stat"]: n for n in doc.iter(class_="stat")}
    assert "total_length_m" not in stats and "density_m_per_m2" not in stats
    assert int(stats["crack_count"].attrs["data-v"]) == 3
    assert stats["crack_count"].find(class_="v").text() == "3"
    total = 120.5 + 33.0 + 77.25
    assert float(stats["total_length_px"].attrs["data-v"]) == pytest.approx(total)
    mpx = (960 * 640 + 200 * 300 + 320 * 240) / 1e6
    assert float(stats["density_px_per_mpx"].attrs["data-v"]) == pytest.approx(total / mpx)

    def class_rows(section_id: str) -> dict[str, tuple[int, float]]:
        panel = doc.find(id=section_id)
        return {
            r.attrs["data-class"]: (
                int(cells(r)[1].attrs["data-v"]),
                float(cells(r)[2].attrs["data-v"]),
            )
            for r in panel.find("tbody").iter("tr")
        }

    assert class_rows("by-orientation") == {
        "longitudinal": (1, 120.5),
        "transverse": (1, 33.0),
        "diagonal": (1, 77.25),
    }
    assert list(class_rows("by-orientation")) == list(ORIENTATIONS)  # fixed display order
    assert class_rows("by-severity") == {"low": (1, 120.5), "medium": (1, 77.25), "high": (1, 33.0)}
    bars = {b.attrs["data-class"]: b for b in doc.find(id="orientation-chart").iter(class_="bar")}
    assert set(bars) == set(ORIENTATIONS)
    widths = {k: b.find(class_="fill").attrs["style"] for k, b in bars.items()}
    assert widths["longitudinal"] == "width:100.0%"  # the longest class fills the track
    assert widths["transverse"] == f"width:{100 * 33.0 / 120.5:.1f}%"


def test_names_and_errors_are_escaped(run):
    out, images = run
    path = write_html_report(out, images, title='T <i>&"', meta={"command": "crackseg <x> & y"})
    raw = path.read_text(encoding="utf-8")
    assert NASTY not in raw and "<img src=x" not in raw and "<i>&" not in raw
    assert "broken <1>" not in raw
    doc, tags = parse(path)
    assert tags.count("script") == 1 and "i" not in tags  # only the page's own script
    assert tags.count("img") == 3  # one thumbnail per done image, nothing injected
    assert doc.find("title").text() == 'T <i>&"'
    assert doc.find("h1").text() == 'T <i>&"'
    assert doc.find("div", data_key="command").find("code").text() == "crackseg <x> & y"
    names = [n.text() for n in doc.iter(class_="name")]
    assert NASTY in names
    card = doc.find("figure", data_name=NASTY)
    assert card is not None and card.find("img").attrs["alt"] == f"{NASTY} overlay"
    # "#" and spaces are percent-encoded in the link, which still reaches the file
    href = card.find("a").attrs["href"]
    assert "#" not in href and " " not in href
    assert (out / unquote(href)).is_file()
    assert any(r[0].attrs["data-v"] == NASTY for r in table_rows(doc))


def test_mm_columns_only_with_scale(run):
    out, images = run
    doc, _ = parse(write_html_report(out, images))
    assert not any(k.endswith("_mm") for k in columns(doc))
    assert "Length (m)" not in [th.text() for th in doc.find(id="by-orientation").iter("th")]

    images[0]["cracks"][0]["length_mm"] = 999.0  # given by the measurer: shown as is
    doc, _ = parse(write_html_report(out, images, mm_per_px=0.5))
    cols = columns(doc)
    assert cols == [
        "image",
        "id",
        "length_px",
        "mean_width_px",
        "max_width_px",
        "length_mm",
        "mean_width_mm",
        "max_width_mm",
        "orientation",
        "severity",
        "kind",
    ]
    assert headers(doc)[5:8] == ["Length (mm)", "Mean width (mm)", "Max width (mm)"]
    rows = table_rows(doc)
    first = {k: c.attrs["data-v"] for k, c in zip(cols, rows[0], strict=True)}
    assert float(first["length_mm"]) == 999.0
    assert float(first["mean_width_mm"]) == pytest.approx(2.25 * 0.5)
    assert float(first["max_width_mm"]) == pytest.approx(4.5 * 0.5)
    second = {k: c.attrs["data-v"] for k, c in zip(cols, rows[1], strict=True)}
    assert float(second["length_mm"]) == pytest.approx(33.0 * 0.5)
    stats = {n.attrs["data-stat"]: n for n in doc.iter(class_="stat")}
    total_m = (120.5 + 33.0 + 77.25) * 0.5 / 1000
    assert float(stats["total_length_m"].attrs["data-v"]) == pytest.approx(total_m)
    area_m2 = (960 * 640 + 200 * 300 + 320 * 240) * (0.5 / 1000) ** 2
    assert float(stats["density_m_per_m2"].attrs["data-v"]) == pytest.approx(total_m / area_m2)
    assert "Length (m)" in [th.text() for th in doc.find(id="by-orientation").iter("th")]


def test_skipped_files_listed(run):
    out, images = run
    doc, _ = parse(write_html_report(out, images))
    section = doc.find("section", id="skipped")
    items = list(section.find("ul").iter("li"))
    assert len(items) == 1
    assert items[0].find(class_="src").text() == "photos/broken <1>.jpg"
    assert items[0].find(class_="err").text() == images[-1]["error"]
    # skipped files are not in the gallery
    assert doc.find("figure", data_name="broken") is None


def test_self_contained(run):
    out, images = run
    path = write_html_report(out, images)
    doc, tags = parse(path)
    assert "link" not in tags and "iframe" not in tags
    for node in doc.iter():
        for attr in ("src", "href"):
            value = node.attrs.get(attr)
            if value is not None:
                assert not value.lower().startswith(("http:", "https:", "//")), value
    assert all(s.attrs.get("src") is None for s in doc.iter("script"))
    raw = path.read_text(encoding="utf-8")
    assert "@import" not in raw and "url(" not in raw


def test_no_images_and_no_cracks(tmp_path: Path):
    path = write_html_report(tmp_path / "new" / "dir", [])
    assert path.is_file()
    doc, _ = parse(path)
    assert doc.find("table", id="cracks") is None
    assert "No images" in doc.find("section", id="gallery").text()
    assert "No cracks" in doc.find("section", id="crack-table").text()
    assert doc.find("section", id="skipped") is None
    stats = {n.attrs["data-stat"]: n.attrs["data-v"] for n in doc.iter(class_="stat")}
    assert stats["crack_count"] == "0" and stats["density_px_per_mpx"] == ""

    out = tmp_path / "one"
    out.mkdir()
    images = [make_image(out, "clean", 64, 48, [])]
    images[0]["summary"]["by_severity"] = {}
    doc, _ = parse(write_html_report(out, images, mm_per_px=1.0))
    assert len(list(doc.find("section", id="gallery").iter("figure"))) == 1
    assert doc.find("table", id="cracks") is None
    assert "No severity classes" in doc.find(id="by-severity").text()


def test_without_measurements_totals_say_so(tmp_path: Path):
    images = [make_image(tmp_path, "plain", 64, 48, [])]
    images[0]["summary"], images[0]["cracks"] = {}, []  # predict without --measure
    doc, _ = parse(write_html_report(tmp_path, images))
    assert doc.find(id="not-measured") is not None
    assert doc.find(class_="stat") is None
    assert len(list(doc.find("section", id="gallery").iter("figure"))) == 1


def test_large_overlay_stays_small_and_many_cracks(tmp_path: Path):
    out = tmp_path
    rng = np.random.default_rng(0)
    cracks = [
        crack(i, float(rng.uniform(5, 500)), float(rng.uniform(1, 9)), ORIENTATIONS[i % 3], None)
        for i in range(1, 3001)
    ]
    images = [make_image(out, "huge", 4000, 3000, cracks)]
    overlay_bytes = (out / "huge_overlay.jpg").stat().st_size
    path = write_html_report(out, images)
    doc, _ = parse(path)
    src = doc.find("figure").find("img").attrs["src"]
    thumb = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
    assert thumb.size == (THUMB_MAX, 360)
    assert len(src) < overlay_bytes / 4
    rows = table_rows(doc)
    assert len(rows) == 3000
    assert [int(r[1].attrs["data-v"]) for r in rows[:3]] == [1, 2, 3]
    assert all(r[-1].attrs["data-v"] == "" for r in rows)  # no severity: an empty cell
    # roughly 300 bytes a row, not more
    assert path.stat().st_size < 60_000 + 400 * len(rows)


def test_written_atomically_over_an_old_report(run):
    out, images = run
    (out / REPORT_NAME).write_text("old", encoding="utf-8")
    path = write_html_report(out, images)
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in out.iterdir() if "report" in p.name) == [REPORT_NAME]
    assert os.stat(path).st_mode & 0o044  # readable by others as usual, not a 0600 temp file


def test_missing_overlay_is_a_card_without_thumbnail(run):
    out, images = run
    (out / images[0]["overlay"]).unlink()
    doc, _ = parse(write_html_report(out, images))
    card = doc.find("figure", data_name="road_a")
    assert card.find("img") is None
    assert "overlay not available" in card.text()


# --------------------------------------------------------------------------- real browser


def _chromium() -> str | None:
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run_chromium(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def test_chromium_sorts_from_hash_and_renders(tmp_path: Path):
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium not installed: apt-get install chromium")
    out = tmp_path / "out"
    out.mkdir()
    lengths = [40.0, 300.0, 7.5, 120.0, 1000.0, 85.0]  # deliberately out of order
    images = [
        make_image(
            out,
            "site b",
            640,
            480,
            [crack(i + 1, L, 1.0 + i, ORIENTATIONS[i % 3], "low") for i, L in enumerate(lengths)],
        ),
        make_image(out, "site a", 480, 640, [crack(1, 200.0, 3.0, "diagonal", "high")], seed=4),
    ]
    path = write_html_report(out, images, mm_per_px=0.5, meta={"model": "carnet"})

    def dump(url: str) -> Node:
        res = _run_chromium(exe, tmp_path / "profile", "--dump-dom", url)
        assert res.returncode == 0, res.stderr[-2000:]
        page = tmp_path / "dump.html"
        page.write_text(res.stdout, encoding="utf-8")
        return parse(page)[0]

    def col_values(doc: Node, key: str) -> list[str]:
        col = columns(doc).index(key)
        return [r[col].attrs["data-v"] for r in table_rows(doc)]

    def lengths_of(doc: Node) -> list[float]:
        return [float(v) for v in col_values(doc, "length_px")]

    url = path.as_uri()
    given = lengths + [200.0]
    assert lengths_of(dump(url)) == given  # no hash: left in the given order
    assert lengths_of(dump(url + "#sort=length_px:desc")) == sorted(given, reverse=True)
    assert lengths_of(dump(url + "?sort=length_px")) == sorted(given)  # ascending by default
    doc = dump(url + "#sort=image:asc")
    names = col_values(doc, "image")
    assert names == ["site a"] + ["site b"] * len(lengths)  # alphabetical, stable within ties
    assert col_values(doc, "id")[1:] == [str(i + 1) for i in range(len(lengths))]
    sorted_th = [th.attrs.get("aria-sort") for th in doc.find("table", id="cracks").iter("th")]
    assert sorted_th[0] == "ascending" and sorted_th.count(None) == len(sorted_th) - 1

    # clicks, in one page load: a header sorts ascending, a second click descending; text
    # columns alphabetically, severity by rank. The orders are recorded into a <pre>.
    probe = """
    function vals(key) {
      var ths = Array.from(document.querySelectorAll("#cracks thead th"));
      var col = ths.findIndex(function (t) { return t.getAttribute("data-key") === key; });
      return Array.from(document.querySelectorAll("#cracks tbody tr")).map(
        function (r) { return r.cells[col].getAttribute("data-v"); });
    }
    function click(key) {
      document.querySelector("#cracks th[data-key=" + key + "] button").click();
    }
    var out = {};
    click("length_px"); out.len_asc = vals("length_px");
    click("length_px"); out.len_desc = vals("length_px");
    click("length_mm"); out.mm_asc = vals("length_mm");
    click("orientation"); out.orientation = vals("orientation");
    click("severity"); out.sev_asc = vals("severity");
    click("severity"); out.sev_desc = vals("severity");
    out.hash = location.hash;
    var pre = document.createElement("pre");
    pre.id = "probe";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
    """
    clicked = out / "clicked.html"
    clicked.write_text(
        path.read_text(encoding="utf-8").replace("</body>", f"<script>{probe}</script></body>"),
        encoding="utf-8",
    )
    got = json.loads(dump(clicked.as_uri()).find("pre", id="probe").text())
    assert [float(v) for v in got["len_asc"]] == sorted(given)
    assert [float(v) for v in got["len_desc"]] == sorted(given, reverse=True)
    assert [float(v) for v in got["mm_asc"]] == sorted(x * 0.5 for x in given)
    assert got["orientation"] == sorted(got["orientation"])
    assert got["sev_asc"] == ["low"] * len(lengths) + ["high"]  # rank: low < high
    assert got["sev_desc"] == ["high"] + ["low"] * len(lengths)
    assert got["hash"] == "#sort=severity:desc"  # the order is kept in the address

    shot = tmp_path / "shot.png"
    res = _run_chromium(
        exe, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,900", url
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 10_000
    with Image.open(shot) as im:
        assert im.size == (1280, 900)
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.std() > 10  # not a blank page
