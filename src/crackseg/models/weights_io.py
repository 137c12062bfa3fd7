"""Weights files: write a model with the metadata that rebuilds it, read one back safely.

A crackseg weights file is a safetensors file whose metadata holds ``format: crackseg``, the
registered model name and its constructor arguments (JSON), and optionally the normalisation and
threshold (:class:`crackseg.models.meta.ModelMeta`). :func:`load_model` rebuilds the model from
the file alone; the arguments are checked against the builder's signature and the tensor shapes
in the file header before anything is allocated, and loading never runs code. Run folders,
checkpoints and resume (``crackseg.engine.checkpoint``) build on these.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..atomic import atomic_write
from ..errors import CrackSegError
from ..meta import ModelMeta
from . import create_model, list_models, model_builder  # the registry, families registered

__all__ = [
    "CheckpointError",
    "INIT_ONLY_KWARGS",
    "MAX_PARAMS",
    "check_model_kwargs",
    "load_model",
    "load_tensors",
    "read_metadata",
    "resolve_checkpoint",
    "save_weights",
]


class CheckpointError(CrackSegError):
    """A checkpoint file is missing, truncated or not a crackseg checkpoint."""


def _weights_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


#: constructor arguments that only initialise (the file's own tensors replace what they load),
#: left out of a weights file's metadata so loading it never looks for e.g. an ImageNet file
INIT_ONLY_KWARGS = ("encoder_weights",)


def _weights_meta(model_name: str, model_kwargs: dict, extra: dict | None) -> dict[str, str]:
    arch_kwargs = {k: v for k, v in model_kwargs.items() if k not in INIT_ONLY_KWARGS}
    meta = ModelMeta(model_name, model_name, model_kwargs=arch_kwargs).to_safetensors(False)
    meta.update({k: json.dumps(v) for k, v in (extra or {}).items()})
    return meta


def save_weights(
    path: Path, model: nn.Module, model_name: str, model_kwargs: dict, extra: dict | None = None
) -> None:
    """Write model weights with the metadata needed to rebuild the model (atomically)."""
    state = _weights_state(model)
    meta = _weights_meta(model_name, model_kwargs, extra)
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata=meta))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f"cannot read checkpoint {path}: {e}. The file is truncated or not a safetensors "
            "file; use the run's other checkpoint (best/last) or retrain."
        ) from None


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
    state = load_tensors(path)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not fit model {meta['model']!r}: {e}") from None
    model.to(map_location).eval()
    return model, {k: v for k, v in meta.items()}
