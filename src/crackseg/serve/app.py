"""The HTTP service: :func:`create_app` builds the FastAPI app around one loaded :class:`Predictor`.

    from crackseg.inference import Predictor
    from crackseg.serve import ServeSettings, create_app

    app = create_app(Predictor.from_pretrained(), ServeSettings(token="s3cret"))
    # uvicorn.run(app, host="127.0.0.1", port=8000)   -- or: crackseg serve

Routes:

- ``GET /``: the upload page (self-contained: inline CSS and JS, nothing fetched from elsewhere).
- ``GET /healthz``: ``{"status", "ready", "model", "threshold", "auth", "load", "limits"}``.
- ``POST /predict``: ``multipart/form-data`` with the photo in the field ``image`` and, optionally,
  ``threshold`` (in [0, 1]; default the model's), ``mm_per_px`` (> 0, at most 1000),
  ``severity_scheme`` (``astm-d6433``, the default; ``bre-251``; ``en1992`` with ``exposure``,
  e.g. ``XC3``: :mod:`crackseg.inference.severity`, as ``crackseg predict``). Answers
  JSON: ``model``, ``width``, ``height``, ``threshold``, ``mm_per_px``, ``crack_pixels``,
  ``summary`` (per-image totals), ``cracks`` (one row per crack, units in the keys),
  ``columns`` (the crack table of the HTML report), ``prob_png`` / ``mask_png`` /
  ``overlay_jpg`` (base64 of the three files ``crackseg predict`` writes) and ``seconds``.

Every error is JSON ``{"error": "..."}`` with its status: 400 (not a decodable image, a bad form),
401 (token missing or wrong), 408 (the upload took longer than ``timeout_s``, or paused for
``read_timeout_s``), 413 (upload over ``max_upload_bytes``, image over ``max_pixels``), 415 (not
multipart, or a file type that is not a photo), 422 (``threshold`` / ``mm_per_px`` out of range,
an unknown ``severity_scheme`` or ``exposure``),
503 (the line is full: one running plus ``queue`` waiting), 504 (no result within ``timeout_s``).
A client that leaves during its upload is logged in one line. With a ``token`` every route but
``/healthz`` and the page itself (which holds nothing and cannot be sent a header by a browser's
address bar; it asks for the token and sends it with each prediction) needs ``Authorization:
Bearer TOKEN``. Requests never name a file or path on the server: uploads are decoded in memory.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image
from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from crackseg.data.io import ImageReadError, ImageTooLargeError, decode_image
from crackseg.inference.cli import MAX_MM_PER_PX  # the bound --mm-per-px has
from crackseg.inference.measure import measure_cracks
from crackseg.inference.predictor import Predictor
from crackseg.inference.report import crack_table_columns
from crackseg.inference.run import encode_outputs
from crackseg.inference.severity import DEFAULT_SCHEME, SeverityScheme, get_scheme

from ._gate import Busy, InferenceGate, TimedOut

__all__ = ["ServeSettings", "create_app", "ACCEPTED_TYPES"]

log = logging.getLogger("crackseg.serve")

#: Content types accepted for the uploaded file (what browsers and curl send for photos).
ACCEPTED_TYPES = (
    "image/jpeg",
    "image/png",
    "image/tiff",
    "image/bmp",
    "image/x-ms-bmp",
    "image/webp",
)
#: Room for the multipart envelope and the small fields, beside the file itself.
FORM_OVERHEAD_BYTES = 64 * 1024
#: The form field that holds the photo.
IMAGE_FIELD = "image"


@dataclass(frozen=True)
class ServeSettings:
    """Limits and access of the service (the ``crackseg serve`` flags).

    Attributes:
        max_upload_bytes: largest accepted file (413 above).
        max_pixels: largest accepted image, width x height, read from the file's header before
            any decoding (413 above); at most Pillow's decompression-bomb limit.
        queue: requests that may wait while one is predicted (503 beyond).
        timeout_s: longest wait for the upload to arrive (408 after), and again for the result
            once it is in (504 after; the abandoned job stops at its next check point).
        read_timeout_s: longest pause while an upload's body streams in (408 after).
        header_timeout_s: longest wait for a request's line and headers, from the connection's
            opening or its previous response; the server closes the connection after (see
            :mod:`crackseg.serve._server`: uvicorn applies it, not the app).
        token: when set, ``Authorization: Bearer TOKEN`` is required (401 otherwise).
        warmup: run the model once on a small image at start-up, so the first photo is not slow.
    """

    max_upload_bytes: int = 32 * 2**20
    max_pixels: int = 50_000_000
    queue: int = 8
    timeout_s: float = 120.0
    read_timeout_s: float = 30.0
    header_timeout_s: float = 10.0
    token: str | None = None
    warmup: bool = True

    def __post_init__(self) -> None:
        if self.max_upload_bytes < 1:
            raise ValueError(f"max_upload_bytes must be >= 1, got {self.max_upload_bytes}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {self.max_pixels}")
        bomb = Image.MAX_IMAGE_PIXELS
        if bomb is None:
            raise ValueError(
                "Pillow's decompression-bomb guard is off (PIL.Image.MAX_IMAGE_PIXELS is None): "
                "the service does not run without it"
            )
        if self.max_pixels > bomb:
            raise ValueError(
                f"max_pixels {self.max_pixels:,} is above Pillow's decompression-bomb limit "
                f"({bomb:,} pixels): choose a smaller limit"
            )
        if self.queue < 0:
            raise ValueError(f"queue must be >= 0, got {self.queue}")
        for name in ("timeout_s", "read_timeout_s", "header_timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be > 0, got {value}")
        if self.token is not None and not self.token.strip():
            raise ValueError("token must not be empty (leave it unset for no authentication)")

    def public(self) -> dict[str, Any]:
        """The limits, for ``/healthz`` and the page (the token left out)."""
        return {k: v for k, v in asdict(self).items() if k not in ("token", "warmup")}


# ---------------------------------------------------------------------------------------------
# the page
# ---------------------------------------------------------------------------------------------
def _page() -> tuple[str, str]:
    """The page's HTML and its Content-Security-Policy (inline code allowed by hash only)."""
    html = (resources.files("crackseg.serve") / "page.html").read_text(encoding="utf-8")

    def hashes(tag: str) -> str:
        found = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.S)
        digests = [base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() for b in found]
        return " ".join(f"'sha256-{d}'" for d in digests)

    csp = (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
        "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    return html, csp


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
class ApiError(Exception):
    """An expected failure of a request: its HTTP status and a message for the user."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class _TokenAuth:
    """ASGI middleware: ``Authorization: Bearer TOKEN`` on every path but ``open_paths``."""

    def __init__(self, app, token: str, open_paths: tuple[str, ...]) -> None:
        self.app, self.token, self.open_paths = app, token.encode(), open_paths

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] not in self.open_paths:
            scheme, _, given = Headers(scope=scope).get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), self.token
            ):
                what = "missing" if not given else "wrong"
                response = _error(
                    401,
                    f"authorization {what}: send the header 'Authorization: Bearer TOKEN' with "
                    "the token the server was started with",
                    {"WWW-Authenticate": 'Bearer realm="crackseg"'},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# ---------------------------------------------------------------------------------------------
# request parsing
# ---------------------------------------------------------------------------------------------
async def _limited(request: Request, limit: int, pause_s: float) -> AsyncIterator[bytes]:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes and with 408 when
    no data comes for ``pause_s`` seconds."""
    seen = 0
    chunks = request.stream()
    while True:
        try:
            chunk = await asyncio.wait_for(anext(chunks), pause_s)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise ApiError(
                408, f"the upload stalled: no data for {pause_s:g} s", {"Connection": "close"}
            ) from None
        seen += len(chunk)
        if seen > limit:
            raise ApiError(413, f"upload too large: more than {_mb(limit)} in the request")
        yield chunk


def _mb(n: int) -> str:
    return f"{n / 2**20:.3g} MiB" if n >= 2**20 else f"{n:,} bytes"


def _who(request: Request) -> str:
    client = request.client
    return f"{client.host}:{client.port}" if client else "a client"


def _scheme(form) -> SeverityScheme:
    """The form's ``severity_scheme`` (default ``astm-d6433``) and ``exposure`` fields, checked
    as ``crackseg predict`` checks ``--severity-scheme`` / ``--exposure`` (422 otherwise)."""
    fields = []
    for name in ("severity_scheme", "exposure"):
        raw = form.get(name)
        if raw is not None and not isinstance(raw, str):
            raise ApiError(422, f"{name} must be text, not a file")
        fields.append(raw.strip() if isinstance(raw, str) and raw.strip() else None)
    try:
        return get_scheme(fields[0] or DEFAULT_SCHEME, fields[1])
    except ValueError as e:  # the message names the CLI flags: say the form fields instead
        msg = str(e).replace("--severity-scheme", "severity_scheme").replace("--", "")
        raise ApiError(422, msg) from None


def _number(form, name: str, low: float, high: float, low_open: bool = False) -> float | None:
    """A form field as a float in ``[low, high]`` (``(low, high]`` with ``low_open``), or None."""
    raw = form.get(name)
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return None
    span = f"{'(' if low_open else '['}{low:g}, {high:g}]"
    if not isinstance(raw, str):
        raise ApiError(422, f"{name} must be a number in {span}, not a file")
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not (low < value if low_open else low <= value) or value > high:
        raise ApiError(422, f"{name} must be a number in {span}, got {raw.strip()[:40]!r}")
    return value


async def _read_upload(request: Request, settings: ServeSettings):
    """Parse the multipart form with every limit; returns ``(bytes, filename, form)``."""
    ctype = request.headers.get("content-type", "")
    if ctype.split(";")[0].strip().lower() != "multipart/form-data":
        raise ApiError(
            415,
            f"send multipart/form-data with the photo in the field '{IMAGE_FIELD}' "
            f"(got content type {ctype[:60]!r})",
        )
    limit = settings.max_upload_bytes + FORM_OVERHEAD_BYTES
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise ApiError(
            413,
            f"upload too large: {_mb(int(length))}, at most {_mb(settings.max_upload_bytes)}",
        )
    parser = MultiPartParser(
        request.headers,
        _limited(request, limit, settings.read_timeout_s),
        max_files=1,
        max_fields=8,
        max_part_size=1024,
    )
    try:
        form = await parser.parse()
    except MultiPartException as e:
        raise ApiError(400, f"bad multipart form: {e.message}") from None
    upload = form.get(IMAGE_FIELD)
    try:
        if not isinstance(upload, UploadFile):
            raise ApiError(400, f"no file in the form field '{IMAGE_FIELD}'")
        name = (upload.filename or "upload")[:120]
        ptype = (upload.content_type or "").split(";")[0].strip().lower()
        if ptype not in ACCEPTED_TYPES:
            raise ApiError(
                415,
                f"{name!r} is {ptype or 'of no stated type'}, not a photo: send "
                f"{', '.join(t.split('/')[1].upper() for t in ACCEPTED_TYPES[:4])} "
                f"({', '.join(ACCEPTED_TYPES)})",
            )
        data = await upload.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise ApiError(
                413,
                f"{name!r} is larger than {_mb(settings.max_upload_bytes)}: send a smaller file",
            )
        return data, name, form
    except BaseException:
        await form.close()
        raise


# ---------------------------------------------------------------------------------------------
# the work of one request (in the model's worker thread)
# ---------------------------------------------------------------------------------------------
def _predict(
    predictor: Predictor,
    image: np.ndarray,
    threshold: float | None,
    mm_per_px: float | None,
    checkpoint: Callable[[], None],
    severity: SeverityScheme | None = None,
) -> dict[str, Any]:
    """The answer's body; ``checkpoint`` (the gate's) is called after each batch of tiles and
    before encoding, and raises when the request has given up (504), which ends the job."""
    t0 = time.perf_counter()
    result = predictor.predict(
        image,
        threshold=threshold,
        measure=True,
        mm_per_px=mm_per_px,
        progress=lambda _tiles: checkpoint(),
        severity=severity or get_scheme(),
    )
    checkpoint()
    t1 = time.perf_counter()
    height, width = result.levels.shape
    crack_pixels = int(result.mask.sum())
    files = encode_outputs(image, result)  # paints the overlay into `image`
    b64 = {k: base64.b64encode(v).decode("ascii") for k, v in files.items()}
    columns = [
        {"key": k, "header": h, "type": t}
        for k, h, t in crack_table_columns(mm_per_px)
        if k != "image"
    ]
    return {
        "model": predictor.name,
        "width": width,
        "height": height,
        "threshold": result.threshold,
        "mm_per_px": mm_per_px,
        "crack_pixels": crack_pixels,
        "summary": result.summary,
        "cracks": [c.as_row() for c in result.cracks],
        "columns": columns,
        "prob_png": b64["prob"],
        "mask_png": b64["mask"],
        "overlay_jpg": b64["overlay"],
        "seconds": {
            "predict": round(t1 - t0, 4),
            "encode": round(time.perf_counter() - t1, 4),
        },
    }


def _warmup(predictor: Predictor) -> None:
    """One small prediction and one measurement, so the first photo pays no start-up cost
    (oneDNN's kernel choice, and the skeleton graph's JIT compilation: seconds on a CPU)."""
    predictor.predict_levels(np.zeros((64, 64, 3), np.uint8))
    cross = np.zeros((64, 64), bool)
    cross[8:56, 30:33] = True
    cross[30:33, 8:56] = True
    measure_cracks(cross)


# ---------------------------------------------------------------------------------------------
# the app
# ---------------------------------------------------------------------------------------------
async def _predict_request(
    request: Request, predictor: Predictor, settings: ServeSettings, gate: InferenceGate
) -> JSONResponse:
    """``POST /predict``: hold a place, read the upload within the time limit, decode it, run
    the model in the worker thread; every failure becomes one JSON error."""
    t0 = time.perf_counter()
    try:
        with gate.admit():
            try:  # a client that trickles its upload must not hold a place for ever
                data, name, form = await asyncio.wait_for(
                    _read_upload(request, settings), settings.timeout_s
                )
            except TimeoutError:
                raise ApiError(
                    408,
                    f"the upload did not arrive within {settings.timeout_s:g} s",
                    {"Connection": "close"},
                ) from None
            try:
                threshold = _number(form, "threshold", 0.0, 1.0)
                mm_per_px = _number(form, "mm_per_px", 0.0, MAX_MM_PER_PX, low_open=True)
                severity = _scheme(form)
            finally:
                await form.close()
            try:
                image = await asyncio.to_thread(
                    decode_image, data, f"upload {name!r}", settings.max_pixels
                )
            except ImageTooLargeError as e:
                raise ApiError(413, str(e)) from None
            except ImageReadError as e:
                raise ApiError(400, str(e)) from None
            del data
            t_queued = time.perf_counter()
            body = await gate.run(
                _predict, predictor, image, threshold, mm_per_px, gate.checkpoint, severity
            )
    except ClientDisconnect:  # nobody to answer: one line, not a traceback
        log.warning("POST /predict from %s: the client left during the upload", _who(request))
        return _error(400, "the upload was cut off: the client closed the connection")
    except Busy as e:
        raise ApiError(503, str(e), {"Retry-After": "1"}) from None
    except TimedOut as e:
        raise ApiError(504, str(e)) from None
    except MemoryError:
        raise ApiError(
            503, "not enough memory for this image now: retry later or send a smaller image"
        ) from None
    except (ApiError, HTTPException):
        raise
    except Exception as e:  # a bug: answer, log the traceback, keep serving
        log.exception("POST /predict failed")
        raise ApiError(500, f"internal error ({type(e).__name__}): please report it") from None
    body["seconds"]["total"] = round(time.perf_counter() - t0, 4)
    body["seconds"]["before_model"] = round(t_queued - t0, 4)
    return JSONResponse(body)


def create_app(predictor: Predictor, settings: ServeSettings | None = None) -> FastAPI:
    """The service around ``predictor``, which is loaded already and used for every request.

    Args:
        predictor: the model, built once (e.g. ``Predictor.from_pretrained()``).
        settings: limits and token (defaults: :class:`ServeSettings`).
    """
    settings = settings or ServeSettings()
    gate = InferenceGate(settings.queue, settings.timeout_s)
    page, csp = _page()
    state = {"ready": not settings.warmup}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.warmup:
            await gate.run(_warmup, predictor)
            state["ready"] = True
        try:
            yield
        finally:
            gate.close()

    app = FastAPI(
        title="crackseg",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load their code from a CDN
        redoc_url=None,
        openapi_url=None,
    )
    app.state.gate = gate
    app.state.predictor = predictor
    app.state.settings = settings

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.headers)

    @app.middleware("http")
    async def security_headers(request: Request, call_next) -> Response:
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    if settings.token:
        app.add_middleware(_TokenAuth, token=settings.token, open_paths=("/healthz", "/"))

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(
            page, headers={"Content-Security-Policy": csp, "X-Frame-Options": "DENY"}
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "ready": state["ready"],
            "model": predictor.name,
            "threshold": predictor.threshold,
            "auth": bool(settings.token),
            "load": {
                "in_progress": gate.admitted,
                "running": gate.running,
                "capacity": gate.capacity,
            },
            "limits": settings.public(),
        }

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        return await _predict_request(request, predictor, settings, gate)

    return app
