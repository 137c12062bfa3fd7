"""``crackseg serve``: the model behind an HTTP API and an upload page, under uvicorn.

    crackseg serve                                   # http://127.0.0.1:8000, the shipped CarNet
    crackseg serve --checkpoint runs/mine/last.safetensors --port 9000
    CRACKSEG_TOKEN=s3cret crackseg serve --host 0.0.0.0   # others on the network, with a token

    curl -F image=@photo.jpg -F mm_per_px=0.5 http://127.0.0.1:8000/predict

The model is loaded once, before the server starts listening.
"""

from __future__ import annotations

import ipaddress
import math
import os
import sys

from crackseg.inference.cli import (
    add_model_arguments,
    add_speed_arguments,
    check_speed_args,
    predictor_from_args,
    resolve_backend,
    resolve_device,
)

EPILOG = """\
routes:
  GET  /          the upload page: drop a photo, see the overlay, the mask and the crack table
  GET  /healthz   model, threshold, ready, load and limits (never needs the token)
  POST /predict   multipart form: image=@photo.jpg [threshold=T] [mm_per_px=S]
                  [severity_scheme=astm-d6433|bre-251|en1992 [exposure=XC3]]; answers JSON with
                  base64 prob/mask PNGs, the overlay JPEG, the cracks and the image's summary

errors are JSON {"error": "..."}: 400 not an image, 401 token, 408 upload too slow (or stalled),
413 too large (bytes or pixels), 415 not a photo type, 422 bad threshold / mm_per_px /
severity_scheme / exposure, 503 busy
(queue full), 504 no result in time (the abandoned job stops at its next tile).

connections: only requests to /predict count against --queue; a connection that has not sent a
whole request head within --header-timeout is closed (408 if it sent part of one), so clients that
open connections and dawdle cannot starve /healthz or the page.
"""


def add_serve_parser(sub, fmt) -> None:
    p = sub.add_parser(
        "serve",
        help="an HTTP API and upload page for the model (pip install 'crackseg[serve]')",
        description=(__doc__ or "").strip().replace("``", ""),
        epilog=EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    p.add_argument(
        "--token",
        help="require 'Authorization: Bearer TOKEN' (default: $CRACKSEG_TOKEN, else none)",
    )
    add_model_arguments(p)
    p.add_argument("--threshold", type=float, help="default mask threshold (model card's)")
    lim = p.add_argument_group("limits")
    lim.add_argument(
        "--max-upload-mb", type=float, default=32.0, help="largest file, MiB (default: 32)"
    )
    lim.add_argument(
        "--max-megapixels",
        type=float,
        default=50.0,
        help="largest image, width x height in millions of pixels (default: 50)",
    )
    lim.add_argument(
        "--queue",
        type=int,
        default=8,
        help="requests that may wait while one is predicted; more get 503 (default: 8)",
    )
    lim.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds for an upload to arrive (else 408) and for its result (else 504); "
        "default: 120",
    )
    lim.add_argument(
        "--read-timeout",
        type=float,
        default=30.0,
        help="longest pause, seconds, while an upload streams in (else 408); default: 30",
    )
    lim.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        help="seconds for a connection to send a request's line and headers, from its opening or "
        "its previous answer (else it is closed); default: 10",
    )
    add_speed_arguments(p)
    p.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn's log level (default: info)",
    )
    p.set_defaults(func=cmd_serve)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def settings_from_args(args):
    """:class:`ServeSettings` from the flags (a ValueError naming the flag that is out of range)."""
    from .app import ServeSettings

    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port must be in 1..65535, got {args.port}")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise ValueError(f"--threshold must lie in [0, 1], got {args.threshold}")
    if not args.max_upload_mb > 0:
        raise ValueError(f"--max-upload-mb must be > 0, got {args.max_upload_mb}")
    if not args.max_megapixels > 0:
        raise ValueError(f"--max-megapixels must be > 0, got {args.max_megapixels}")
    if args.queue < 0:
        raise ValueError(f"--queue must be >= 0, got {args.queue}")
    for flag in ("timeout", "read_timeout", "header_timeout"):
        value = getattr(args, flag)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"--{flag.replace('_', '-')} must be > 0, got {value}")
    token = args.token if args.token is not None else os.environ.get("CRACKSEG_TOKEN") or None
    if token is not None and not token.strip():
        raise ValueError("--token must not be empty (leave it out for no authentication)")
    try:
        return ServeSettings(
            max_upload_bytes=int(args.max_upload_mb * 2**20),
            max_pixels=int(args.max_megapixels * 1e6),
            queue=args.queue,
            timeout_s=args.timeout,
            read_timeout_s=args.read_timeout,
            header_timeout_s=args.header_timeout,
            token=token,
        )
    except ValueError as e:
        msg = str(e).replace("max_pixels", "--max-megapixels")
        raise ValueError(msg) from None


def cmd_serve(args) -> int:
    try:
        import uvicorn

        from ._server import uvicorn_options
        from .app import create_app
    except ImportError as e:
        raise ImportError(
            f"crackseg serve needs FastAPI and uvicorn ({e.name or e} is missing): "
            "pip install 'crackseg[serve]'"
        ) from None
    check_speed_args(args)
    settings = settings_from_args(args)
    if not _loopback(args.host) and settings.token is None:
        print(
            f"crackseg serve: warning: listening on {args.host} without a token: anyone who can "
            "reach this port can use the model (set --token or CRACKSEG_TOKEN)",
            file=sys.stderr,
        )
    backend = resolve_backend(args)  # FILE.onnx -> onnxruntime, FILE.xml -> OpenVINO, ...
    predictor = predictor_from_args(args, resolve_device(args.device, backend), backend)
    if args.threshold is not None:
        predictor.threshold = float(args.threshold)
    app = create_app(predictor, settings)
    where = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"crackseg serve: {predictor.name} (threshold {predictor.threshold:.3f}) on "
        f"http://{where}:{args.port}/",
        file=sys.stderr,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        **uvicorn_options(settings),  # a head timeout; /predict's own gate bounds the work
    )
    return 0
