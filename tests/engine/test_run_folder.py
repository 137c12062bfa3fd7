"""Run folders: never replaced without --overwrite, one writer at a time, old layouts resume,
log rows never duplicated, checkpoints committed as one unit."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from safetensors.torch import load_file

from crackseg import create_model
from crackseg.engine import checkpoint as ckpt
from crackseg.engine.train import load_config, train
from crackseg.errors import ConfigError, CrackSegError
from crackseg.models import weights_io

TINY = [
    "model_kwargs={widths: [8, 16, 16, 32], blocks: [0, 1, 1, 1]}",
    "train_data=[synth:8:64]",
    "crop_size=48",
    "batch_size=2",
    "num_workers=0",
    "warmup_iters=1",
    "val_fraction=0.25",
    "val_every=2",
    "log_every=1",
    "progress=false",
    "bn_recalib=1",
    "threads=1",
    "seed=1",
]


def _cfg(out, *extra):
    return load_config(None, [*TINY, "iterations=4", f"out_dir={out}", *extra])


def _equal(a, b):
    a, b = load_file(str(a)), load_file(str(b))
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_new_run_refuses_an_existing_run_and_overwrite_replaces_it(tmp_path):
    run = tmp_path / "run"
    train(_cfg(run))
    before = (run / "last.safetensors").read_bytes()
    with pytest.raises(
        ConfigError, match="already holds a run at step 4 of 4.*--resume.*--overwrite"
    ):
        train(_cfg(run, "lr=0.01"))
    assert (run / "last.safetensors").read_bytes() == before
    (run / "notes.txt").write_text("mine")  # not a run file: --overwrite keeps it
    train(_cfg(run, "lr=0.01", "iterations=2"), overwrite=True)
    assert json.loads((run / "last.json").read_text())["step"] == 2
    assert "lr: 0.01" in (run / "config.yaml").read_text()
    assert (run / "notes.txt").read_text() == "mine"
    rows = list(csv.reader((run / "log.csv").open()))[1:]
    assert [r[0] for r in rows if r[1]] == ["1", "2"]  # the old run's rows are gone


def test_one_process_at_a_time_holds_a_run(tmp_path):
    run = tmp_path / "run"
    train(_cfg(run, "iterations=2"))
    with ckpt.RunLock(run), pytest.raises(CrackSegError, match="in use by another crackseg"):
        train(None, resume=run)


def test_checkpoint_layout_and_published_files(tmp_path):
    run = tmp_path / "run"
    train(_cfg(run))
    found = ckpt.list_checkpoints(run)
    assert sorted(c.tag for c in found) == ["best", "last"]
    last = ckpt.list_checkpoints(run, "last")[0]
    assert last.step == 4 and ckpt.verify_checkpoint(last) is None
    assert _equal(last.weights, run / "last.safetensors")
    assert json.loads((run / "last.json").read_text())["save_id"] == last.state()["save_id"]
    # evaluation paths keep working: the run folder, the file, the checkpoint folder
    for path in (run, run / "last.safetensors", run / "best.safetensors", last.folder):
        model, meta = weights_io.load_model(path)
        assert meta["model"] == "carnet"


def test_a_run_saved_by_an_older_crackseg_resumes(tmp_path):
    """Older runs: last.safetensors + last_optim.safetensors + last.json, no checkpoints/."""
    ref, old = tmp_path / "ref", tmp_path / "old"
    train(_cfg(ref))
    train(_cfg(old, "iterations=2"))
    last = ckpt.list_checkpoints(old, "last")[0]
    state = last.state()
    state["total"], state["config"]["iterations"] = 4, 4
    for k in ("tag", "save_id", "saved_at", "files"):
        state.pop(k)
    (old / "last_optim.safetensors").write_bytes(last.optim.read_bytes())
    (old / "last.json").write_text(json.dumps(state))
    import shutil

    shutil.rmtree(old / ckpt.CHECKPOINTS)
    (old / "best.safetensors").unlink()
    train(None, resume=old)
    assert _equal(ref / "last.safetensors", old / "last.safetensors")
    assert not (old / "last_optim.safetensors").exists()  # now inside the checkpoint


def test_resume_drops_log_rows_written_after_the_checkpoint(tmp_path):
    run = tmp_path / "run"
    train(_cfg(run, "iterations=2"))
    last = ckpt.list_checkpoints(run, "last")[0]
    for c in ckpt.list_checkpoints(run):  # make it a 4-step run stopped at step 2
        st = c.state()
        st["total"], st["config"]["iterations"] = 4, 4
        (c.folder / "state.json").write_text(json.dumps(st))
    (run / "last.json").write_text(json.dumps(last.state()))
    with open(run / "log.csv", "a", newline="") as f:  # a killed run logged steps 3 and 4
        csv.writer(f).writerows([[3, 0.5, 0.001, 0.1, "", "", "", ""], [4, 0.5, 0.001, 0.1]])
    (run / ".last.safetensors.abc.tmp").write_bytes(b"x" * 100)  # and left a temporary file
    with pytest.warns(UserWarning, match="removed .*last.safetensors.abc.tmp"):
        train(None, resume=run)
    rows = list(csv.reader((run / "log.csv").open()))[1:]
    keys = [(r[0], r[1] == "") for r in rows]
    assert len(keys) == len(set(keys))
    assert [r[0] for r in rows if r[1]] == ["1", "2", "3", "4"]
    assert not (run / ".last.safetensors.abc.tmp").exists()


def test_load_model_checks_metadata_before_allocating(tmp_path):
    """A small file whose metadata describes a huge model is refused from its header."""
    from safetensors.torch import save_file

    net = create_model("carnet", widths=[8, 16, 16, 32], blocks=[0, 1, 1, 1])
    path = tmp_path / "w.safetensors"
    kwargs = {"widths": [40000, 64, 128, 256], "blocks": [0, 1, 1, 1]}
    meta = {"format": "crackseg", "model": "carnet", "model_kwargs": json.dumps(kwargs)}
    save_file(dict(net.state_dict()), str(path), metadata=meta)
    with pytest.raises(ckpt.CheckpointError, match="does not fit model 'carnet'.*shape of"):
        weights_io.load_model(path)
    meta["model_kwargs"] = json.dumps({"widths": [8, 16, 16, 32], "blocks": [0, 1, 1, 1]})
    save_file(dict(net.state_dict()), str(path), metadata=meta)
    model, _ = weights_io.load_model(path)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in net.parameters())
