"""``crackseg predict``: photos, folders and videos in; maps, masks, overlays, measurements out.

    crackseg predict photo.jpg            # the shipped CarNet; outputs in ./predictions
    crackseg predict survey/ --glob "*.JPG" --measure --mm-per-px 0.8 --out inspection/
    crackseg predict drive.mp4 --every 30 --out frames/
    torchrun --nproc_per_node 2 -m crackseg predict big_folder/ --out out/   # split across ranks

Per input ``<stem>`` (video frames: ``<video stem>_f<frame>``), in ``--out``:
``<stem>_prob.png`` (8-bit crack probability, 0..255, input size), ``<stem>_mask.png`` (0 / 255 at
the threshold), ``<stem>_overlay.jpg`` (cracks painted red). Per run: ``predictions.json`` (inputs,
outputs, threshold, model, settings, timings, done / skipped), ``report.html``, and with
``--measure`` ``cracks.csv`` and ``cracks.json``.

Every file is written under a temporary name and renamed into place, so an interrupted run never
leaves a half-written output. A file that cannot be read is reported and skipped; the batch goes
on and ends with a summary.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from crackseg.data.io import IMAGE_EXTENSIONS, ImageReadError, read_image

from .predictor import Prediction, Predictor, release_memory

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg")


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkItem:
    """One input file and the stem its outputs are named from."""

    path: Path
    stem: str
    video: bool


def collect_inputs(inputs: list[str], glob: str | None = None) -> list[WorkItem]:
    """Files, folders (searched recursively; ``glob`` filters names) and videos, sorted.

    Output stems are the file stems; when two inputs share a stem, their path relative to the
    folder given is used instead (``a/x.jpg`` -> ``a__x``), so no output overwrites another.

    Raises:
        FileNotFoundError: an input path does not exist.
        ValueError: nothing to predict.
    """
    known = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
    found: list[tuple[Path, Path]] = []  # (file, root it was found under)
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            pattern = glob or "*"
            for f in sorted(p.rglob(pattern)):
                if f.is_file() and f.suffix.lower() in known and not f.name.startswith("."):
                    found.append((f, p))
        elif p.is_file():
            found.append((p, p.parent))
        else:
            raise FileNotFoundError(f"input {p} does not exist (give image files, folders, videos)")
    seen: set[Path] = set()
    unique = []
    for f, root in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((f, root))
    if not unique:
        what = f" matching {glob!r}" if glob else ""
        raise ValueError(
            f"no images or videos{what} in {', '.join(inputs)} (extensions: {' '.join(known)})"
        )
    stems = [f.stem for f, _ in unique]
    items = []
    for (f, root), stem in zip(unique, stems, strict=True):
        if stems.count(stem) > 1:
            rel = f.relative_to(root) if f.is_relative_to(root) else f
            stem = "__".join(rel.with_suffix("").parts)
        items.append(WorkItem(f, stem, f.suffix.lower() in VIDEO_EXTENSIONS))
    return items


def shard(items: list, rank: int, world: int) -> list:
    """This rank's share of ``items``: every ``world``-th item from ``rank`` (deterministic)."""
    return items[rank::world]


def iter_video_frames(path: Path, every: int = 1) -> Iterator[tuple[int, np.ndarray, int]]:
    """``(frame index, RGB uint8 frame, frame count)`` for every ``every``-th frame (OpenCV)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ImageReadError(f"cannot open video {path}: not a video OpenCV can decode")
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        index = 0
        while True:
            ok = cap.grab()
            if not ok:
                break
            if index % every == 0:
                ok, frame = cap.retrieve()
                if not ok:
                    raise ImageReadError(f"video {path}: frame {index} cannot be decoded")
                yield index, np.ascontiguousarray(frame[:, :, ::-1]), total
            index += 1
        if index == 0:
            raise ImageReadError(f"video {path} holds no decodable frame")
    finally:
        cap.release()


# ---------------------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------------------
def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` and move the result to ``path`` (never a half-written file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


#: Overlay colours: cracks red, instances classified ``joint_or_line`` blue.
CRACK_RGB = (255, 30, 30)
LINE_RGB = (40, 140, 255)


def paint_overlay(
    image: np.ndarray,
    mask: np.ndarray,
    alpha: float = 0.65,
    inplace: bool = False,
    lines: np.ndarray | None = None,
) -> np.ndarray:
    """The photo with crack pixels blended towards red, and the pixels of ``lines`` (joints,
    saw cuts, paint edges: ``measure.line_pixels``) towards blue; band by band (bounded memory).

    ``inplace`` paints into ``image`` itself (no copy of a photo that is not needed after).
    """
    out = image if inplace else image.copy()
    band = 512
    for y in range(0, image.shape[0], band):
        m = mask[y : y + band]
        if not m.any():
            continue
        sub = out[y : y + band]
        ln = lines[y : y + band] & m if lines is not None else None
        for sel, rgb in ((m & ~ln if ln is not None else m, CRACK_RGB), (ln, LINE_RGB)):
            if sel is None or not sel.any():
                continue
            px = sub[sel].astype(np.float32)
            colour = np.array(rgb, np.float32)
            sub[sel] = np.clip((1 - alpha) * px + alpha * colour, 0, 255).astype(np.uint8)
    return out


#: JPEG quality of the overlays (files and the service).
OVERLAY_JPEG_QUALITY = 90


def write_png(fp, array: np.ndarray) -> None:
    """An 8-bit grey PNG to a path or binary file, fast zlib level (1): a 48-megapixel map in
    about a second, not five."""
    Image.fromarray(array).save(fp, format="PNG", compress_level=1)


def save_png(path: Path, array: np.ndarray) -> None:
    """:func:`write_png` to ``path``, atomically, encoded by OpenCV (same zlib level), which
    releases the GIL while it encodes: the three outputs of an image are written side by side."""
    import cv2

    def write(tmp):
        if not cv2.imwrite(tmp, array, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise OSError(f"could not write {path}")

    atomic_write(path, write)


def encode_png(array: np.ndarray) -> bytes:
    """:func:`write_png` into memory: the PNG file's bytes."""
    buf = io.BytesIO()
    write_png(buf, array)
    return buf.getvalue()


def _rgb_to_bgr_inplace(array: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(array, cv2.COLOR_RGB2BGR, dst=array)


def save_jpeg_rgb_inplace(path: Path, array: np.ndarray, quality: int = OVERLAY_JPEG_QUALITY):
    """Write an RGB uint8 array as JPEG with OpenCV, swapping it to BGR in place on the way.

    Pillow would first copy the photo into its own 4-bytes-per-pixel buffer (192 MB for an
    8000x6000 photo); OpenCV encodes the numpy array as it is. ``array`` is left in BGR order.
    """
    import cv2

    _rgb_to_bgr_inplace(array)

    def write(tmp):
        if not cv2.imwrite(tmp, array, [cv2.IMWRITE_JPEG_QUALITY, quality]):
            raise OSError(f"could not write {path}")

    atomic_write(path, write)


def encode_jpeg_rgb_inplace(array: np.ndarray, quality: int = OVERLAY_JPEG_QUALITY) -> bytes:
    """:func:`save_jpeg_rgb_inplace` into memory: the JPEG file's bytes (``array`` ends BGR)."""
    import cv2

    _rgb_to_bgr_inplace(array)
    ok, buf = cv2.imencode(".jpg", array, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError("could not encode the overlay as JPEG")
    return buf.tobytes()


def _line_pixels(cracks: list, shape: tuple[int, int]) -> np.ndarray | None:
    if not cracks:
        return None
    from .measure import line_pixels  # lazy: a predict without --measure needs no scipy

    return line_pixels(cracks, shape)


def mask_image(mask: np.ndarray) -> np.ndarray:
    """A boolean mask as the 0 / 255 uint8 image that ``<stem>_mask.png`` holds."""
    return mask.view(np.uint8) * np.uint8(255)


def encode_outputs(image: np.ndarray, result: Prediction) -> dict[str, bytes]:
    """The three images ``crackseg predict`` writes per input, as file bytes in memory.

    ``prob`` (8-bit probability PNG), ``mask`` (0 / 255 PNG) and ``overlay`` (JPEG, cracks
    painted red). ``image`` is painted in place (no copy of the photo is made).
    """
    mask = result.mask
    return {
        "prob": encode_png(result.levels),
        "mask": encode_png(mask_image(mask)),
        "overlay": encode_jpeg_rgb_inplace(
            paint_overlay(image, mask, inplace=True, lines=_line_pixels(result.cracks, mask.shape))
        ),
    }


def save_json(path: Path, obj: Any) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2)

    atomic_write(path, write)


# ---------------------------------------------------------------------------------------------
# the job
# ---------------------------------------------------------------------------------------------
@dataclass
class PredictJob:
    """Settings of one ``crackseg predict`` run (the CLI flags)."""

    out: Path
    threshold: float | None = None
    measure: bool = False
    mm_per_px: float | None = None
    road_axis_deg: float = 90.0
    keep_lines: bool = False
    every: int = 30
    progress: bool = True
    report: bool = True
    records: list[dict] = field(default_factory=list)
    crack_rows: list[dict] = field(default_factory=list)


def _predict_one(predictor: Predictor, job: PredictJob, image: np.ndarray, stem: str) -> dict:
    t0 = time.perf_counter()
    bar = None
    n_tiles = predictor.num_tiles(*image.shape[:2])
    if job.progress and n_tiles > 4:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_tiles, desc=f"  {stem} tiles", leave=False, unit="tile")
    result = predictor.predict(
        image,
        threshold=job.threshold,
        measure=job.measure,
        mm_per_px=job.mm_per_px,
        progress=bar.update if bar else None,
        **(
            {"road_axis_deg": job.road_axis_deg, "keep_lines": job.keep_lines}
            if job.measure
            else {}
        ),  # fmt: skip
    )
    if bar:
        bar.close()
    t_model = time.perf_counter() - t0
    release_memory()  # the model's activations, before the outputs are made
    mask = result.mask
    files = {
        "prob": f"{stem}_prob.png",
        "mask": f"{stem}_mask.png",
        "overlay": f"{stem}_overlay.jpg",
    }
    record: dict[str, Any] = {
        "name": stem,
        "status": "done",
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "threshold": result.threshold,
        "crack_pixels": int(mask.sum()),
        "outputs": files,
        "overlay": files["overlay"],
    }
    if job.measure:
        rows = [{"image": stem, **c.as_row()} for c in result.cracks]
        job.crack_rows.extend(rows)
        record["summary"] = result.summary
        record["cracks"] = rows
    levels = result.levels
    lines = _line_pixels(result.cracks, mask.shape)
    del result
    # the three files are encoded side by side (OpenCV releases the GIL); the photo is not
    # needed after this, so the overlay is painted and encoded in place (no copy)
    with ThreadPoolExecutor(max_workers=3) as pool:
        jobs = [
            pool.submit(save_png, job.out / files["prob"], levels),
            pool.submit(save_png, job.out / files["mask"], mask_image(mask)),
            pool.submit(
                lambda: save_jpeg_rgb_inplace(
                    job.out / files["overlay"],
                    paint_overlay(image, mask, inplace=True, lines=lines),
                )
            ),
        ]
        for j in jobs:
            j.result()
    del levels
    release_memory()
    record["seconds"] = round(time.perf_counter() - t0, 3)
    record["seconds_predict"] = round(t_model, 3)
    return record


def run_predict(
    predictor: Predictor,
    items: list[WorkItem],
    job: PredictJob,
    rank: int = 0,
    world: int = 1,
) -> dict:
    """Predict ``items`` (this rank's share when ``world > 1``) and write every output.

    Returns the run summary (also the ``summary`` of ``predictions.json``).
    """
    job.out.mkdir(parents=True, exist_ok=True)
    mine = shard(items, rank, world)
    from tqdm.auto import tqdm

    bar = tqdm(mine, desc="predict", unit="file", disable=not job.progress, dynamic_ncols=True)
    t0 = time.perf_counter()
    for item in bar:
        bar.set_postfix_str(item.path.name[-40:])
        try:
            if item.video:
                frames = iter_video_frames(item.path, job.every)
                vbar = None
                for index, frame, total in frames:
                    if vbar is None and job.progress:
                        vbar = tqdm(total=total, desc=f"  {item.path.name}", leave=False)
                    stem = f"{item.stem}_f{index:06d}"
                    rec = _predict_one(predictor, job, frame, stem)
                    rec.update({"source": str(item.path), "frame": index})
                    job.records.append(rec)
                    if vbar is not None:
                        vbar.n = index + 1
                        vbar.refresh()
                if vbar is not None:
                    vbar.close()
            else:
                image = read_image(item.path)
                rec = _predict_one(predictor, job, image, item.stem)
                rec["source"] = str(item.path)
                job.records.append(rec)
        except (ImageReadError, OSError, MemoryError) as e:  # the file, not crackseg
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            msg = msg.split(" (or skip bad files with")[0]  # predict always skips: no hint needed
            bar.write(f"skipped {item.path}: {msg}")
            job.records.append(
                {"name": item.stem, "source": str(item.path), "status": "skipped", "error": msg}
            )
        except Exception as e:  # a bug: one image must not end a batch of thousands
            import traceback

            msg = f"internal error ({type(e).__name__}: {e}); please report it with this file"
            bar.write(f"skipped {item.path}: {msg}")
            job.records.append(
                {
                    "name": item.stem,
                    "source": str(item.path),
                    "status": "skipped",
                    "error": msg,
                    "traceback": traceback.format_exc(),
                }
            )
    bar.close()
    wall = time.perf_counter() - t0
    if world > 1:
        return _merge_ranks(predictor, job, rank, world, wall)
    return finish(predictor, job, wall)


def _merge_ranks(predictor: Predictor, job: PredictJob, rank: int, world: int, wall: float):
    """Each rank writes its part; after a barrier rank 0 merges them into one set of files."""
    import torch.distributed as dist

    part = job.out / f".predictions.rank{rank}.json"
    save_json(part, {"records": job.records, "cracks": job.crack_rows, "wall_s": wall})
    dist.barrier()
    summary: dict = {}
    if rank == 0:
        records, rows, walls = [], [], []
        for r in range(world):
            p = job.out / f".predictions.rank{r}.json"
            d = json.loads(p.read_text())
            records += d["records"]
            rows += d["cracks"]
            walls.append(d["wall_s"])
            p.unlink()
        records.sort(key=lambda rec: (rec.get("source", ""), rec.get("frame", -1), rec["name"]))
        job.records, job.crack_rows = records, rows
        summary = finish(predictor, job, max(walls), world=world)
    dist.barrier()
    return summary


def finish(predictor: Predictor, job: PredictJob, wall: float, world: int = 1) -> dict:
    """Write ``predictions.json``, ``cracks.csv`` / ``cracks.json`` and ``report.html``."""
    from crackseg import __version__

    done = [r for r in job.records if r["status"] == "done"]
    skipped = [r for r in job.records if r["status"] == "skipped"]
    summary = {
        "done": len(done),
        "skipped": len(skipped),
        "skipped_files": [{"source": r["source"], "error": r["error"]} for r in skipped],
        "wall_s": round(wall, 2),
        "processes": world,
    }
    settings = {
        "crackseg": __version__,
        "predictor": predictor.describe(),
        "threshold": predictor.threshold if job.threshold is None else job.threshold,
        "measure": job.measure,
        "mm_per_px": job.mm_per_px,
        "road_axis_deg": job.road_axis_deg if job.measure else None,
        "keep_lines": job.keep_lines if job.measure else None,
        "video_every": job.every,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    images = [{k: v for k, v in r.items() if k != "cracks"} for r in job.records]
    save_json(job.out / "predictions.json", {"summary": summary, **settings, "images": images})
    if job.measure:
        from .measure import write_cracks_csv, write_cracks_json

        write_cracks_csv(job.crack_rows, job.out / "cracks.csv")
        per_image = [
            {
                "image": r["name"],
                "source": r["source"],
                "summary": r.get("summary", {}),
                "cracks": r.get("cracks", []),
            }
            for r in done
        ]
        write_cracks_json(
            {"mm_per_px": job.mm_per_px, "images": per_image}, job.out / "cracks.json"
        )
    if job.report:
        from .report import write_html_report

        write_html_report(
            job.out,
            [_report_entry(r) for r in job.records],
            mm_per_px=job.mm_per_px,
            meta={
                "model": predictor.name,
                "threshold": settings["threshold"],
                "precision": settings["predictor"].get("precision"),
                "date": settings["date"],
                "crackseg": __version__,
            },
        )
    return summary


def _report_entry(r: dict) -> dict:
    entry = {
        "name": r["name"],
        "source": r.get("source", ""),
        "status": r["status"],
        "error": r.get("error"),
        "width": r.get("width", 0),
        "height": r.get("height", 0),
        "overlay": r.get("overlay", ""),
        "summary": r.get("summary", {}),
        "cracks": r.get("cracks", []),
    }
    return entry
