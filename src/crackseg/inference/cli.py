"""The ``crackseg predict`` command (argument parsing; the work is in :mod:`.run`)."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from .run import __doc__ as RUN_DOC
from .scale import parse_marker
from .severity import DEFAULT_SCHEME, EN1992_WMAX_MM, SCHEMES, get_scheme

PREDICT_HELP = (RUN_DOC or "").split("\n\nPer input")[0].strip().replace("``", "")
#: Largest accepted --mm-per-px (a metre per pixel is already a satellite picture; the server's
#: mm_per_px field has the same bound).
MAX_MM_PER_PX = 1000.0

EPILOG = """\
outputs (in --out, per input <stem>; video frames are <video>_f<frame>):
  <stem>_prob.png      crack probability, 8-bit (0..255), input size
  <stem>_mask.png      0/255 mask at the threshold (default: the model card's ODS threshold)
  <stem>_overlay.jpg   the photo with cracks painted red
  predictions.json     inputs, outputs, threshold, model and settings, timings, done/skipped
  report.html          a page to open in a browser: gallery, crack table, totals
  cracks.csv/.json     with --measure: one row per crack (length, widths, orientation, kind, ...)
  cracks.geojson       with --geojson: photos and cracks on the map (WGS 84)

speed: by default the CPU's fastest path is picked: channels-last tensors, and bf16 autocast
where the CPU has native bf16 (AVX512-BF16 / AMX; measured to keep ODS within 0.005 of fp32).
Images larger than --tile-size are cut into overlapping tiles blended smoothly, so memory stays
bounded for any photo size.
"""


def add_predict_parser(sub, fmt) -> None:
    p = sub.add_parser(
        "predict",
        help="find cracks in photos, folders and videos (shipped CarNet by default)",
        description=PREDICT_HELP,
        epilog=EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, videos")
    p.add_argument("--out", default="predictions", help="output folder (default: %(default)s)")
    add_model_arguments(p)
    p.add_argument("--glob", help="file-name pattern inside folders, e.g. '*.JPG' (recursive)")
    p.add_argument("--every", type=int, default=30, help="videos: every N-th frame (default: 30)")
    p.add_argument("--threshold", type=float, help="mask threshold (default: the model card's)")
    g = p.add_argument_group("measurement")
    g.add_argument(
        "--measure",
        action="store_true",
        help="measure every crack: length, mean/max/p90 width, area, orientation, severity; "
        "writes cracks.csv and cracks.json",
    )
    g.add_argument(
        "--mm-per-px",
        type=float,
        help="ground sampling distance: millimetres per pixel; adds mm columns, density per m2 "
        "and severity classes (see --severity-scheme)",
    )
    g.add_argument(
        "--marker",
        metavar="aruco:SIDE_MM[:DICT]",
        help="find a printed ArUco marker of this side (mm) in each photo and take that photo's "
        "scale from it, e.g. aruco:50 (dictionary DICT_4X4_50 by default, or e.g. "
        "aruco:50:DICT_5X5_100); photos without one fall back to --mm-per-px, else get no mm "
        "values; the marker itself is left out of the crack map. Implies --measure",
    )
    g.add_argument(
        "--severity-scheme",
        default=DEFAULT_SCHEME,
        metavar="NAME",
        help="how a crack's maximum width in mm sets its severity (needs a scale): "
        + "; ".join(f"{k}: {v}" for k, v in SCHEMES.items())
        + " (default: %(default)s). Widths under one pixel cannot be measured: such severities "
        "are marked severity_note=sub-pixel",
    )
    g.add_argument(
        "--exposure",
        metavar="CLASS",
        help="with --severity-scheme en1992: the member's exposure class (EN 206), one of "
        + ", ".join(EN1992_WMAX_MM),
    )
    g.add_argument(
        "--road-axis",
        type=float,
        default=90.0,
        metavar="DEG",
        help="direction of travel in the image, degrees from the x axis (default 90: vertical); "
        "cracks along it are longitudinal, across it transverse",
    )
    g.add_argument(
        "--keep-lines",
        action="store_true",
        help="count instances classified joint_or_line (straight, even, aligned: slab joints, "
        "saw cuts, mortar, paint edges) in the totals and severity too; by default they are "
        "listed with kind=joint_or_line, drawn blue, and left out of the totals",
    )
    add_survey_arguments(p)
    add_speed_arguments(p)
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_predict)


def add_survey_arguments(p: argparse.ArgumentParser) -> None:
    """Maps of a survey: ``--geojson``, ``--view``, ``--heading`` (``--section-m``)."""
    g = p.add_argument_group("survey (photos with EXIF GPS)")
    g.add_argument(
        "--geojson",
        action="store_true",
        help="write cracks.geojson (RFC 7946, WGS 84 lon/lat; opens in QGIS, ArcGIS, geopandas): "
        "a point per photo from its EXIF GPS, and per crack a line along its skeleton (nadir "
        "photos with a scale: --mm-per-px, --marker, or the drone's height and focal length, "
        "an 'exif-gsd' estimate) or a point at the photo. Implies --measure",
    )
    g.add_argument(
        "--view",
        choices=["nadir", "oblique"],
        default="nadir",
        help="nadir (default): photos look straight down (survey vehicle, drone), so cracks "
        "can be mapped pixel by pixel; oblique: cracks are placed at the photo's position",
    )
    g.add_argument(
        "--heading",
        type=float,
        metavar="DEG",
        help="direction the top of the image points, degrees clockwise from north (default: "
        "the photo's EXIF GPSImgDirection, else north)",
    )
    g.add_argument(
        "--section-m",
        type=float,
        metavar="M",
        help="group the photos along the drive (EXIF GPS, in the order taken) into sections of "
        "M metres and write sections.csv (crack length per section, in total and per severity "
        "class, AASHTO R 85 style) and a map and section table in report.html. Implies --measure",
    )


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """``--weights`` / ``--checkpoint``: which model (``predict`` and ``serve`` share them)."""
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--weights",
        default="default",
        help="shipped pretrained weights (default: %(default)s; see crackseg models --pretrained)",
    )
    src.add_argument(
        "--checkpoint",
        help="a checkpoint of your own (.safetensors or run folder), or an exported model "
        "(crackseg export: FILE.onnx runs with onnxruntime, FILE.xml with OpenVINO, FILE.pt with "
        "TorchScript; fp32 or int8)",
    )
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="load a TorchScript .pt file: it is a program that runs when loaded, so only for "
        "files you made yourself (.safetensors, .onnx and .xml hold no code and need no trust)",
    )


def add_speed_arguments(p: argparse.ArgumentParser) -> None:
    """How the model runs: precision, layout, threads, device, tiling, scale, TTA."""
    r = p.add_argument_group("speed")
    r.add_argument(
        "--backend",
        choices=["auto", "torch", "onnxruntime", "openvino", "torchscript"],
        default="auto",
        help="what runs the model: auto (default) picks by the --checkpoint suffix (.onnx: "
        "onnxruntime, .xml: openvino, .pt/.ts: torchscript, else torch); onnxruntime, openvino "
        "and torchscript run files written by crackseg export (openvino also runs .onnx files)",
    )
    r.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16", "int8"],
        default="auto",
        help="auto (default): the shipped model's int8 graph where its parity holds on this CPU, "
        "else its fp32 graph (OpenVINO); with --backend torch, bf16 autocast on CPUs with native "
        "bf16, else fp32. Exported models run in the precision they were exported in",
    )
    r.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="NHWC tensors (default: on; torch backend)",
    )
    r.add_argument(
        "--threads",
        type=int,
        help="CPU threads (default: the runtime's choice; onnxruntime: intra-op threads)",
    )
    r.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto)")
    r.add_argument("--tile-size", type=int, default=1024, help="tile side in px (default: 1024)")
    r.add_argument("--overlap", type=int, default=128, help="tile overlap in px (default: 128)")
    r.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="tiles per forward (default: 1; on a CPU 2 is no faster and, at 1024 px tiles, "
        "holds ~180 MB more)",
    )
    r.add_argument(
        "--scale",
        type=parse_scale,
        default=1.0,
        help="resize photos by this factor before the model (default 1: native resolution), or "
        "'auto': also predict photos whose cracks come out wider than 5 px at half size and "
        "average the two maps (close-ups; up to 1.25x the time)",
    )
    r.add_argument("--tta", action="store_true", help="average 8 rotated/flipped views (8x slower)")


def parse_scale(text: str) -> float | str:
    """``--scale``: a number or ``auto``."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def check_speed_args(args) -> None:
    """Range checks of :func:`add_speed_arguments`' values (a ValueError naming the flag)."""
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")


def resolve_backend(args) -> str:
    """The backend ``--backend`` names, or (auto) the one the ``--checkpoint`` suffix implies."""
    from crackseg.errors import CrackSegError

    from .backends import runtime_for_file

    if not args.checkpoint:  # shipped weights: inference.graphs chooses among their paths
        if args.backend == "torchscript":
            raise CrackSegError(
                "--backend torchscript runs an exported .pt file: give it with --checkpoint FILE"
            )
        return args.backend
    by_suffix = runtime_for_file(args.checkpoint)
    backend = args.backend if args.backend != "auto" else (by_suffix or "torch")
    if backend == "torch" and by_suffix is not None:
        raise CrackSegError(
            f"--checkpoint {args.checkpoint} is an exported model: run it with --backend "
            f"{by_suffix} (or leave --backend out), or give a .safetensors checkpoint"
        )
    return backend


def resolve_device(device: str, backend: str = "torch") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu`` (onnxruntime and OpenVINO: ``cpu``;
    onnxruntime-gpu users ask with ``--device``)."""
    if device != "auto":
        return device
    if backend in ("onnxruntime", "openvino"):
        return "cpu"
    if backend == "auto" and not os.path.exists("/dev/nvidiactl"):
        return "cpu"  # no NVIDIA driver: the shipped graphs on the CPU, torch never imported
    try:
        import torch
    except ImportError:  # the light install: the shipped graphs run on the CPU
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def predictor_from_args(args, device: str, backend: str = "torch"):
    """The :class:`Predictor` that ``--weights`` / ``--checkpoint``, ``--backend`` and the speed
    flags ask for."""
    from .predictor import Predictor

    options = dict(
        device=device,
        threads=args.threads,
        tile_size=args.tile_size,
        overlap=args.overlap,
        batch_size=args.batch_size,
        tta=args.tta,
        scale=args.scale,
    )
    torch_options = dict(precision=args.precision, channels_last=args.channels_last)
    if not args.checkpoint:
        return Predictor.from_pretrained(args.weights, backend=backend, **options, **torch_options)
    if backend != "torch":
        return Predictor.from_exported(
            args.checkpoint, backend=backend, trust=args.trust_checkpoint, **options
        )
    if args.precision == "int8":
        raise ValueError(
            "--precision int8 runs the shipped model's int8 graph, or a file written by crackseg "
            f"export --int8; {args.checkpoint} is a PyTorch checkpoint (fp32 / bf16)"
        )
    return Predictor.from_checkpoint(args.checkpoint, **options, **torch_options)


def _check_args(args) -> None:
    if args.every < 1:
        raise ValueError(f"--every must be >= 1, got {args.every}")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise ValueError(f"--threshold must lie in [0, 1], got {args.threshold}")
    if args.mm_per_px is not None and not 0 < args.mm_per_px <= MAX_MM_PER_PX:
        raise ValueError(
            f"--mm-per-px {args.mm_per_px}: give the scale in millimetres per pixel, > 0 and at "
            f"most {MAX_MM_PER_PX:g} (a metre per pixel), e.g. 0.5"
        )
    if not math.isfinite(args.road_axis):
        raise ValueError(
            f"--road-axis {args.road_axis}: give the direction of travel in degrees from the "
            "x axis, e.g. 90 (vertical, the default)"
        )
    args.severity = get_scheme(args.severity_scheme, args.exposure)
    args.marker_spec = parse_marker(args.marker) if args.marker is not None else None
    if args.heading is not None and not math.isfinite(args.heading):
        raise ValueError(
            f"--heading {args.heading}: give the image top's direction in degrees clockwise "
            "from north, e.g. 90 (east)"
        )
    if args.section_m is not None and not (
        math.isfinite(args.section_m) and 0 < args.section_m <= 1e6
    ):
        raise ValueError(
            f"--section-m {args.section_m}: give the section length in metres, > 0, e.g. 100"
        )
    survey = args.geojson or args.section_m is not None
    if (args.mm_per_px is not None or args.marker or survey) and not args.measure:
        args.measure = True  # a scale only makes sense for measurements
    check_speed_args(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file: give a folder for the outputs")


def _check_gps(items, section_m: float) -> None:
    """``--section-m`` follows the GPS track: refuse before any work when no photo has GPS."""
    from crackseg.errors import CrackSegError

    from .geo import read_photo_info

    photos = [i for i in items if not i.video]
    if not any(read_photo_info(i.path).has_position for i in photos):
        raise CrackSegError(
            f"--section-m {section_m:g}: none of the {len(photos)} photo(s) has a GPS position "
            "in its EXIF, and sections are measured along the GPS track; leave --section-m out "
            "or give photos taken with GPS on"
        )


def cmd_predict(args) -> int:
    from crackseg.errors import writable_folder

    from .run import PredictJob, collect_inputs, run_predict

    _check_args(args)
    backend = resolve_backend(args)
    items = collect_inputs(args.inputs, args.glob, exclude=args.out)
    if args.section_m is not None:
        _check_gps(items, args.section_m)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = resolve_device(args.device, backend)
    if world > 1:
        import torch
        import torch.distributed as dist

        if device == "cuda":
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            device = f"cuda:{local}"
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    predictor = predictor_from_args(args, device, backend)
    out = writable_folder(args.out, purpose=" for the outputs")  # before the first photo
    job = PredictJob(
        out=out,
        threshold=args.threshold,
        measure=args.measure,
        mm_per_px=args.mm_per_px,
        road_axis_deg=args.road_axis,
        keep_lines=args.keep_lines,
        severity=args.severity,
        marker=args.marker_spec,
        geojson=args.geojson,
        view=args.view,
        heading_deg=args.heading,
        section_m=args.section_m,
        every=args.every,
        progress=not args.quiet and rank == 0,
        report=not args.no_report,
    )
    summary = run_predict(predictor, items, job, rank=rank, world=world)
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
        if rank != 0:
            return 0
    n_done, n_skip = summary["done"], summary["skipped"]
    line = f"predicted {n_done} image(s)"
    if n_skip:
        line += f", skipped {n_skip} (listed in {out / 'predictions.json'})"
    if summary.get("no_marker"):
        fallback = "no mm values" if summary["no_scale"] else f"--mm-per-px {args.mm_per_px:g}"
        line += f"; {summary['no_marker']} without a marker ({fallback})"
    if summary.get("no_gps"):
        line += f"; {summary['no_gps']} without GPS (geometry null in cracks.geojson)"
    print(f"{line} in {summary['wall_s']:.1f} s -> {out}/", file=sys.stderr)
    if job.report:
        print(f"open {out / 'report.html'} in a browser", file=sys.stderr)
    if n_done == 0:
        return 2
    return 1 if n_skip else 0
