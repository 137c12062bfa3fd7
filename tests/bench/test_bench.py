"""``crackseg benchmark``: outputs, round-robin order, BN folding, path checks, profile, errors.

Everything runs with tiny inputs and ``--quick`` counts; no assertion reads the wall clock.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
import torch.nn as nn

from crackseg import bench
from crackseg.bench import paths as bench_paths
from crackseg.bench import zoo as bench_zoo
from crackseg.cli import main


class FakeClock:
    """A timer that advances 1 s per reading, so every timed call lasts exactly 1 s."""

    def __init__(self) -> None:
        self.t = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        self.t += 1.0
        return self.t


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    """One quick run over two small registered models, with accuracy for one of them."""
    out = tmp_path_factory.mktemp("bench")
    acc = out / "acc.json"
    acc.write_text(json.dumps({"enet": {"2px": {"ODS": 0.8, "OIS": 0.82, "AP": 0.85}}}))
    cfg = bench.BenchConfig(
        models="enet,carnet",
        references=False,
        height=64,
        width=64,
        flops_sizes=[(64, 64), (48, 80)],
        threads=1,
        accuracy=str(acc),
        quick=True,
    )
    rec = bench.run_benchmark(cfg)
    return rec, bench.write_outputs(rec, out / "res", "zoo")


def test_outputs_are_written_with_every_column(record):
    rec, paths = record
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = paths["md"].read_text()
    assert "| enet |" in md and "| carnet |" in md and "fastest CPU path" in md
    assert "ODS / OIS / AP 2px" in md and "No accuracy given for: carnet" in md
    on_disk = json.loads(paths["json"].read_text())
    assert on_disk["machine"]["cpu"] and isinstance(on_disk["machine"]["flags"], list)
    assert on_disk["machine"]["threads"] == 1 and on_disk["machine"]["torch"] == torch.__version__
    assert [r["model"] for r in on_disk["models"]] == ["enet", "carnet"]
    for row in on_disk["models"]:
        assert set(bench.COLUMNS) <= set(row)
        assert set(row["flops"]) == {"64x64", "48x80"} and row["params"] > 0
        for key in ("cpu_eager_ms", "cpu_eager_p90_ms", "cpu_best_ms", "cpu_best_p90_ms"):
            assert row[key] > 0
        assert row["cpu_eager_p90_ms"] >= row["cpu_eager_ms"]
        assert row["cpu_eager_img_s"] > 0 and row["cpu_best_img_s"] > 0
        assert row["mem_eager_mb"] is not None and row["mem_best_mb"] is not None
        assert len(row["raw_ms"]["batch1_eager"]) == bench.QUICK["runs"]
        picked = next(c for c in row["candidates"] if c["path"] == row["cpu_best_path"])
        assert picked["ok"]
    enet, carnet = on_disk["models"]
    assert (enet["ods_2px"], enet["ap_2px"]) == (0.8, 0.85) and carnet["ods_2px"] is None
    assert enet["gpu_fp32_ms"] is None or torch.cuda.is_available()


def test_plot_caption_lists_models_without_accuracy(record, tmp_path):
    rec, _ = record
    caption = bench.plot(rec, tmp_path / "p.png")
    assert "No accuracy for: carnet." in caption


def test_timing_is_round_robin():
    log: list[str] = []
    runners = {k: (lambda k=k: log.append(k)) for k in ("a", "b", "c")}
    clock = FakeClock()
    times = bench.time_round_robin(runners, runs=4, warmup=2, timer=clock)
    rounds = [log[i : i + 3] for i in range(0, len(log), 3)]
    assert len(rounds) == 6 and all(sorted(r) == ["a", "b", "c"] for r in rounds)
    assert clock.reads == 2 * len(log)
    assert times == {k: [1000.0] * 4 for k in runners}  # warm-up rounds not kept


def test_benchmark_times_all_models_in_shared_rounds(monkeypatch):
    calls: list[list[str]] = []
    real = bench.time_round_robin

    def spy(runners, runs, warmup=3, **kw):
        calls.append(list(runners))
        return real(runners, runs, warmup, **kw)

    monkeypatch.setattr(bench_zoo, "time_round_robin", spy)
    cfg = bench.BenchConfig(
        models=["enet", "dfanet"], references=False, height=32, width=32, flops_sizes=[(32, 32)],
        threads=1, memory=False, gpu=False, quick=True,
    )  # fmt: skip
    rec = bench.run_benchmark(cfg, paths=[bench.EAGER], timer=FakeClock())
    both = {"enet/eager", "enet/best", "dfanet/eager", "dfanet/best"}
    assert [set(c) for c in calls[-2:]] == [both, both]  # batch 1 and batch B: one shared run
    assert all(r["cpu_eager_ms"] == 1000.0 for r in rec["models"])


def test_device_timing_runs_both_precisions():
    """The GPU routine's plumbing, on the CPU (no CUDA needed): fp32 and half-precision rows."""
    model = bench.build_model("enet")
    out = bench.gpu_latency({"enet": model}, 32, 32, runs=2, warmup=0, device="cpu",
                            timer=FakeClock())  # fmt: skip
    r = out["enet"]
    assert r["fp32"]["median_ms"] == 1000.0 and r["fp16"]["runs"] == 2
    assert r["fp16_error"] < bench.BF16_TOL and r["mem_mb"] is None


class Residual(nn.Module):
    """Conv+BN pairs that may fold, and three that must not."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.dw_bn = nn.BatchNorm2d(8)
        self.branch = nn.Conv2d(8, 8, 1)  # output also added to the result: must not fold
        self.branch_bn = nn.BatchNorm2d(8)
        self.shared = nn.Conv2d(8, 8, 1)  # called twice: must not fold
        self.shared_bn = nn.BatchNorm2d(8)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.up_bn = nn.BatchNorm2d(4)
        self.head = nn.Conv2d(4, 1, 1)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(self.dw_bn(self.dw(x)))
        b = self.branch(x)
        x = self.branch_bn(b) + b
        x = self.shared(self.shared_bn(self.shared(x)))
        return self.head(self.up_bn(self.up(x)))


def test_bn_folding_matches_eager():
    model = Residual().eval()
    bench.randomize_bn_stats(model, seed=1)
    x = torch.randn(2, 3, 16, 24)
    folded, n = bench.fold_batchnorm(model, x)
    assert n == 3  # stem, depthwise, transposed; not the branch or the shared conv
    assert isinstance(folded.stem[1], nn.Identity) and isinstance(folded.up_bn, nn.Identity)
    assert isinstance(folded.branch_bn, nn.BatchNorm2d)
    assert isinstance(folded.shared_bn, nn.BatchNorm2d)
    assert isinstance(model.stem[1], nn.BatchNorm2d)  # the original is left alone
    with torch.inference_mode():
        assert torch.allclose(folded(x), model(x), atol=1e-4, rtol=0)

    enet = bench.build_model("enet")  # a registered model: BN stats randomised by the builder
    x = torch.randn(1, 3, 64, 64)
    folded, n = bench.fold_batchnorm(enet, x)
    assert n > 50
    with torch.inference_mode():
        assert (folded(x) - enet(x)).abs().max() <= 1e-4


class Scaled(nn.Module):
    """A 'fast path' that is fast because it is wrong."""

    def __init__(self, model: nn.Module, clock: FakeClock) -> None:
        super().__init__()
        self.model, self.clock = model, clock

    def forward(self, x):
        self.clock.t -= 0.9  # this call looks 10x faster than any other
        return self.model(x) * 1.5


def test_fastest_path_is_never_a_path_that_failed_its_check():
    clock = FakeClock()
    broken = bench.FastPath("broken", transform=lambda m: Scaled(m, clock))
    paths = [bench.EAGER, broken, bench.FastPath("channels_last", channels_last=True)]
    cfg = bench.BenchConfig(
        models=["enet"], references=False, height=32, width=32, flops_sizes=[(32, 32)],
        threads=1, memory=False, gpu=False, quick=True,
    )  # fmt: skip
    rec = bench.run_benchmark(cfg, paths=paths, timer=clock)
    row = rec["models"][0]
    cand = {c["path"]: c for c in row["candidates"]}
    assert not cand["broken"]["ok"] and "off eager" in cand["broken"]["note"]
    assert cand["broken"]["screen_ms"] is None and row["cpu_best_path"] != "broken"
    assert row["candidates"][0]["error"] == {"max": 0.0, "rms": 0.0}
    # and the pure rule: a faster candidate that failed is passed over
    picks = [
        {"path": "eager", "ok": True, "screen_ms": 10.0},
        {"path": "broken", "ok": False, "screen_ms": 1.0},
        {"path": "cl", "ok": True, "screen_ms": 8.0},
    ]
    assert bench.pick_fastest(picks)["path"] == "cl"


def test_a_model_that_fails_is_left_out_with_a_note(monkeypatch):
    real = bench.build_model

    def build(name, seed=0):
        if name == "dfanet":
            raise RuntimeError("boom\nsecond line")
        return real(name, seed)

    monkeypatch.setattr(bench_zoo, "build_model", build)
    cfg = bench.BenchConfig(
        models="enet,dfanet", references=False, height=32, width=32, flops_sizes=[(32, 32)],
        threads=1, memory=False, gpu=False, quick=True,
    )  # fmt: skip
    rec = bench.run_benchmark(cfg, paths=[bench.EAGER], timer=FakeClock())
    assert [r["model"] for r in rec["models"]] == ["enet"]
    assert "dfanet left out: eager fp32 failed: RuntimeError: boom" in rec["notes"]
    with pytest.raises(bench.BenchmarkError, match="no model could run"):
        bench.run_benchmark(replace(cfg, models="dfanet"), paths=[bench.EAGER])


def test_candidate_paths_follow_the_cpu_and_compile_probe(monkeypatch):
    import crackseg.inference.predictor as predictor

    monkeypatch.setattr(predictor, "cpu_has_native_bf16", lambda: False)
    paths, skipped = bench.candidate_paths()
    assert not any(p.bf16 for p in paths) and "native bf16" in skipped["bf16"]
    assert "--compile" in skipped["compile"]
    monkeypatch.setattr(predictor, "cpu_has_native_bf16", lambda: True)
    paths, _ = bench.candidate_paths()
    assert [p.check[0] for p in paths if p.bf16] == ["rms"]

    def no_compiler(*a, **k):
        raise RuntimeError("InductorError: no C++ compiler\nmore")

    monkeypatch.setattr(bench_paths, "_COMPILE_PROBE", [])
    monkeypatch.setattr(torch, "compile", no_compiler)
    paths, skipped = bench.candidate_paths(compile=True)
    assert not any(p.compile for p in paths)
    assert skipped["compile"].endswith("InductorError: no C++ compiler")


def test_accuracy_file_formats(tmp_path):
    f = tmp_path / "a.json"
    f.write_text(json.dumps([{"model": "m", "scores": {"0px": {"ODS": 0.5, "AP": 0.6}}}]))
    assert bench.load_accuracy(f) == {"m": {"ods_0px": 0.5, "ap_0px": 0.6}}
    f.write_text(json.dumps({"m": {"ODS_2px": 0.7}}))
    assert bench.load_accuracy(f) == {"m": {"ods_2px": 0.7}}
    record = {"what": "zoo", "models": {"m": {"2px": {"ODS": 0.9}, "params": 5, "images": 237}}}
    f.write_text(json.dumps(record))
    assert bench.load_accuracy(f) == {"m": {"ods_2px": 0.9}}
    f.write_text(json.dumps({"m": {"F1": 0.7}}))
    with pytest.raises(bench.BenchmarkError, match="no ODS/OIS/AP for 'm'"):
        bench.load_accuracy(f)


def test_rescore_replaces_accuracy_and_keeps_the_timings(record, tmp_path, capsys):
    _, paths = record
    acc = tmp_path / "later.json"
    acc.write_text(json.dumps({"models": {"carnet": {"2px": {"ODS": 0.93, "OIS": 0.95}},
                                          "nope": {"ODS_2px": 0.1}}}))  # fmt: skip
    args = ["benchmark", "--rescore", str(paths["json"]), "--accuracy", str(acc)]
    assert main([*args, "--out", str(tmp_path), "--name", "again"]) == 0
    old = json.loads(paths["json"].read_text())
    new = json.loads((tmp_path / "again.json").read_text())
    enet, carnet = new["models"]
    assert carnet["ods_2px"] == 0.93 and carnet["ois_2px"] == 0.95 and enet["ods_2px"] is None
    assert [r["cpu_best_ms"] for r in new["models"]] == [r["cpu_best_ms"] for r in old["models"]]
    assert new["date"] == old["date"] and "accuracy for 'nope' ignored" in new["notes"][-1]
    assert "No accuracy given for: enet" in (tmp_path / "again.md").read_text()
    capsys.readouterr()
    assert main(["benchmark", "--rescore", str(paths["json"]), "--out", str(tmp_path)]) == 2
    assert "--rescore needs --accuracy" in capsys.readouterr().err
    assert main([*args[:2], str(acc), *args[3:], "--out", str(tmp_path)]) == 2
    assert "not a crackseg benchmark JSON" in capsys.readouterr().err


def test_profile_lists_stages_and_blocks_by_time(tmp_path, capsys):
    args = ["benchmark", "--profile", "carnet", "--size", "32", "32", "--quick", "--threads", "1"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    prof = json.loads((tmp_path / "profile_carnet.json").read_text())
    stages = [u["name"] for u in prof["stages"]]
    blocks = [u["name"] for u in prof["blocks"]]
    assert {"encoder", "decoder", "encoder.stages.0"} <= set(stages)
    assert "encoder.stages.1.1" in blocks and "decoder.classifier" in blocks
    for kind in ("stages", "blocks"):
        ms = [u["ms"] for u in prof[kind]]
        assert ms == sorted(ms, reverse=True) and all(m >= 0 for m in ms)
    assert prof["ops"] and prof["forward_ms"] > 0
    assert "encoder.stages.1.1" in capsys.readouterr().out


def test_info_latency_uses_the_shared_timer(capsys):
    args = ["info", "enet", "--size", "32", "32", "--latency", "--runs", "2", "--threads", "1"]
    assert main(args) == 0
    assert "CPU latency     median" in capsys.readouterr().out
    assert main([*args, "--json"]) == 0
    lat = json.loads(capsys.readouterr().out)["latency_cpu"]
    assert lat["runs"] == 2 and lat["median_ms"] > 0 and lat["p90_ms"] >= lat["median_ms"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--models", "carnet,nope"], "unknown model 'nope'"),
        (["--models", "carnt"], "Did you mean 'carnet'?"),
        (["--size", "4", "64"], "size 4x64"),
        (["--flops-sizes", "512"], "give HxW sizes"),
        (["--runs", "0"], "--runs must be at least 1"),
        (["--accuracy", "missing.json"], "--accuracy missing.json: cannot read"),
        (["--profile", "nope"], "unknown model 'nope'"),
        (["--out", "FILE"], "is a file"),
        (["--out", "FILE/sub"], "cannot create the folder"),
    ],
)
def test_cli_errors_are_one_line(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("x")
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path / "out")]
    small = ["--models", "enet", "--no-references", "--size", "32", "32", "--no-memory"]
    assert main(["benchmark", "--quick", "--threads", "1", *small, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("crackseg benchmark: error: ") and message in err
    assert "\n" not in err
