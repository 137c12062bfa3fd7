"""Fixtures of the service tests: a tiny random model, photos as upload bytes, app builders."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from crackseg import create_model
from crackseg.data.synth import generate
from crackseg.inference import Predictor

TINY = dict(widths=(8, 16, 16, 32), blocks=(0, 1, 1, 1))


def encode(image: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="session")
def tiny_predictor() -> Predictor:
    """A random-init CarNet of a few thousand parameters: fast, deterministic, finds 'cracks'."""
    import torch

    torch.manual_seed(0)
    return Predictor.from_model(create_model("carnet", **TINY), threshold=0.5, name="tiny")


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    return generate(3, (96, 128), "sunny")[0]


@pytest.fixture(scope="session")
def photo_jpeg(photo) -> bytes:
    return encode(photo, "JPEG", quality=92)


@contextlib.contextmanager
def live_server(app, **options) -> Iterator[str]:
    """``app`` under uvicorn on a free loopback port, in a thread; yields its base URL.

    ``options`` go to ``uvicorn.Config`` (e.g. those of ``crackseg serve``); the server is
    ``app.state.uvicorn`` while it runs."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **options)
    server = app.state.uvicorn = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(6000):  # start-up includes the model's warm-up
            if server.started or not thread.is_alive():
                break
            time.sleep(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
