"""A small run of benchmarks/load_serve.py: 20 uploads, 4 at a time, to a tiny model's server."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

from crackseg import create_model
from crackseg.engine.checkpoint import save_weights

from .conftest import TINY

ROOT = Path(__file__).resolve().parents[2]


def _load_script():
    spec = importlib.util.spec_from_file_location("load_serve", ROOT / "benchmarks/load_serve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_load_script_small_run_has_no_5xx_and_loses_nothing(tmp_path: Path):
    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.safetensors"
    save_weights(ckpt, create_model("carnet", **TINY), "carnet", TINY)
    out = tmp_path / "load.json"
    script = _load_script()
    argv = ["--requests", "20", "--concurrency", "4", "--size", "96", "128", "--threads", "1"]
    code = script.main([*argv, "--checkpoint", str(ckpt), "--out", str(out)])
    rec = json.loads(out.read_text())
    assert code == 0, rec
    assert rec["passed"] and rec["ok"] == 20 and rec["status_counts"] == {"200": 20}
    assert rec["five_xx"] == 0 and rec["lost"] == 0 and rec["incomplete_200"] == 0
    lat = rec["latency_s"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["max"]
    assert rec["throughput_rps"] > 0 and rec["machine"]["cpu"]
    assert rec["setup"]["server_args"][:2] == ["--queue", "4"]  # room for every request
    assert not out.with_suffix(".server.log").exists()


def test_percentile_interpolates():
    script = _load_script()
    assert script.percentile([1, 2, 3, 4], 0.5) == 2.5
    assert script.percentile([5], 0.95) == 5
    assert script.percentile(list(range(101)), 0.95) == 95
