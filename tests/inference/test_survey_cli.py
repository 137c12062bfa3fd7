"""``crackseg predict`` survey options end to end (issue 26): severity schemes, markers,
GeoJSON and sections, on generated photos with known cracks.

The model is replaced by :class:`DarkIsCrack` (dark pixels are cracks), so each photo's
cracks are exactly the dark strokes drawn into it and the rest of the path (reading, EXIF,
tiling, thresholds, measurement, outputs) is the one ``crackseg predict`` always runs.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from crackseg.cli import main
from crackseg.inference import cli as predict_cli
from crackseg.inference.predictor import MEAN, STD, Predictor


class DarkIsCrack:
    """A backend whose logits say "crack" where the photo is darker than 35 % grey."""

    size_divisor = 8

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        rgb = batch * np.asarray(STD, np.float32)[:, None, None] + np.asarray(MEAN)[:, None, None]
        grey = rgb.mean(axis=1, keepdims=True)
        return ((0.35 - grey) * 60.0).astype(np.float32)


@pytest.fixture()
def dark_model(monkeypatch):
    monkeypatch.setattr(
        predict_cli, "predictor_from_args", lambda *a, **k: Predictor(DarkIsCrack(), name="dark")
    )


def textured(size: tuple[int, int] = (240, 320), seed: int = 0) -> np.ndarray:
    """A light, grainy concrete-like background (no pixel dark enough to be a crack)."""
    rng = np.random.default_rng(seed)
    grey = 170 + rng.normal(0, 12, size).clip(-40, 40)
    return np.repeat(grey.astype(np.uint8)[:, :, None], 3, axis=2)


def with_crack(image: np.ndarray, row: int, c0: int, c1: int, width: int) -> np.ndarray:
    """A dark horizontal crack ``width`` px wide, a little wavy so it is not a joint."""
    out = image.copy()
    for c in range(c0, c1):
        r = row + int(round(3 * np.sin(c / 17.0)))
        out[r : r + width, c] = 40
    return out


def with_marker(
    image: np.ndarray, side_px: float, angle_deg: float, tilt: float = 0.0, centre=(240, 170)
) -> tuple[np.ndarray, float]:
    """``image`` with an OpenCV-rendered DICT_4X4_50 marker pasted in as a square of
    ``side_px``, rotated by ``angle_deg`` and tilted (one pair of sides ``1 -/+ tilt`` as long:
    a mild perspective); and the true mm per px of a 50 mm marker (50 over its mean side)."""
    bits = cv2.aruco.generateImageMarker(cv2.aruco.getPredefinedDictionary(0), 7, 200)
    h = side_px / 2
    square = np.array([[-h, -h], [h, -h], [h, h], [-h, h]])
    square[:2, 0] *= 1 - tilt
    square[2:, 0] *= 1 + tilt
    a = math.radians(angle_deg)
    quad = square @ np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]).T
    quad += centre
    src = np.float32([[0, 0], [200, 0], [200, 200], [0, 200]])
    warp = cv2.getPerspectiveTransform(src, np.float32(quad))
    size = image.shape[1::-1]
    marker = cv2.warpPerspective(bits, warp, size, flags=cv2.INTER_LINEAR)
    inside = cv2.warpPerspective(np.full((200, 200), 255, np.uint8), warp, size) > 127
    out = np.where(inside[:, :, None], marker[:, :, None], image)
    sides = [np.hypot(*(quad[(k + 1) % 4] - quad[k])) for k in range(4)]
    return out.astype(np.uint8), 50.0 / float(np.mean(sides))


def predict(tmp_path: Path, photo: Path, *extra: str) -> int:
    return main(["predict", str(photo), "--out", str(tmp_path / "out"), "--quiet", *extra])


def test_severity_scheme_from_the_command_line(tmp_path, dark_model):
    photo = tmp_path / "wall.png"
    Image.fromarray(with_crack(textured(), 100, 40, 280, 4)).save(photo)
    assert predict(tmp_path, photo, "--mm-per-px", "0.1", "--severity-scheme", "en1992",
                   "--exposure", "xc2") == 0  # fmt: skip
    with open(tmp_path / "out" / "cracks.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["severity_scheme"] == "en1992" and row["severity"] == "over"  # ~0.4 mm > 0.3
    assert float(row["limit_mm"]) == 0.3
    assert float(row["over_limit_mm"]) == pytest.approx(float(row["max_width_mm"]) - 0.3, abs=2e-3)
    record = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert record["severity_scheme"]["name"] == "en1992"
    assert record["severity_scheme"]["exposure"] == "XC2"
    assert "Severity (en1992, XC2)" in (tmp_path / "out" / "report.html").read_text()


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--exposure", "XZ9", "--severity-scheme", "en1992"], ["--exposure XZ9", "XC1"]),
        (["--severity-scheme", "en1992"], ["needs --exposure"]),
        (["--severity-scheme", "asphalt"], ["--severity-scheme asphalt", "bre-251"]),
        (["--exposure", "XC1"], ["en1992 only"]),
    ],
)
def test_bad_severity_options_are_one_line_and_exit_2(tmp_path, capsys, extra, words):
    photo = tmp_path / "p.png"
    Image.fromarray(textured()).save(photo)
    assert predict(tmp_path, photo, "--measure", *extra) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and all(w in err[0] for w in words), err
    assert not (tmp_path / "out").exists()


def test_help_offers_the_schemes(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = capsys.readouterr().out
    for name in ("--severity-scheme", "astm-d6433", "bre-251", "en1992", "--exposure"):
        assert name in text


@pytest.mark.parametrize(("angle", "tilt"), [(0.0, 0.0), (30.0, 0.0), (30.0, 0.08)])
def test_marker_sets_the_photo_scale_within_2_percent(tmp_path, dark_model, capsys, angle, tilt):
    image, truth = with_marker(with_crack(textured(), 60, 30, 290, 3), 70.0, angle, tilt)
    Image.fromarray(image).save(tmp_path / "photo.jpg", quality=92)
    Image.fromarray(textured(seed=1)).save(tmp_path / "bare.jpg")  # no marker
    assert main(["predict", str(tmp_path / "photo.jpg"), str(tmp_path / "bare.jpg"), "--out",
                 str(tmp_path / "out"), "--quiet", "--marker", "aruco:50"]) == 0  # fmt: skip
    record = json.loads((tmp_path / "out" / "predictions.json").read_text())
    images = {r["name"]: r for r in record["images"]}
    photo, bare = images["photo"], images["bare"]
    assert photo["mm_per_px_source"] == "marker"
    assert photo["mm_per_px"] == pytest.approx(truth, rel=0.02)
    assert photo["marker"]["id"] == 7 and photo["marker"]["perspective"] == (tilt > 0.05)
    assert bare["mm_per_px"] is None and bare["marker"] is None
    assert record["summary"]["no_marker"] == 1 and record["summary"]["no_scale"] == 1
    assert "1 without a marker (no mm values)" in capsys.readouterr().err
    # the marker's black squares are not cracks: only the drawn crack is measured
    tables = json.loads((tmp_path / "out" / "cracks.json").read_text())["images"]
    (crack,) = [t for t in tables if t["image"] == "photo"][0]["cracks"]
    assert crack["mm_per_px"] == photo["mm_per_px"]
    assert crack["length_mm"] == pytest.approx(crack["length_px"] * photo["mm_per_px"], rel=1e-3)


def test_photo_without_marker_falls_back_to_the_given_scale(tmp_path, dark_model, capsys):
    Image.fromarray(textured()).save(tmp_path / "bare.png")
    assert predict(tmp_path, tmp_path / "bare.png", "--marker", "aruco:50:4x4_50",
                   "--mm-per-px", "0.4") == 0  # fmt: skip
    (rec,) = json.loads((tmp_path / "out" / "predictions.json").read_text())["images"]
    assert rec["mm_per_px"] == 0.4 and rec["mm_per_px_source"] == "given"
    assert "1 without a marker (--mm-per-px 0.4)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("aruco:abc", ["--marker aruco:abc", "side"]),
        ("aruco:-5", ["--marker aruco:-5", "side"]),
        ("qr:50", ["--marker qr:50", "aruco:SIDE_MM"]),
        ("aruco:50:DICT_9X9_1", ["unknown ArUco dictionary DICT_9X9_1", "DICT_4X4_50"]),
    ],
)
def test_bad_marker_is_one_line_and_exit_2(tmp_path, capsys, value, words):
    Image.fromarray(textured()).save(tmp_path / "p.png")
    assert predict(tmp_path, tmp_path / "p.png", "--marker", value) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and all(w in err[0] for w in words), err


# --------------------------------------------------------------------------------------------
# GeoJSON
# --------------------------------------------------------------------------------------------
LAT, LON = 52.2084722, -4.3527778


def _dms(value: float) -> tuple[float, float, float]:
    d = int(abs(value))
    m = int((abs(value) - d) * 60)
    return float(d), float(m), (abs(value) - d - m / 60) * 3600


def gps_exif(lat=LAT, lon=LON, heading=None, taken=None, f35=None) -> Image.Exif:
    """EXIF with GPS (and optionally heading, time, 35 mm focal length), as Pillow writes it."""
    exif = Image.Exif()
    gps = {1: "N" if lat >= 0 else "S", 2: _dms(lat), 3: "E" if lon >= 0 else "W",
           4: _dms(lon), 5: 0, 6: 31.0}  # fmt: skip
    if heading is not None:
        gps.update({16: "T", 17: float(heading)})
    exif[0x8825] = gps
    sub = {}
    if taken:
        sub[0x9003] = taken
    if f35:
        sub[0xA405] = f35
    if sub:
        exif[0x8769] = sub
    return exif


def metres(a, b) -> float:
    """Distance between two [lon, lat] positions, metres (local flat approximation)."""
    north = (b[1] - a[1]) * 111_250.0
    east = (b[0] - a[0]) * 111_320.0 * math.cos(math.radians(a[1]))
    return math.hypot(east, north)


def check_rfc7946(doc: dict) -> None:
    """The structure RFC 7946 asks for (sections 3, 3.1, 4): types, positions, no crs."""
    assert doc["type"] == "FeatureCollection" and "crs" not in doc
    for f in doc["features"]:
        assert f["type"] == "Feature" and set(f) >= {"geometry", "properties"}
        g = f["geometry"]
        if g is None:
            continue
        kind, coords = g["type"], g["coordinates"]
        positions = [coords] if kind == "Point" else coords
        if kind == "MultiLineString":
            positions = [p for line in coords for p in line]
        assert kind in ("Point", "LineString", "MultiLineString")
        if g["type"] == "LineString":
            assert len(g["coordinates"]) >= 2
        for p in positions:
            assert 2 <= len(p) <= 3 and -180 <= p[0] <= 180 and -90 <= p[1] <= 90


def test_geojson_places_cracks_along_their_skeleton(tmp_path, dark_model):
    image = with_crack(textured(), 100, 40, 280, 4)
    photo = tmp_path / "road.jpg"
    Image.fromarray(image).save(photo, exif=gps_exif(heading=90.0), quality=95)
    assert predict(tmp_path, photo, "--mm-per-px", "1", "--geojson") == 0
    doc = json.loads((tmp_path / "out" / "cracks.geojson").read_text())
    check_rfc7946(doc)
    photo_f, crack_f = doc["features"]
    assert photo_f["geometry"]["type"] == "Point"
    assert photo_f["geometry"]["coordinates"][:2] == pytest.approx([LON, LAT], abs=1e-6)
    assert photo_f["properties"]["heading_source"] == "exif"
    props = crack_f["properties"]
    assert crack_f["geometry"]["type"] == "LineString" and props["placed"] == "skeleton"
    line = crack_f["geometry"]["coordinates"]
    assert max(metres([LON, LAT], p) for p in line) < 0.3  # a 0.32 x 0.24 m photo
    assert props["length_m"] == pytest.approx(props["length_px"] / 1000, abs=1e-6)
    along = sum(metres(a, b) for a, b in zip(line, line[1:], strict=False))
    assert along == pytest.approx(props["length_m"], rel=0.06)
    # heading 90: the image's top points east, so its horizontal crack runs north-south
    assert (
        metres(line[0], [line[0][0], line[-1][1]])
        > 0.2
        > metres(line[0], [line[-1][0], line[0][1]])
    )
    xs = [x for x, _ in props["pixel_polyline"][0]]
    assert min(xs) < 50 and max(xs) > 270  # the crack drawn from x = 40 to 280
    assert props["mm_per_px_source"] == "given" and props["severity_scheme"] == "astm-d6433"
    gpd = pytest.importorskip("geopandas", reason="geopandas (dev extra) reads the file")
    frame = gpd.read_file(tmp_path / "out" / "cracks.geojson")
    assert frame.crs.to_epsg() == 4326 and list(frame.geom_type) == ["Point", "LineString"]
    assert list(frame["image"]) == ["road", "road"]


def test_geojson_without_gps_oblique_and_exif_gsd(tmp_path, dark_model, capsys):
    image = with_crack(textured(), 100, 40, 280, 4)
    Image.fromarray(image).save(tmp_path / "nogps.jpg")
    xmp = b'<rdf:Description drone-dji:RelativeAltitude="+2.50"/>'
    Image.fromarray(image).save(tmp_path / "drone.jpg", exif=gps_exif(f35=24), xmp=xmp)
    assert main(["predict", str(tmp_path / "nogps.jpg"), str(tmp_path / "drone.jpg"), "--out",
                 str(tmp_path / "out"), "--quiet", "--geojson"]) == 0  # fmt: skip
    assert "1 without GPS (geometry null in cracks.geojson)" in capsys.readouterr().err
    doc = json.loads((tmp_path / "out" / "cracks.geojson").read_text())
    check_rfc7946(doc)
    by = {(f["properties"]["image"], f["properties"]["feature"]): f for f in doc["features"]}
    assert by["nogps", "photo"]["geometry"] is None and by["nogps", "crack"]["geometry"] is None
    assert "no GPS" in by["nogps", "photo"]["properties"]["note"]
    gsd = 2500.0 * math.hypot(36, 24) / (24 * math.hypot(320, 240))  # mm per px
    drone = by["drone", "photo"]["properties"]
    assert drone["mm_per_px_source"] == "exif-gsd"
    assert drone["mm_per_px"] == pytest.approx(gsd)
    assert by["drone", "crack"]["geometry"]["type"] == "LineString"
    assert drone["heading_source"].startswith("assumed north")

    assert predict(tmp_path, tmp_path / "drone.jpg", "--geojson", "--view", "oblique",
                   "--heading", "45") == 0  # fmt: skip
    doc = json.loads((tmp_path / "out" / "cracks.geojson").read_text())
    photo_f, crack_f = doc["features"]
    assert photo_f["properties"]["mm_per_px"] is None  # no ground sample distance when oblique
    assert crack_f["geometry"] == {
        "type": "Point",
        "coordinates": photo_f["geometry"]["coordinates"][:2],
    }
    assert crack_f["properties"]["placed"] == "photo position"
    assert (
        photo_f["properties"]["heading_deg"] == 45
        and photo_f["properties"]["heading_source"] == "given"
    )


# --------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------
def test_sections_along_the_drive(tmp_path, dark_model):
    """Five photos 40 m apart heading north, taken a minute apart but named out of order;
    the third has no crack. Sections of 100 m: 0-80 m holds photos 1-3, 120-160 m photos 4-5."""
    folder = tmp_path / "drive"
    folder.mkdir()
    step = 40.0 / 111_250.0  # degrees of latitude per 40 m (the test's flat approximation)
    for k, name in enumerate(["e", "b", "a", "d", "c"]):
        image = textured(seed=k)
        if k != 2:
            image = with_crack(image, 100, 40, 280, 4)
        exif = gps_exif(lat=LAT + k * step, taken=f"2024:05:01 10:0{k}:00")
        Image.fromarray(image).save(folder / f"{name}.jpg", exif=exif, quality=95)
    survey = ["--mm-per-px", "1", "--section-m", "100", "--severity-scheme", "bre-251"]
    assert main(["predict", str(folder), "--out", str(tmp_path / "out"), "--quiet", *survey]) == 0
    with open(tmp_path / "out" / "sections.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["section"] for r in rows] == ["1", "2"]
    assert [r["start_m"] for r in rows] == ["0.0", "100.0"]
    assert [int(r["photo_count"]) for r in rows] == [3, 2]  # 0, 40, 80 m | 120, 160 m
    assert (rows[0]["first_image"], rows[0]["last_image"]) == ("e", "a")  # by time, not name
    tables = json.loads((tmp_path / "out" / "cracks.json").read_text())["images"]
    length = {t["image"]: sum(c["length_mm"] for c in t["cracks"]) / 1000 for t in tables}
    assert float(rows[0]["crack_length_m"]) == pytest.approx(length["e"] + length["b"], abs=1e-3)
    assert float(rows[1]["crack_length_m"]) == pytest.approx(length["d"] + length["c"], abs=1e-3)
    # 4 px at 1 mm/px: BRE category 2 (1-5 mm); the per-class lengths add up to the total
    classes = [k for k in rows[0] if k.endswith("_m") and k[0].isdigit()]
    assert len(classes) == 6
    for r in rows:
        assert sum(float(r[k]) for k in classes) == pytest.approx(float(r["crack_length_m"]))
        assert float(r["2-slight_m"]) == pytest.approx(float(r["crack_length_m"]))
    page = (tmp_path / "out" / "report.html").read_text()
    assert '<svg id="survey-map"' in page and page.count("<circle") == 5
    assert (
        'id="sections"' in page
        and "http" not in page.split('<svg id="survey-map"')[1].split("</svg>")[0]
    )


def test_section_m_without_gps_explains(tmp_path, capsys):
    Image.fromarray(textured()).save(tmp_path / "p.jpg")
    assert predict(tmp_path, tmp_path / "p.jpg", "--section-m", "100") == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "--section-m 100" in err[0] and "GPS" in err[0], err
    assert not (tmp_path / "out").exists()
    assert predict(tmp_path, tmp_path / "p.jpg", "--section-m", "-5") == 2
    assert "--section-m -5.0: give the section length" in capsys.readouterr().err
