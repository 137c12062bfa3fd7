"""Crack measurement against cracks of known geometry, and its files."""

from __future__ import annotations

import csv
import json
import math
import re
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from crackseg.data.geometry import curved_crack, straight_crack, wavy_crack
from crackseg.inference.measure import (
    ORIENTATIONS,
    Crack,
    crack_rows,
    image_summary,
    measure_cracks,
    typical_width_px,
    write_cracks_csv,
    write_cracks_json,
)

WIDTHS = range(1, 13)
LENGTH_TOL = 0.03  # relative
WIDTH_TOL = 0.5  # px


def _one(mask: np.ndarray, **kwargs) -> Crack:
    cracks = measure_cracks(mask, **kwargs)
    assert len(cracks) == 1, [(c.length_px, c.bbox) for c in cracks]
    return cracks[0]


def _check(c: Crack, length: float, width: float) -> None:
    assert abs(c.length_px / length - 1) <= LENGTH_TOL, (c.length_px, length, width)
    assert abs(c.mean_width_px - width) <= WIDTH_TOL, (c.mean_width_px, width)
    assert c.p90_width_px <= c.max_width_px + 1e-9
    assert c.mean_width_px <= c.max_width_px + 1e-9
    assert c.max_width_px <= width + 1.0, (c.max_width_px, width)
    assert c.area_px > 0


# --------------------------------------------------------------------------------------------
# accuracy on known geometry
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("angle", [0.0, 30.0, 45.0, 60.0, 90.0, 135.0])
def test_straight_cracks_length_and_width(angle: float) -> None:
    for w in WIDTHS:
        for length in (150.0, 300.0):
            g = straight_crack((360, 360), length, w, angle)
            c = _one(g.mask)
            _check(c, length, w)
            assert c.orientation != "alligator" and c.junction_count == 0


@pytest.mark.parametrize("w", WIDTHS)
def test_curved_cracks_length_and_width(w: int) -> None:
    arc = curved_crack((480, 480), 380.0, w, 110.0, start_deg=15.0)
    _check(_one(arc.mask), arc.length_px, w)
    tight = curved_crack((400, 400), 250.0, w, 60.0, start_deg=200.0)
    _check(_one(tight.mask), tight.length_px, w)
    wave = wavy_crack((420, 420), 300.0, w, 18.0, 150.0, angle_deg=70.0)
    c = _one(wave.mask)
    _check(c, wave.length_px, w)
    assert wave.length_px > 310  # the sine is clearly longer than its span: the test can fail
    for crack in (arc, tight, wave):
        assert _one(crack.mask).orientation != "alligator"


@pytest.mark.parametrize("w", [1, 3, 5, 8, 12])
def test_typical_width_of_a_whole_mask(w: int) -> None:
    """The quick width reading behind ``scale="auto"``: the median over all cracks, exact
    across an axis-aligned crack of odd width, up to ~1.2 px narrow on oblique ones (no
    sub-pixel sampling, unlike :func:`measure_cracks`)."""
    mask = straight_crack((300, 300), 200.0, w, 30.0).mask
    mask |= curved_crack((300, 300), 200.0, w, 90.0, start_deg=200.0).mask
    assert -1.25 <= typical_width_px(mask) - w <= 0.0, (typical_width_px(mask), w)
    if w % 2:
        assert typical_width_px(straight_crack((300, 300), 200.0, w, 0.0).mask) == w
    assert typical_width_px(np.zeros((40, 40), bool)) == 0.0
    assert typical_width_px(mask[:3, :3]) == 0.0  # fewer than min_pixels crack pixels
    with pytest.raises(ValueError, match="2-D"):
        typical_width_px(np.zeros((4, 4, 3), bool))


def test_raw_chain_length_would_fail_the_tolerance() -> None:
    """The 30-degree staircase is 7 % too long counted with steps of 1 and sqrt(2); the
    smoothing is what brings it under 3 %."""
    g = straight_crack((360, 360), 300.0, 1, 30.0)
    raw = measure_cracks(g.mask, smooth_sigma_px=0.0)[0].length_px
    assert raw / 300.0 - 1 > LENGTH_TOL
    assert abs(_one(g.mask).length_px / 300.0 - 1) <= LENGTH_TOL


def test_even_widths_are_not_one_pixel_short() -> None:
    """``2 d - 1`` would read an even-width crack a pixel narrow; the measure does not."""
    for w in (2, 4, 8, 12):
        c = _one(straight_crack((200, 300), 200.0, w, 0.0).mask)
        assert c.mean_width_px == pytest.approx(w, abs=0.05)
        assert c.max_width_px == pytest.approx(w, abs=0.05)


def test_angle_bbox_and_area() -> None:
    g = straight_crack((300, 300), 200.0, 5, 45.0, center=(140.2, 160.3))
    c = _one(g.mask)
    assert c.angle_deg == pytest.approx(45.0, abs=1.0)
    assert c.area_px == int(g.mask.sum())
    rows, cols = np.nonzero(g.mask)
    assert c.bbox == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
    x0, y0, x1, y1 = c.bbox
    assert g.mask[y0:y1, x0:x1].sum() == g.mask.sum()


# --------------------------------------------------------------------------------------------
# orientation, alligator, severity
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("angle", "vertical_road", "horizontal_road"),
    [
        (0.0, "transverse", "longitudinal"),
        (15.0, "transverse", "longitudinal"),
        (45.0, "diagonal", "diagonal"),
        (75.0, "longitudinal", "transverse"),
        (90.0, "longitudinal", "transverse"),
        (105.0, "longitudinal", "transverse"),
        (135.0, "diagonal", "diagonal"),
        (170.0, "transverse", "longitudinal"),
    ],
)
def test_orientation_classes(angle: float, vertical_road: str, horizontal_road: str) -> None:
    mask = straight_crack((300, 300), 220.0, 3, angle).mask
    c = _one(mask)
    assert c.angle_deg == pytest.approx(angle, abs=1.0)
    assert c.orientation == vertical_road
    assert _one(mask, road_axis_deg=0.0).orientation == horizontal_road


def test_orientation_tolerance_is_configurable() -> None:
    mask = straight_crack((300, 300), 220.0, 3, 50.0).mask  # 40 degrees off a vertical road
    assert _one(mask).orientation == "diagonal"
    assert _one(mask, orientation_tolerance_deg=45.0).orientation == "longitudinal"


def _grid(n: int = 4, step: int = 70, w: int = 3) -> np.ndarray:
    size = step * (n + 1)
    mask = np.zeros((size, size), dtype=bool)
    span = step * (n - 1) + 40
    for k in range(1, n + 1):
        mask |= straight_crack((size, size), span, w, 0.0, center=(size / 2, k * step)).mask
        mask |= straight_crack((size, size), span, w, 90.0, center=(k * step, size / 2)).mask
    return mask


def test_grid_is_alligator() -> None:
    c = _one(_grid())
    assert c.orientation == "alligator"
    assert c.cell_count == 9  # a 4 x 4 grid of lines encloses 3 x 3 cells
    assert c.junction_count >= 6
    assert c.length_px == pytest.approx(8 * (70 * 3 + 40), rel=LENGTH_TOL)


def test_loops_and_branches_rules() -> None:
    # Ruler-straight pieces here are geometry, not joints: the line classifier (which would split
    # a straight diameter off the ring, tests/inference/test_lines.py) is off.
    geo = {"line_classes": False}
    # one enclosed cell (a ring) is not a network
    yy, xx = np.mgrid[:300, :300]
    r = np.hypot(xx - 150.2, yy - 150.3)
    ring = (r >= 80) & (r <= 85)
    c = _one(ring, **geo)
    assert c.cell_count == 1 and c.orientation != "alligator"
    assert c.length_px == pytest.approx(2 * math.pi * 82.5, rel=LENGTH_TOL)
    # two cells are
    two = ring | straight_crack((300, 300), 170, 4, 90.0, center=(150.2, 150.3)).mask
    assert _one(two, **geo).orientation == "alligator"
    assert _one(two, alligator_loops=3, **geo).orientation == "longitudinal"
    # a Y-shaped branching crack has a junction but is not a network
    y = straight_crack((400, 400), 300, 4, 90.0).mask
    y |= straight_crack((400, 400), 100, 4, 30.0, center=(243.0, 175.0)).mask
    c = _one(y, **geo)
    assert c.junction_count == 1 and c.cell_count == 0 and c.orientation == "longitudinal"
    assert c.length_px == pytest.approx(300 + 100 - 2, rel=LENGTH_TOL)


def test_rough_edges_do_not_make_branches() -> None:
    rng = np.random.default_rng(0)
    for w in (3, 6, 10):
        g = straight_crack((360, 360), 280, w, 20.0)
        from scipy import ndimage as ndi

        noise = ndi.gaussian_filter(rng.standard_normal(g.mask.shape), 1.5)
        rough = g.mask | (ndi.binary_dilation(g.mask) & (noise > 0.15))
        rough &= ~(g.mask & ~ndi.binary_erosion(g.mask) & (noise < -0.15))
        assert rough.sum() != g.mask.sum()
        c = _one(rough)
        assert c.junction_count == 0 and c.orientation == "transverse"
        assert abs(c.length_px / 280 - 1) <= LENGTH_TOL


@pytest.mark.parametrize(
    ("w", "mm_per_px", "scheme", "expected"),
    [
        (8, 2.0, "astm-d6433", "medium"),  # 16 mm
        (3, 2.0, "astm-d6433", "low"),  # 6 mm
        (12, 7.0, "astm-d6433", "high"),  # 84 mm
        (8, 2.0, "bre-251", "4-severe"),  # 16 mm
        (3, 0.1, "bre-251", "1-very-slight"),  # 0.3 mm
        (3, 0.5, "bre-251", "2-slight"),  # 1.5 mm
    ],
)
def test_severity_by_maximum_width(w, mm_per_px, scheme, expected) -> None:
    mask = straight_crack((200, 300), 200.0, w, 0.0).mask
    c = _one(mask, mm_per_px=mm_per_px, severity=scheme)
    assert c.severity == expected and c.severity_scheme == scheme
    assert c.mm_per_px == mm_per_px
    assert c.max_width_mm == pytest.approx(c.max_width_px * mm_per_px)
    assert c.length_mm == pytest.approx(c.length_px * mm_per_px)
    assert c.area_mm2 == pytest.approx(c.area_px * mm_per_px**2)
    plain = _one(mask)
    assert plain.severity is None and plain.length_mm is None and plain.area_mm2 is None


def test_severity_uses_the_maximum_not_the_mean() -> None:
    # a 4 px crack with a 14 px wide stretch: at 1 mm/px mean < 10 mm but max > 10 mm
    mask = straight_crack((200, 400), 300.0, 4, 0.0).mask
    mask |= straight_crack((200, 400), 30.0, 14, 0.0, center=(200.04, 99.75)).mask
    c = _one(mask, mm_per_px=1.0)
    assert c.mean_width_px < 10 < c.max_width_px
    assert c.severity == "medium"


# --------------------------------------------------------------------------------------------
# instances: closing, separation, noise, empty
# --------------------------------------------------------------------------------------------


def _break(mask: np.ndarray, angle: float, gap: int, center: tuple[float, float]) -> np.ndarray:
    """Remove a ``gap``-pixel stretch across the crack, measured along its direction."""
    ux, uy = math.cos(math.radians(angle)), -math.sin(math.radians(angle))
    yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
    t = (xx - center[0]) * ux + (yy - center[1]) * uy
    return mask & ~((t >= 0) & (t < gap))


@pytest.mark.parametrize("angle", [0.0, 30.0, 45.0, 70.0])
@pytest.mark.parametrize("w", [1, 3, 6])
def test_small_gaps_are_joined(angle: float, w: int) -> None:
    g = straight_crack((300, 300), 220.0, w, angle)
    centre = (149.5 + 0.04, 149.5 + 0.25)
    for gap in (1, 2):
        broken = _break(g.mask, angle, gap, centre)
        c = _one(broken)
        assert abs(c.length_px / 220 - 1) <= LENGTH_TOL
        assert c.area_px == broken.sum()  # measured on the original pixels
    if angle == 0.0:  # the break really splits the crack: without joining there are two
        assert len(measure_cracks(_break(g.mask, angle, 2, centre), closing_px=0)) == 2


def test_distant_cracks_stay_separate_and_ids() -> None:
    mask = straight_crack((300, 300), 200.0, 3, 0.0, center=(150.2, 100.3)).mask
    mask |= straight_crack((300, 300), 150.0, 6, 90.0, center=(240.4, 180.3)).mask
    cracks = measure_cracks(mask)
    assert [c.id for c in cracks] == [1, 2]
    assert cracks[0].length_px == pytest.approx(200, rel=LENGTH_TOL)
    assert cracks[1].length_px == pytest.approx(150, rel=LENGTH_TOL)
    assert cracks[0].orientation == "transverse" and cracks[1].orientation == "longitudinal"


def test_short_specks_are_dropped() -> None:
    mask = straight_crack((200, 200), 120.0, 3, 10.0).mask
    mask[10:13, 10:13] = True  # a 3 x 3 speck
    mask[180, 20:27] = True  # a 7 px dash
    assert len(measure_cracks(mask)) == 1
    assert len(measure_cracks(mask, min_length_px=5.0)) == 2  # the speck measures about 3 px
    specks = measure_cracks(mask, min_length_px=2.0)
    assert len(specks) == 3
    assert specks[0].bbox == (10, 10, 13, 13) and specks[0].length_px == pytest.approx(3.0, abs=0.5)
    assert specks[-1].length_px == pytest.approx(7.0, abs=0.05)
    assert len(measure_cracks(mask, min_length_px=200.0)) == 0


def test_empty_mask_and_zero_summary() -> None:
    empty = np.zeros((120, 160), dtype=bool)
    assert measure_cracks(empty) == []
    assert measure_cracks(empty, mm_per_px=1.0) == []
    s = image_summary([], (120, 160), mm_per_px=0.5)
    assert s["crack_count"] == 0 and s["total_length_px"] == 0
    assert s["total_length_m"] == 0 and s["density_px_per_mpx"] == 0
    assert s["density_m_per_m2"] == 0
    assert all(v["count"] == 0 for v in s["by_orientation"].values())
    assert all(v["count"] == 0 for v in s["by_severity"].values())
    assert image_summary([], (120, 160))["by_severity"] == {}


def test_cracks_touching_the_border_and_odd_inputs() -> None:
    g = straight_crack((100, 200), 400.0, 5, 0.0)  # runs off both sides
    c = _one(g.mask.astype(np.uint8))  # any nonzero dtype
    assert c.length_px == pytest.approx(200, rel=LENGTH_TOL)
    assert c.bbox[0] == 0 and c.bbox[2] == 200
    with pytest.raises(ValueError):
        measure_cracks(np.zeros((2, 3, 4), dtype=bool))
    with pytest.raises(ValueError):
        measure_cracks(g.mask, mm_per_px=0.0)
    with pytest.raises(ValueError):
        measure_cracks(g.mask, severity="asphalt")


# --------------------------------------------------------------------------------------------
# large mask
# --------------------------------------------------------------------------------------------


def test_large_mask_is_measured_without_full_size_float_arrays() -> None:
    h, w = 6000, 8000
    mask = np.zeros((h, w), dtype=bool)
    specs = [(0.0, 3), (90.0, 6), (45.0, 2), (20.0, 10), (135.0, 1)]
    for i, (angle, width) in enumerate(specs):
        g = straight_crack((500, 500), 400.0, width, angle)
        r, c = 500 + i * 1000, 300 + i * 1400
        mask[r : r + 500, c : c + 500] |= g.mask
    measure_cracks(mask[:600, :900])  # warm-up outside the trace (first-use imports)
    tracemalloc.start()
    try:
        cracks = measure_cracks(mask, mm_per_px=1.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # one float64 image alone would be 8 bytes per pixel
    assert peak < 8 * h * w, peak / (h * w)
    assert len(cracks) == len(specs)
    for c, (angle, width) in zip(cracks, specs, strict=True):
        _check(c, 400.0, width)
        assert c.angle_deg == pytest.approx(angle, abs=1.0)
    s = image_summary(cracks, (h, w), keep_lines=True)  # ruler-straight bands: joint_or_line
    assert s["total_length_px"] == pytest.approx(2000, rel=LENGTH_TOL)


# --------------------------------------------------------------------------------------------
# summary and files
# --------------------------------------------------------------------------------------------


def _two_cracks(mm_per_px: float | None) -> tuple[list[Crack], tuple[int, int]]:
    shape = (300, 400)
    mask = straight_crack(shape, 200.0, 4, 0.0, center=(200.2, 60.3)).mask
    mask |= straight_crack(shape, 150.0, 9, 90.0, center=(330.4, 180.3)).mask
    return measure_cracks(mask, mm_per_px=mm_per_px), shape


def test_image_summary_totals_and_density() -> None:
    cracks, shape = _two_cracks(2.0)
    s = image_summary(cracks, shape, keep_lines=True)  # the scale comes from the cracks
    total = sum(c.length_px for c in cracks)
    assert s["crack_count"] == 2
    assert s["total_length_px"] == pytest.approx(total, abs=1e-3)
    assert s["density_px_per_mpx"] == pytest.approx(total / (300 * 400 / 1e6), rel=1e-6)
    assert s["total_length_m"] == pytest.approx(total * 2.0 / 1000, rel=1e-5)
    area_m2 = 300 * 400 * (2.0 / 1000) ** 2
    assert s["density_m_per_m2"] == pytest.approx(total * 2.0 / 1000 / area_m2, rel=1e-5)
    assert set(s["by_orientation"]) == set(ORIENTATIONS)
    assert s["by_orientation"]["transverse"]["count"] == 1
    assert s["by_orientation"]["longitudinal"]["count"] == 1
    assert s["by_orientation"]["transverse"]["length_px"] == pytest.approx(200, rel=0.03)
    assert sum(v["count"] for v in s["by_orientation"].values()) == 2
    assert s["by_severity"]["low"]["count"] == 1  # 4 px * 2 mm = 8 mm
    assert s["by_severity"]["medium"]["count"] == 1  # 9 px * 2 mm = 18 mm
    assert s["by_severity"]["high"]["count"] == 0
    plain = image_summary(_two_cracks(None)[0], shape)
    assert "total_length_m" not in plain and "density_m_per_m2" not in plain
    assert plain["by_severity"] == {}


_UNIT = re.compile(r"_(px|px2|mm|mm2|m|m2|deg|count|per_px)$")
_UNITLESS = {"image", "id", "orientation", "severity", "severity_scheme", "severity_note", "kind"}


def test_rows_csv_and_json_round_trip(tmp_path: Path) -> None:
    with_mm, shape = _two_cracks(0.5)
    without, _ = _two_cracks(None)
    rows = crack_rows(with_mm, "a.jpg") + crack_rows(without, "b.png")
    assert all(list(r)[0] == "image" for r in rows)
    assert "length_mm" in rows[0] and "length_mm" not in rows[-1]
    for key in rows[0]:
        assert key in _UNITLESS or _UNIT.search(key), key

    path = write_cracks_csv(rows, tmp_path / "out" / "cracks.csv")
    assert path.exists() and not [p for p in path.parent.iterdir() if p.name != "cracks.csv"]
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames
        back = list(reader)
    assert header[0] == "image" and set(rows[0]) <= set(header)
    for key in header:
        assert key in _UNITLESS or _UNIT.search(key), key
    assert len(back) == len(rows)
    for orig, read in zip(rows, back, strict=True):
        for key in header:
            value = orig.get(key)
            if value is None:
                assert read[key] == ""
            elif isinstance(value, str):
                assert read[key] == value
            else:
                assert float(read[key]) == pytest.approx(value, abs=0)

    record = {
        "images": [
            {"image": "a.jpg", "summary": image_summary(with_mm, shape), "cracks": rows[:2]},
            {"image": "b.png", "summary": image_summary(without, shape), "cracks": rows[2:]},
        ]
    }
    jpath = write_cracks_json(record, tmp_path / "cracks.json")
    assert json.loads(jpath.read_text(encoding="utf-8")) == record
    # a Crack and numpy numbers are written too
    jpath2 = write_cracks_json({"c": with_mm[0], "n": np.float32(1.5)}, tmp_path / "c.json")
    loaded = json.loads(jpath2.read_text(encoding="utf-8"))
    assert loaded["c"] == with_mm[0].as_row() and loaded["n"] == 1.5


def test_failed_write_leaves_previous_file_and_no_temporary(tmp_path: Path) -> None:
    path = write_cracks_json({"ok": 1}, tmp_path / "x.json")
    with pytest.raises(ValueError):
        write_cracks_json({"bad": float("nan")}, path)
    assert json.loads(path.read_text(encoding="utf-8")) == {"ok": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_skeleton_of_isolated_dots_does_not_crash():
    """Thinning can leave two isolated skeleton pixels, from which no path can be built (skan
    raised 'index pointer size 0 should be 1' on a real prediction)."""
    mask = np.zeros((20, 20), bool)
    mask[5, 5] = mask[5, 8] = True
    cracks = measure_cracks(mask, min_length_px=0.5)
    assert len(cracks) == 1 and cracks[0].area_px == 2


def test_a_short_spur_is_pruned_and_a_long_branch_kept():
    """A wide crack with a bump on one side: thinning makes a short end branch (spur) at the bump,
    which pruning removes, so the crack stays one branch of the bar's length; a long side branch
    is a branch and makes a junction."""
    bar = np.zeros((60, 140), bool)
    bar[24:35, 10:130] = True  # 11 px wide, 120 px long
    bumped = bar.copy()
    bumped[20:24, 68:74] = True  # a 4 px bump: a spur of the skeleton
    branched = bar.copy()
    branched[2:24, 68:73] = True  # a 22 px side crack
    (plain,) = measure_cracks(bar)
    (bump,) = measure_cracks(bumped)
    (side,) = measure_cracks(branched)
    assert bump.junction_count == 0 and len(bump.branches) == 1
    assert bump.length_px == pytest.approx(plain.length_px, rel=0.02)
    assert side.junction_count == 1 and len(side.branches) == 3
    assert side.length_px > plain.length_px + 15
