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

Weights metadata holds the model name and constructor kwargs, so :func:`load_model` rebuilds the
model from the file alone; the kwargs are checked against the builder's signature and the
tensor shapes in the file header before anything is allocated.
"""

from __future__ import annotations

import hashlib
import inspect
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
from safetensors.torch import load_file, save_file

from ..errors import CrackSegError
from ..models import create_model, list_models, model_builder

CHECKPOINTS = "checkpoints"
TAGS = ("last", "best")


class CheckpointError(CrackSegError):
    """A checkpoint file is missing, truncated or not a crackseg checkpoint."""


class NoCheckpointYet(CheckpointError):
    """A run folder without any checkpoint (stopped before its first save)."""


# --------------------------------------------------------------------------- crash points
_crash_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Test hook: ``CRACKSEG_CRASH_AT=NAME@N`` kills this process with SIGKILL the N-th time
    (default 1st) it passes crash point NAME; ``CRACKSEG_CRASH_SIGNAL`` (e.g. ``SIGTERM``) sends
    another signal instead. Does nothing when the variable is unset."""
    spec = os.environ.get("CRACKSEG_CRASH_AT")
    if not spec:
        return
    target, _, nth = spec.partition("@")
    if target != name:
        return
    _crash_counts[name] = _crash_counts.get(name, 0) + 1
    if _crash_counts[name] == int(nth or 1):
        import signal

        os.kill(os.getpid(), getattr(signal, os.environ.get("CRACKSEG_CRASH_SIGNAL", "SIGKILL")))


# --------------------------------------------------------------------------- small file tools
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: str | Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        _fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _weights_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


#: constructor arguments that only initialise (the file's own tensors replace what they load),
#: left out of a weights file's metadata so loading it never looks for e.g. an ImageNet file
INIT_ONLY_KWARGS = ("encoder_weights",)


def _weights_meta(model_name: str, model_kwargs: dict, extra: dict | None) -> dict[str, str]:
    arch_kwargs = {k: v for k, v in model_kwargs.items() if k not in INIT_ONLY_KWARGS}
    meta = {"format": "crackseg", "model": model_name, "model_kwargs": json.dumps(arch_kwargs)}
    meta.update({k: json.dumps(v) for k, v in (extra or {}).items()})
    return meta


def save_weights(
    path: Path, model: nn.Module, model_name: str, model_kwargs: dict, extra: dict | None = None
) -> None:
    """Write model weights with the metadata needed to rebuild the model (atomically)."""
    state = _weights_state(model)
    meta = _weights_meta(model_name, model_kwargs, extra)
    _atomic(Path(path), lambda tmp: save_file(state, tmp, metadata=meta))


def save_json(path: Path, obj: Any) -> None:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)

    _atomic(Path(path), write)


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
        _atomic(Path(path), lambda tmp: save_file(tensors, tmp))
    return info


def load_optimizer(path: Path, optimizer: torch.optim.Optimizer, info: dict) -> None:
    tensors = _load_tensors(path) if Path(path).exists() else {}
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


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f"cannot read checkpoint {path}: {e}. The file is truncated or not a safetensors "
            "file; use the run's other checkpoint (best/last) or retrain."
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
            _fsync_file(tmp / name)
            files[name] = {"bytes": (tmp / name).stat().st_size, "sha256": _sha256(tmp / name)}
        record = {**state, "tag": tag, "save_id": save_id, "saved_at": time.time(), "files": files}
        with open(tmp / "state.json", "w") as f:
            json.dump(record, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        crash_point("save:state")
        final = root / f"{tag}-{step:08d}.{save_id}"
        os.rename(tmp, final)  # the commit
        _fsync_dir(root)
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
        _fsync_file(tmp)
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
    _fsync_dir(run)


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


# --------------------------------------------------------------------------- loading a model
def resolve_checkpoint(path: str | Path) -> Path:
    """A run folder (uses ``best``, else ``last``), a checkpoint folder or a ``.safetensors``."""
    p = Path(path)
    if p.is_dir():
        if (p / "model.safetensors").is_file():  # RUN/checkpoints/TAG-STEP.ID
            return p / "model.safetensors"
        for tag in ("best", "last"):
            if (p / f"{tag}.safetensors").exists():
                return p / f"{tag}.safetensors"
        raise CheckpointError(f"{p} holds no best.safetensors or last.safetensors checkpoint")
    if not p.exists():
        raise CheckpointError(f"checkpoint {p} does not exist")
    return p


def read_metadata(path: Path) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f"cannot read checkpoint {path}: {e}. The file is truncated or not a safetensors file."
        ) from None


def _header_shapes(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Tensor names -> (shape, dtype) from the file header, without reading any tensor."""
    try:
        with safe_open(str(path), framework="pt") as f:
            out = {}
            for k in f.keys():
                sl = f.get_slice(k)
                out[k] = (tuple(sl.get_shape()), str(sl.get_dtype()))
            return out
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from None


#: The most parameters a model may have: 500 M, over 20x the largest registered model (about
#: 22 M), 2 GB of float32 weights and about four times that to train with Adam. Larger
#: model_kwargs are a typo (a 40,000-channel layer) that would otherwise exhaust the memory.
MAX_PARAMS = 500_000_000


def check_model_kwargs(name: str, kwargs: Any, source: str) -> nn.Module | None:
    """Validate ``kwargs`` for model ``name`` without allocating: returns the model built on the
    ``meta`` device (None for a model that cannot be built there). ``source`` names where the
    values came from (a file or config key). A model of more than :data:`MAX_PARAMS`
    parameters is refused."""
    skeleton = _meta_model(name, kwargs, source)
    n = sum(p.numel() for p in skeleton.parameters()) if skeleton is not None else 0
    if n > MAX_PARAMS:
        raise CrackSegError(
            f"{source}: model_kwargs {kwargs} make a {name} of {n:,} parameters "
            f"({n * 4 / 1e9:,.1f} GB of float32 weights), more than crackseg's limit of "
            f"{MAX_PARAMS:,}: use smaller widths / channels"
        )
    return skeleton


def _meta_model(name: str, kwargs: Any, source: str) -> nn.Module | None:
    if name not in list_models():
        try:
            create_model(name)
        except KeyError as e:
            raise CrackSegError(f"{source}: {e.args[0]}") from None
    if not isinstance(kwargs, dict):
        raise CrackSegError(f"{source}: model_kwargs must be a mapping, got {kwargs!r}")
    builder = model_builder(name)
    try:
        inspect.signature(builder).bind(**kwargs)
    except TypeError as e:
        params = [p for p in inspect.signature(builder).parameters]
        raise CrackSegError(
            f"{source}: model_kwargs {kwargs} do not fit model {name!r} ({e}); its keyword "
            f"arguments are: {', '.join(params)}"
        ) from None
    try:
        with torch.device("meta"):
            return create_model(name, **kwargs)
    except (NotImplementedError, RuntimeError) as e:
        if "meta" in str(e).lower():  # a model whose constructor needs real tensors
            return None
        raise CrackSegError(
            f"{source}: model_kwargs {kwargs} are invalid for {name!r}: {e}"
        ) from None
    except (TypeError, ValueError, IndexError, KeyError) as e:
        raise CrackSegError(
            f"{source}: model_kwargs {kwargs} are invalid for {name!r}: {e}"
        ) from None


def load_model(path: str | Path, map_location: str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a model from a checkpoint file or run folder; returns ``(model, metadata)``.

    The metadata is checked before anything is allocated: the model must be registered, its
    kwargs must fit the builder's signature, and the tensor names and shapes in the file header
    must be exactly those of the model the kwargs describe.
    """
    path = resolve_checkpoint(path)
    meta = read_metadata(path)
    if meta.get("format") != "crackseg" or "model" not in meta:
        raise CheckpointError(
            f"{path} is a safetensors file but not a crackseg checkpoint (no model metadata)"
        )
    try:
        kwargs = json.loads(meta.get("model_kwargs", "{}"))
    except ValueError:
        raise CheckpointError(f"{path}: model_kwargs metadata is not valid JSON") from None
    try:
        skeleton = check_model_kwargs(meta["model"], kwargs, f"checkpoint {path}")
    except CheckpointError:
        raise
    except CrackSegError as e:
        raise CheckpointError(str(e)) from None
    header = _header_shapes(path)
    if skeleton is None:  # cannot be checked without building it: trust the file's own size
        skeleton_shapes = {k: shape for k, (shape, _) in header.items()}
    else:
        skeleton_shapes = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    expected = skeleton_shapes
    missing = sorted(set(expected) - set(header))
    extra = sorted(set(header) - set(expected))
    wrong = [
        f"{k} {header[k][0]} (model {expected[k]})"
        for k in sorted(set(expected) & set(header))
        if header[k][0] != expected[k]
    ]
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}")
        if extra:
            parts.append(f"unexpected {', '.join(extra[:3])}")
        if wrong:
            parts.append(f"shape of {', '.join(wrong[:3])}")
        raise CheckpointError(
            f"{path} does not fit model {meta['model']!r} with {kwargs}: "
            f"{'; '.join(parts)} (the file's metadata and tensors disagree: re-export it)"
        )
    model = create_model(meta["model"], **kwargs)
    state = _load_tensors(path)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not fit model {meta['model']!r}: {e}") from None
    model.to(map_location).eval()
    return model, {k: v for k, v in meta.items()}
