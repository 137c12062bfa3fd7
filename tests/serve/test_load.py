"""A small run of benchmarks/load_serve.py: 20 uploads, 4 at a time, to a tiny model's server.

The full run (``python benchmarks/load_serve.py``) starts ``crackseg serve`` itself; here the
server is the app under uvicorn in a thread of this process, which spares the test a second
start-up of torch and of the measurement's JIT compilation.
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the service needs FastAPI: pip install -e '.[dev]'")
pytest.importorskip("httpx", reason="the service's tests need httpx: pip install -e '.[dev]'")

import contextlib
import importlib.util
import json
import threading
from pathlib import Path

import numpy as np

from crackseg.inference import Predictor
from crackseg.serve import ServeSettings, create_app

from .conftest import live_server

ROOT = Path(__file__).resolve().parents[2]


def _load_script():
    spec = importlib.util.spec_from_file_location("load_serve", ROOT / "benchmarks/load_serve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_load_script_small_run_has_no_5xx_and_loses_nothing(tmp_path: Path, tiny_predictor):
    out = tmp_path / "load.json"
    script = _load_script()
    app = create_app(tiny_predictor, ServeSettings(queue=4))
    with live_server(app) as url:
        argv = ["--requests", "20", "--concurrency", "4", "--size", "96", "128", "--url", url]
        code = script.main([*argv, "--out", str(out)])
    rec = json.loads(out.read_text())
    assert code == 0, rec
    assert rec["passed"] and rec["ok"] == 20 and rec["status_counts"] == {"200": 20}
    assert rec["five_xx"] == 0 and rec["lost"] == 0 and rec["incomplete_200"] == 0
    lat = rec["latency_s"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["max"]
    assert rec["throughput_rps"] > 0 and rec["machine"]["cpu"]
    assert rec["setup"]["model"] == "tiny" and rec["setup"]["server"] == url
    assert rec["command"].endswith(f"--out {out}")


class HeldBackend:
    """Zero logits, but only once another upload has been refused: the model is busy for as long
    as it takes the load script's other uploads to arrive, however fast or slow the machine."""

    size_divisor = 16

    def __init__(self) -> None:
        self.refused = threading.Event()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        assert self.refused.wait(60), "no upload was refused while the model was busy"
        return np.zeros((batch.shape[0], 1, *batch.shape[2:]), np.float32)


def _tell_refusals(gate, backend: HeldBackend) -> None:
    """Wrap ``gate.admit`` so that a request it is about to refuse (no place left) releases
    ``backend``."""
    admit = gate.admit

    @contextlib.contextmanager
    def admit_or_tell():
        if gate.admitted >= gate.capacity:
            backend.refused.set()
        with admit():
            yield

    gate.admit = admit_or_tell


def test_full_queue_counts_as_a_failure(tmp_path: Path):
    """With no room to wait, 4 concurrent uploads meet 503s: the script says it failed."""
    out = tmp_path / "load.json"
    backend = HeldBackend()
    app = create_app(Predictor(backend), ServeSettings(queue=0, warmup=False))
    _tell_refusals(app.state.gate, backend)
    with live_server(app) as url:
        argv = ["--requests", "8", "--concurrency", "4", "--size", "64", "64", "--url", url]
        code = _load_script().main([*argv, "--out", str(out)])
    rec = json.loads(out.read_text())
    assert code == 1 and not rec["passed"]
    assert rec["five_xx"] == rec["status_counts"]["503"] > 0
    assert rec["errors"] and "busy" in rec["errors"][0]["error"]


def test_percentile_interpolates():
    script = _load_script()
    assert script.percentile([1, 2, 3, 4], 0.5) == 2.5
    assert script.percentile([5], 0.95) == 5
    assert script.percentile(list(range(101)), 0.95) == 95
