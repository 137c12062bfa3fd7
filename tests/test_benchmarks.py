"""The benchmark scripts run, write machine-readable records, and the README quotes them exactly."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCH / name), *args], capture_output=True, text=True, timeout=300
    )


def test_bench_models_writes_a_side_by_side_record(tmp_path):
    out = tmp_path / "models.json"
    r = run_script(
        "bench_models.py", "--models", "carnet", "carnet_resnet34", "--size", "64", "64",
        "--runs", "2", "--threads", "1", "--out", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rec = json.loads(out.read_text())
    assert rec["machine"]["cpu"] and isinstance(rec["machine"]["flags"], list)
    rows = {row["model"]: row for row in rec["models"]}
    assert rows["carnet"]["latency_vs_carnet"] == 1.0
    assert rows["carnet_resnet34"]["params"] > 4 * rows["carnet"]["params"]
    assert all(row["latency_ms_median"] > 0 for row in rows.values())


def test_bench_train_step_times_every_model_and_mode(tmp_path):
    out = tmp_path / "steps.json"
    r = run_script(
        "bench_train_step.py", "--models", "carnet", "--modes", "fp32", "bf16", "--size", "32",
        "--batch", "2", "--runs", "2", "--threads", "1", "--out", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rec = json.loads(out.read_text())
    assert rec["batch"] == [2, 3, 32, 32] and rec["machine"]["cpu"]
    modes = {row["mode"]: row for row in rec["steps"]}
    assert set(modes) == {"fp32", "bf16"}
    for row in modes.values():
        assert row["sec_per_step_median"] > 0
        assert row["recipe_minutes"] == pytest.approx(row["sec_per_step_median"] * 6000 / 60)


def test_bench_train_step_rejects_an_unknown_model(tmp_path):
    r = run_script("bench_train_step.py", "--models", "nope", "--out", str(tmp_path / "x.json"))
    assert r.returncode != 0
    assert "unknown model 'nope'" in r.stderr and "Traceback" not in r.stderr


def _results_table():
    spec = importlib.util.spec_from_file_location("results_table", BENCH / "results_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_quotes_the_recorded_results_verbatim():
    """Each real-data record the README names appears there row for row, as the script prints."""
    readme = (ROOT / "README.md").read_text()
    table = _results_table()
    records = [
        json.loads(p.read_text())
        for p in sorted((BENCH / "results").glob("*.json"))
        if p.stem in readme and "test_data" in json.loads(p.read_text())
    ]
    assert records, "the README quotes no real-data record from benchmarks/results/"
    for rec in records:
        for row in table.rows_for(rec):
            assert row in readme, f"README row differs from benchmarks/results/{rec['name']}.json"
