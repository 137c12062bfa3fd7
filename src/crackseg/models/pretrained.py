"""Pretrained weights shipped inside the package, with their metadata beside them.

Each set of weights is three files in ``crackseg/weights/``:

- ``NAME.safetensors``: the tensors (fp16 storage; loaded as fp32), with the crackseg checkpoint
  metadata (model name and constructor arguments, normalisation, threshold), so
  :func:`crackseg.models.weights_io.load_model` and ``crackseg evaluate --checkpoint`` read it too;
- ``NAME.json``: what :class:`Weights` holds: model, threshold, normalisation, recipe, metrics;
- ``NAME.md``: the model card (``crackseg models --card NAME``): data, recipe, test metrics, the
  cross-dataset matrix, data terms and citations, known weaknesses.

The pattern is torchvision's ``Weights`` enums and timm's pretrained configs: the numbers a user
needs to decide (params, metrics, recipe) travel with the weights. Loading never runs code
(safetensors), and nothing is downloaded.

    crackseg.create_model("carnet", weights="default")
    crackseg.models.pretrained.list_pretrained()
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..meta import ModelMeta

__all__ = ["Weights", "get_weights", "list_pretrained", "weights_dir", "weights_source"]

#: weights used by ``create_model(MODEL, weights="default")`` and ``Predictor.from_pretrained()``
DEFAULT_WEIGHTS = {"carnet": "carnet_field"}


def weights_dir() -> Path:
    """The package folder holding the shipped weights."""
    return Path(str(resources.files("crackseg") / "weights"))


@dataclass(frozen=True)
class Weights:
    """One set of shipped weights (read from ``crackseg/weights/NAME.json``): the
    :class:`~crackseg.meta.ModelMeta` every runtime reads, and what the card tells a user."""

    name: str
    meta: ModelMeta
    summary: str
    params: int
    metrics: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    data: list[str] = field(default_factory=list)

    @property
    def model(self) -> str:
        return self.meta.model

    @property
    def model_kwargs(self) -> dict[str, Any]:
        return self.meta.model_kwargs

    @property
    def threshold(self) -> float:
        return self.meta.threshold

    @property
    def mean(self) -> tuple[float, float, float]:
        return self.meta.mean

    @property
    def std(self) -> tuple[float, float, float]:
        return self.meta.std

    @property
    def file(self) -> Path:
        return weights_dir() / f"{self.name}.safetensors"

    @property
    def card_file(self) -> Path:
        return weights_dir() / f"{self.name}.md"

    def card(self) -> str:
        """The model card (markdown)."""
        return self.card_file.read_text(encoding="utf-8")

    def state_dict(self) -> dict:
        """The tensors as fp32 (stored as fp16)."""
        from safetensors.torch import load_file

        return {k: v.float() for k, v in load_file(str(self.file)).items()}

    def load(self):
        """The model with these weights, in eval mode, on the CPU."""
        from crackseg.models import create_model

        model = create_model(self.model, **self.model_kwargs)
        model.load_state_dict(self.state_dict())
        return model.eval()


def _read(path: Path) -> Weights:
    d = json.loads(path.read_text(encoding="utf-8"))
    return Weights(
        name=d["name"],
        meta=ModelMeta.from_weights_json(d),
        summary=d.get("summary", ""),
        params=int(d.get("params", 0)),
        metrics=d.get("metrics", {}),
        recipe=d.get("recipe", {}),
        data=d.get("data", []),
    )


def list_pretrained() -> list[Weights]:
    """Every set of weights shipped in the package, by name."""
    folder = weights_dir()
    if not folder.is_dir():
        return []
    found = [_read(p) for p in sorted(folder.glob("*.json"))]
    return [w for w in found if w.file.exists()]


def get_weights(name: str = "default", model: str | None = None) -> Weights:
    """Weights by name; ``"default"`` means the default weights of ``model`` (CarNet if None).

    Raises:
        KeyError: unknown name, or weights made for another model; the message lists what exists.
    """
    available = {w.name: w for w in list_pretrained()}
    key = name
    if name == "default":
        key = DEFAULT_WEIGHTS.get(model or "carnet", "")
        if not key:
            raise KeyError(
                f"model {model!r} has no default pretrained weights; shipped weights: "
                f"{', '.join(f'{w.name} ({w.model})' for w in available.values()) or 'none'}"
            )
    if key not in available:
        raise KeyError(
            f"no pretrained weights named {key!r}; shipped: {', '.join(available) or 'none'} "
            "(crackseg models --pretrained lists them)"
        )
    w = available[key]
    if model is not None and w.model != model:
        raise KeyError(f"weights {key!r} are for model {w.model!r}, not {model!r}")
    return w


def weights_source(source: str) -> Path:
    """A checkpoint path as given, or, for a name that is no file and has no suffix, the file of
    the shipped weights of that name (raises :class:`KeyError` from :func:`get_weights`)."""
    path = Path(source)
    if path.exists() or path.suffix:
        return path
    return get_weights(source).file
