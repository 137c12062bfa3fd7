"""Model registry: ``create_model(name, **kwargs)`` and ``list_models(pattern)``.

Builders register themselves with :func:`register_model`; registering a name twice is an error so
two families can never silently shadow each other.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable

import torch.nn as nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str | None = None) -> Callable[[Callable[..., nn.Module]], Callable]:
    """Decorator registering a model builder under ``name`` (default: the function's name)."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        if key in _MODELS:
            raise ValueError(f"model name {key!r} is already registered (by {_MODELS[key]!r})")
        _MODELS[key] = fn
        return fn

    return wrap


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of registered models matching a shell-style ``pattern``."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def create_model(name: str, weights: str | None = None, **kwargs) -> nn.Module:
    """Build the registered model ``name`` with constructor keyword arguments ``kwargs``.

    Args:
        name: a registered model (``list_models()``).
        weights: ``None`` (random initialisation), ``"default"`` (the model's shipped
            pretrained weights) or the name of shipped weights (``crackseg models --pretrained``).
            Pretrained models are returned in eval mode; ``kwargs`` must then be empty (the
            architecture is the one the weights were trained with).

    Raises:
        KeyError: unknown name; the message lists every known name (and the closest match).
    """
    if name not in _MODELS:
        close = difflib.get_close_matches(name, _MODELS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"unknown model {name!r}.{hint} Known models: {', '.join(list_models())}")
    if weights is not None:
        from .pretrained import get_weights

        w = get_weights(weights, model=name)
        if kwargs and kwargs != w.model_kwargs:
            raise ValueError(
                f"weights {w.name!r} fix the architecture ({w.model_kwargs or 'defaults'}); "
                f"drop the constructor arguments {kwargs}"
            )
        return w.load()
    return _MODELS[name](**kwargs)


def model_builder(name: str) -> Callable[..., nn.Module]:
    """The builder function registered as ``name`` (for its docstring and signature)."""
    if name not in _MODELS:
        create_model(name)  # raises the helpful KeyError
    return _MODELS[name]
