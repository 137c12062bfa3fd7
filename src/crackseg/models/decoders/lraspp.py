"""Lite R-ASPP head: Howard et al., "Searching for MobileNetV3", ICCV 2019, §6.2, Fig. 10."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._select import deepest_index, stride_index


class LRASPPDecoder(nn.Module):
    """Lite Reduced Atrous Spatial Pyramid Pooling head [MobileNetV3 §6.2, Fig. 10].

    On the deepest map: a 1x1 conv-BN-ReLU branch gated (multiplied) by a squeeze-and-excitation
    like branch (pooling, 1x1 conv, sigmoid), upsampled to the stride-8 map and classified by a
    1x1 conv; the stride-8 map gets its own 1x1 classifier and the two logits are added, then
    upsampled bilinearly to the input size. The head is torchvision's ``LRASPPHead``; like
    torchvision it pools globally where the paper pools 49x49 with stride (16, 20), a window
    chosen for 1024x2048 Cityscapes crops, which has no meaning at an arbitrary input size.

    Args:
        encoder_channels, encoder_strides: the encoder's maps, finest first.
        inter_channels: width of the gated branch (128 in the paper).
        low_stride: stride of the low-level map (8 in the paper).
    """

    has_aux = False

    def __init__(
        self,
        encoder_channels: Sequence[int],
        encoder_strides: Sequence[int],
        inter_channels: int = 128,
        low_stride: int = 8,
    ) -> None:
        super().__init__()
        from torchvision.models.segmentation.lraspp import LRASPPHead  # lazy: ~170 MB of RSS

        self.low_index = stride_index(encoder_strides, low_stride)
        self.high_index = deepest_index(encoder_strides)
        self.head = LRASPPHead(
            encoder_channels[self.low_index],
            encoder_channels[self.high_index],
            1,
            inter_channels,
        )

    def forward(self, features: Sequence[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        y = self.head({"low": features[self.low_index], "high": features[self.high_index]})
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)
