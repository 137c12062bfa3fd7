"""A run killed (SIGKILL) at any point of a checkpoint save resumes to the same weights.

One run is killed again and again, each time at another point of the save protocol
(``crackseg.faults.crash_point``: the process sends itself SIGKILL there), resumed
after every kill, and finally run to its end; its weights must equal those of a run that was
never interrupted, and nothing of the killed saves may be left behind.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from crackseg.engine import checkpoint as ckpt

TINY = [
    "model_kwargs={widths: [8, 16, 16, 32], blocks: [0, 1, 1, 1]}",
    "train_data=[synth:10:64]",
    "crop_size=48",
    "batch_size=2",
    "num_workers=0",
    "warmup_iters=2",
    "val_fraction=0.2",
    "val_every=1",  # a save (best and/or last) after every step: a kill point is always ahead
    "log_every=1",
    "progress=false",
    "bn_recalib=1",
    "iterations=12",
    "seed=4",
]

#: (crash point, which pass through it): every step of the save protocol, before and after
#: the commit, in best and in last saves.
KILLS = [
    ("save:begin", 1),
    ("save:weights", 2),
    ("save:optim", 1),
    ("save:state", 2),
    ("save:commit", 1),
    ("save:publish-weights", 2),
    ("save:publish", 1),
    ("save:prune", 1),
    ("save:commit", 2),
]


def _crackseg(args: list[str], crash: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("CRACKSEG_CRASH_AT", None)
    if crash:
        env["CRACKSEG_CRASH_AT"] = crash
    return subprocess.Popen(
        [sys.executable, "-m", "crackseg", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _train_args(out: Path) -> list[str]:
    argv = ["train"]
    for a in [*TINY, f"out_dir={out}"]:
        argv += ["--set", a]
    return argv


def _leftovers(run: Path) -> list[str]:
    return sorted(
        str(p.relative_to(run))
        for p in run.rglob("*")
        if p.name.startswith((".tmp-", ".trash-")) or p.name.endswith(".tmp")
    )


def test_sigkill_at_every_point_of_a_save_then_resume_gives_the_same_weights(tmp_path):
    ref = _crackseg(_train_args(tmp_path / "ref"))  # the uninterrupted run, alongside
    run = tmp_path / "cut"
    outcomes = []
    steps = []
    for i, (point, nth) in enumerate(KILLS):
        args = _train_args(run) if i == 0 else ["train", "--resume", str(run)]
        p = _crackseg(args, crash=f"{point}@{nth}")
        _, err = p.communicate(timeout=300)
        assert p.returncode == -9, f"{point}@{nth}: exit {p.returncode}\n{err[-3000:]}"
        assert "Traceback" not in err, err[-3000:]
        outcomes.append(point)
        # whatever the kill left, a complete checkpoint is found and its files agree (but a
        # run killed in its first save has none: --resume then starts it again from step 0)
        try:
            found, state = ckpt.resume_point(run, repair=False)
        except ckpt.NoCheckpointYet:
            assert i == 0 and point in ("save:begin", "save:weights", "save:optim", "save:state")
            continue
        assert found is not None and ckpt.verify_checkpoint(found) is None
        steps.append(state["step"])
    assert len(outcomes) == len(KILLS)
    assert steps == sorted(steps) and steps[-1] < 12  # progress is never lost, never finished

    final = _crackseg(["train", "--resume", str(run)])
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err[-3000:]
    _, ref_err = ref.communicate(timeout=300)
    assert ref.returncode == 0, ref_err[-3000:]

    for tag in ("last", "best"):
        a = load_file(str(tmp_path / "ref" / f"{tag}.safetensors"))
        b = load_file(str(run / f"{tag}.safetensors"))
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (tag, k)
    state = json.loads((run / "last.json").read_text())
    assert state["step"] == 12
    # one committed checkpoint per tag, no temporary files, no duplicated log rows
    assert sorted(c.tag for c in ckpt.list_checkpoints(run)) == ["best", "last"]
    assert _leftovers(run) == []
    with open(run / "log.csv", newline="") as f:
        rows = [tuple(r) for r in csv.reader(f)][1:]
    with open(tmp_path / "ref" / "log.csv", newline="") as f:
        ref_rows = [tuple(r) for r in csv.reader(f)][1:]
    keys = [(r[0], r[4] == "") for r in rows]  # (step, train row or validation row)
    assert len(keys) == len(set(keys)) == len(ref_rows)
    # the scores logged are the uninterrupted run's (timings differ)
    assert [(r[0], r[1], r[4]) for r in rows] == [(r[0], r[1], r[4]) for r in ref_rows]


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete_optim"])
def test_damaged_newest_checkpoint_falls_back_with_a_warning(tmp_path, damage):
    """A damaged committed checkpoint (disk trouble, a hand edit) is skipped with a warning
    naming it; resume continues from the newest complete one and still ends exact."""
    from crackseg.engine.train import load_config, train

    common = [*TINY, "iterations=4", "val_every=2", "threads=1"]
    train(load_config(None, [*common, f"out_dir={tmp_path / 'ref'}"]))
    cut = tmp_path / "cut"
    train(load_config(None, [*common, "iterations=2", f"out_dir={cut}"]))
    # make it a 4-step run that stopped at step 2, like a run interrupted there
    for c in ckpt.list_checkpoints(cut):
        state = c.state()
        state["total"] = 4
        state["config"]["iterations"] = 4
        (c.folder / "state.json").write_text(json.dumps(state))  # the digests still agree
    newest = ckpt.list_checkpoints(cut, "last")[0]
    (cut / "last.json").write_text(json.dumps(newest.state()))
    target = newest.optim if damage == "delete_optim" else newest.weights
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:100])
    elif damage == "flip":
        data = bytearray(target.read_bytes())
        data[-5] ^= 0xFF
        target.write_bytes(bytes(data))
    else:
        target.unlink()
    with pytest.warns(UserWarning, match=f"{newest.folder.name}.*incomplete"):
        train(None, resume=cut)
    a = load_file(str(tmp_path / "ref" / "last.safetensors"))
    b = load_file(str(cut / "last.safetensors"))
    for k in a:
        assert torch.equal(a[k], b[k]), k
