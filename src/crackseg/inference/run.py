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

import contextlib
import errno
import io
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from crackseg.atomic import atomic_write
from crackseg.data.io import IMAGE_EXTENSIONS, ImageReadError, read_image
from crackseg.errors import CrackSegError

from .geo import PhotoInfo, gsd_mm_per_px, pixel_polylines, read_photo_info
from .predictor import Prediction, Predictor, release_memory
from .scale import MarkerSpec, photo_scale
from .severity import SeverityScheme, get_scheme

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


def collect_inputs(
    inputs: list[str], glob: str | None = None, exclude: str | os.PathLike | None = None
) -> list[WorkItem]:
    """Files, folders (searched recursively; ``glob`` filters names) and videos, sorted.

    Output stems are the file stems; when two inputs share a stem, their path relative to the
    folder given is used instead (``a/x.jpg`` -> ``a__x``), so no output overwrites another.
    ``exclude`` (the ``--out`` folder) is left out of the folders searched, so outputs written
    inside an input folder are not predicted again by the next run.

    Raises:
        FileNotFoundError: an input path does not exist.
        ValueError: nothing to predict, or ``exclude`` is an input folder itself.
    """
    known = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
    skip = Path(exclude).resolve() if exclude is not None else None
    found: list[tuple[Path, Path]] = []  # (file, root it was found under)
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            inside = skip is not None and skip.is_relative_to(p.resolve())
            if inside and skip == p.resolve():
                raise CrackSegError(
                    f"--out {exclude} is the input folder {p} itself: its outputs would be read "
                    "as photos by the next run; give --out a folder of its own (one inside "
                    f"{p} is fine, it is left out of the inputs)"
                )
            pattern = glob or "*"
            for f in sorted(p.rglob(pattern)):
                if f.is_file() and f.suffix.lower() in known and not f.name.startswith("."):
                    if inside and f.resolve().is_relative_to(skip):
                        continue  # an output of an earlier run, not a photo
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


#: a video may end this many frames (or 1 %) short of the count its header announces before
#: it is reported as damaged: some containers only estimate the count from the duration
VIDEO_FRAME_SLACK = 2


def iter_video_frames(path: Path, every: int = 1) -> Iterator[tuple[int, np.ndarray, int]]:
    """``(frame index, RGB uint8 frame, frame count)`` for every ``every``-th frame (OpenCV).

    Raises ImageReadError after the last frame read when the video ends well before the frame
    count its header announces (damaged or truncated): the message says how many were read.
    """
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
        if total > 0 and index < total - max(VIDEO_FRAME_SLACK, total // 100):
            raise ImageReadError(
                f"video {path}: read {index} of the {total} frames its header announces, then "
                f"frame {index} could not be read (the file is damaged or truncated)"
            )
    finally:
        cap.release()


# ---------------------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------------------
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


def _save_encoded(path: Path, array: np.ndarray, params: list[int]) -> None:
    """Encode ``array`` with OpenCV (which releases the GIL while it encodes) as ``path``'s
    suffix says, and write the bytes atomically with Python, whose writes report a full disk
    (``cv2.imwrite`` returns True for a small image it could not write to a full disk)."""
    import cv2

    ok, data = cv2.imencode(path.suffix, array, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode {path.name} ({array.shape} {array.dtype})")

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, write, suffix=path.suffix, fsync=False)  # PIL reads the suffix


def save_png(path: Path, array: np.ndarray) -> None:
    """:func:`write_png` to ``path``, atomically, encoded by OpenCV (same zlib level), which
    releases the GIL while it encodes: the three outputs of an image are written side by side."""
    import cv2

    _save_encoded(path, array, [cv2.IMWRITE_PNG_COMPRESSION, 1])


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
    _save_encoded(path, array, [cv2.IMWRITE_JPEG_QUALITY, quality])


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

    atomic_write(path, write, suffix=path.suffix, fsync=False)  # PIL reads the suffix


# ---------------------------------------------------------------------------------------------
# the job
# ---------------------------------------------------------------------------------------------
class OutputError(CrackSegError):
    """``--out`` cannot take the outputs (not writable, the disk is full): the run stops."""


class _WriteFailed(Exception):
    """An output of one image could not be written: the folder or the disk, not the photo."""

    def __init__(self, path: Path, error: OSError) -> None:
        super().__init__(f"{path}: {error}")
        self.path, self.error = path, error


#: the record of a run, and the per-run files an earlier run may have left in ``--out``
RECORD = "predictions.json"
RUN_FILES = ("report.html", "cracks.csv", "cracks.json", "cracks.geojson", "sections.csv")


@dataclass
class PredictJob:
    """Settings of one ``crackseg predict`` run (the CLI flags), and what it has done so far."""

    out: Path
    threshold: float | None = None
    measure: bool = False
    mm_per_px: float | None = None
    road_axis_deg: float = 90.0
    keep_lines: bool = False
    severity: SeverityScheme = field(default_factory=get_scheme)
    marker: MarkerSpec | None = None
    geojson: bool = False
    view: str = "nadir"
    heading_deg: float | None = None
    section_m: float | None = None
    every: int = 30
    progress: bool = True
    report: bool = True
    records: list[dict] = field(default_factory=list)
    crack_rows: list[dict] = field(default_factory=list)
    inputs: int = 0  # input files of the run (all ranks)
    finished: int = 0  # input files of this rank handled so far (done or skipped)


def _heading(job: PredictJob, info: PhotoInfo | None) -> tuple[float, str]:
    """The direction the image's top edge points (degrees from north) and where it came from."""
    if job.heading_deg is not None:
        return job.heading_deg % 360.0, "given"
    if info is not None and info.heading_deg is not None:
        return info.heading_deg, "exif"
    return 0.0, "assumed north (no GPSImgDirection, no --heading)"


def _place_fields(job: PredictJob, info: PhotoInfo | None) -> dict[str, Any]:
    """The record's ``gps``, ``heading_deg`` and ``heading_source`` (``--geojson``)."""
    heading, source = _heading(job, info)
    return {"gps": None if info is None else info.record(), "heading_deg": heading,
            "heading_source": source}  # fmt: skip


def _predict_one(
    predictor: Predictor,
    job: PredictJob,
    image: np.ndarray,
    stem: str,
    info: PhotoInfo | None = None,
) -> dict:
    t0 = time.perf_counter()
    bar = None
    n_tiles = predictor.num_tiles(*image.shape[:2])
    if job.progress and n_tiles > 4:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_tiles, desc=f"  {stem} tiles", leave=False, unit="tile")
    scale = None
    if job.measure:
        gsd = None
        if info is not None and job.view == "nadir":
            gsd = gsd_mm_per_px(info, image.shape[1], image.shape[0])
        scale = photo_scale(image, job.mm_per_px, job.marker, gsd)
    result = predictor.predict(
        image,
        threshold=job.threshold,
        measure=job.measure,
        mm_per_px=None if scale is None else scale.mm_per_px,
        progress=bar.update if bar else None,
        ignore=None if scale is None else scale.ignore_mask(image.shape[:2]),
        **(
            {
                "road_axis_deg": job.road_axis_deg,
                "keep_lines": job.keep_lines,
                "severity": job.severity,
            }
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
    rows = []
    if scale is not None:
        record.update(scale.record())
    if job.geojson or job.section_m is not None:
        record.update(_place_fields(job, info))
    if job.geojson:
        record["polylines"] = pixel_polylines(result.cracks)
    if job.measure:
        rows = [{"image": stem, **c.as_row()} for c in result.cracks]
        record["summary"] = result.summary
        record["cracks"] = rows
    levels = result.levels
    lines = _line_pixels(result.cracks, mask.shape)
    del result
    _save_outputs(job.out, files, levels, mask, image, lines)
    job.crack_rows.extend(rows)  # only now: an image is in the tables once its files are
    del levels
    release_memory()
    record["seconds"] = round(time.perf_counter() - t0, 3)
    record["seconds_predict"] = round(t_model, 3)
    return record


def _save_outputs(
    out: Path,
    files: dict[str, str],
    levels: np.ndarray,
    mask: np.ndarray,
    image: np.ndarray,
    lines: np.ndarray | None = None,
) -> None:
    """Write the three files of one image, all of them or none: whatever stops the writing (a
    full disk, Ctrl-C) takes the ones already written away again. A file that cannot be
    written raises :class:`_WriteFailed` (the output's fault, not the photo's)."""
    paths = {k: out / name for k, name in files.items()}
    writers = {
        "prob": lambda: save_png(paths["prob"], levels),
        "mask": lambda: save_png(paths["mask"], mask_image(mask)),
        # the photo is not needed after this: the overlay is painted and encoded in place
        "overlay": lambda: save_jpeg_rgb_inplace(
            paths["overlay"], paint_overlay(image, mask, inplace=True, lines=lines)
        ),
    }
    try:
        # encoded side by side (OpenCV releases the GIL while it encodes)
        with ThreadPoolExecutor(max_workers=3) as pool:
            futures = {k: pool.submit(w) for k, w in writers.items()}
            for k, future in futures.items():
                try:
                    future.result()
                except OSError as e:
                    raise _WriteFailed(paths[k], e) from e
    except BaseException:
        for path in paths.values():
            path.unlink(missing_ok=True)
        raise


def _crash_point(name: str) -> None:
    """Test hook ``CRACKSEG_CRASH_AT`` (:func:`crackseg.faults.crash_point`); its
    module (and torch) is imported only when the variable is set."""
    if os.environ.get("CRACKSEG_CRASH_AT"):
        from crackseg.faults import crash_point

        crash_point(name)


@contextlib.contextmanager
def _sigterm_stops(enabled: bool) -> Iterator[None]:
    """While active, SIGTERM stops the run as Ctrl-C does (``KeyboardInterrupt``), so the record
    of what was done is written before the process ends. Only in the main thread of a
    single-process run: torchrun ranks keep the signals' default behaviour (as in training)."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _predict_item(predictor: Predictor, job: PredictJob, item: WorkItem) -> int:
    """Predict one input file and record it; the number of images (video frames) recorded."""
    if not item.video:
        info = read_photo_info(item.path) if job.geojson or job.section_m is not None else None
        rec = _predict_one(predictor, job, read_image(item.path), item.stem, info)
        rec["source"] = str(item.path)
        job.records.append(rec)
        return 1
    from tqdm.auto import tqdm

    vbar = None
    n = 0
    try:
        for index, frame, total in iter_video_frames(item.path, job.every):
            if vbar is None and job.progress:
                vbar = tqdm(total=total, desc=f"  {item.path.name}", leave=False)
            rec = _predict_one(predictor, job, frame, f"{item.stem}_f{index:06d}")
            rec.update({"source": str(item.path), "frame": index})
            job.records.append(rec)
            n += 1
            if vbar is not None:
                vbar.n = index + 1
                vbar.refresh()
    except ImageReadError as e:
        e.frames_done = n  # a damaged video: the frames read before are kept
        raise
    finally:
        if vbar is not None:
            vbar.close()
    return n


def _predict_items(predictor: Predictor, items: list[WorkItem], job: PredictJob) -> None:
    """The loop over this rank's inputs: a file that cannot be read is recorded as skipped and
    the batch goes on; an output that cannot be written (``_WriteFailed``), Ctrl-C and SIGTERM
    end it (``job.finished`` says how far it got)."""
    from tqdm.auto import tqdm

    bar = tqdm(items, desc="predict", unit="file", disable=not job.progress, dynamic_ncols=True)
    try:
        for item in bar:
            bar.set_postfix_str(item.path.name[-40:])
            try:
                _predict_item(predictor, job, item)
            except _WriteFailed:
                raise
            except (ImageReadError, OSError, MemoryError) as e:  # the file, not crackseg
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                msg = msg.split(" (or skip bad files with")[0]  # predict always skips
                frames = getattr(e, "frames_done", 0)
                if frames:
                    msg += f"; the {frames} frame(s) predicted before are kept"
                bar.write(f"{'incomplete' if frames else 'skipped'} {item.path}: {msg}")
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
            job.finished += 1
            _crash_point("predict:input")
    finally:
        bar.close()


def run_predict(
    predictor: Predictor,
    items: list[WorkItem],
    job: PredictJob,
    rank: int = 0,
    world: int = 1,
) -> dict:
    """Predict ``items`` (this rank's share when ``world > 1``) and write every output.

    ``predictions.json`` is written before the first photo, with status ``running`` (an
    earlier run's record, report and crack tables in ``job.out`` are removed: none is left to
    describe another run), and again when the run ends, however it ends: ``complete``;
    ``interrupted`` (Ctrl-C or SIGTERM: the record and the report list what was done and
    ``not_done``, then ``KeyboardInterrupt`` is raised again, its message saying how far the run
    got); ``failed`` (an output could not be written, a full disk: :class:`OutputError`). A
    process killed outright leaves the ``running`` record.

    Returns the run summary (also the ``summary`` of ``predictions.json``).
    """
    job.out.mkdir(parents=True, exist_ok=True)
    mine = shard(items, rank, world)
    job.inputs = len(items)
    if rank == 0:
        _start_record(predictor, job)
    t0 = time.perf_counter()
    try:
        with _sigterm_stops(world == 1):
            _predict_items(predictor, mine, job)
    except KeyboardInterrupt as e:
        if world > 1:
            raise
        todo = mine[job.finished :]
        _, lost = _end(predictor, job, time.perf_counter() - t0, "interrupted", todo)
        where = f"{job.out / RECORD} lists what was done" if lost is None else f"{lost}"
        raise KeyboardInterrupt(
            f"stopped by {str(e) or 'Ctrl-C'} after {job.finished} of {len(mine)} inputs; {where}"
        ) from None
    except _WriteFailed as e:
        msg = _write_failed_message(job, e, len(mine))
        if world == 1:
            todo = mine[job.finished :]
            _, lost = _end(predictor, job, time.perf_counter() - t0, "failed", todo, msg)
            msg += f"; {lost}" if lost else f" (the ones done are listed in {job.out / RECORD})"
        raise OutputError(msg) from None
    wall = time.perf_counter() - t0
    if world > 1:
        return _merge_ranks(predictor, job, rank, world, wall)
    summary, lost = _end(predictor, job, wall, "complete")
    if lost:
        raise OutputError(f"--out {job.out}: {lost}")
    return summary


def _write_failed_message(job: PredictJob, e: _WriteFailed, n: int) -> str:
    why = e.error.strerror or str(e.error) or type(e.error).__name__
    full = e.error.errno in (errno.ENOSPC, errno.EDQUOT)
    fix = "free some space or choose another --out" if full else "check the folder"
    return (
        f"--out {job.out}: {why} writing {e.path.name}; stopped after {job.finished} of {n} "
        f"inputs: {fix}, and run again"
    )


def _start_record(predictor: Predictor, job: PredictJob) -> None:
    """Replace an earlier run's record by this run's (``running``) and remove its report and
    crack tables, before the first photo: a folder that cannot take them stops the run here."""
    try:
        for name in RUN_FILES:
            (job.out / name).unlink(missing_ok=True)
        save_json(job.out / RECORD, _record(predictor, job, _summary(job, 0.0, 1, "running")))
    except OSError as e:
        why = e.strerror or type(e).__name__
        raise OutputError(
            f"--out {job.out}: cannot write {RECORD} there ({why}): choose another folder"
        ) from None


def _end(predictor: Predictor, job: PredictJob, wall: float, status: str, todo=(), error=None):
    """:func:`finish`; ``(summary, None)``, or ``(None, why)`` when even that could not be
    written: then no record is left at all rather than the ``running`` one."""
    try:
        return finish(predictor, job, wall, status=status, todo=todo, error=error), None
    except OSError as e:
        (job.out / RECORD).unlink(missing_ok=True)
        why = e.strerror or str(e) or type(e).__name__
        return None, f"no {RECORD} could be written either ({why})"


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


def _summary(
    job: PredictJob, wall: float, world: int, status: str, todo=(), error: str | None = None
) -> dict:
    done = [r for r in job.records if r["status"] == "done"]
    skipped = [r for r in job.records if r["status"] == "skipped"]
    summary = {
        "status": status,
        "inputs": job.inputs,
        "done": len(done),
        "skipped": len(skipped),
        **_scale_counts(job, done),
        **({"no_gps": sum("lat" not in (r.get("gps") or {}) for r in done)} if job.geojson else {}),
        "skipped_files": [{"source": r["source"], "error": r["error"]} for r in skipped],
        "wall_s": round(wall, 2),
        "processes": world,
    }
    if status in ("interrupted", "failed"):
        summary["not_done"] = [str(i.path) for i in todo]
    if error:
        summary["error"] = error
    return summary


def _scale_counts(job: PredictJob, done: list[dict]) -> dict:
    """With ``--marker``: how many photos had no marker, and how many of those had no scale."""
    if job.marker is None:
        return {}
    missing = [r for r in done if r.get("mm_per_px_source") != "marker"]
    return {
        "no_marker": len(missing),
        "no_scale": sum(r.get("mm_per_px") is None for r in missing),
    }


def _record(predictor: Predictor, job: PredictJob, summary: dict) -> dict:
    """The contents of ``predictions.json``."""
    from crackseg import __version__

    settings = {
        "crackseg": __version__,
        "predictor": predictor.describe(),
        "threshold": predictor.threshold if job.threshold is None else job.threshold,
        "measure": job.measure,
        "mm_per_px": job.mm_per_px,
        "marker": None if job.marker is None else job.marker.describe(),
        "geojson": job.geojson,
        "view": job.view if job.geojson else None,
        "heading_deg": job.heading_deg,
        "section_m": job.section_m,
        "road_axis_deg": job.road_axis_deg if job.measure else None,
        "keep_lines": job.keep_lines if job.measure else None,
        "severity_scheme": job.severity.describe() if job.measure else None,
        "video_every": job.every,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    images = [{k: v for k, v in r.items() if k not in ("cracks", "polylines")} for r in job.records]
    return {"summary": summary, **settings, "images": images}


def finish(
    predictor: Predictor,
    job: PredictJob,
    wall: float,
    world: int = 1,
    status: str = "complete",
    todo=(),
    error: str | None = None,
) -> dict:
    """Write ``predictions.json``, ``cracks.csv`` / ``cracks.json`` and ``report.html`` for what
    was done; ``status`` (``complete``, ``interrupted``, ``failed``) and ``todo`` (the inputs
    not done) say how the run ended."""
    from crackseg import __version__

    summary = _summary(job, wall, world, status, todo, error)
    record = _record(predictor, job, summary)
    save_json(job.out / RECORD, record)
    done = [r for r in job.records if r["status"] == "done"]
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
            {
                "mm_per_px": job.mm_per_px,
                "severity_scheme": job.severity.describe(),
                "images": per_image,
            },
            job.out / "cracks.json",
        )
    if job.geojson:
        from .geo import write_geojson

        write_geojson(done, job.out / "cracks.geojson", job.view)
    survey = ""
    if job.geojson or job.section_m is not None:
        from .sections import section_rows, survey_html, write_sections_csv

        rows = []
        if job.section_m is not None:
            rows = section_rows(done, job.section_m, job.severity.labels)
            write_sections_csv(rows, job.out / "sections.csv")
        survey = survey_html(done, rows, job.section_m)
    if job.report:
        from .report import write_html_report

        meta = {
            "model": predictor.name,
            "threshold": record["threshold"],
            "precision": record["predictor"].get("precision"),
            "date": record["date"],
            "crackseg": __version__,
        }
        if status != "complete":
            meta["run"] = f"{status}: {len(todo)} of {job.inputs} inputs not done"
        write_html_report(
            job.out,
            [_report_entry(r) for r in job.records],
            mm_per_px=job.mm_per_px,
            meta=meta,
            survey_html=survey,
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
