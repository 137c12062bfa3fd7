"""Huge-image prediction: throughput, tiling overhead and peak memory of ``crackseg predict``.

    python benchmarks/bench_predict.py [--size 6000 8000] [--paths torch:fp32 auto:auto]

Each ``--paths`` entry is a ``crackseg predict --backend B --precision P`` path, all measured in
one run on the same photo (``x_faster_than_torch_fp32`` compares them); ``auto:auto`` is what
the light install runs by default (the shipped OpenVINO graphs).

1. Writes a ``W x H`` JPEG photo mosaic (synthetic pavement tiles from ``crackseg.data.synth``,
   so no dataset is needed) to a temporary folder.
2. **Peak memory**: runs ``crackseg predict BIG.jpg --measure`` in a fresh process per path
   and reads its peak resident set size (``ru_maxrss`` of the child), wall time included.
3. **Overhead**: in this process, the predictor's whole path for that image (read the JPEG,
   tile, normalise, pad, run, sigmoid, blend, quantise, threshold, write the three images) against
   the bare backend's forward on exactly the same tile batches, interleaved ``--repeats`` times;
   the ratio ``whole / bare - 1`` is the tiling, blending and writing overhead.
4. Throughput in megapixels per second for the whole path.

Writes ``benchmarks/results/<name>.json`` with the machine (CPU model, flags, threads).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from crackseg.bench import time_round_robin
from crackseg.data.io import read_image
from crackseg.data.synth import generate
from crackseg.inference import Predictor
from crackseg.inference.run import PredictJob, collect_inputs, run_predict
from crackseg.machine import cpu_info


def make_mosaic(path: Path, height: int, width: int, tile: int = 512) -> None:
    """A JPEG photo of ``height x width`` pixels made of synthetic pavement tiles."""
    canvas = np.empty((height, width, 3), np.uint8)
    k = 0
    for y in range(0, height, tile):
        for x in range(0, width, tile):
            img = generate(seed=k % 16, size=tile, condition=("sunny", "rainy", "night")[k % 3])[0]
            canvas[y : y + tile, x : x + tile] = img[: height - y, : width - x]
            k += 1
    Image.fromarray(canvas).save(path, quality=92)


def peak_rss_of_cli(args: list[str]) -> tuple[float, float, int]:
    """``(peak RSS in MB, wall seconds, return code)`` of ``crackseg ARGS`` in a new process."""
    # VmHWM of the child's own address space: ru_maxrss would carry the benchmark process's
    # peak over (Linux keeps the larger of parent and child across fork + exec)
    code = (
        "import sys, time; from crackseg.cli import main; t = time.perf_counter(); "
        "rc = main(sys.argv[1:]); w = time.perf_counter() - t; "
        "kb = [ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0]; "
        "print('BENCH', kb, w, rc)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
    )
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("BENCH")]
    if not line:
        raise RuntimeError(f"crackseg {' '.join(args)} failed:\n{r.stderr[-2000:]}")
    _, kb, wall, rc = line[-1].split()
    return int(kb) / 1024, float(wall), int(rc)


def time_paths(predictor: Predictor, big: Path, out: Path, repeats: int) -> dict:
    """Whole predict path vs bare backend forward on the same tiles, interleaved."""
    image = read_image(big)
    batches = list(predictor.iter_tile_batches(image))
    n_tiles = sum(len(b) for b in batches)
    del image
    items = collect_inputs([str(big)])

    def bare_run() -> None:
        for b in batches:
            predictor.backend(b)

    def whole_run() -> None:  # read + predict + write prob / mask / overlay
        run_predict(predictor, items, PredictJob(out=out, progress=False, report=False))

    ms = time_round_robin({"bare": bare_run, "whole": whole_run}, repeats, warmup=0)
    whole, bare = [t / 1000 for t in ms["whole"]], [t / 1000 for t in ms["bare"]]
    w, b = statistics.median(whole), statistics.median(bare)
    return {
        "tiles": n_tiles,
        "whole_s_median": round(w, 3),
        "bare_forward_s_median": round(b, 3),
        "overhead_ratio": round(w / b - 1, 4),
        "whole_s_all": [round(x, 3) for x in whole],
        "bare_s_all": [round(x, 3) for x in bare],
    }


def _run_path(args, big: Path, tmp: Path, src: list[str], backend: str, precision: str) -> dict:
    """One ``BACKEND:PRECISION`` path: peak RSS and wall time of the command (with and without
    --measure), and the whole path against the bare network in this process."""
    h, w = args.size
    speed = ["--threads", str(args.threads), "--tile-size", str(args.tile_size),
             "--overlap", str(args.overlap), "--batch-size", str(args.batch_size)]  # fmt: skip
    common = [*src, "--backend", backend, "--precision", precision, *speed, "--quiet"]
    tag = f"{backend}_{precision}"
    rss, wall, rc = peak_rss_of_cli(["predict", str(big), "--out", f"{tmp}/cli_{tag}", *common])
    rss_m, wall_m, rc_m = peak_rss_of_cli(
        ["predict", str(big), "--out", f"{tmp}/cli_m_{tag}", "--measure", *common]
    )
    options = dict(precision=precision, threads=args.threads, tile_size=args.tile_size,
                   overlap=args.overlap, batch_size=args.batch_size)  # fmt: skip
    if args.checkpoint:
        predictor = Predictor.from_checkpoint(args.checkpoint, **options)
    else:
        predictor = Predictor.from_pretrained(backend=backend, **options)
    timing = time_paths(predictor, big, tmp / f"inproc_{tag}", args.repeats)
    return {
        "predictor": predictor.describe(),
        "cli_peak_rss_mb": round(rss, 1),
        "cli_wall_s": round(wall, 2),
        "cli_measure_peak_rss_mb": round(rss_m, 1),
        "cli_measure_wall_s": round(wall_m, 2),
        "exit_codes": [rc, rc_m],
        "megapixels_per_s": round(h * w / 1e6 / timing["whole_s_median"], 3),
        **timing,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--checkpoint", help="default: the shipped pretrained CarNet")
    ap.add_argument("--size", nargs=2, type=int, default=[6000, 8000], metavar=("H", "W"))
    ap.add_argument(
        "--paths",
        nargs="+",
        default=["torch:fp32", "auto:auto"],
        help="BACKEND:PRECISION pairs of crackseg predict, side by side in one run (default: "
        "torch:fp32, the PyTorch fp32 path, and auto:auto, the default of the light install)",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tile-size", type=int, default=1024)
    ap.add_argument("--overlap", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--name", default="predict_cpu")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()

    h, w = args.size
    record: dict = {
        "what": "crackseg predict on one large JPEG: peak RSS, throughput, tiling overhead",
        "image": {"height": h, "width": w, "megapixels": round(h * w / 1e6, 2)},
        "tile_size": args.tile_size,
        "overlap": args.overlap,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "checkpoint": args.checkpoint or "shipped default",
        "runs": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.jpg"
        make_mosaic(big, h, w)
        record["image"]["jpeg_mb"] = round(big.stat().st_size / 1e6, 2)
        src = ["--checkpoint", args.checkpoint] if args.checkpoint else []
        for path in args.paths:
            backend, _, precision = path.partition(":")
            record["runs"][path] = _run_path(args, big, Path(tmp), src, backend, precision)
            print(path, json.dumps(record["runs"][path]))
        base = record["runs"].get("torch:fp32")
        for run in record["runs"].values():
            if base:
                run["x_faster_than_torch_fp32"] = round(
                    base["whole_s_median"] / run["whole_s_median"], 2
                )
    record["machine"] = {**cpu_info(), "threads": args.threads}
    record["max_rss_note"] = "VmHWM of the crackseg process (Linux resident-set high-water mark)"
    out = Path(args.out) / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
