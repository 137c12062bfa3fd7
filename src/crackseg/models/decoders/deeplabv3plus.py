"""DeepLabV3+-style decoder: Chen, Zhu, Papandreou, Schroff, Adam, "Encoder-Decoder with Atrous
Separable Convolution for Semantic Image Segmentation", ECCV 2018 [DeepLabV3+]."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..blocks import ASPP, ConvBNReLU
from ._select import deepest_index, stride_index


class DeepLabV3PlusDecoder(nn.Module):
    """DeepLabV3+-style decoder [DeepLabV3+ §3.2, Fig. 2].

    ASPP on the deepest map, bilinear upsampling to the stride-4 map, concatenation with it
    (reduced to 48 channels), two 3x3 conv-BN-ReLU, a 1x1 classifier and a second bilinear
    upsampling. Widths are reduced (128 instead of 256) to stay in CarNet's budget.
    """

    has_aux = False

    def __init__(
        self,
        encoder_channels: Sequence[int],
        encoder_strides: Sequence[int],
        channels: int = 128,
        low_level_channels: int = 48,
        rates: Sequence[int] = (6, 12, 18),
    ) -> None:
        super().__init__()
        self.low_index = stride_index(encoder_strides, 4)
        self.high_index = deepest_index(encoder_strides)
        self.aspp = ASPP(encoder_channels[self.high_index], channels, rates)
        self.low = ConvBNReLU(encoder_channels[self.low_index], low_level_channels, 1)
        self.fuse = nn.Sequential(
            ConvBNReLU(channels + low_level_channels, channels, 3),
            ConvBNReLU(channels, channels, 3),
        )
        self.classifier = nn.Conv2d(channels, 1, 1)

    def forward(self, features: Sequence[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        low = self.low(features[self.low_index])
        high = self.aspp(features[self.high_index])
        y = F.interpolate(high, size=low.shape[-2:], mode="bilinear")
        y = self.classifier(self.fuse(torch.cat([y, low], dim=1)))
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)
