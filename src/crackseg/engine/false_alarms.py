"""False alarms on crack-free photos: what a user of ``crackseg predict --measure`` would see.

ODS rewards a model for finding the cracks that are there; it says little about the photo with
no crack at all, where every reported crack is a wrong line in an inspector's report. This
module runs a :class:`~crackseg.inference.Predictor` over a folder of crack-free photos exactly
as ``crackseg predict --measure`` does (the model's own threshold, the crack table's own noise
rule: :func:`crackseg.inference.measure.measure_cracks` drops cracks shorter than 10 px) and
counts, per photo:

* ``cracks``: reported cracks of kind ``crack`` (the ones that enter the totals; instances the
  line classifier calls ``joint_or_line`` are counted apart, as ``lines``);
* ``marked``: the share of the photo's pixels on the crack mask (what the map shows).

and, over the folder and over each surface group (the first-level sub-folder a photo is in,
``.`` for photos directly in the folder):

* ``photo_share``: the share of photos with at least one reported crack, the headline figure;
* ``pixel_share``: marked pixels over all pixels;
* ``crack_px_per_mpx``: reported crack length (px) per megapixel.

``crackseg evaluate --checkpoint X --negatives DIR`` prints the table and writes
``false_alarms.json`` / ``false_alarms.csv``; ``benchmarks/false_alarms.py`` builds the project's
crack-free validation set and records models side by side.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crackseg.data.io import IMAGE_EXTENSIONS, read_image
from crackseg.errors import CrackSegError

PRIMARY = "photo_share"  # the figure the cross-dataset matrix and the model card quote


def find_photos(folder: str | os.PathLike) -> list[tuple[str, Path]]:
    """``(group, path)`` of every image under ``folder``, sorted; the group is the first-level
    sub-folder (``.`` for photos directly inside). Hidden files and folders are skipped.

    Raises:
        CrackSegError: the folder does not exist or holds no image.
    """
    root = Path(folder)
    if not root.is_dir():
        raise CrackSegError(
            f"--negatives {root}: not a folder (give a folder of crack-free photos)"
        )
    photos = []
    for f in sorted(root.rglob("*")):
        rel = f.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS:
            photos.append((rel.parts[0] if len(rel.parts) > 1 else ".", f))
    if not photos:
        raise CrackSegError(
            f"--negatives {root}: no images found (extensions: {' '.join(IMAGE_EXTENSIONS)})"
        )
    return photos


def _kind(crack: Any) -> str:
    return getattr(crack, "kind", "crack")


def score_photo(predictor: Any, image, **measure_kwargs) -> dict[str, Any]:
    """False-alarm figures of one crack-free photo (see the module docstring)."""
    pred = predictor.predict(image, measure=True, **measure_kwargs)
    cracks = [c for c in pred.cracks if _kind(c) == "crack"]
    h, w = pred.levels.shape
    return {
        "height": int(h),
        "width": int(w),
        "cracks": len(cracks),
        "lines": len(pred.cracks) - len(cracks),
        "crack_length_px": round(float(sum(c.length_px for c in cracks)), 1),
        "longest_px": round(float(max((c.length_px for c in cracks), default=0.0)), 1),
        "marked": round(float(pred.mask.mean()), 6),
    }


def _aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    pixels = sum(r["height"] * r["width"] for r in rows)
    with_crack = sum(1 for r in rows if r["cracks"] > 0)
    marked = sum(r["marked"] * r["height"] * r["width"] for r in rows)
    length = sum(r["crack_length_px"] for r in rows)
    return {
        "photos": len(rows),
        "with_crack": with_crack,
        "photo_share": round(with_crack / len(rows), 4),
        "pixel_share": round(marked / pixels, 6),
        "crack_px_per_mpx": round(length / (pixels / 1e6), 1),
    }


def false_alarms(
    predictor: Any,
    folder: str | os.PathLike,
    progress: bool = True,
    on_photo: Callable[[dict[str, Any]], None] | None = None,
    **measure_kwargs,
) -> dict[str, Any]:
    """Run ``predictor`` over the crack-free photos of ``folder`` and count what it reports.

    Returns ``{"folder", "overall", "groups": {group: figures}, "per_image": [...]}`` with the
    figures of the module docstring. An unreadable photo is skipped and listed under
    ``skipped`` (it is not a false alarm, and not a clean photo either).
    """
    from tqdm.auto import tqdm

    photos = find_photos(folder)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    root = Path(folder)
    for group, path in tqdm(photos, desc="crack-free photos", unit="photo", disable=not progress):
        name = path.relative_to(root).as_posix()
        try:
            image = read_image(path)
        except ValueError as e:
            skipped.append({"image": name, "reason": str(e)})
            continue
        row = {"image": name, "group": group, **score_photo(predictor, image, **measure_kwargs)}
        rows.append(row)
        if on_photo is not None:
            on_photo(row)
    if not rows:
        raise CrackSegError(f"--negatives {folder}: none of its {len(photos)} images could be read")
    groups = sorted({r["group"] for r in rows})
    return {
        "folder": str(folder),
        "overall": _aggregate(rows),
        "groups": {g: _aggregate([r for r in rows if r["group"] == g]) for g in groups},
        "per_image": rows,
        "skipped": skipped,
    }


def format_false_alarms(record: dict[str, Any]) -> str:
    """The plain-text table ``crackseg evaluate --negatives`` prints."""
    head = f"{'group':<24} {'photos':>6} {'with crack':>11} {'share':>6} {'pixels':>8}"
    lines = [f"false alarms on crack-free photos in {record['folder']}", head]
    items = list(record["groups"].items()) if len(record["groups"]) > 1 else []
    for name, g in [*items, ("all", record["overall"])]:
        lines.append(
            f"{name:<24} {g['photos']:>6} {g['with_crack']:>11} {g['photo_share']:>6.1%} "
            f"{g['pixel_share']:>8.3%}"
        )
    if record.get("skipped"):
        lines.append(f"skipped {len(record['skipped'])} unreadable image(s):")
        lines += [f"  {s['image']}: {s['reason']}" for s in record["skipped"]]
    return "\n".join(lines)


def write_false_alarms(record: dict[str, Any], out_dir: str | os.PathLike) -> list[Path]:
    """``false_alarms.json`` (everything) and ``false_alarms.csv`` (one row per photo), each
    written atomically by the crack tables' writers."""
    from crackseg.inference.measure import write_cracks_csv, write_cracks_json

    out = Path(out_dir)
    return [
        write_cracks_json(record, out / "false_alarms.json"),
        write_cracks_csv(record["per_image"], out / "false_alarms.csv"),
    ]
