"""Any torchvision / timm feature extractor as an encoder, and local ImageNet weights for it.

torchvision's :func:`~torchvision.models.feature_extraction.create_feature_extractor` (or
``IntermediateLayerGetter``) returns a dict of tapped maps; timm's ``features_only=True`` models
return a list. :class:`FeatureExtractorEncoder` turns either into the encoder contract of
:mod:`crackseg.models.encoders`, measuring each map's channels and stride once with a dry run, so
no table of channel counts can drift from the model it describes.

Pretrained weights are never downloaded: ``encoder_weights=PATH`` names a local state dict of
the classification model (a ``.safetensors`` file, or anything ``torch.load(weights_only=True)``
reads), as torchvision and timm publish them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn


class FeatureExtractorEncoder(nn.Module):
    """Wrap a feature extractor (dict or list of maps, finest first) as an encoder.

    Args:
        body: the extractor, e.g. a ``create_feature_extractor`` graph module or a timm
            ``features_only`` model. Its maps must come finest first.
        in_channels: input channels, for the dry run.
        probe_size: side of the zero image of the dry run that measures channels and strides;
            a multiple of the deepest stride.
    """

    def __init__(self, body: nn.Module, in_channels: int = 3, probe_size: int = 64) -> None:
        super().__init__()
        self.body = body
        was_training = body.training
        body.eval()  # the dry run must not move BatchNorm statistics
        try:
            with torch.no_grad():
                device = next(iter(body.parameters())).device
                feats = self._as_list(body(torch.zeros(1, in_channels, probe_size, probe_size,
                                                        device=device)))  # fmt: skip
        finally:
            body.train(was_training)
        self.out_channels = [int(f.shape[1]) for f in feats]
        self.out_strides = [probe_size // int(f.shape[-1]) for f in feats]
        if self.out_strides != sorted(self.out_strides):
            raise ValueError(f"feature maps must come finest first, got strides {self.out_strides}")

    @staticmethod
    def _as_list(out) -> list[torch.Tensor]:
        return list(out.values()) if isinstance(out, Mapping) else list(out)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self._as_list(self.body(x))


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a local weights file: ``.safetensors``, or a ``torch.save`` file read with
    ``weights_only=True`` (a bare state dict, or a checkpoint holding one under
    ``"state_dict"`` or ``"model"``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"encoder weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    return dict(state)


def load_encoder_weights(module: nn.Module, path: str | Path) -> nn.Module:
    """Load a classification model's state dict into the encoder built from it.

    Every tensor the encoder has must be in the file, under the same name (torchvision's
    feature extractors and timm's ``features_only`` models keep the classification model's
    names); tensors the encoder dropped (the classifier head) are ignored.

    Raises:
        ValueError: the file lacks tensors the encoder needs.
        RuntimeError: a tensor's shape differs (e.g. weights of another width).
    """
    state = read_state_dict(path)
    missing, _unused_head = module.load_state_dict(state, strict=False)
    if missing:
        raise ValueError(
            f"{path}: {len(missing)} encoder tensors are not in the file, e.g. {missing[:3]}; "
            f"it holds {len(state)} tensors such as {list(state)[:3]}. Expected the state dict "
            "of the torchvision / timm classification model this encoder is built from."
        )
    return module
