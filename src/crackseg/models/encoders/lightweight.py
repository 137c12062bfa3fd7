"""Encoders from the lightweight classification family, built by torchvision and timm.

- MobileNetV1: Howard et al., "MobileNets", arXiv 1704.04861, Table 1 (timm ``mobilenetv1_100``).
- MobileNetV2: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
  CVPR 2018, Table 2.
- MobileNetV3: Howard et al., "Searching for MobileNetV3", ICCV 2019, Tables 1 and 2.
- ShuffleNetV2: Ma et al., "ShuffleNet V2", ECCV 2018, Table 5.
- EfficientNet-B0: Tan & Le, "EfficientNet", ICML 2019, Table 1.

The networks are torchvision's and timm's own (``weights=None``: nothing is downloaded; pass
``encoder_weights=PATH`` for local ImageNet weights). They are tapped at the last layer of each
stride 2, 4, 8, 16 and 32; the classifier is pruned away.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch.nn as nn

from .adapter import FeatureExtractorEncoder, load_encoder_weights

#: torchvision model -> the nodes tapped: the last layer at strides 2, 4, 8, 16, 32. The
#: stride-32 tap is the end of ``features`` (its 1x1 expansion conv where there is one), as in
#: torchvision's own LR-ASPP.
TORCHVISION_TAPS: dict[str, tuple[str, ...]] = {
    "mobilenet_v2": ("features.1", "features.3", "features.6", "features.13", "features.18"),
    "mobilenet_v3_large": ("features.1", "features.3", "features.6", "features.12", "features.16"),
    "mobilenet_v3_small": ("features.0", "features.1", "features.3", "features.8", "features.12"),
    # no layer ends at stride 4 but the max-pool: ShuffleNetV2 downsamples twice in its stem
    "shufflenet_v2_x1_0": ("conv1", "maxpool", "stage2", "stage3", "conv5"),
    "efficientnet_b0": ("features.1", "features.2", "features.3", "features.5", "features.8"),
}


def replace_first_conv(model: nn.Module, in_channels: int) -> None:
    """Give ``model`` a new first convolution taking ``in_channels`` (same shape otherwise)."""
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                new = nn.Conv2d(
                    in_channels,
                    child.out_channels,
                    child.kernel_size,
                    child.stride,
                    child.padding,
                    child.dilation,
                    bias=child.bias is not None,
                )
                setattr(parent, name, new)
                return
    raise ValueError(f"{type(model).__name__} has no Conv2d to replace")


def extractor_encoder(
    model: nn.Module,
    taps: tuple[str, ...],
    in_channels: int = 3,
    encoder_weights: str | Path | None = None,
) -> FeatureExtractorEncoder:
    """Tap ``model`` at the nodes ``taps`` (finest first) with torchvision's FX feature extractor.

    The graph module keeps the classification model's parameter names, so ``encoder_weights``
    (a state dict of ``model``) loads into it directly.
    """
    from torchvision.models.feature_extraction import (
        create_feature_extractor,  # lazy: importing torchvision costs ~170 MB of RSS
    )

    if in_channels != 3:
        replace_first_conv(model, in_channels)
    body = create_feature_extractor(model, return_nodes={t: t for t in taps})
    if encoder_weights is not None:
        load_encoder_weights(body, encoder_weights)
    return FeatureExtractorEncoder(body, in_channels)


def torchvision_encoder(
    arch: str,
    *,
    in_channels: int = 3,
    encoder_weights: str | Path | None = None,
    **model_kwargs: Any,
) -> FeatureExtractorEncoder:
    """A torchvision classification model (``weights=None``) tapped by :data:`TORCHVISION_TAPS`.

    Args:
        arch: a key of :data:`TORCHVISION_TAPS`, e.g. ``"mobilenet_v3_large"``.
        in_channels: input channels (a new first convolution when not 3).
        encoder_weights: a local state dict of the torchvision model ``arch``.
        model_kwargs: passed to the torchvision builder, e.g. ``dilated=True`` (MobileNetV3,
            last stage at stride 16) or ``stochastic_depth_prob`` (EfficientNet).
    """
    if arch not in TORCHVISION_TAPS:
        raise KeyError(f"no taps for torchvision model {arch!r}; known: {sorted(TORCHVISION_TAPS)}")
    import torchvision  # lazy: importing torchvision costs ~170 MB of RSS

    model = torchvision.models.get_model(arch, weights=None, **model_kwargs)
    return extractor_encoder(model, TORCHVISION_TAPS[arch], in_channels, encoder_weights)


def timm_encoder(
    arch: str,
    *,
    in_channels: int = 3,
    encoder_weights: str | Path | None = None,
    out_indices: tuple[int, ...] = (0, 1, 2, 3, 4),
    **model_kwargs: Any,
) -> FeatureExtractorEncoder:
    """A timm model built with ``features_only=True`` (``pretrained=False``).

    Args:
        arch: a timm model name, e.g. ``"mobilenetv1_100"``.
        in_channels: input channels (timm's ``in_chans``).
        encoder_weights: a local state dict of the timm classification model ``arch``; timm's
            ``features_only`` models keep its parameter names.
        out_indices: the feature levels kept (timm's default: strides 2, 4, 8, 16, 32).
        model_kwargs: passed to ``timm.create_model`` (e.g. ``drop_path_rate``).
    """
    import timm  # imported here: it is slow to import and only these encoders need it

    body = timm.create_model(
        arch,
        pretrained=False,
        features_only=True,
        in_chans=in_channels,
        out_indices=out_indices,
        **model_kwargs,
    )
    if encoder_weights is not None:
        load_encoder_weights(body, encoder_weights)
    return FeatureExtractorEncoder(body, in_channels)
