"""Checkpoints that load without running code, committed as one unit.

A run folder written by ``crackseg train`` holds, for each checkpoint tag (``last``, ``best``)::

    RUN/checkpoints/TAG-00001000.<id>/   the checkpoint: model.safetensors, optim.safetensors,
                                         state.json (step, config, optimizer hyper-parameters,
                                         size and SHA-256 of both tensor files)
    RUN/TAG.safetensors, RUN/TAG.json    the newest committed one, published for evaluation

A checkpoint is written into a temporary folder (``checkpoints/.tmp-*``), flushed to disk and
renamed into place: the rename is the commit, so a folder under ``checkpoints/`` is complete or
absent, never half-written. Only then are ``TAG.safetensors`` / ``TAG.json`` replaced (each by an
atomic rename) and older checkpoints of the tag removed. A process killed at any point leaves
at least one complete checkpoint (from the first save on); ``crackseg train --resume`` checks
that its files agree (same step, sizes and digests as recorded) and falls back, with a
warning, to the newest complete one. Temporary files of a killed save are removed when the run
is next opened.

The weights inside are plain crackseg weights files (:mod:`crackseg.models.weights_io`), so
``crackseg evaluate`` / ``predict --checkpoint`` read a checkpoint without this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..atomic import atomic_write, fsync_dir, fsync_file
from ..errors import CrackSegError
from ..faults import crash_point
from ..models.weights_io import (
    CheckpointError,
    _weights_meta,
    _weights_state,
    load_tensors,
    read_metadata,
)

CHECKPOINTS = "checkpoints"
TAGS = ("last", "best")


class NoCheckpointYet(CheckpointError):
    """A run folder without any checkpoint (stopped before its first save)."""


# --------------------------------------------------------------------------- small file tools
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_json(path: Path, obj: Any) -> None:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)

    atomic_write(path, write)


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """``(tensors, info)``: the optimizer's tensors, and the JSON-able rest (groups, scalars)."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"{pid}.{key}"] = val.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def save_optimizer(path: Path, optimizer: torch.optim.Optimizer) -> dict:
    """Write optimizer tensors to safetensors; return the JSON-able rest (groups, scalars)."""
    tensors, info = _optimizer_tensors(optimizer)
    if tensors:
        atomic_write(path, lambda tmp: save_file(tensors, tmp))
    return info


def load_optimizer(path: Path, optimizer: torch.optim.Optimizer, info: dict) -> None:
    tensors = load_tensors(path) if Path(path).exists() else {}
    state: dict[int, dict] = {}
    for name, val in list(tensors.items()) + list(info["scalars"].items()):
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = val
    try:
        optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})
    except (ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(
            f"optimizer state in {path} does not fit this model's optimizer ({e}); the run's "
            "files do not belong together: resume from a complete checkpoint or start a new run"
        ) from None


# --------------------------------------------------------------------------- committed checkpoints
@dataclass(frozen=True)
class Checkpoint:
    """A committed checkpoint folder ``RUN/checkpoints/TAG-STEP.ID``."""

    folder: Path
    tag: str
    step: int

    @property
    def weights(self) -> Path:
        return self.folder / "model.safetensors"

    @property
    def optim(self) -> Path:
        return self.folder / "optim.safetensors"

    @property
    def state_file(self) -> Path:
        return self.folder / "state.json"

    def state(self) -> dict:
        return json.loads(self.state_file.read_text())


def save_checkpoint(
    run: Path,
    tag: str,
    model: nn.Module,
    model_name: str,
    model_kwargs: dict,
    optimizer: torch.optim.Optimizer,
    state: dict,
) -> Checkpoint:
    """Commit checkpoint ``tag`` at ``state["step"]`` as one unit, then publish it as
    ``RUN/TAG.safetensors`` + ``RUN/TAG.json`` and drop the tag's older checkpoints.

    ``state`` gets its ``optimizer`` entry (param groups and scalars) filled in.
    """
    run = Path(run)
    step = int(state["step"])
    root = run / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    save_id = uuid.uuid4().hex[:8]
    tmp = root / f".tmp-{tag}-{step:08d}.{save_id}"
    tmp.mkdir()
    try:
        crash_point("save:begin")
        meta = {"step": step, "tag": tag, "save_id": save_id}
        save_file(
            _weights_state(model),
            str(tmp / "model.safetensors"),
            metadata=_weights_meta(model_name, model_kwargs, meta),
        )
        crash_point("save:weights")
        tensors, info = _optimizer_tensors(optimizer)
        optim_meta = {k: json.dumps(v) for k, v in meta.items()}
        save_file(tensors, str(tmp / "optim.safetensors"), metadata=optim_meta)
        crash_point("save:optim")
        state["optimizer"] = info
        files = {}
        for name in ("model.safetensors", "optim.safetensors"):
            fsync_file(tmp / name)
            files[name] = {"bytes": (tmp / name).stat().st_size, "sha256": _sha256(tmp / name)}
        record = {**state, "tag": tag, "save_id": save_id, "saved_at": time.time(), "files": files}
        with open(tmp / "state.json", "w") as f:
            json.dump(record, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(tmp)
        crash_point("save:state")
        final = root / f"{tag}-{step:08d}.{save_id}"
        os.rename(tmp, final)  # the commit
        fsync_dir(root)
    except BaseException:  # an exception (disk full, a second Ctrl-C): leave nothing behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    crash_point("save:commit")
    ck = Checkpoint(final, tag, step)
    publish(run, ck)
    crash_point("save:publish")
    for old in list_checkpoints(run, tag):
        if old.folder != final:
            _remove_folder(old.folder)
            crash_point("save:prune")
    return ck


def _remove_folder(folder: Path) -> None:
    """Remove a checkpoint folder: renamed away first, so it is never seen half-deleted."""
    trash = folder.with_name(f".trash-{folder.name}")
    try:
        os.rename(folder, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def _link_or_copy(src: Path, dst: Path) -> None:
    """Make ``dst`` the content of ``src`` by one atomic rename (hard link, else a copy)."""
    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
        fsync_file(tmp)
    try:
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()


def publish(run: Path, ck: Checkpoint) -> None:
    """Point ``RUN/TAG.safetensors`` and ``RUN/TAG.json`` at committed checkpoint ``ck``."""
    run = Path(run)
    _link_or_copy(ck.weights, run / f"{ck.tag}.safetensors")
    crash_point("save:publish-weights")
    _link_or_copy(ck.state_file, run / f"{ck.tag}.json")
    legacy = run / f"{ck.tag}_optim.safetensors"  # the optimizer now lives in the checkpoint
    if legacy.exists():
        legacy.unlink()
    fsync_dir(run)


def list_checkpoints(run: Path, tag: str | None = None) -> list[Checkpoint]:
    """Committed checkpoint folders of ``run`` (of ``tag``), newest step first."""
    root = Path(run) / CHECKPOINTS
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        if p.name.startswith(".") or not p.is_dir() or "-" not in p.name:
            continue
        t, _, rest = p.name.partition("-")
        step = rest.split(".")[0]
        if t not in TAGS or (tag and t != tag) or not step.isdigit():
            continue
        out.append(Checkpoint(p, t, int(step)))
    return sorted(out, key=lambda c: (c.step, c.folder.stat().st_mtime), reverse=True)


def verify_checkpoint(ck: Checkpoint) -> str | None:
    """None when every file of ``ck`` is there and agrees with ``state.json``, else the reason."""
    try:
        state = ck.state()
    except (OSError, ValueError) as e:
        return f"state.json unreadable ({e})"
    if state.get("step") != ck.step:
        return f"state.json is at step {state.get('step')}, the folder name says {ck.step}"
    for name, rec in (state.get("files") or {}).items():
        p = ck.folder / name
        if not p.is_file():
            return f"{name} is missing"
        if p.stat().st_size != rec.get("bytes"):
            return f"{name} has {p.stat().st_size} bytes, state.json recorded {rec.get('bytes')}"
        if _sha256(p) != rec.get("sha256"):
            return f"{name} does not match the digest recorded in state.json"
    for name in ("model.safetensors", "optim.safetensors"):
        try:
            with safe_open(str(ck.folder / name), framework="pt") as f:
                meta = f.metadata() or {}
        except (SafetensorError, OSError, ValueError) as e:
            return f"{name} unreadable ({e})"
        if int(json.loads(meta.get("step", "-1"))) != ck.step:
            return f"{name} is at step {meta.get('step')}, state.json at {ck.step}"
    return None


def clean_stale(run: Path) -> list[Path]:
    """Remove what killed saves left behind (temporary files and folders); returns them.

    Call only while holding the run (see :func:`lock_run`): another process's save in progress
    looks the same.
    """
    run = Path(run)
    removed: list[Path] = []
    candidates = [p for p in run.glob(".*.tmp") if p.is_file()]
    root = run / CHECKPOINTS
    if root.is_dir():
        candidates += [p for p in root.iterdir() if p.name.startswith((".tmp-", ".trash-"))]
    for p in candidates:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def resume_point(run: Path, repair: bool = True) -> tuple[Checkpoint | None, dict]:
    """The checkpoint to resume ``run`` from: ``(checkpoint, state)``.

    The newest complete ``last`` checkpoint; damaged ones are skipped with a warning naming the
    file and the reason, falling back to older ``last`` and then to ``best``. The committed
    checkpoint is re-published as ``RUN/last.*`` when the published files lag behind (a save
    killed between its commit and its publication). Runs written before checkpoint folders
    existed (``last.json`` + ``last.safetensors`` + ``last_optim.safetensors``) are resumed
    when their files agree on the step (returned checkpoint None). Raises
    :class:`CheckpointError` when nothing complete is left.
    """
    run = Path(run)
    found = list_checkpoints(run, "last") + list_checkpoints(run, "best")
    problems = []
    for ck in found:
        why = verify_checkpoint(ck)
        if why is None:
            if problems:
                warnings.warn(
                    f"{'; '.join(problems)}: resuming from {ck.folder} (step {ck.step}) instead",
                    stacklevel=2,
                )
            try:
                published = json.loads((run / "last.json").read_text()).get("save_id")
            except (OSError, ValueError, AttributeError):
                published = None
            state = ck.state()
            if repair and ck.tag == "last" and published != state.get("save_id"):
                publish(run, ck)
            return ck, state
        problems.append(f"checkpoint {ck.folder} is incomplete: {why}")
    if found:
        raise CheckpointError(
            f"no complete checkpoint left in {run}: {'; '.join(problems)}; start a new run "
            f"(--set out_dir=NEW or --overwrite)"
        )
    # a run saved by an older crackseg: three loose files that must agree on the step
    state_path = run / "last.json"
    if not state_path.exists():
        raise NoCheckpointYet(
            f"{run} has no checkpoint to resume (no {CHECKPOINTS}/ and no last.json): not a "
            "crackseg run folder, or it was stopped before its first checkpoint; start it anew "
            "with crackseg train CONFIG --overwrite"
        )
    try:
        state = json.loads(state_path.read_text())
        step = int(state["step"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{state_path} is damaged ({e}): cannot resume {run}") from None
    meta = read_metadata(run / "last.safetensors")
    wstep = int(json.loads(meta.get("step", "-1")))
    if wstep != step:
        raise CheckpointError(
            f"{run}/last.safetensors is at step {wstep} but last.json at step {step}: a save "
            "was interrupted and the older format keeps no complete copy; start a new run"
        )
    return None, state


def check_writable(run: Path, flag: str = "--resume") -> None:
    """Check that a run can be continued in ``run``: that a file can be created in it, in its
    ``checkpoints/`` and ``tb/`` folders, and that ``log.csv`` can be appended to, by trying
    (permission bits say nothing on read-only mounts, or to root). Raises
    :class:`CrackSegError` naming the place and the fix; nothing in the folder is changed."""
    run = Path(run)
    folders = [run] + [run / n for n in (CHECKPOINTS, "tb") if (run / n).is_dir()]
    where = run
    try:
        for where in folders:
            fd, probe = tempfile.mkstemp(prefix=".tmp-write-probe-", suffix=".tmp", dir=where)
            os.close(fd)
            Path(probe).unlink(missing_ok=True)  # (a running save's clean-up may beat us to it)
        where = run / "log.csv"
        if where.is_file():
            with open(where, "a"):
                pass
    except OSError as e:
        raise CrackSegError(
            f"{flag} {run}: cannot write to {where} ({e.strerror or e}): make the run folder "
            f"writable (chmod -R u+w {run}) and resume again; nothing was changed"
        ) from None


class RunLock:
    """An exclusive lock on a run folder (``RUN/.lock``), held while a process writes to it.

    Released by the OS when the process dies, so a killed run never blocks its resume.
    """

    def __init__(self, run: Path) -> None:
        self.path = Path(run) / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        import fcntl

        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            self._fd = None
            raise CrackSegError(
                f"{self.path.parent} is in use by another crackseg process (it holds "
                f"{self.path}); wait for it to finish or stop it, or use another out_dir"
            ) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
