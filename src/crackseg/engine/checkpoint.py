"""Checkpoints that load without running code: safetensors tensors plus small JSON files.

A checkpoint ``TAG`` in a run folder is:

- ``TAG.safetensors``: model weights; metadata holds the model name and constructor kwargs, so
  :func:`load_model` rebuilds the model from the file alone.
- ``TAG_optim.safetensors`` + ``TAG.json``: optimizer tensors and the JSON training state (step,
  best metric, config, optimizer hyper-parameters), used by ``crackseg train --resume``.

Every file is written to a temporary name and moved into place (atomic on POSIX), so a run
killed mid-write never leaves a truncated checkpoint behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..models import create_model


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated or not a crackseg checkpoint."""


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_weights(
    path: Path, model: nn.Module, model_name: str, model_kwargs: dict, extra: dict | None = None
) -> None:
    """Write model weights with the metadata needed to rebuild the model."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": "crackseg", "model": model_name, "model_kwargs": json.dumps(model_kwargs)}
    meta.update({k: json.dumps(v) for k, v in (extra or {}).items()})
    _atomic(Path(path), lambda tmp: save_file(state, tmp, metadata=meta))


def save_json(path: Path, obj: Any) -> None:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)

    _atomic(Path(path), write)


def save_optimizer(path: Path, optimizer: torch.optim.Optimizer) -> dict:
    """Write optimizer tensors to safetensors; return the JSON-able rest (groups, scalars)."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"{pid}.{key}"] = val.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = val
    if tensors:
        _atomic(Path(path), lambda tmp: save_file(tensors, tmp))
    return {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer(path: Path, optimizer: torch.optim.Optimizer, info: dict) -> None:
    tensors = _load_tensors(path) if Path(path).exists() else {}
    state: dict[int, dict] = {}
    for name, val in list(tensors.items()) + list(info["scalars"].items()):
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = val
    optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f"cannot read checkpoint {path}: {e}. The file is truncated or not a safetensors "
            "file; use the run's other checkpoint (best/last) or retrain."
        ) from None


def resolve_checkpoint(path: str | Path) -> Path:
    """A run folder (uses ``best``, else ``last``) or a ``.safetensors`` file."""
    p = Path(path)
    if p.is_dir():
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


def load_model(path: str | Path, map_location: str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a model from a checkpoint file or run folder; returns ``(model, metadata)``."""
    path = resolve_checkpoint(path)
    meta = read_metadata(path)
    if meta.get("format") != "crackseg" or "model" not in meta:
        raise CheckpointError(
            f"{path} is a safetensors file but not a crackseg checkpoint (no model metadata)"
        )
    kwargs = json.loads(meta.get("model_kwargs", "{}"))
    model = create_model(meta["model"], **kwargs)
    state = _load_tensors(path)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not fit model {meta['model']!r}: {e}") from None
    model.to(map_location).eval()
    return model, {k: v for k, v in meta.items()}
