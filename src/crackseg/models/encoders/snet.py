"""ThunderNet's backbone (SNet) and neck (context enhancement module) as encoder options.

Qin, Li, Zhang, Yu, Zhang, Zhou, "ThunderNet: Towards Real-time Generic Object Detection on
Mobile Devices", ICCV 2019 [ThunderNet]. ThunderNet is a detector; its backbone and its
neck are reusable for segmentation: its backbone is an encoder of the zoo.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .adapter import FeatureExtractorEncoder
from .lightweight import extractor_encoder


@functools.cache
def snet_unit() -> type[nn.Module]:
    """``SNetUnit``: torchvision's ShuffleNetV2 unit with 5x5 depthwise convolutions [ThunderNet
    §3.1], a larger receptive field for little cost, since depthwise convolutions are cheap.
    (Made on first use: importing torchvision costs ~170 MB of RSS, which ``crackseg predict``
    with CarNet does not need.)"""
    from torchvision.models.shufflenetv2 import InvertedResidual

    class SNetUnit(InvertedResidual):
        @staticmethod
        def depthwise_conv(
            i: int, o: int, kernel_size: int, stride: int = 1, padding: int = 0, bias: bool = False
        ) -> nn.Conv2d:
            return nn.Conv2d(i, o, 5, stride, 2, bias=bias, groups=i)

    return SNetUnit


#: SNet stage widths [ThunderNet §3.1, Table 1]: Conv1, Stage2, Stage3, Stage4, Conv5
#: (``None``: no Conv5; SNet146 and SNet535 drop it and widen the early stages instead).
#: Units per stage are ShuffleNetV2's 4 / 8 / 4.
SNET_WIDTHS: dict[int, tuple[int, int, int, int, int | None]] = {
    49: (24, 60, 120, 240, 512),
    146: (24, 132, 264, 528, None),
    535: (48, 248, 496, 992, None),
}


def snet(variant: int, num_classes: int = 1000) -> nn.Module:
    """SNet49 / SNet146 / SNet535 as a torchvision ``ShuffleNetV2`` classifier [ThunderNet §3.1]."""
    if variant not in SNET_WIDTHS:
        raise KeyError(f"SNet variant must be one of {sorted(SNET_WIDTHS)}, got {variant!r}")
    c1, c2, c3, c4, c5 = SNET_WIDTHS[variant]
    from torchvision.models.shufflenetv2 import (
        ShuffleNetV2,  # lazy: importing torchvision costs ~170 MB of RSS
    )

    net = ShuffleNetV2([4, 8, 4], [c1, c2, c3, c4, c5 or c4], num_classes, snet_unit())
    if c5 is None:
        net.conv5 = nn.Identity()
    return net


def snet_encoder(
    variant: int,
    *,
    in_channels: int = 3,
    encoder_weights: str | Path | None = None,
) -> FeatureExtractorEncoder:
    """SNet tapped like ShuffleNetV2: Conv1 (stride 2), max-pool (4), Stage2 (8), Stage3 (16) and
    Conv5 or Stage4 (32).

    Args:
        variant: 49, 146 or 535 (ImageNet MFLOPs at 224x224, the paper's naming).
        in_channels: input channels.
        encoder_weights: a local state dict of :func:`snet` ``(variant)``.
    """
    last = "conv5" if SNET_WIDTHS.get(variant, (0,) * 5)[4] else "stage4"
    taps = ("conv1", "maxpool", "stage2", "stage3", last)
    return extractor_encoder(snet(variant), taps, in_channels, encoder_weights)


class ContextEnhancement(nn.Module):
    """Context enhancement module (CEM) [ThunderNet §3.2, Fig. 3] as a neck on any encoder.

    The stride-16 map C4, the deepest map C5 (stride 32) and C5's global average Cglb are each
    projected to ``channels`` by a 1x1 convolution; C5 is upsampled 2x (nearest, as in FPN; the
    paper does not say which), Cglb broadcast, and the three summed: local and global context in
    one stride-16 map at the cost of three 1x1 convolutions. The wrapped encoder keeps its maps
    finer than stride 16; the CEM map replaces the rest and is its deepest output, so a decoder
    taking "the deepest map" reads it.

    Args:
        encoder: an encoder (contract of :mod:`crackseg.models.encoders`) with maps at strides
            16 and 32.
        channels: the CEM width; 245 in the paper (5 x 7 x 7, for its PSRoI align).
    """

    def __init__(self, encoder: nn.Module, channels: int = 245) -> None:
        super().__init__()
        strides = list(encoder.out_strides)
        if 16 not in strides or strides[-1] != 32:
            raise ValueError(f"CEM needs maps at strides 16 and 32 (deepest), got {strides}")
        self.encoder = encoder
        self.c4_index = len(strides) - 1 - strides[::-1].index(16)
        self.keep = strides.index(16)  # maps finer than stride 16 pass through
        c4, c5 = encoder.out_channels[self.c4_index], encoder.out_channels[-1]
        self.lateral4 = nn.Conv2d(c4, channels, 1)
        self.lateral5 = nn.Conv2d(c5, channels, 1)
        self.glb = nn.Conv2d(c5, channels, 1)
        self.out_channels = list(encoder.out_channels[: self.keep]) + [channels]
        self.out_strides = strides[: self.keep] + [16]
        self.size_divisor = getattr(encoder, "size_divisor", 32)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.encoder(x)
        c4, c5 = feats[self.c4_index], feats[-1]
        c5_up = F.interpolate(self.lateral5(c5), size=c4.shape[-2:], mode="nearest")
        glb = self.glb(F.adaptive_avg_pool2d(c5, 1))
        return feats[: self.keep] + [self.lateral4(c4) + c5_up + glb]
