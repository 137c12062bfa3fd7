"""The HTTP API: every status path of /predict, /healthz and the page, with a tiny model."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the service needs FastAPI: pip install -e '.[dev]'")
pytest.importorskip("httpx", reason="the service's tests need httpx: pip install -e '.[dev]'")

import asyncio
import base64
import io
import logging
import threading

import httpx
import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from crackseg.inference import Predictor
from crackseg.serve import ServeSettings, create_app

from .conftest import encode


@pytest.fixture(scope="module")
def client(tiny_predictor):
    with TestClient(create_app(tiny_predictor, ServeSettings())) as c:
        yield c


def post(client, data: bytes, name="photo.jpg", ctype="image/jpeg", headers=None, **fields):
    files = {"image": (name, data, ctype)}
    return client.post("/predict", files=files, data=fields, headers=headers or {})


def b64_image(text: str) -> Image.Image:
    im = Image.open(io.BytesIO(base64.b64decode(text)))
    im.load()
    return im


def assert_error(r, status: int, *words: str) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert list(body) == ["error"] and isinstance(body["error"], str)
    for w in words:
        assert w in body["error"], body["error"]
    return body["error"]


# ---------------------------------------------------------------------------------- 200


def test_predict_returns_maps_at_the_image_size_and_measurements(client, photo, photo_jpeg):
    r = post(client, photo_jpeg)
    assert r.status_code == 200, r.text
    body = r.json()
    h, w = photo.shape[:2]
    assert (body["width"], body["height"]) == (w, h)
    assert body["model"] == "tiny" and body["threshold"] == 0.5 and body["mm_per_px"] is None
    mask = b64_image(body["mask_png"])
    prob = b64_image(body["prob_png"])
    overlay = b64_image(body["overlay_jpg"])
    assert mask.format == "PNG" and mask.size == (w, h) and mask.mode == "L"
    assert prob.format == "PNG" and prob.size == (w, h)
    assert overlay.format == "JPEG" and overlay.size == (w, h) and overlay.mode == "RGB"
    m = np.asarray(mask)
    assert set(np.unique(m)) <= {0, 255}
    assert body["crack_pixels"] == int((m == 255).sum())
    # the mask is the probability map at the threshold (the protocol's rule on 8-bit levels)
    np.testing.assert_array_equal(m == 255, np.asarray(prob) >= 128)
    s = body["summary"]
    assert s["crack_count"] == len(body["cracks"]) and (s["height_px"], s["width_px"]) == (h, w)
    assert [c["key"] for c in body["columns"]] == [
        "id", "length_px", "mean_width_px", "max_width_px", "orientation", "severity", "kind"
    ]  # fmt: skip
    for c in body["cracks"]:
        assert {"id", "length_px", "max_width_px", "orientation", "bbox_x0_px"} <= set(c)
    assert body["seconds"]["total"] >= body["seconds"]["predict"] > 0
    assert r.headers["cache-control"] == "no-store"


def test_threshold_and_scale_parameters(client, photo_jpeg):
    low = post(client, photo_jpeg, threshold="0.2", mm_per_px="0.5").json()
    high = post(client, photo_jpeg, threshold="0.9").json()
    assert low["threshold"] == 0.2 and high["threshold"] == 0.9
    assert low["crack_pixels"] >= high["crack_pixels"]
    assert low["mm_per_px"] == 0.5 and low["summary"]["mm_per_px"] == 0.5
    assert "length_mm" in [c["key"] for c in low["columns"]]
    for c in low["cracks"]:
        assert c["length_mm"] == pytest.approx(c["length_px"] * 0.5, abs=1e-3)
    assert post(client, photo_jpeg, threshold="", mm_per_px=" ").json()["threshold"] == 0.5


def test_severity_scheme_is_the_one_predict_uses(client, photo_jpeg):
    body = post(
        client, photo_jpeg, threshold="0.2", mm_per_px="0.5", severity_scheme="en1992",
        exposure="xc3",
    ).json()  # fmt: skip
    assert body["summary"]["severity_scheme"] == "en1992" and body["summary"]["exposure"] == "XC3"
    assert set(body["summary"]["by_severity"]) == {"within", "over"} and body["cracks"]
    for c in body["cracks"]:
        assert c["severity"] in ("within", "over") and c["limit_mm"] == 0.3


def test_png_grey_and_16_bit_uploads_are_read_like_files(client, photo):
    grey = photo.mean(axis=2).astype(np.uint8)
    assert post(client, encode(grey), "g.png", "image/png").status_code == 200
    deep = Image.fromarray(grey.astype(np.uint16) * 257)
    buf = io.BytesIO()
    deep.save(buf, "PNG")
    r = post(client, buf.getvalue(), "deep.png", "image/png")
    assert r.status_code == 200 and r.json()["width"] == photo.shape[1]


def test_exif_rotation_is_applied(client, photo):
    im = Image.fromarray(photo)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90: width and height swap once applied
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif)
    body = post(client, buf.getvalue()).json()
    assert (body["width"], body["height"]) == photo.shape[:2]


# ---------------------------------------------------------------------------------- 4xx


@pytest.mark.parametrize(
    "data,words",
    [
        (b"\x00garbage" * 100, ["could not be read", "photo.jpg"]),
        (b"", ["empty"]),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 50, ["could not be read"]),  # a JPEG that stops
    ],
)
def test_garbage_is_400(client, data, words):
    assert_error(post(client, data), 400, *words)


def test_truncated_png_is_400(client, photo):
    data = encode(photo)
    assert_error(post(client, data[: len(data) // 2], "cut.png", "image/png"), 400, "cut.png")


def test_form_problems_are_400(client, photo_jpeg):
    r = client.post("/predict", files={"photo": ("a.jpg", photo_jpeg, "image/jpeg")})
    assert_error(r, 400, "'image'")
    r = client.post(
        "/predict", data={"image": "not a file"}, files={"x": ("x", b"1", "text/plain")}
    )
    assert_error(r, 400, "'image'")
    two = [("image", (f"{n}.jpg", photo_jpeg, "image/jpeg")) for n in "ab"]
    assert_error(client.post("/predict", files=two), 400, "multipart")
    bad = client.post(
        "/predict", content=b"--x\r\nnonsense", headers={"content-type": "multipart/form-data"}
    )
    assert_error(bad, 400)


@pytest.mark.parametrize(
    "fields,words",
    [
        ({"threshold": "1.5"}, ["threshold", "[0, 1]", "1.5"]),
        ({"threshold": "-0.1"}, ["threshold"]),
        ({"threshold": "nan"}, ["threshold"]),
        ({"threshold": "half"}, ["threshold", "half"]),
        ({"mm_per_px": "0"}, ["mm_per_px", "(0, 1000]"]),
        ({"mm_per_px": "-2"}, ["mm_per_px"]),
        ({"mm_per_px": "inf"}, ["mm_per_px"]),
        ({"mm_per_px": "5000"}, ["mm_per_px"]),
        ({"severity_scheme": "asphalt"}, ["severity_scheme asphalt", "bre-251"]),
        ({"severity_scheme": "en1992"}, ["severity_scheme en1992", "needs exposure"]),
        ({"severity_scheme": "en1992", "exposure": "XZ9"}, ["exposure XZ9", "XC1"]),
    ],
)
def test_parameters_out_of_range_are_422(client, photo_jpeg, fields, words):
    assert_error(post(client, photo_jpeg, **fields), 422, *words)


@pytest.mark.parametrize("ctype", ["text/plain", "application/octet-stream", "image/svg+xml", ""])
def test_wrong_file_type_is_415(client, photo_jpeg, ctype):
    r = client.post("/predict", files={"image": ("photo.jpg", photo_jpeg, ctype or None)})
    if ctype == "":  # httpx guesses image/jpeg from the name: state none at all
        r = client.post(
            "/predict",
            content=b'--b\r\nContent-Disposition: form-data; name="image"; filename="p"\r\n\r\n'
            + photo_jpeg
            + b"\r\n--b--\r\n",
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
    assert_error(r, 415, "not a photo", "image/jpeg")


def test_request_that_is_not_multipart_is_415(client, photo_jpeg):
    r = client.post("/predict", content=photo_jpeg, headers={"content-type": "image/jpeg"})
    assert_error(r, 415, "multipart/form-data", "'image'")
    assert_error(client.post("/predict", json={"image": "x"}), 415)


def test_oversize_bytes_is_413(tiny_predictor, photo):
    settings = ServeSettings(max_upload_bytes=20_000, warmup=False)
    rng = np.random.default_rng(0)
    mid = encode(rng.integers(0, 256, (110, 110, 3), dtype=np.uint8))  # ~36 kB: the file's limit
    big = encode(rng.integers(0, 256, (200, 200, 3), dtype=np.uint8))  # ~120 kB: the request's
    assert 20_000 < len(mid) < 20_000 + 64 * 1024 < len(big)
    small = encode(photo[:40, :40])
    with TestClient(create_app(tiny_predictor, settings)) as c:
        assert post(c, small, "s.png", "image/png").status_code == 200
        assert_error(post(c, mid, "m.png", "image/png"), 413, "'m.png'", "20,000 bytes")
        assert_error(post(c, big, "b.png", "image/png"), 413, "too large", "20,000 bytes")
        # no Content-Length (chunked): counted while it streams in
        body = b'--b\r\nContent-Disposition: form-data; name="image"; filename="c.png"\r\n'
        body += b"Content-Type: image/png\r\n\r\n" + big + b"\r\n--b--\r\n"

        def chunks():
            for i in range(0, len(body), 8192):
                yield body[i : i + 8192]

        r = c.post(
            "/predict",
            content=chunks(),
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
        assert "content-length" not in r.request.headers
        assert_error(r, 413, "too large")


def test_oversize_pixels_is_413_before_decoding(tiny_predictor):
    settings = ServeSettings(max_pixels=100_000, warmup=False)
    wide = encode(np.zeros((400, 300), np.uint8))  # 120,000 px, a few hundred bytes
    with TestClient(create_app(tiny_predictor, settings)) as c:
        err = assert_error(post(c, wide, "w.png", "image/png"), 413, "300x400", "100,000")
        assert "smaller" in err
        ok = encode(np.zeros((300, 300, 3), np.uint8))
        assert post(c, ok, "ok.png", "image/png").status_code == 200


def test_decompression_bomb_guard_stays_on(tiny_predictor, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    with pytest.raises(ValueError, match="decompression-bomb"):
        ServeSettings()  # 50 MP allowed but Pillow's guard at 10k: refused
    with pytest.raises(ValueError, match="guard is off"):
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
        ServeSettings()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    app = create_app(tiny_predictor, ServeSettings(max_pixels=10_000, warmup=False))
    with TestClient(app) as c:  # a 30k-px PNG: over both limits, refused from its header
        r = post(c, encode(np.zeros((150, 200), np.uint8)), "b.png", "image/png")
        assert "30000" in assert_error(r, 413, "b.png").replace(",", "")


# ---------------------------------------------------------------------------------- auth


def test_token_required_everywhere_but_healthz_and_the_page(tiny_predictor, photo_jpeg):
    app = create_app(tiny_predictor, ServeSettings(token="s3cret", warmup=False))
    with TestClient(app) as c:
        err = assert_error(post(c, photo_jpeg), 401, "missing", "Bearer")
        assert "s3cret" not in err
        assert post(c, photo_jpeg).headers["www-authenticate"].startswith("Bearer")
        assert_error(post(c, photo_jpeg, headers={"Authorization": "Bearer nope"}), 401, "wrong")
        assert_error(post(c, photo_jpeg, headers={"Authorization": "Basic s3cret"}), 401)
        assert_error(post(c, photo_jpeg, headers={"Authorization": "s3cret"}), 401)
        assert_error(c.get("/nope"), 401)
        ok = post(c, photo_jpeg, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        health = c.get("/healthz")
        assert health.status_code == 200 and health.json()["auth"] is True
        assert "s3cret" not in health.text
        assert c.get("/").status_code == 200  # static page: asks for the token itself
        assert_error(c.get("/nope", headers={"Authorization": "Bearer s3cret"}), 404)


# ---------------------------------------------------------------------------------- 503 / 504


class BlockingBackend:
    """Logits of zeros once ``release`` is set; ``entered`` is set when a batch arrives."""

    size_divisor = 16

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.calls = 0

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.entered.set()
        assert self.release.wait(30), "test never released the backend"
        return np.zeros((batch.shape[0], 1, *batch.shape[2:]), np.float32)


async def _wait_for(cond, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def test_full_queue_is_503_and_the_rest_complete(photo_jpeg):
    backend = BlockingBackend()
    app = create_app(Predictor(backend, name="blocking"), ServeSettings(queue=1, warmup=False))
    gate = app.state.gate
    files = {"image": ("p.jpg", photo_jpeg, "image/jpeg")}

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            first = asyncio.create_task(c.post("/predict", files=files))
            await _wait_for(backend.entered.is_set)  # running in the model's thread
            second = asyncio.create_task(c.post("/predict", files=files))
            await _wait_for(lambda: gate.admitted == 2)  # waiting in line
            third = await c.post("/predict", files=files)
            health = (await c.get("/healthz")).json()  # the loop still answers
            backend.release.set()
            return third, health, await first, await second

    third, health, first, second = asyncio.run(scenario())
    assert_error(third, 503, "busy", "retry")
    assert third.headers["retry-after"] == "1"
    assert health["load"] == {"in_progress": 2, "running": 1, "capacity": 2}
    assert first.status_code == 200 and second.status_code == 200
    assert backend.calls == 2  # the refused one never reached the model
    gate.close()


def test_slow_inference_is_504_and_the_server_recovers(photo_jpeg):
    backend = BlockingBackend()
    app = create_app(
        Predictor(backend, name="blocking"), ServeSettings(timeout_s=0.3, warmup=False)
    )
    files = {"image": ("p.jpg", photo_jpeg, "image/jpeg")}

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            slow = await c.post("/predict", files=files)
            backend.release.set()
            await _wait_for(lambda: app.state.gate.running == 0)
            return slow, await c.post("/predict", files=files)

    slow, after = asyncio.run(scenario())
    assert_error(slow, 504, "0.3 s")
    assert after.status_code == 200
    app.state.gate.close()


def test_upload_that_trickles_in_is_408(tiny_predictor, photo_jpeg):
    app = create_app(tiny_predictor, ServeSettings(timeout_s=0.3, warmup=False))
    head = b'--b\r\nContent-Disposition: form-data; name="image"; filename="slow.jpg"\r\n'
    head += b"Content-Type: image/jpeg\r\n\r\n"

    async def slowly():  # the rest of the photo never comes: no clock decides the outcome
        yield head + photo_jpeg[:100]
        await asyncio.Event().wait()
        yield photo_jpeg[100:] + b"\r\n--b--\r\n"

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            ctype = {"content-type": "multipart/form-data; boundary=b"}
            return await c.post("/predict", content=slowly(), headers=ctype)

    assert_error(asyncio.run(scenario()), 408, "0.3 s")
    assert app.state.gate.admitted == 0  # its place is given back
    app.state.gate.close()


def test_after_a_504_the_abandoned_jobs_free_the_worker(photo_jpeg):
    """The running job stops at its next tile and the queued one never starts (issue 28)."""
    backend = BlockingBackend()
    predictor = Predictor(backend, tile_size=32, overlap=0, name="blocking")  # 12 tiles
    app = create_app(predictor, ServeSettings(timeout_s=0.5, warmup=False))
    gate = app.state.gate
    files = {"image": ("p.jpg", photo_jpeg, "image/jpeg")}

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            running = asyncio.create_task(c.post("/predict", files=files))
            await _wait_for(backend.entered.is_set)  # its first tile is in the model
            queued = await c.post("/predict", files=files)
            gone = await running
            backend.release.set()  # the model returns: the first job is at its check point
            # the worker runs jobs in order: this one's answer comes after both are done with
            gate.timeout_s = 60.0  # (however slowly a loaded machine gets there)
            return gone, queued, await gate.run(lambda: backend.calls)

    gone, queued, calls = asyncio.run(scenario())
    assert_error(gone, 504, "0.5 s")
    assert_error(queued, 504, "0.5 s")
    assert calls == 1  # the other 11 tiles of the first job and all of the second never ran
    assert gate.running == 0
    gate.close()


FORM_HEAD = b'--b\r\nContent-Disposition: form-data; name="image"; filename="p.jpg"\r\n'
FORM_HEAD += b"Content-Type: image/jpeg\r\n\r\n"
MULTIPART = {"content-type": "multipart/form-data; boundary=b"}
CTYPE = MULTIPART["content-type"].encode()


def test_upload_that_stalls_is_408_after_read_timeout(tiny_predictor, photo_jpeg):
    app = create_app(tiny_predictor, ServeSettings(read_timeout_s=0.2, warmup=False))

    async def scenario():
        never = asyncio.Event()

        async def stalled():
            yield FORM_HEAD + photo_jpeg[:100]
            await never.wait()  # the client goes quiet, connection open

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            # the upload's own limit (timeout_s) is 120 s: the pause limit must act first
            post = c.post("/predict", content=stalled(), headers=MULTIPART)
            return await asyncio.wait_for(post, 20)

    r = asyncio.run(scenario())
    assert_error(r, 408, "stalled", "0.2 s")
    assert r.headers["connection"] == "close"
    assert app.state.gate.admitted == 0
    app.state.gate.close()


def test_client_that_leaves_mid_upload_is_one_log_line(tiny_predictor, photo_jpeg, caplog):
    app = create_app(tiny_predictor, ServeSettings(warmup=False))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"",
        "root_path": "", "headers": [(b"host", b"t"), (b"content-type", CTYPE)],
        "client": ("192.0.2.7", 40123), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    events = [{"type": "http.request", "body": FORM_HEAD + photo_jpeg[:100], "more_body": True}]
    sent: list[dict] = []

    async def receive():  # part of the upload, then the client is gone (for good)
        return events.pop(0) if events else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    caplog.set_level(logging.INFO)
    asyncio.run(app(scope, receive, send))
    assert [(r.levelno, r.exc_info) for r in caplog.records] == [(logging.WARNING, None)]
    (line,) = caplog.messages
    assert "192.0.2.7:40123" in line and "left during the upload" in line and "\n" not in line
    assert app.state.gate.admitted == 0
    app.state.gate.close()


# ---------------------------------------------------------------------------------- the rest


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    h = r.json()
    assert h["status"] == "ok" and h["ready"] is True and h["model"] == "tiny"
    assert h["threshold"] == 0.5 and h["auth"] is False
    assert h["limits"] == {
        "max_upload_bytes": 32 * 2**20,
        "max_pixels": 50_000_000,
        "queue": 8,
        "timeout_s": 120.0,
        "read_timeout_s": 30.0,
        "header_timeout_s": 10.0,
    }


def test_page_is_self_contained(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert 'id="file"' in html and 'id="cracks"' not in html  # the table is built on a result
    for ref in ("http://", "https://", "//cdn", 'src="', "<link", "@import", "url("):
        assert ref not in html, ref
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "'sha256-" in csp and "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"


def test_unknown_routes_and_methods_are_json(client):
    assert_error(client.get("/nope"), 404)
    assert_error(client.get("/predict"), 405)
    for path in ("/docs", "/redoc", "/openapi.json"):  # the docs pages load code from a CDN
        assert client.get(path).status_code == 404


def test_settings_are_checked():
    for bad in (
        dict(max_upload_bytes=0),
        dict(max_pixels=0),
        dict(queue=-1),
        dict(timeout_s=0),
        dict(timeout_s=float("nan")),
        dict(read_timeout_s=0),
        dict(header_timeout_s=float("inf")),
        dict(token=" "),
    ):
        with pytest.raises(ValueError):
            ServeSettings(**bad)
