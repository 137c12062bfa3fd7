"""One record of what a model file carries besides its tensors or graph: :class:`ModelMeta`.

The same fields travel in every file crackseg writes or reads:

- shipped weights: ``crackseg/weights/NAME.json`` (:mod:`crackseg.models.pretrained`);
- weights files and run checkpoints: the safetensors header metadata
  (:mod:`crackseg.models.weights_io`), string values holding JSON;
- exported graphs: ONNX / OpenVINO ``metadata_props`` (``crackseg.FIELD``) and the TorchScript
  ``crackseg.json`` extra file (:mod:`crackseg.inference.backends`).

The :class:`~crackseg.inference.predictor.Predictor` turns a ``ModelMeta`` into its
normalisation, threshold and name in one place, whichever file it came from. Importing this
module needs no torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import CrackSegError

__all__ = ["FORMAT", "FORMAT_VERSION", "MEAN", "STD", "THRESHOLD", "MetadataError", "ModelMeta"]

#: ImageNet normalisation: what every crackseg model is trained with unless its file says other
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
#: mask threshold of a model whose file names none (a checkpoint of a run in progress)
THRESHOLD = 0.5
#: ``format`` marker of crackseg's exported files, and the version of their metadata layout:
#: 1 for float files, 2 for int8 files (the ``precision`` and ``quantization`` fields), so a
#: crackseg that cannot run them says "upgrade" instead of running them as float models
FORMAT = "crackseg-export"
FORMAT_VERSION = 2
#: The largest ``size_divisor`` a file may ask for: crackseg's models need 8 to 64, the default
#: tile is 1024 px.
MAX_SIZE_DIVISOR = 512


class MetadataError(CrackSegError):
    """A model file's crackseg metadata is missing, malformed or out of range."""


@dataclass(frozen=True)
class ModelMeta:
    """What travels with a model besides the network.

    Attributes:
        model: registered model name (``crackseg models``).
        name: what the Predictor reports as its model (weights name, checkpoint path, ...).
        mean, std: input normalisation (RGB in [0, 1], minus ``mean``, over ``std``).
        threshold: default probability threshold of masks (the model card's ODS threshold).
        size_divisor: height and width given to the network must be multiples of this.
        model_kwargs: its constructor arguments.
        card: shipped weights whose model card describes this model (``crackseg models --card
            CARD``); ``""`` for a checkpoint of your own or a random initialisation.
        source: what was exported (``pretrained:NAME``, a checkpoint path, a model name).
        format: ``onnx``, ``openvino`` or ``torchscript`` for an exported file, else ``""``.
        crackseg_version: the crackseg that wrote the file.
        precision: ``fp32``, or ``int8`` for a post-training quantised file.
        quantization: for int8 files, how: ``runtime`` (the one it was quantised for,
            ``onnxruntime`` or ``openvino``), ``method``, ``scheme``, ``calibration`` (what the
            calibration images were) and the tool versions.
    """

    model: str
    name: str
    mean: tuple[float, float, float] = MEAN
    std: tuple[float, float, float] = STD
    threshold: float = THRESHOLD
    size_divisor: int = 32
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    card: str = ""
    source: str = ""
    format: str = ""
    crackseg_version: str = ""
    precision: str = "fp32"
    quantization: dict[str, Any] = field(default_factory=dict)

    # -- exported files: a JSON object with a format version ------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON object exported files carry (``format_version`` first)."""
        d = asdict(self)
        if self.precision == "fp32" and not self.quantization:
            # a float file keeps the layout of version 1, readable by every crackseg
            del d["precision"], d["quantization"]
            return {"format_version": 1, **d}
        return {"format_version": FORMAT_VERSION, **d}

    @classmethod
    def from_dict(
        cls, d: dict[str, Any], where: object, error: type[CrackSegError] = MetadataError
    ) -> ModelMeta:
        """Read :meth:`to_dict`'s object back, checked; ``error`` (naming ``where``) otherwise."""
        d = dict(d)
        version = d.pop("format_version", None)
        if not isinstance(version, int):
            raise error(f"{where}: crackseg metadata has no format_version; re-export it")
        if version > FORMAT_VERSION:
            raise error(
                f"{where} was written by a newer crackseg (metadata version {version}, this one "
                f"reads {FORMAT_VERSION}): upgrade crackseg, or re-export the model with this one"
            )
        try:
            d["mean"] = tuple(float(v) for v in d["mean"])
            d["std"] = tuple(float(v) for v in d["std"])
            d["threshold"] = float(d["threshold"])
            d["size_divisor"] = int(d["size_divisor"])
            meta = cls(**d)
        except (KeyError, TypeError, ValueError) as e:
            raise error(
                f"{where}: crackseg metadata is incomplete or malformed ({e!r}); re-export the "
                "model"
            ) from None
        bad = meta.bad_field()
        if bad:
            name, value, want = bad
            raise error(
                f"exported model {where}: its crackseg metadata field {name} is {value!r}, must "
                f"be {want}: the file is damaged or was edited; re-export the model with "
                "crackseg export"
            )
        return meta

    def to_props(self) -> dict[str, str]:
        """ONNX / OpenVINO ``metadata_props``: ``crackseg.FIELD`` -> JSON value, plus the format
        marker ``crackseg: crackseg-export``."""
        props = {f"crackseg.{k}": json.dumps(v) for k, v in self.to_dict().items()}
        return {"crackseg": FORMAT, **props}

    @classmethod
    def from_props(
        cls, props: dict[str, str], where: object, error: type[CrackSegError] = MetadataError
    ) -> ModelMeta | None:
        """Read :meth:`to_props` back; None when the format marker is absent (not an export)."""
        if props.get("crackseg") != FORMAT:
            return None
        try:
            d = {
                k[len("crackseg.") :]: json.loads(v)
                for k, v in props.items()
                if k.startswith("crackseg.")
            }
        except ValueError:
            raise error(f"{where}: crackseg metadata is not valid JSON") from None
        return cls.from_dict(d, where, error)

    @classmethod
    def from_json(
        cls, text: str, where: object, error: type[CrackSegError] = MetadataError
    ) -> ModelMeta | None:
        """Read :meth:`to_dict`'s object from JSON text; None for empty text."""
        if not text:
            return None
        try:
            d = json.loads(text)
        except ValueError:
            raise error(f"{where}: crackseg metadata is not valid JSON") from None
        if not isinstance(d, dict):
            raise error(f"{where}: crackseg metadata is not a JSON object; re-export the model")
        return cls.from_dict(d, where, error)

    def bad_field(self) -> tuple[str, Any, str] | None:
        """The first field no crackseg file holds: ``(name, value, what it must be)``."""
        if len(self.mean) != 3 or not all(math.isfinite(v) for v in self.mean):
            return "mean", list(self.mean), "3 finite numbers (the RGB means)"
        if len(self.std) != 3 or not all(math.isfinite(v) and v > 0 for v in self.std):
            return "std", list(self.std), "3 finite numbers > 0 (the RGB standard deviations)"
        if not (math.isfinite(self.threshold) and 0.0 <= self.threshold <= 1.0):
            return "threshold", self.threshold, "a probability in [0, 1]"
        if not 1 <= self.size_divisor <= MAX_SIZE_DIVISOR:
            return "size_divisor", self.size_divisor, f"a whole number from 1 to {MAX_SIZE_DIVISOR}"
        return None

    # -- weights files: safetensors header metadata (str -> str) --------------------------------
    def to_safetensors(self, inference: bool = True) -> dict[str, str]:
        """Header metadata of a weights file: the model and its kwargs, and with ``inference``
        the normalisation and threshold (shipped weights; a run checkpoint has none until its
        threshold is chosen on validation)."""
        out = {
            "format": "crackseg",
            "model": self.model,
            "model_kwargs": json.dumps(self.model_kwargs),
        }
        if inference:
            out["threshold"] = json.dumps(self.threshold)
            out["preprocessing"] = json.dumps({"mean": list(self.mean), "std": list(self.std)})
        return out

    @classmethod
    def from_safetensors(cls, meta: dict[str, str], name: str) -> ModelMeta:
        """A weights file's header metadata (``crackseg.models.weights_io``: written by
        ``save_weights``, its keys checked by ``load_model``); normalisation and threshold
        default to :data:`MEAN`, :data:`STD` and :data:`THRESHOLD` where a run checkpoint has
        none."""
        pre = json.loads(meta["preprocessing"]) if "preprocessing" in meta else {}
        return cls(
            model=meta["model"],
            name=name,
            model_kwargs=json.loads(meta.get("model_kwargs", "{}")),
            mean=tuple(pre.get("mean", MEAN)),
            std=tuple(pre.get("std", STD)),
            threshold=float(json.loads(meta.get("threshold", json.dumps(THRESHOLD)))),
        )

    # -- shipped weights: crackseg/weights/NAME.json -------------------------------------------
    @classmethod
    def from_weights_json(cls, d: dict[str, Any]) -> ModelMeta:
        """The metadata part of a shipped weights' JSON (the card's name names the card too)."""
        return cls(
            model=d["model"],
            name=d["name"],
            card=d["name"],
            model_kwargs=dict(d.get("model_kwargs", {})),
            mean=tuple(d["mean"]),
            std=tuple(d["std"]),
            threshold=float(d["threshold"]),
            source=f"pretrained:{d['name']}",
        )
