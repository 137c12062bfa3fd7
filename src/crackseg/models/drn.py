"""Dilated residual networks: DRN-C-26 and DRN-D-22.

Yu, Koltun, Funkhouser, "Dilated Residual Networks", CVPR 2017 [DRN].

A ResNet whose last two groups keep stride 8 and dilate instead (2 and 4) [DRN §2], followed by
the degridding of [DRN §4]: no max-pooling after the first convolution (the first groups are
residual blocks, DRN-C, or plain convolutions, DRN-D), and two extra levels with decreasing
dilation (2, then 1) and no residual connection, which smooth away the gridding artifacts that
dilation leaves. For segmentation the classifier is a 1x1 convolution on the stride-8 features,
upsampled to the input size [DRN §5].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._registry import register_model
from .blocks import ConvBNReLU
from .contract import PadCropModel

# [DRN §4]: (channels, blocks or convs, stride, dilation, residual) per level.
# Levels 1-2 are residual blocks in DRN-C and single convolutions in DRN-D; 7-8 are the
# degridding levels, without residual connections.
#              (channels, n, stride, dilation, residual)
DRN_LEVELS = (
    (16, 1, 1, 1, True),  # level 1, stride 1 (after a 7x7 stride-1 convolution)
    (32, 1, 2, 1, True),  # level 2, stride 2
    (64, 2, 2, 1, True),  # level 3, stride 4
    (128, 2, 2, 1, True),  # level 4, stride 8
    (256, 2, 1, 2, True),  # level 5, stride 8, dilation 2
    (512, 2, 1, 4, True),  # level 6, stride 8, dilation 4
    (512, 1, 1, 2, False),  # level 7, degridding
    (512, 1, 1, 1, False),  # level 8, degridding
)


class DilatedBasicBlock(nn.Module):
    """ResNet basic block with dilation and an optional residual connection [DRN §2, §4].

    Both 3x3 convolutions take ``dilation``; a 1x1 convolution + BN projects the shortcut when
    the stride or the width changes. Without ``residual`` the block is two plain conv-BN-ReLU.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        dilation: int = 1,
        residual: bool = True,
    ) -> None:
        super().__init__()
        d = dilation
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, d, d, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, d, d, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.residual = residual
        self.shortcut = None
        if residual and (stride != 1 or in_channels != out_channels):
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        if self.residual:
            y = y + (x if self.shortcut is None else self.shortcut(x))
        return self.relu(y)


class DRN(PadCropModel):
    """DRN-C / DRN-D for segmentation: logits ``(N, num_classes, H, W)`` for any ``H x W``.

    The input is padded (replicate, bottom / right) to a multiple of 8, the output stride, and
    the logits are cropped back. :meth:`forward_features` returns the stride-8 feature map.

    Args:
        arch: ``"C"`` (residual levels 1-2 and 7-8 without residual) or ``"D"`` (single
            conv-BN-ReLU at levels 1-2 and 7-8) [DRN §4].
        levels: table of (channels, blocks, stride, dilation, residual), as ``DRN_LEVELS``.
        num_classes: output channels.
        in_channels: input image channels.
    """

    size_divisor = 8

    def __init__(
        self,
        arch: str = "C",
        levels: Sequence[tuple[int, int, int, int, bool]] = DRN_LEVELS,
        num_classes: int = 1,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if arch not in ("C", "D"):
            raise ValueError(f"arch must be 'C' or 'D', got {arch!r}")
        c = levels[0][0]
        self.stem = ConvBNReLU(in_channels, c, 7)
        stages = []
        for i, (out, n, stride, dilation, residual) in enumerate(levels):
            plain = arch == "D" and (i < 2 or not residual)
            blocks = []
            for j in range(n):
                s = stride if j == 0 else 1
                if plain:
                    blocks.append(ConvBNReLU(c, out, 3, s, dilation))
                else:
                    blocks.append(DilatedBasicBlock(c, out, s, dilation, residual))
                c = out
            stages.append(nn.Sequential(*blocks))
        self.levels = nn.ModuleList(stages)
        self.out_channels = c
        self.classifier = nn.Conv2d(c, num_classes, 1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Features at stride 8 (``(N, 512, H/8, W/8)`` for an ``H x W`` divisible by 8)."""
        x = self.stem(x)
        for level in self.levels:
            x = level(x)
        return x

    def forward_padded(self, x: torch.Tensor, return_aux: bool = False) -> torch.Tensor:
        y = self.classifier(self.forward_features(x))
        # [DRN §5] upsamples with a fixed bilinear transposed convolution; this is the same map.
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


@register_model("drn_c_26")
def drn_c_26(*, num_classes: int = 1, in_channels: int = 3) -> DRN:
    """DRN-C-26 [DRN §4]: residual levels 1-8 (1/1/2/2/2/2/1/1 blocks), degridded, stride 8."""
    return DRN("C", DRN_LEVELS, num_classes, in_channels)


@register_model("drn_d_22")
def drn_d_22(*, num_classes: int = 1, in_channels: int = 3) -> DRN:
    """DRN-D-22 [DRN §4]: plain conv levels 1-2 and 7-8 around residual levels 3-6, stride 8."""
    return DRN("D", DRN_LEVELS, num_classes, in_channels)
