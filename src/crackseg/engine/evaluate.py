"""Score probability maps against ground-truth masks: the engine behind ``crackseg evaluate``.

This module knows nothing about models: it takes probability maps (in memory or as files on disk,
from crackseg or any other tool) and ground-truth masks, runs the protocol of
:mod:`crackseg.metrics.protocol` and writes the report. The rules (thresholds, matching, AP,
empty ground truth) are documented there.

On disk, predictions are 8-bit grey PNGs (or any image format), 0..255 = probability, named
``<stem>_prob.png`` or ``<stem>.png``; when a prediction folder holds any ``*_prob.*`` file, only
those are read, so crackseg's own output folders (which also hold ``_mask`` and ``_overlay``
images) can be scored as they are. Ground-truth masks are matched by stem, with or without a
``_mask`` suffix (CRACK500 names ``x_mask.png``), and read with
:func:`crackseg.data.io.read_mask`, the project's single binarisation rule.
"""

from __future__ import annotations

import csv
import json
import math
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from crackseg.data.io import (
    IMAGE_EXTENSIONS,
    MASK_EXTENSIONS,
    ImageReadError,
    open_image,
    read_mask,
)
from crackseg.errors import CrackSegError, writable_folder
from crackseg.metrics.protocol import (
    Confusion,
    ImageCounts,
    confusion_at_threshold,
    dataset_fixed_threshold_scores,
    match_counts,
    quantize,
    scores_from_confusion,
    summarize,
)

__all__ = [
    "MATCHING_MODES",
    "MAX_TOLERANCE",
    "EvalResult",
    "check_tolerance",
    "evaluate_dirs",
    "evaluate_maps",
    "find_pairs",
    "format_table",
    "iter_pairs",
    "evaluate_checkpoint",
    "metrics_dict",
    "read_prob_map",
    "write_report",
]

MATCHING_MODES = ("distance", "bsds")
PRED_SUFFIX = "_prob"
GT_SUFFIX = "_mask"


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------
def _files(folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in extensions)


def _strip(stem: str, suffix: str) -> str | None:
    return stem[: -len(suffix)] if stem.endswith(suffix) and len(stem) > len(suffix) else None


class EvaluationError(CrackSegError):
    """Prediction maps and masks that cannot be scored as given; the message says why."""


@dataclass
class Matching:
    """How the files of a prediction folder and a ground-truth folder pair up."""

    pairs: list[tuple[str, Path, Path]]
    no_mask: list[Path]  # predictions without a ground-truth mask
    no_prediction: list[Path]  # ground-truth masks without a prediction


def _shown(paths: list[Path], n: int = 5) -> str:
    names = ", ".join(p.name for p in paths[:n])
    return names + (f" and {len(paths) - n} more" if len(paths) > n else "")


def match_files(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike) -> Matching:
    """Pair prediction maps with ground-truth masks by stem (see :func:`find_pairs`), keeping
    the files left over on either side instead of raising."""
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    for what, d in (("prediction", pred_dir), ("ground-truth", gt_dir)):
        if not d.is_dir():
            raise FileNotFoundError(f"{what} folder {d} does not exist or is not a folder")

    files = _files(pred_dir, IMAGE_EXTENSIONS)
    prob_files = [p for p in files if _strip(p.stem, PRED_SUFFIX) is not None]
    preds: dict[str, Path] = {}
    for p in prob_files or files:
        stem = _strip(p.stem, PRED_SUFFIX) or p.stem
        if stem in preds:
            raise EvaluationError(f"two predictions for image '{stem}': {preds[stem]} and {p}")
        preds[stem] = p
    if not preds:
        raise FileNotFoundError(
            f"no prediction maps found in {pred_dir}: expected 8-bit images named "
            f"<stem>_prob.png or <stem>.png ({', '.join(IMAGE_EXTENSIONS)})"
        )

    exact: dict[str, Path] = {}
    suffixed: dict[str, Path] = {}
    for g in _files(gt_dir, MASK_EXTENSIONS):
        for table, stem in ((exact, g.stem), (suffixed, _strip(g.stem, GT_SUFFIX))):
            if stem is None:
                continue
            if stem in table:
                raise EvaluationError(
                    f"two ground-truth masks for image '{stem}': {table[stem]} and {g}"
                )
            table[stem] = g

    pairs: list[tuple[str, Path, Path]] = []
    no_mask: list[Path] = []
    used: set[Path] = set()
    for stem in sorted(preds):
        gt = exact.get(stem) or suffixed.get(stem)
        if gt is None:
            no_mask.append(preds[stem])
        else:
            pairs.append((stem, preds[stem], gt))
            used.add(gt)
    # masks left over, one per image: x_mask.png is the mask of image x
    claimed = {stem for stem, _, _ in pairs}
    no_prediction: list[Path] = []
    for g in sorted({*exact.values(), *suffixed.values()}):
        stem = _strip(g.stem, GT_SUFFIX) or g.stem
        if g not in used and stem not in claimed:
            claimed.add(stem)
            no_prediction.append(g)
    return Matching(pairs, no_mask, no_prediction)


def find_pairs(
    pred_dir: str | os.PathLike, gt_dir: str | os.PathLike, allow_missing: bool = False
) -> list[tuple[str, Path, Path]]:
    """Pair prediction maps with ground-truth masks by stem.

    Predictions are the image files of ``pred_dir`` named ``<stem>_prob.<ext>``; if there is none,
    every image file ``<stem>.<ext>`` is a prediction. A mask ``<stem>.<ext>`` in ``gt_dir`` is
    preferred, else ``<stem>_mask.<ext>``. Extensions: png, jpg, jpeg, bmp, tif, tiff (and .mat
    for masks), case-insensitive.

    Returns ``(stem, pred_path, gt_path)`` sorted by stem. Raises ``FileNotFoundError`` when a
    folder is missing, when no prediction is found, or when predictions have no mask (naming up
    to five); :class:`EvaluationError` when masks have no prediction (a score over part of the
    data set would look like a score over all of it; ``allow_missing`` accepts that) or when
    two files claim the same stem.
    """
    m = match_files(pred_dir, gt_dir)
    n_preds = len(m.pairs) + len(m.no_mask)
    if m.no_mask:
        raise FileNotFoundError(
            f"{len(m.no_mask)} of {n_preds} predictions in {pred_dir} have no ground-truth mask "
            f"in {gt_dir} (looked for <stem>.<ext> and <stem>{GT_SUFFIX}.<ext>): "
            f"{_shown(m.no_mask)}"
        )
    if m.no_prediction and not allow_missing:
        n_gt = len(m.pairs) + len(m.no_prediction)
        raise EvaluationError(
            f"{len(m.no_prediction)} of {n_gt} ground-truth masks in {gt_dir} have no prediction "
            f"in {pred_dir}: {_shown(m.no_prediction)}; predict every image, or pass "
            "--allow-missing to score the others (the count goes into metrics.json)"
        )
    return m.pairs


def read_prob_map(path: str | os.PathLike, color: bool = False) -> np.ndarray:
    """Read a probability map file as uint8 levels 0..255 (255 = probability 1).

    8-bit grey is taken as is; 16-bit grey is scaled by 1/257; 32-bit float images must hold
    probabilities in [0, 1] (NaN is an error naming the file). Colour images whose channels are
    equal (grey saved as RGB, a grey palette) are grey. A colour map (a heat-map) is an error
    unless ``color`` (``--color-maps``): then it is converted to grey by luminance, which is
    right only for maps whose brightness is the probability.

    The file is decoded by :func:`crackseg.data.io.open_image`, the reader of images and masks:
    a missing, corrupt or truncated file, or one over Pillow's decompression-bomb limit, is an
    :class:`~crackseg.data.io.ImageReadError` naming it.
    """
    path = Path(path)
    with open_image(path, "prediction map") as im:
        mode = im.mode
        if mode == "L":
            return np.asarray(im, dtype=np.uint8).copy()
        if mode == "1":
            return np.asarray(im).astype(np.uint8) * np.uint8(255)
        if mode.startswith("I;16") or mode == "I":
            a = np.asarray(im).astype(np.float64)
            return np.clip(np.rint(a / 257.0), 0, 255).astype(np.uint8)
        if mode == "F":
            return _float_levels(np.asarray(im, dtype=np.float64), path)
        if mode == "LA":
            return np.asarray(im.getchannel("L"), dtype=np.uint8).copy()
        rgb = np.asarray(im.convert("RGB"))
        if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
            return rgb[..., 0].copy()
        if not color:
            raise EvaluationError(
                f"prediction map {path} is a colour image (mode {mode}): probability maps "
                "are grey (0..255 = probability); save the raw map, or pass --color-maps to "
                "read colour maps as grey by luminance (wrong for heat-map colour scales)"
            )
        return np.asarray(im.convert("L"), dtype=np.uint8).copy()


def _float_levels(a: np.ndarray, path: Path) -> np.ndarray:
    """The levels of a 32-bit float map: probabilities in [0, 1], NaN an error naming it."""
    bad = int(np.count_nonzero(~np.isfinite(a)))
    if bad:
        raise EvaluationError(
            f"prediction map {path} holds {bad} NaN/infinite values: re-export it with "
            "probabilities in [0, 1]"
        )
    try:
        return quantize(a)
    except ValueError as e:
        raise EvaluationError(f"prediction map {path}: {e}") from None


#: A mask with more crack pixels than this fraction is probably inverted (white background).
INVERTED_FRACTION = 0.5


def _warn_if_inverted(gt: np.ndarray, what: str) -> None:
    frac = float(gt.mean()) if gt.size else 0.0
    if frac > INVERTED_FRACTION:
        warnings.warn(
            f"{what} marks {frac:.0%} of its pixels as crack: is it inverted (white background, "
            "black cracks)? Cracks must be the bright/non-zero pixels",
            stacklevel=3,
        )


def iter_pairs(
    pairs: Iterable[tuple[str, Path, Path]],
    skip_bad: bool = False,
    skipped: list[dict] | None = None,
    color: bool = False,
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Load ``(stem, pred_path, gt_path)`` triples as ``(stem, levels uint8, gt bool)``.

    Raises ``ValueError`` naming both files when a prediction and its mask differ in size, and
    :class:`EvaluationError` / :class:`~crackseg.data.io.ImageReadError` naming the file when
    one cannot be read. With ``skip_bad`` such pairs are skipped instead, each appended to
    ``skipped`` as ``{"name", "prediction", "mask", "reason"}``. Masks that are mostly crack
    get a warning naming the file (inverted?).
    """
    for stem, pred_path, gt_path in pairs:
        try:
            prob = read_prob_map(pred_path, color=color)
            gt = read_mask(gt_path)
            if prob.shape != gt.shape:
                raise EvaluationError(
                    f"size mismatch for '{stem}': prediction {pred_path} is "
                    f"{prob.shape[1]}x{prob.shape[0]} but ground truth {gt_path} is "
                    f"{gt.shape[1]}x{gt.shape[0]} (width x height); predict at the mask's size"
                )
        except (EvaluationError, ImageReadError) as exc:
            if not skip_bad:
                raise
            warnings.warn(f"skipped '{stem}': {exc}", stacklevel=2)
            if skipped is not None:
                skipped.append(
                    {
                        "name": stem,
                        "prediction": str(pred_path),
                        "mask": str(gt_path),
                        "reason": str(exc),
                    }
                )
            continue
        _warn_if_inverted(gt, f"ground-truth mask {gt_path}")
        yield stem, prob, gt


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------
@dataclass
class EvalResult:
    """Outcome of an evaluation.

    Attributes:
        summary: data-set scores: the keys of :func:`crackseg.metrics.protocol.summarize` plus
            ``tolerance``, ``matching``, ``fixed_threshold`` and ``F1@t``, ``IoU@t``, ``mIoU@t``,
            ``precision@t``, ``recall@t`` (exact matching at the fixed threshold, counts summed
            over the data set).
        rows: one dict per image: ``name``, ``n_gt`` (crack pixels), ``best_f`` (its OIS term),
            ``best_threshold``, and ``precision@t``, ``recall@t``, ``F1@t``, ``IoU@t``.
    """

    summary: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)


#: The widest matching tolerance accepted, in pixels (the field scores at 0 and 2; training's
#: val_tolerance has the same bound). Wider ones would match a crack to anything in the photo,
#: and their disk footprints grow with the square of the radius.
MAX_TOLERANCE = 100.0


def check_tolerance(tolerance: float, name: str = "tolerance") -> float:
    """``tolerance`` as a float when it is a number of pixels in [0, :data:`MAX_TOLERANCE`],
    else an :class:`EvaluationError` naming ``name`` (the option or argument it came from)."""
    try:
        t = float(tolerance)
    except (TypeError, ValueError):
        t = math.nan
    if isinstance(tolerance, bool) or not (math.isfinite(t) and 0.0 <= t <= MAX_TOLERANCE):
        raise EvaluationError(
            f"{name} {tolerance!r}: the matching tolerance is a distance in pixels from 0 "
            f"(exact) to {MAX_TOLERANCE:g}; the usual one is 2"
        )
    return t


def evaluate_maps(
    items: Iterable[tuple[str, np.ndarray, np.ndarray]],
    tolerance: float = 2.0,
    num_thresholds: int = 255,
    matching: str = "distance",
    fixed_threshold: float = 0.5,
    progress: bool = True,
    check_gt: bool = True,
) -> EvalResult:
    """Evaluate ``(name, prob, gt)`` items: threshold sweep plus fixed-threshold scores.

    Args:
        items: names, ``(H, W)`` probability maps (float in [0, 1] or uint8 0..255) and boolean
            ground-truth masks; consumed once, one image in memory at a time.
        tolerance: matching distance in pixels (0 = exact).
        num_thresholds: thresholds of the sweep, ``t_k = k / (N + 1)``.
        matching: ``"distance"`` (default, vectorised) or ``"bsds"`` (one-to-one matching via
            the optional pyedgeeval package; both masks thinned, see :mod:`crackseg.metrics.bsds`).
        fixed_threshold: threshold for F1 / IoU / mIoU (always exact pixel matching).
        progress: show a tqdm progress bar.
        check_gt: warn, naming the item, about masks that are mostly crack (inverted?).

    A map holding NaN, or floats outside [0, 1], is an error naming the item.
    """
    if matching not in MATCHING_MODES:
        raise ValueError(f"matching must be one of {MATCHING_MODES}, got {matching!r}")
    tolerance = check_tolerance(tolerance)
    if matching == "bsds":
        from crackseg.metrics.bsds import bsds_counts, require_pyedgeeval

        require_pyedgeeval()
        count_fn = bsds_counts
    else:
        count_fn = match_counts

    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc=f"evaluate ({matching})", unit="img", leave=False)

    names: list[str] = []
    counts: list[ImageCounts] = []
    confusions: list[Confusion] = []
    for name, prob, gt in items:
        prob = np.asarray(prob)
        if np.issubdtype(prob.dtype, np.floating) and not np.isfinite(prob).all():
            bad = int(np.count_nonzero(~np.isfinite(prob)))
            raise EvaluationError(f"probability map of '{name}' holds {bad} NaN/infinite values")
        try:
            q = quantize(prob)
        except ValueError as e:
            raise EvaluationError(f"probability map of '{name}': {e}") from None
        if check_gt:
            _warn_if_inverted(np.asarray(gt, dtype=bool), f"ground truth of '{name}'")
        counts.append(count_fn(q, gt, tolerance=tolerance, num_thresholds=num_thresholds))
        confusions.append(confusion_at_threshold(q, gt, fixed_threshold))
        names.append(name)
    if not counts:
        raise EvaluationError("nothing to evaluate: no images were given")

    summary = summarize(counts)
    fixed = dataset_fixed_threshold_scores(confusions)
    summary.update(
        {
            "tolerance": float(tolerance),
            "matching": matching,
            "fixed_threshold": float(fixed_threshold),
            "F1@t": fixed["F1"],
            "IoU@t": fixed["IoU"],
            "mIoU@t": fixed["mIoU"],
            "precision@t": fixed["precision"],
            "recall@t": fixed["recall"],
        }
    )
    rows = []
    for i, name in enumerate(names):
        s = scores_from_confusion(confusions[i])
        rows.append(
            {
                "name": name,
                "n_gt": int(counts[i].n_gt),
                "best_f": float(summary["image_best_f"][i]),
                "best_threshold": float(summary["image_best_threshold"][i]),
                "precision@t": s["precision"],
                "recall@t": s["recall"],
                "F1@t": s["F1"],
                "IoU@t": s["IoU"],
            }
        )
    return EvalResult(summary=summary, rows=rows)


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
_JSON_KEYS = (
    "ODS",
    "OIS",
    "AP",
    "tolerance",
    "matching",
    "num_thresholds",
    "ods_threshold",
    "precision",
    "recall",
    "OIS_pooled",
    "fixed_threshold",
    "F1@t",
    "IoU@t",
    "mIoU@t",
    "precision@t",
    "recall@t",
    "num_images",
    "num_empty_gt",
)


def _r(x: float, nd: int = 6) -> float:
    return round(float(x), nd)


def metrics_dict(result: EvalResult) -> dict[str, Any]:
    """The JSON-ready content of ``metrics.json`` (scores rounded to 6 decimals, plus the curve)."""
    s = result.summary
    out: dict[str, Any] = {}
    for key in _JSON_KEYS:
        v = s[key]
        out[key] = _r(v) if isinstance(v, float) else v
    for key in ("checkpoint", "model", "data", "split", "tta", "predictor"):  # maps came from
        if key in s:
            out[key] = s[key]
    # what was not scored: never silently left out
    out["num_skipped"] = len(s.get("skipped", []))
    out["skipped"] = list(s.get("skipped", []))
    if "missing_predictions" in s:
        out["num_missing_predictions"] = len(s["missing_predictions"])
        out["missing_predictions"] = list(s["missing_predictions"])
    out["pr_curve"] = {
        "threshold": [_r(v) for v in s["thresholds"]],
        "precision": [_r(v) for v in s["curve_precision"]],
        "recall": [_r(v) for v in s["curve_recall"]],
        "f": [_r(v) for v in s["curve_f"]],
    }
    return out


def _plot_pr_curve(result: EvalResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result.summary
    fig, ax = plt.subplots(figsize=(5.5, 5.0), dpi=120)
    try:
        # Iso-F contours, as in the BSDS plots.
        r = np.linspace(0.01, 1, 200)
        for f in np.arange(0.1, 1.0, 0.1):
            p = f * r / (2 * r - f)
            ok = (p > 0) & (p <= 1)
            ax.plot(r[ok], p[ok], color="0.85", lw=0.7, zorder=0)
        label = (
            f"ODS={s['ODS']:.3f}  OIS={s['OIS']:.3f}  AP={s['AP']:.3f}\n"
            f"{s['matching']} matching, tolerance {s['tolerance']:g} px"
        )
        ax.plot(s["curve_recall"], s["curve_precision"], color="tab:red", lw=1.8, label=label)
        ax.plot(
            [s["recall"]],
            [s["precision"]],
            "o",
            color="tab:red",
            ms=6,
            label=f"ODS point (t={s['ods_threshold']:.3f})",
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("Recall")
        ax.set_ylabel("Precision")
        ax.set_title(f"Precision-recall ({s['num_images']} images)")
        ax.grid(True, lw=0.3)
        ax.legend(loc="lower left", fontsize=8)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)


def prepare_out_dir(out_dir: str | os.PathLike) -> Path:
    """Create the report folder now and check it is writable, before any work is done."""
    return writable_folder(out_dir, EvaluationError, " for the report")


def write_report(result: EvalResult, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``metrics.json``, ``per_image.csv`` and ``pr_curve.png`` into ``out_dir``.

    Returns the paths by key ``metrics``, ``per_image`` and ``pr_curve``.
    """
    out = prepare_out_dir(out_dir)
    paths = {
        "metrics": out / "metrics.json",
        "per_image": out / "per_image.csv",
        "pr_curve": out / "pr_curve.png",
    }
    paths["metrics"].write_text(json.dumps(metrics_dict(result), indent=2) + "\n")
    columns = [
        "name",
        "n_gt",
        "best_f",
        "best_threshold",
        "precision@t",
        "recall@t",
        "F1@t",
        "IoU@t",
    ]
    with paths["per_image"].open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in result.rows:
            writer.writerow(
                {k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()}
            )
    _plot_pr_curve(result, paths["pr_curve"])
    return paths


def format_table(result: EvalResult) -> str:
    """A compact terminal table of the data-set scores."""
    s = result.summary
    t = s["fixed_threshold"]
    head = (
        f"{s['num_images']} images ({s['num_empty_gt']} with empty ground truth), "
        f"{s['matching']} matching, tolerance {s['tolerance']:g} px, "
        f"{s['num_thresholds']} thresholds"
    )
    cols = [
        ("ODS", s["ODS"]),
        ("OIS", s["OIS"]),
        ("AP", s["AP"]),
        ("P@ODS", s["precision"]),
        ("R@ODS", s["recall"]),
        ("t@ODS", s["ods_threshold"]),
        (f"F1@{t:g}", s["F1@t"]),
        (f"IoU@{t:g}", s["IoU@t"]),
        (f"mIoU@{t:g}", s["mIoU@t"]),
    ]
    width = max(8, *(len(name) + 2 for name, _ in cols))
    line1 = "".join(name.rjust(width) for name, _ in cols)
    line2 = "".join((f"{v:.4f}" if math.isfinite(v) else "nan").rjust(width) for _, v in cols)
    rule = "-" * len(line1)
    lines = [head, rule, line1, line2, rule]
    skipped = s.get("skipped") or []
    if skipped:
        lines.append(f"skipped {len(skipped)} unreadable or mismatched pair(s):")
        lines += [f"  {k.get('name') or k.get('image')}: {k['reason']}" for k in skipped]
    missing = s.get("missing_predictions") or []
    if missing:
        lines.append(
            f"not scored: {len(missing)} ground-truth mask(s) without a prediction "
            f"({_shown([Path(m) for m in missing])})"
        )
    return "\n".join(lines)


def evaluate_dirs(
    pred_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    tolerance: float = 2.0,
    matching: str = "distance",
    num_thresholds: int = 255,
    fixed_threshold: float = 0.5,
    progress: bool = True,
    allow_missing: bool = False,
    skip_bad: bool = False,
    color_maps: bool = False,
) -> EvalResult:
    """Score the probability maps of ``pred_dir`` against the masks of ``gt_dir``.

    Pairs the files with :func:`find_pairs`, evaluates with :func:`evaluate_maps` and, when
    ``out_dir`` is given, writes the report with :func:`write_report` (the folder is checked
    first, before any work). Masks without a prediction are an error unless
    ``allow_missing``; ``skip_bad`` skips unreadable or mismatched pairs; ``color_maps`` reads
    colour maps by luminance (see :func:`read_prob_map`). Both are recorded in the summary
    (``missing_predictions``, ``skipped``) and in ``metrics.json``.
    """
    if out_dir is not None:
        prepare_out_dir(out_dir)
    pairs = find_pairs(pred_dir, gt_dir, allow_missing=allow_missing)
    missing = match_files(pred_dir, gt_dir).no_prediction if allow_missing else []
    skipped: list[dict] = []
    items = iter_pairs(pairs, skip_bad=skip_bad, skipped=skipped, color=color_maps)
    try:
        result = evaluate_maps(
            items,
            tolerance=tolerance,
            num_thresholds=num_thresholds,
            matching=matching,
            fixed_threshold=fixed_threshold,
            progress=progress,
            check_gt=False,  # iter_pairs warns, naming the file
        )
    except ValueError as e:
        if skipped and "nothing to evaluate" in str(e):
            raise EvaluationError(
                f"every pair in {pred_dir} was skipped: {skipped[0]['reason']}"
            ) from None
        raise
    result.summary["skipped"] = skipped
    if allow_missing:
        result.summary["missing_predictions"] = [str(p) for p in missing]
    if out_dir is not None:
        write_report(result, out_dir)
    return result


def load_predictor(checkpoint: str | os.PathLike, trust_checkpoint: bool = False, **options):
    """``(Predictor, model name)`` for what ``--checkpoint`` names: a run folder or
    ``.safetensors`` file, ``pretrained:NAME`` (shipped weights), or a crackseg export
    (``.onnx``, OpenVINO ``.xml``, TorchScript ``.pt`` with ``trust_checkpoint``) run by its
    runtime. ``options`` go to the Predictor (``device``, ``precision``, ``tta``, ``scale``...).
    """
    from crackseg.inference.backends import runtime_for_file
    from crackseg.inference.predictor import Predictor

    ckpt = str(checkpoint)
    precision = options.get("precision", "fp32")
    if runtime_for_file(ckpt) is not None:  # a crackseg export: .onnx, .xml (OpenVINO), .pt
        if precision not in ("fp32", "auto"):
            raise ValueError(
                f"--precision {precision} applies to PyTorch checkpoints; {ckpt} runs in the "
                "precision it was exported in (leave --precision out)"
            )
        options.pop("precision", None)
        predictor = Predictor.from_exported(ckpt, trust=trust_checkpoint, **options)
        return predictor, predictor.name
    if ckpt.startswith("pretrained:"):
        from crackseg.inference.graphs import installed

        # the weights themselves, as the model card scored them; their shipped graphs are scored
        # as files (--checkpoint .../carnet_field.int8.xml) or by release_graphs.py
        backend = "torch" if installed("torch") else "auto"
        name = ckpt.split(":", 1)[1] or "default"
        predictor = Predictor.from_pretrained(name, backend=backend, **options)
        return predictor, predictor.name
    from crackseg.models.weights_io import read_metadata, resolve_checkpoint

    predictor = Predictor.from_checkpoint(checkpoint, **options)
    return predictor, read_metadata(resolve_checkpoint(checkpoint)).get("model")


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    data: str | list[str],
    split: str = "test",
    out_dir: str | os.PathLike | None = None,
    tolerance: float = 2.0,
    matching: str = "distance",
    num_thresholds: int = 255,
    fixed_threshold: float = 0.5,
    save_maps: bool = False,
    skip_bad: bool = False,
    device: str = "cpu",
    progress: bool = True,
    tta: bool = False,
    precision: str = "fp32",
    trust_checkpoint: bool = False,
    **predictor_options,
) -> EvalResult:
    """Run a checkpoint on dataset spec(s) (``deepcrack:PATH`` ...) and score its maps.

    Maps come from :class:`crackseg.inference.Predictor`, the path ``crackseg predict`` uses:
    images up to its ``tile_size`` (1024 px) are predicted whole, larger ones in blended tiles;
    ``tta`` averages the eight rotated / flipped views; ``precision`` is ``fp32`` by default
    (``auto`` / ``bf16`` score the fast CPU path); ``predictor_options`` go to the Predictor
    (``tile_size``, ``overlap``, ``scale``, ...). ``checkpoint`` may also be ``pretrained:NAME``
    (shipped weights) or a file written by ``crackseg export`` (``.onnx``, OpenVINO ``.xml``,
    TorchScript ``.pt``), run by its runtime, so an exported or int8 model is scored as it will
    be deployed. With ``save_maps`` the 8-bit probability maps are written to ``out_dir`` as
    ``<stem>_prob.png``, so they can be re-scored later with ``evaluate_dirs`` or any other tool.
    """
    from crackseg.data.datasets import build_dataset, skipped_pairs

    options = dict(device=device, precision=precision, tta=tta, **predictor_options)
    predictor, model_name = load_predictor(checkpoint, trust_checkpoint, **options)
    specs = [data] if isinstance(data, str) else list(data)
    dataset = build_dataset(specs, split=split, skip_bad=skip_bad)
    if save_maps and out_dir is None:
        raise ValueError("save_maps needs out_dir: where should the maps go?")
    maps_dir = Path(out_dir) if out_dir is not None else None

    def items() -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        for i, name in enumerate(dataset.names):
            image, mask = dataset.sample(i)
            levels = predictor.predict_levels(image)
            if save_maps and maps_dir is not None:
                maps_dir.mkdir(parents=True, exist_ok=True)
                Image.fromarray(levels).save(maps_dir / f"{name}_prob.png")
            yield name, levels, mask.astype(bool)

    result = evaluate_maps(
        items(),
        tolerance=tolerance,
        num_thresholds=num_thresholds,
        matching=matching,
        fixed_threshold=fixed_threshold,
        progress=progress,
    )
    result.summary["checkpoint"] = str(checkpoint)
    result.summary["model"] = model_name
    result.summary["data"] = specs
    result.summary["split"] = split
    result.summary["tta"] = tta
    result.summary["skipped"] = skipped_pairs(dataset)  # --skip-bad: listed in metrics.json
    result.summary["predictor"] = predictor.describe()
    if out_dir is not None:
        write_report(result, out_dir)
    return result
