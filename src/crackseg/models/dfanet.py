"""DFANet (backbone A).

Li, Xiong, Fan, Sun, "DFANet: Deep Feature Aggregation for Real-Time Semantic Segmentation",
CVPR 2019 [DFANet].

Three lightweight Xception backbones in cascade [DFANet §3.2, Fig. 3]. *Sub-network
aggregation*: the output of a backbone (its fc-attention features) is upsampled 4x and becomes
the input of the next one. *Sub-stage aggregation*: each stage of a later backbone also receives
the output of the same stage of the previous backbone (concatenated with its usual input), so a
stage sees coarse and fine features at once. A small decoder [§3.3] sums the ``enc2`` outputs of
the three backbones (detail) and their top features (context) and upsamples to the input size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._registry import register_model
from .blocks import ConvBNReLU
from .contract import PadCropModel

# [DFANet Table 1], backbone A: (output channels, Xception blocks); each stage halves the size.
#                 (channels, blocks)
XCEPTION_A = (
    (48, 4),  # enc2, stride 4 in backbone 1
    (96, 6),  # enc3, stride 8
    (192, 4),  # enc4, stride 16
)
XCEPTION_B = ((32, 4), (64, 6), (128, 4))  # backbone B, for DFANet B


def _resize(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class SeparableConv(nn.Sequential):
    """3x3 depthwise + 1x1 pointwise convolution, BatchNorm, optional ReLU (no biases)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, relu: bool = True):
        super().__init__(
            nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            *([nn.ReLU(inplace=True)] if relu else []),
        )


class XceptionBlock(nn.Module):
    """Xception block [DFANet Table 1; Chollet, CVPR 2017, Fig. 5]: three separable
    convolutions (widths ``out/4, out/4, out``, the last one strided) plus a shortcut (a 1x1
    conv-BN when the shape changes), then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        mid = out_channels // 4
        self.body = nn.Sequential(
            SeparableConv(in_channels, mid),
            SeparableConv(mid, mid),
            SeparableConv(mid, out_channels, stride, relu=False),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class FCAttention(nn.Module):
    """fc attention [DFANet §3.3]: global pooling, the fully connected layer of the ImageNet
    classifier (``hidden`` = 1000 outputs), a 1x1 convolution back to the feature width, and a
    channel-wise product with the features. A sigmoid bounds the attention vector (as in
    squeeze-and-excitation); the paper does not say how the vector is scaled."""

    def __init__(self, channels: int, hidden: int = 1000) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, hidden)
        self.conv = nn.Conv2d(hidden, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
        return x * torch.sigmoid(self.conv(v[:, :, None, None]))


class XceptionBackbone(nn.Module):
    """One lightweight Xception backbone: enc2, enc3, enc4 (first block strided), fc attention.

    ``in_channels[i]`` is the input width of stage ``i``: for the first backbone, the previous
    stage's width; for the later ones, that plus the width of the previous backbone's stage (or
    its fc-attention output, for enc2). Returns the outputs of the three stages and of the fc
    attention.
    """

    def __init__(
        self, in_channels: Sequence[int], stages: Sequence[tuple[int, int]], hidden: int = 1000
    ) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(
                XceptionBlock(c, out, 2), *[XceptionBlock(out, out) for _ in range(n - 1)]
            )
            for c, (out, n) in zip(in_channels, stages, strict=True)
        )
        self.attention = FCAttention(stages[-1][0], hidden)

    def forward(
        self, x: torch.Tensor, previous: Sequence[torch.Tensor] | None = None
    ) -> list[torch.Tensor]:
        outs = []
        for i, stage in enumerate(self.stages):
            if previous is not None and i > 0:  # sub-stage aggregation [DFANet §3.2]
                x = torch.cat([x, previous[i]], dim=1)
            x = stage(x)
            outs.append(x)
        outs.append(self.attention(x))
        return outs


class DFANet(PadCropModel):
    """DFANet: logits ``(N, num_classes, H, W)`` for any ``H x W``.

    A 3x3 stride-2 conv-BN-ReLU (8 channels) feeds the first backbone; each backbone's top is
    twice as coarse as the previous one's (stride 64 for the third), so the input is padded
    (replicate, bottom / right) to a multiple of that stride (``size_divisor``) and the logits
    are cropped back.

    Args:
        num_classes: output channels.
        in_channels: input image channels.
        stages: (channels, blocks) of enc2, enc3, enc4: ``XCEPTION_A`` or ``XCEPTION_B``.
        backbones: number of cascaded backbones (3 in the paper).
        decoder_channels: width of the decoder (the paper does not give it).
    """

    def __init__(
        self,
        num_classes: int = 1,
        in_channels: int = 3,
        stages: Sequence[tuple[int, int]] = XCEPTION_A,
        backbones: int = 3,
        decoder_channels: int = 32,
    ) -> None:
        super().__init__()
        widths = [c for c, _ in stages]
        self.size_divisor = 2 ** (len(stages) + backbones)
        self.conv1 = ConvBNReLU(in_channels, 8, 3, 2)
        first = [8, *widths[:-1]]
        later = [widths[-1] + widths[0]] + [
            a + b for a, b in zip(widths[:-1], widths[1:], strict=True)
        ]
        self.backbones = nn.ModuleList(
            XceptionBackbone(first if i == 0 else later, stages) for i in range(backbones)
        )
        c = decoder_channels
        self.detail = nn.ModuleList(ConvBNReLU(widths[0], c, 1) for _ in range(backbones))
        self.context = nn.ModuleList(ConvBNReLU(widths[-1], c, 1) for _ in range(backbones))
        self.fuse = ConvBNReLU(c, c, 1)
        self.classifier = nn.Conv2d(c, num_classes, 1)

    def forward_padded(self, x: torch.Tensor, return_aux: bool = False) -> torch.Tensor:
        y, outs = self.conv1(x), None
        enc2, tops = [], []
        for backbone in self.backbones:
            if outs is not None:  # sub-network aggregation: previous top, 4x, beside its enc2
                y = torch.cat([_resize(outs[-1], outs[0]), outs[0]], dim=1)
            outs = backbone(y, outs)
            enc2.append(outs[0])
            tops.append(outs[-1])
        base = enc2[0]
        detail = sum(_resize(conv(f), base) for conv, f in zip(self.detail, enc2, strict=True))
        context = sum(_resize(conv(f), base) for conv, f in zip(self.context, tops, strict=True))
        y = self.classifier(self.fuse(detail) + context)
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


@register_model("dfanet")
def dfanet(*, num_classes: int = 1, in_channels: int = 3) -> DFANet:
    """DFANet A [DFANet]: 3 cascaded Xception-A backbones, fc attention, light decoder, 1.8 M."""
    return DFANet(num_classes, in_channels, XCEPTION_A)
