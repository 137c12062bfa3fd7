"""Training engine: config, losses, schedule, checkpoints, exact resume, DDP on CPU (gloo)."""

import dataclasses
import importlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from crackseg import create_model
from crackseg.data.datasets import build_dataset, split_train_val
from crackseg.engine import checkpoint as ckpt
from crackseg.engine.losses import CrackLoss, dice_loss, parse_loss_spec
from crackseg.engine.train import (
    StepBatchSampler,
    TrainConfig,
    amp_enabled,
    config_from_dict,
    cpu_has_native_bf16,
    list_recipes,
    load_config,
    lr_at,
    recipe_dir,
    resolve_config_path,
    train,
)
from crackseg.errors import ConfigError
from crackseg.models import weights_io

TINY = [
    "model_kwargs={widths: [8, 16, 16, 32], blocks: [0, 1, 1, 1]}",
    "train_data=[synth:10:64]",
    "crop_size=48",
    "batch_size=2",
    "num_workers=0",
    "warmup_iters=2",
    "val_fraction=0.2",
    "val_every=3",
    "log_every=1",
    "progress=false",
    "bn_recalib=4",
]


def _run(args, env=None, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "crackseg", *args], env=env, **kw)


def test_config_file_overrides_and_errors(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("model: carnet\nlr: 0.01\niterations: 50\n")
    cfg = load_config(cfg_file, ["lr=3e-4", "train_data=deepcrack:/x", "scale=[0.5, 2]"])
    assert cfg.lr == 3e-4 and cfg.train_data == ["deepcrack:/x"] and cfg.scale == (0.5, 2)
    assert cfg.iterations == 50
    assert load_config(None, ["minutes=5"]).iterations is None
    # a run length on the command line replaces the file's: minutes over a recipe's iterations
    cfg = load_config(cfg_file, ["minutes=40"])
    assert (cfg.iterations, cfg.epochs, cfg.minutes) == (None, None, 40)
    with pytest.raises(ValueError, match="unknown config keys \\['lrr'\\]"):
        load_config(None, ["lrr=1"])
    with pytest.raises(ValueError, match="exactly one of"):
        load_config(None, ["epochs=2", "iterations=10"])
    with pytest.raises(ConfigError, match="nope.yaml.*carnet_deepcrack"):
        load_config(tmp_path / "nope.yaml")


def test_losses():
    assert parse_loss_spec("bce+0.5*dice") == [(1.0, "bce"), (0.5, "dice")]
    with pytest.raises(ValueError, match="bad loss term 'dyce'"):
        parse_loss_spec("bce+dyce")
    target = torch.zeros(1, 1, 8, 8)
    target[..., 3, :] = 1
    perfect = (target * 2 - 1) * 20
    assert dice_loss(perfect, target) < 1e-3
    for spec in ("bce", "dice", "focal", "bce+dice", "focal+0.5*dice"):
        good, bad = CrackLoss(spec)(perfect, target), CrackLoss(spec)(-perfect, target)
        assert good < bad, spec
    # positive weighting: missing a crack pixel costs more with "auto" than without
    zeros = torch.zeros(1, 1, 8, 8)
    assert CrackLoss("bce", "auto")(zeros - 3, target) > CrackLoss("bce", None)(zeros - 3, target)


def test_a_saved_config_of_an_older_run_with_the_removed_ignore_band_off_still_loads():
    from crackseg.engine.train import config_from_dict

    saved = dataclasses.asdict(TrainConfig())
    cfg = config_from_dict({**saved, "ignore_band": 0.0}, "RUN/last.json")
    assert cfg == config_from_dict(saved, "RUN/last.json")
    with pytest.raises(ConfigError, match="ignore_band"):  # a run that used it is refused
        config_from_dict({**saved, "ignore_band": 2.0}, "RUN/last.json")


def test_schedule_warmup_cosine_poly():
    cfg = TrainConfig(lr=1.0, warmup_iters=10, min_lr_ratio=0.0)
    assert lr_at(cfg, 0, 100) == pytest.approx(0.1)
    assert lr_at(cfg, 9, 100) == pytest.approx(1.0)
    assert lr_at(cfg, 55, 100) == pytest.approx(0.5, abs=0.02)
    assert lr_at(cfg, 100, 100) == pytest.approx(0.0, abs=1e-6)
    cfg.schedule = "poly"
    assert 0 < lr_at(cfg, 55, 100) < 1.0


def test_step_sampler_resumes_mid_epoch_and_shards_ranks():
    full = list(StepBatchSampler(7, 3, seed=1, start=0, total=6))
    assert list(StepBatchSampler(7, 3, seed=1, start=4, total=6)) == full[4:]
    r0 = list(StepBatchSampler(8, 2, seed=1, start=0, total=4, rank=0, world=2))
    r1 = list(StepBatchSampler(8, 2, seed=1, start=0, total=4, rank=1, world=2))
    # the first epoch (8 samples = 2 steps x 2 ranks x 2) covers every index exactly once
    first = [i for b in r0[:2] + r1[:2] for i, _ in b]
    assert sorted(first) == list(range(8))


def test_truncated_checkpoint_gives_clear_error(tmp_path):
    model = torch.nn.Conv2d(1, 1, 1)
    path = tmp_path / "w.safetensors"
    weights_io.save_weights(path, model, "carnet", {})
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ckpt.CheckpointError, match="truncated"):
        weights_io.load_model(path)
    with pytest.raises(ckpt.CheckpointError, match="no best.safetensors"):
        weights_io.load_model(tmp_path)


def test_amp_setting_resolves_per_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert amp_enabled("auto", cuda) is True
    assert amp_enabled("auto", cpu) is cpu_has_native_bf16()
    assert amp_enabled(True, cpu) is True and amp_enabled(False, cuda) is False
    with pytest.raises(ValueError, match="amp must be"):
        amp_enabled("fast", cpu)
    assert load_config(None, ["amp=false"]).amp is False


def test_bf16_autocast_trains_on_cpu(tmp_path):
    """bf16 autocast on CPU: the loss stays finite, weights stay fp32, the run says it used bf16."""
    cfg = load_config(None, [*TINY, "iterations=4", "amp=true", f"out_dir={tmp_path}"])
    summary = train(cfg)
    assert summary["bf16_autocast"] is True
    weights = load_file(str(tmp_path / "last.safetensors"))
    assert all(v.dtype in (torch.float32, torch.int64) for v in weights.values())
    assert all(torch.isfinite(v.float()).all() for v in weights.values())
    rows = (tmp_path / "log.csv").read_text().splitlines()[1:]
    losses = [float(r.split(",")[1]) for r in rows if r.split(",")[1]]
    assert losses and all(0 < v < 100 for v in losses)


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    """Kill a run with SIGKILL after its first checkpoint; the resumed run ends bit-identical."""
    common = [*TINY, "iterations=12", "seed=3"]
    argv = ["train"]
    for a in common:
        argv += ["--set", a]
    assert _run([*argv, "--set", f"out_dir={tmp_path / 'ref'}"]).wait(timeout=300) == 0

    # SIGKILL at the end of step 5 (crackseg.faults): after the checkpoint of step 3, before 6
    kill = {"CRACKSEG_CRASH_AT": "train:step@5"}
    killed = _run([*argv, "--set", f"out_dir={tmp_path / 'cut'}"], env=kill)
    assert killed.wait(timeout=300) == -signal.SIGKILL
    last = tmp_path / "cut" / "last.json"
    step_at_kill = json.loads(last.read_text())["step"]
    assert step_at_kill == 3, "the newest complete checkpoint is the one of step 3"
    assert _run(["train", "--resume", str(tmp_path / "cut")]).wait(timeout=300) == 0

    a = load_file(str(tmp_path / "ref" / "last.safetensors"))
    b = load_file(str(tmp_path / "cut" / "last.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    log = (tmp_path / "cut" / "log.csv").read_text()
    assert "ODS" in log.splitlines()[0]
    assert (tmp_path / "cut" / "config.yaml").exists()
    assert any((tmp_path / "cut" / "tb").iterdir())


def test_ctrl_c_or_group_sigterm_saves_the_step_in_hand_and_resume_is_exact(tmp_path):
    """SIGINT to the main process (Ctrl-C), or SIGTERM to the whole process group (``kill --
    -PGID``, a scheduler, systemd), mid-run: exit 130 with `last` saved at the step it stopped
    (not at the last validation), and the resumed run ends bit-identical to an uninterrupted one.
    The group case also signals the DataLoader worker, which must not die before the main process
    has saved."""
    common = [*TINY, "iterations=40", "val_every=100", "seed=5", "num_workers=1"]
    argv = ["train"]
    for a in common:
        argv += ["--set", a]
    assert _run([*argv, "--set", f"out_dir={tmp_path / 'ref'}"]).wait(timeout=300) == 0
    ref = load_file(str(tmp_path / "ref" / "last.safetensors"))

    for how in ("sigint", "group_sigterm"):
        out = tmp_path / how
        # the signal arrives at the end of step 3 (crackseg.faults): to the main process as a
        # Ctrl-C would, or to the whole process group, DataLoader worker included
        stop = {"CRACKSEG_CRASH_AT": "train:step@3"}
        if how == "sigint":
            stop["CRACKSEG_CRASH_SIGNAL"] = "SIGINT"
        else:
            stop.update(CRACKSEG_CRASH_SIGNAL="SIGTERM", CRACKSEG_CRASH_GROUP="1")
        run = _run(
            [*argv, "--set", f"out_dir={out}"],
            env=stop,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        _, err = run.communicate(timeout=120)
        assert run.returncode == 130, (how, err.decode()[-2000:])
        assert b"crack" in err and b"--resume" in err, how
        stopped = json.loads((out / "last.json").read_text())["step"]
        assert stopped == 3, (how, stopped)  # the step in hand, no validation before step 40
        assert json.loads((out / "summary.json").read_text())["interrupted"] is True
        assert _run(["train", "--resume", str(out)]).wait(timeout=300) == 0
        b = load_file(str(out / "last.safetensors"))
        for k in ref:
            assert torch.equal(ref[k], b[k]), (how, k)


def test_ddp_two_cpu_processes_gloo(tmp_path):
    argv = [
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "crackseg",
        "train",
    ]
    for a in [*TINY, "iterations=4", "val_every=4", f"out_dir={tmp_path / 'ddp'}"]:
        argv += ["--set", a]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, *argv], env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 4
    assert (tmp_path / "ddp" / "last.safetensors").exists()


RECIPES = list_recipes()


def test_recipes_ship_inside_the_package():
    """`crackseg train carnet_deepcrack` finds the recipe by name wherever crackseg is installed;
    the checkout's configs/ is the same folder."""
    import crackseg

    assert "carnet_deepcrack" in RECIPES and len(RECIPES) >= 4
    assert recipe_dir() == Path(crackseg.__file__).parent / "configs"
    assert resolve_config_path("carnet_deepcrack") == recipe_dir() / "carnet_deepcrack.yaml"
    assert resolve_config_path("carnet_deepcrack.yaml") == recipe_dir() / "carnet_deepcrack.yaml"
    checkout = Path(__file__).parents[2] / "configs" / "carnet_deepcrack.yaml"
    assert checkout.read_text() == (recipe_dir() / "carnet_deepcrack.yaml").read_text()
    with pytest.raises(ConfigError, match="carnet_deepcrak.*recipes: .*carnet_deepcrack"):
        load_config("carnet_deepcrak")


@pytest.mark.parametrize("name", RECIPES)
def test_shipped_recipes_load_and_name_real_data(name, shared_data):
    """Every shipped recipe resolves by name, builds its model and finds its training data."""
    cfg = load_config(name)
    # the zoo's shared recipe is the one short schedule (1,000 steps, checked against CarNet's
    # 6,000-step result in benchmarks/results/zoo_deepcrack.json); a fine-tune of shipped weights
    # may instead run for a CPU budget (`minutes:`), which refits its horizon
    if cfg.init_weights and cfg.iterations is None:
        assert cfg.minutes is not None and cfg.minutes >= 60
    else:
        assert cfg.iterations >= (1000 if name == "zoo_deepcrack" else 6000)
    assert cfg.amp == "auto" and cfg.val_fraction > 0
    assert cfg.bn_recalib >= 100  # precise BN for every checkpoint
    logits = create_model(cfg.model, **cfg.model_kwargs)(torch.zeros(1, 3, 64, 64))
    assert logits.shape == (1, 1, 64, 64)
    specs = [s.replace("../shared/data", str(shared_data)) for s in cfg.train_data]
    data = build_dataset(specs, split="train")
    train_idx, val_idx = split_train_val(data, cfg.val_fraction, seed=cfg.seed)
    assert len(val_idx) >= 1 and not set(train_idx) & set(val_idx)
    assert len(data) >= 286  # the smallest shipped train split (CRACK500)


def test_readme_train_commands_resolve():
    """Every `crackseg train CONFIG --set ...` line in the README resolves to a valid config."""
    import shlex

    root = Path(__file__).resolve().parents[2]
    text = (root / "README.md").read_text().replace("\\\n", " ")
    lines = [
        ln.split("#")[0]
        for ln in text.splitlines()
        if ln.startswith("crackseg train ") and not ln.startswith("crackseg train --")
    ]
    assert lines, "the README shows no crackseg train command"
    for line in lines:
        argv = shlex.split(line)[2:]
        config, sets = argv[0], [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
        cfg = load_config(config, sets)  # a shipped recipe's name, as a user types it
        assert cfg.model and cfg.train_data, line


class StepClock:
    """A clock that moves one second per reading: the engine reads it once at the start and
    once per step, so "elapsed" is the number of steps run, whatever the machine's speed."""

    def __init__(self) -> None:
        self.t = -1.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


class StartUpClock:
    """1 s per step for the first 20 steps (start-up), then 0.5 s per step."""

    def __init__(self) -> None:
        self.n = -1

    def __call__(self) -> float:
        self.n += 1
        return float(self.n) if self.n <= 20 else 20.0 + 0.5 * (self.n - 20)


train_module = importlib.import_module("crackseg.engine.train")


def test_wall_clock_run_refits_its_horizon_after_start_up(tmp_path, monkeypatch):
    """The horizon fitted after 20 slow start-up steps (45 steps in 45 s) is refitted once on the
    steady rate of the next 10 (0.5 s/step): 20 + 10 + (45 - 25) / 0.5 = 70 steps."""
    monkeypatch.setattr(train_module, "REFIT_STEPS", 10)
    cfg = load_config(None, [*TINY, "minutes=0.75", "val_every=1000", "seed=2"])
    cfg.out_dir = str(tmp_path / "run")
    summary = train(cfg, clock=StartUpClock())
    state = json.loads((tmp_path / "run" / "last.json").read_text())
    assert state["total"] == summary["steps"] == state["step"] == 70


@pytest.mark.parametrize(
    ("minutes", "steps"),
    [
        (0.5, 30),  # 30 s budget, 1 s per step: the horizon fitted after 20 steps is 30
        (0.1, 20),  # 6 s budget spent within the first 20 steps: stop there, never behind them
    ],
)
def test_wall_clock_run_fixes_its_length_without_a_progress_bar(tmp_path, minutes, steps):
    """`minutes` (as in the README's own-data command) with progress=false: the schedule horizon
    is fitted after 20 steps and the run ends at it, with `last` saved there. The clock is
    injected, so the test does not depend on how fast (or busy) the machine is."""
    cfg = load_config(None, [*TINY, f"minutes={minutes}", "val_every=1000", "seed=2"])
    cfg.out_dir = str(tmp_path / "run")
    summary = train(cfg, clock=StepClock())
    state = json.loads((tmp_path / "run" / "last.json").read_text())
    assert state["total"] == summary["steps"] == state["step"] == steps
    assert not summary["interrupted"]


def test_init_weights_fine_tunes_from_a_checkpoint_or_shipped_weights(tmp_path):
    """``init_weights``: a new run starts from the given weights (not random ones); weights for
    another architecture, or a name that is neither a file nor shipped weights, are refused."""
    first = tmp_path / "first"
    train(load_config(None, [*TINY, "iterations=2", f"out_dir={first}"]))
    start = load_file(str(first / "last.safetensors"))
    runs = {}
    init = f"init_weights={first / 'last.safetensors'}"
    for name, extra in {"init": [init], "random": []}.items():
        out = tmp_path / name
        # a learning rate so small that one step leaves every weight where it started
        cfg = load_config(None, [*TINY, *extra, "iterations=1", "lr=1e-12", "seed=1",
                                 "bn_recalib=0", f"out_dir={out}"])  # fmt: skip
        train(cfg)
        runs[name] = load_file(str(out / "last.safetensors"))
    convs = [k for k, v in start.items() if k.endswith("weight") and v.dim() == 4]
    assert convs
    for k in convs:
        torch.testing.assert_close(runs["init"][k], start[k], atol=1e-6, rtol=0)
    assert any(not torch.allclose(runs["random"][k], start[k]) for k in convs)
    # resuming a fine-tuning run no longer needs the file it started from
    for f in first.glob("*.safetensors"):
        f.unlink()
    saved = ckpt.resume_point(tmp_path / "init", repair=False)[1]["config"]
    assert config_from_dict(saved, "saved").init_weights.endswith("last.safetensors")

    with pytest.raises(ConfigError, match="init_weights.*set model / model_kwargs to match"):
        load_config(None, [*TINY, "init_weights=carnet_general", f"out_dir={tmp_path / 'x'}"])
    with pytest.raises(ConfigError, match="neither a file nor shipped weights"):
        load_config(None, [*TINY, "init_weights=no_such_weights", f"out_dir={tmp_path / 'y'}"])
    # the shipped weights fit the full CarNet
    sets = ["init_weights=carnet_general", "train_data=[synth:10:64]", "train_weights=[]"]
    cfg = load_config("carnet_general", [*sets, f"out_dir={tmp_path / 'z'}"])
    assert cfg.init_weights == "carnet_general"
