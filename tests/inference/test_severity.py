"""Severity schemes (issue 26): each table at known widths, its edges, the sub-pixel note, and
the scheme carried through the crack rows and the per-image summary."""

from __future__ import annotations

import pytest

from crackseg.data.geometry import straight_crack
from crackseg.inference.measure import image_summary, measure_cracks
from crackseg.inference.severity import SCHEMES, SUB_PIXEL, get_scheme, parse_exposure

FINE = 0.001  # mm/px: every width here is hundreds of pixels, never sub-pixel


@pytest.mark.parametrize(
    ("width_mm", "expected"),
    [(0.0, "low"), (9.999, "low"), (10.0, "medium"), (75.0, "medium"), (75.001, "high")],
)
def test_astm_d6433_edges(width_mm, expected) -> None:
    assert get_scheme("astm-d6433").classify(width_mm, FINE).label == expected


@pytest.mark.parametrize(
    ("width_mm", "expected"),
    [
        (0.05, "0-negligible"),
        (0.1, "1-very-slight"),  # "less than about 0.1 mm" is category 0: 0.1 itself is not
        (1.0, "1-very-slight"),
        (1.01, "2-slight"),
        (5.0, "2-slight"),
        (5.01, "3-moderate"),
        (15.0, "3-moderate"),
        (20.0, "4-severe"),
        (25.0, "4-severe"),
        (25.5, "5-very-severe"),
    ],
)
def test_bre_251_categories(width_mm, expected) -> None:
    assert get_scheme("bre-251").classify(width_mm, FINE).label == expected


@pytest.mark.parametrize(
    ("exposure", "width_mm", "label", "over"),
    [
        ("X0", 0.4, "within", 0.0),
        ("xc1", 0.45, "over", 0.05),  # case does not matter
        ("XC3", 0.25, "within", -0.05),
        ("XC3", 0.31, "over", 0.01),
        ("XS3", 1.3, "over", 1.0),
    ],
)
def test_en1992_limit_by_exposure_class(exposure, width_mm, label, over) -> None:
    v = get_scheme("en1992", exposure).classify(width_mm, FINE)
    assert v.label == label
    assert v.over_limit_mm == pytest.approx(over)
    assert v.limit_mm == (0.4 if exposure.upper() in ("X0", "XC1") else 0.3)


def test_sub_pixel_note_when_the_width_or_the_deciding_edge_is_under_a_pixel() -> None:
    bre = get_scheme("bre-251")
    assert bre.classify(0.4, 0.5).note == SUB_PIXEL  # 0.8 px wide
    assert bre.classify(0.8, 0.5).note == SUB_PIXEL  # 1.6 px, but category 0/1 edge is 0.2 px
    assert bre.classify(3.0, 0.5).note is None  # category 2: its edge (1 mm) is 2 px
    en = get_scheme("en1992", "XC2")
    assert en.classify(0.5, 0.5).note == SUB_PIXEL  # "over", but 0.3 mm is 0.6 px: unprovable
    assert en.classify(0.5, 0.05).note is None  # 0.3 mm is 6 px: resolved
    assert en.classify(0.2, 0.05).note is None  # within, 4 px wide
    assert get_scheme().classify(20.0, 2.0).note is None  # medium: 10 mm edge is 5 px


def test_bad_names_name_the_option() -> None:
    with pytest.raises(ValueError, match="--severity-scheme asphalt"):
        get_scheme("asphalt")
    with pytest.raises(ValueError, match="needs --exposure"):
        get_scheme("en1992")
    with pytest.raises(ValueError, match="--exposure XZ9.*XC1"):
        parse_exposure("XZ9")
    with pytest.raises(ValueError, match="en1992 only"):
        get_scheme("bre-251", "XC1")
    assert set(SCHEMES) == {"astm-d6433", "bre-251", "en1992"}


def test_scheme_in_rows_and_summary() -> None:
    mask = straight_crack((200, 300), 200.0, 6, 0.0).mask  # 6 px wide
    scheme = get_scheme("en1992", "XC4")
    (c,) = measure_cracks(mask, mm_per_px=0.1, severity=scheme)  # ~0.6 mm: over by ~0.3
    row = c.as_row()
    assert row["severity"] == "over" and row["severity_scheme"] == "en1992"
    assert row["limit_mm"] == 0.3 and row["severity_note"] is None
    assert row["over_limit_mm"] == pytest.approx(row["max_width_mm"] - 0.3, abs=1e-3)
    s = image_summary([c], mask.shape, keep_lines=True, severity=scheme)  # a straight line
    assert s["severity_scheme"] == "en1992" and s["exposure"] == "XC4" and s["limit_mm"] == 0.3
    assert set(s["by_severity"]) == {"within", "over"} and s["by_severity"]["over"]["count"] == 1
    assert s["min_resolvable_width_mm"] == 0.1 and s["sub_pixel_count"] == 0
    (coarse,) = measure_cracks(mask, mm_per_px=1.0, severity="bre-251")  # ~6 mm, category 3
    assert coarse.severity == "3-moderate" and coarse.severity_note is None
    (plain,) = measure_cracks(mask)
    assert "severity_scheme" not in plain.as_row() and plain.severity is None
