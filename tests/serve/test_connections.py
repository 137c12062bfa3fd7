"""Connections that dawdle (issue 28): half-open requests must not starve the service.

uvicorn's ``limit_concurrency`` counted open connections, so some 65 clients that sent half a
request head and waited made every route answer 503, ``/healthz`` included. ``crackseg serve``
now runs uvicorn with :func:`crackseg.serve._server.uvicorn_options`: no connection limit, and a
deadline on each request head. The deadline's logic is tested with an injected event loop whose
timers the test fires; the whole is tested under a real uvicorn on a loopback port.
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the service needs FastAPI: pip install -e '.[dev]'")
pytest.importorskip("httpx", reason="the service's tests need httpx: pip install -e '.[dev]'")

import asyncio
import functools
import socket
import time

import httpx
import numpy as np
import uvicorn
from uvicorn.server import ServerState

from crackseg.serve import ServeSettings, create_app
from crackseg.serve._server import protocol_class, uvicorn_options

from .conftest import live_server

HEAD_S = 7.0  # the head deadline of the injected-loop tests (uvicorn's keep-alive timer is 5 s)


# ------------------------------------------------------------------ the head's clock, by itself


class _Timer:
    def __init__(self, delay: float, fire) -> None:
        self.delay, self.fire, self.cancelled = delay, fire, False

    def cancel(self) -> None:
        self.cancelled = True


class _Task:
    def add_done_callback(self, fn) -> None:
        pass


class _Loop:
    """The event loop as the protocol sees it: timers are recorded, and fired by the test."""

    def __init__(self) -> None:
        self.timers: list[_Timer] = []

    def call_later(self, delay: float, fn, *args) -> _Timer:
        timer = _Timer(delay, functools.partial(fn, *args))
        self.timers.append(timer)
        return timer

    def create_task(self, coro, **_kw) -> _Task:
        coro.close()  # the app is not run: these tests are about the connection
        return _Task()

    def heads(self) -> list[_Timer]:
        """The head deadlines now armed."""
        return [t for t in self.timers if t.delay == HEAD_S and not t.cancelled]


class _Transport:
    def __init__(self) -> None:
        self.sent = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sent += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default=None):
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _app(scope, receive, send) -> None:  # never called: the loop drops its tasks
    raise AssertionError("not run")


def _connect():
    cls = protocol_class(HEAD_S)
    config = uvicorn.Config(_app, http=cls, ws="none", log_level="warning")
    loop, transport = _Loop(), _Transport()
    protocol = cls(config=config, server_state=ServerState(), app_state={}, _loop=loop)
    protocol.connection_made(transport)
    return protocol, loop, transport


def test_a_head_sent_piece_by_piece_is_cut_off_at_its_deadline_with_408():
    protocol, loop, transport = _connect()
    (clock,) = loop.heads()  # armed when the connection opens
    for piece in (b"GET /healthz HT", b"TP/1.1\r\n", b"Host: x\r\n", b"X-Slow: 1"):
        protocol.data_received(piece)
    assert loop.heads() == [clock] and not transport.closed  # data does not reset the clock
    clock.fire()
    assert transport.sent.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"connection: close" in transport.sent and transport.closed


def test_a_silent_connection_is_closed_without_an_answer():
    protocol, loop, transport = _connect()
    (clock,) = loop.heads()
    clock.fire()
    assert transport.closed and transport.sent == b""


def test_the_clock_stops_while_the_app_has_the_request_and_restarts_after_its_answer():
    protocol, loop, transport = _connect()
    protocol.data_received(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert loop.heads() == []  # however long the app takes, the connection is not cut

    async def answer() -> None:
        cycle = protocol.cycle
        await cycle.send({"type": "http.response.start", "status": 200,
                          "headers": [(b"content-length", b"2")]})  # fmt: skip
        await cycle.send({"type": "http.response.body", "body": b"ok"})

    asyncio.run(answer())
    assert transport.sent.startswith(b"HTTP/1.1 200 ") and not transport.closed
    (clock,) = loop.heads()  # kept alive: the next head has its own deadline
    answered = len(transport.sent)
    clock.fire()
    assert transport.closed and len(transport.sent) == answered  # nothing partial: no 408


# ------------------------------------------------------------------ a real server on loopback


def _status(sock: socket.socket, request: bytes, deadline: float) -> tuple[int, bytes]:
    """Send ``request`` and read the answer's status line and head by ``deadline``
    (``time.monotonic``); a socket timeout (``TimeoutError``) past it."""
    sock.settimeout(max(deadline - time.monotonic(), 0.001))
    sock.sendall(request)
    got = b""
    while b"\r\n\r\n" not in got:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return int(got.split(b" ", 2)[1]), got


def _until(cond, timeout: float = 20.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if cond():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached")


HALF = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Waiting: "  # no end of the head
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def _no_cracks():
    """A model that finds nothing (no measuring to pay for: these tests are about connections)."""
    from crackseg.inference import Predictor

    return Predictor(lambda batch: np.full_like(batch[:, :1], -10.0), name="none")


def test_100_half_open_connections_leave_healthz_answering_within_a_second(photo_jpeg):
    settings = ServeSettings(warmup=False)
    app = create_app(_no_cracks(), settings)
    held: list[socket.socket] = []
    with live_server(app, **uvicorn_options(settings)) as url:
        port = int(url.rsplit(":", 1)[1])
        state = app.state.uvicorn.server_state
        try:
            for _ in range(100):
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.sendall(HALF)
                held.append(sock)
            _until(lambda: len(state.connections) >= 100)  # all 100 open on the server's side
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                status, head = _status(sock, HEALTHZ, time.monotonic() + 1.0)  # the spec's 1 s
            assert status == 200, head
            assert len(state.connections) >= 100  # they were held all along
            r = httpx.post(url + "/predict", files={"image": ("p.jpg", photo_jpeg)}, timeout=60)
            assert r.status_code == 200, r.text  # and they hold no place in /predict's line
        finally:
            for sock in held:
                sock.close()


def test_a_half_sent_head_gets_408_once_header_timeout_passes():
    settings = ServeSettings(header_timeout_s=0.2, warmup=False)
    app = create_app(_no_cracks(), settings)
    with live_server(app, **uvicorn_options(settings)) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            status, head = _status(sock, HALF, time.monotonic() + 20)
            assert status == 408, head
            assert b"connection: close" in head.lower()
            sock.settimeout(20)
            while sock.recv(65536):  # the rest of the answer, then the server's close
                pass
