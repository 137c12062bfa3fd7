"""Crack severity by the standard the user names: one table per scheme, each with its source.

A scheme sorts a crack by its MAXIMUM width in millimetres (the conservative reading: a crack
is as severe as its widest point) into ordered classes. Each class is ``(label, upper edge in
mm, upper edge inclusive)``; the last class has no upper edge.

``astm-d6433`` (the default): ASTM D6433-20, *Standard Practice for Roads and Parking Lots
    Pavement Condition Index Surveys*, longitudinal and transverse cracking (asphalt):
    ``low`` below 10 mm, ``medium`` 10 to 75 mm, ``high`` above 75 mm.
``bre-251``: BRE Digest 251, *Assessment of damage in low-rise buildings* (1995), Table 1,
    damage categories of masonry walls by crack width: ``0-negligible`` below 0.1 mm,
    ``1-very-slight`` up to 1 mm, ``2-slight`` up to 5 mm, ``3-moderate`` 5 to 15 mm,
    ``4-severe`` 15 to 25 mm, ``5-very-severe`` above 25 mm. (The Digest also weighs the number
    of cracks and the ease of repair; the width is the part a photo can measure.)
``en1992``: EN 1992-1-1:2004 (Eurocode 2), 7.3.1, Table 7.1N, recommended ``w_max`` for
    reinforced members (and prestressed members with unbonded tendons) under the quasi-permanent
    load combination, by exposure class (EN 206 / Table 4.1): 0.4 mm for X0 and XC1 (a limit of
    appearance, not durability: Note 1), 0.3 mm for XC2, XC3, XC4, XD1, XD2, XS1, XS2, XS3.
    A crack is ``within`` the limit (max width at most ``w_max``) or ``over`` it, and the
    difference is reported (``over_limit_mm``, negative when within). National annexes may set
    other values; prestressed members with bonded tendons have stricter limits (0.2 mm or
    decompression) and are not covered.

Resolution. A photo cannot resolve widths under about one pixel: a hairline crack of 0.05 mm
shows up as a faint line about one pixel wide. A severity therefore "rests on a sub-pixel
width" (``note`` ``"sub-pixel"``) when the crack's maximum width is under one pixel, or when
the edge that separates its class from the class below lies under one pixel (``mm_per_px``):
then the photo cannot tell the crack from one in the lower class (BRE category 0 against 1 at
0.5 mm/px, or EN 1992's 0.3 mm limit at 0.5 mm/px).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from crackseg.errors import CrackSegError

__all__ = [
    "DEFAULT_SCHEME",
    "EN1992_WMAX_MM",
    "SCHEMES",
    "SUB_PIXEL",
    "SeverityScheme",
    "SeverityVerdict",
    "all_severity_classes",
    "get_scheme",
    "parse_exposure",
]

DEFAULT_SCHEME = "astm-d6433"
#: The note on a severity that rests on a width the photo cannot resolve.
SUB_PIXEL = "sub-pixel"
#: The smallest width a photo resolves, in pixels.
RESOLVABLE_PX = 1.0

_INF = math.inf

#: ``(label, upper edge mm, inclusive)`` per class, lowest first.
_ASTM_D6433 = (("low", 10.0, False), ("medium", 75.0, True), ("high", _INF, True))
_BRE_251 = (
    ("0-negligible", 0.1, False),
    ("1-very-slight", 1.0, True),
    ("2-slight", 5.0, True),
    ("3-moderate", 15.0, True),
    ("4-severe", 25.0, True),
    ("5-very-severe", _INF, True),
)
#: EN 1992-1-1 Table 7.1N, reinforced members, quasi-permanent combination: w_max in mm.
EN1992_WMAX_MM: dict[str, float] = {
    "X0": 0.4,
    "XC1": 0.4,
    "XC2": 0.3,
    "XC3": 0.3,
    "XC4": 0.3,
    "XD1": 0.3,
    "XD2": 0.3,
    "XS1": 0.3,
    "XS2": 0.3,
    "XS3": 0.3,
}

#: The schemes ``--severity-scheme`` offers, with a one-line description for ``--help``.
SCHEMES: dict[str, str] = {
    "astm-d6433": "asphalt pavement, ASTM D6433: low < 10 mm, medium 10-75 mm, high > 75 mm",
    "bre-251": "masonry, BRE Digest 251 damage categories 0-5: < 0.1, <= 1, <= 5, <= 15, "
    "<= 25, > 25 mm",
    "en1992": "reinforced concrete, EN 1992-1-1 Table 7.1N: within / over w_max of the "
    "--exposure class (0.4 mm X0, XC1; 0.3 mm others)",
}


@dataclass(frozen=True)
class SeverityVerdict:
    """The severity of one crack: its class, the class's lower edge, and the resolution note."""

    label: str
    note: str | None = None
    limit_mm: float | None = None  # en1992: w_max of the exposure class
    over_limit_mm: float | None = None  # en1992: max width minus w_max (< 0: within)


@dataclass(frozen=True)
class SeverityScheme:
    """One scheme's class table (see the module docstring for the sources).

    Attributes:
        name: ``astm-d6433``, ``bre-251`` or ``en1992``.
        classes: ``(label, upper edge mm, inclusive)`` per class, lowest first.
        exposure: en1992's exposure class, else ``None``.
    """

    name: str
    classes: tuple[tuple[str, float, bool], ...]
    exposure: str | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        """The class labels, lowest first (the order of tables)."""
        return tuple(label for label, _, _ in self.classes)

    @property
    def limit_mm(self) -> float | None:
        """en1992's ``w_max``; ``None`` for the other schemes."""
        return self.classes[0][1] if self.name == "en1992" else None

    def classify(self, max_width_mm: float, mm_per_px: float) -> SeverityVerdict:
        """The class of a crack of maximum width ``max_width_mm`` in a photo at ``mm_per_px``."""
        if not (math.isfinite(max_width_mm) and max_width_mm >= 0):
            raise ValueError(f"max width must be a finite number >= 0 mm, got {max_width_mm!r}")
        index = next(
            i
            for i, (_, upper, inclusive) in enumerate(self.classes)
            if max_width_mm < upper or (inclusive and max_width_mm == upper)
        )  # the last class's upper edge is infinite: there always is one
        label = self.classes[index][0]
        lower = self.classes[index - 1][1] if index else 0.0
        resolvable = RESOLVABLE_PX * mm_per_px
        sub = max_width_mm < resolvable or 0.0 < lower < resolvable
        verdict = SeverityVerdict(label, SUB_PIXEL if sub else None)
        if self.name == "en1992":
            limit = self.classes[0][1]
            over = round(max_width_mm - limit, 3)
            return SeverityVerdict(label, verdict.note, limit, over)
        return verdict

    def describe(self) -> dict[str, object]:
        """For records: the scheme's name, exposure and classes (edges in mm)."""
        out: dict[str, object] = {"name": self.name, "classes": list(self.labels)}
        out["upper_edges_mm"] = [u for _, u, _ in self.classes[:-1]]
        if self.exposure is not None:
            out["exposure"] = self.exposure
            out["limit_mm"] = self.limit_mm
        return out


def parse_exposure(text: str) -> str:
    """An EN 206 exposure class as written in Table 7.1N (``xc3`` -> ``XC3``); CrackSegError
    (a ValueError) naming ``--exposure`` else."""
    key = str(text).strip().upper()
    if key not in EN1992_WMAX_MM:
        raise CrackSegError(
            f"--exposure {text}: not an exposure class of EN 1992-1-1 Table 7.1N; give one of "
            + ", ".join(EN1992_WMAX_MM)
        )
    return key


def get_scheme(name: str = DEFAULT_SCHEME, exposure: str | None = None) -> SeverityScheme:
    """The scheme ``name`` (``en1992`` needs ``exposure``); CrackSegError (a ValueError) naming
    the option else."""
    key = str(name).strip().lower()
    if key not in SCHEMES:
        raise CrackSegError(
            f"--severity-scheme {name}: unknown scheme; give one of {', '.join(SCHEMES)}"
        )
    if key == "en1992":
        if exposure is None:
            raise CrackSegError(
                "--severity-scheme en1992 needs --exposure CLASS (the member's exposure class: "
                + ", ".join(EN1992_WMAX_MM)
                + ")"
            )
        cls = parse_exposure(exposure)
        limit = EN1992_WMAX_MM[cls]
        return SeverityScheme(key, (("within", limit, True), ("over", _INF, True)), cls)
    if exposure is not None:
        raise CrackSegError(
            f"--exposure {exposure} applies to --severity-scheme en1992 only (not {key})"
        )
    return SeverityScheme(key, _ASTM_D6433 if key == "astm-d6433" else _BRE_251)


def all_severity_classes() -> Sequence[str]:
    """Every scheme's labels in display order (the report's column sort and tables)."""
    out: list[str] = []
    for table in (_ASTM_D6433, _BRE_251, (("within", 0, True), ("over", 0, True))):
        out += [label for label, _, _ in table if label not in out]
    return out
