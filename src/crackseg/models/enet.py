"""ENet.

Paszke, Chaurasia, Kim, Culurciello, "ENet: A Deep Neural Network Architecture for Real-Time
Semantic Segmentation", arXiv 1606.02147 (2016) [ENet].

An initial block, then bottleneck modules (1x1 reduce, a main convolution that is regular,
dilated, asymmetric 5x1 + 1x5 or transposed, 1x1 expand; BatchNorm and PReLU between them;
spatial dropout) around a main branch that max-pools with indices on the way down and max-unpools
with them on the way up. The encoder is large and the decoder small [ENet §4, "Decoder size"].
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._registry import register_model
from .contract import PadCropModel

# [ENet Table 1]: (kind, output channels, dilation or asymmetric kernel, spatial dropout).
# Dropout is 0.01 before bottleneck2.0 and 0.1 after it [ENet §4, "Regularization"].
ENET_ENCODER = (
    ("down", 64, 1, 0.01),  # bottleneck1.0, stride 4
    *[("regular", 64, 1, 0.01)] * 4,  # bottleneck1.1-1.4
    ("down", 128, 1, 0.1),  # bottleneck2.0, stride 8
    *[  # stage 2 (2.1-2.8), then stage 3 (3.1-3.8) repeats it without the downsampling
        ("regular", 128, 1, 0.1),
        ("dilated", 128, 2, 0.1),
        ("asymmetric", 128, 5, 0.1),
        ("dilated", 128, 4, 0.1),
        ("regular", 128, 1, 0.1),
        ("dilated", 128, 8, 0.1),
        ("asymmetric", 128, 5, 0.1),
        ("dilated", 128, 16, 0.1),
    ]
    * 2,
)
ENET_DECODER = (
    ("up", 64, 1, 0.1),  # bottleneck4.0, stride 4
    *[("regular", 64, 1, 0.1)] * 2,  # bottleneck4.1-4.2
    ("up", 16, 1, 0.1),  # bottleneck5.0, stride 2
    ("regular", 16, 1, 0.1),  # bottleneck5.1
)


def _conv_bn_prelu(conv: nn.Conv2d | nn.ConvTranspose2d) -> list[nn.Module]:
    return [conv, nn.BatchNorm2d(conv.out_channels), nn.PReLU(conv.out_channels)]


class InitialBlock(nn.Module):
    """[ENet Fig. 2a]: a 3x3 stride-2 convolution with ``out - in`` filters beside a 2x2 max-pool
    of the input, concatenated, then BatchNorm and PReLU (16 channels at stride 2)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels - in_channels, 3, 2, 1, bias=False)
        self.pool = nn.MaxPool2d(2, 2)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(torch.cat([self.conv(x), self.pool(x)], dim=1)))


class Bottleneck(nn.Module):
    """Regular, dilated or asymmetric bottleneck [ENet Fig. 2b, §3].

    ``x + dropout(BN(1x1(main(1x1(x)))))`` followed by PReLU, with ``channels / 4`` inside.
    ``main`` is a 3x3 convolution (``"regular"``), a 3x3 convolution with ``dilation``
    (``"dilated"``), or a ``k x 1`` then ``1 x k`` pair (``"asymmetric"``, ``k = param``)
    [ENet §4, "Factorizing filters"].
    """

    def __init__(self, channels: int, kind: str, param: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        c = channels // 4
        if kind == "asymmetric":
            k = param
            main = nn.Sequential(
                nn.Conv2d(c, c, (k, 1), padding=(k // 2, 0), bias=False),
                nn.Conv2d(c, c, (1, k), padding=(0, k // 2), bias=False),
            )
        elif kind in ("regular", "dilated"):
            main = nn.Conv2d(c, c, 3, padding=param, dilation=param, bias=False)
        else:
            raise ValueError(f"unknown bottleneck kind {kind!r}")
        self.branch = nn.Sequential(
            *_conv_bn_prelu(nn.Conv2d(channels, c, 1, bias=False)),
            main,
            nn.BatchNorm2d(c),
            nn.PReLU(c),
            nn.Conv2d(c, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.Dropout2d(dropout),
        )
        self.act = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.branch(x))


class DownsamplingBottleneck(nn.Module):
    """[ENet Fig. 2b, §3]: the main branch max-pools (keeping the indices for the decoder) and is
    zero-padded to ``out`` channels; the branch's first projection is a 2x2 stride-2 convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.1) -> None:
        super().__init__()
        c = out_channels // 4
        self.extra = out_channels - in_channels
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.branch = nn.Sequential(
            *_conv_bn_prelu(nn.Conv2d(in_channels, c, 2, stride=2, bias=False)),
            *_conv_bn_prelu(nn.Conv2d(c, c, 3, padding=1, bias=False)),
            nn.Conv2d(c, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.Dropout2d(dropout),
        )
        self.act = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        main, indices = self.pool(x)
        main = F.pad(main, (0, 0, 0, 0, 0, self.extra))
        return self.act(main + self.branch(x)), indices


class UpsamplingBottleneck(nn.Module):
    """[ENet §3]: the main branch is a 1x1 convolution + BN to ``out`` channels, max-unpooled with
    the indices of the matching downsampling; the branch's main convolution is a 3x3 transposed
    convolution of stride 2."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.1) -> None:
        super().__init__()
        c = out_channels // 4
        self.main = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
        )
        self.branch = nn.Sequential(
            *_conv_bn_prelu(nn.Conv2d(in_channels, c, 1, bias=False)),
            *_conv_bn_prelu(nn.ConvTranspose2d(c, c, 3, 2, 1, output_padding=1, bias=False)),
            nn.Conv2d(c, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.Dropout2d(dropout),
        )
        self.act = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return self.act(max_unpool2x(self.main(x), indices) + self.branch(x))


def max_unpool2x(x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """``F.max_unpool2d(x, indices, 2)`` as a scatter into a zero map twice the size of ``x``.

    The input is padded to a multiple of 8, so each unpooled map is exactly twice the size of
    ``x``. ``F.max_unpool2d`` itself cannot be traced in torch 2.14 (its output-size check
    receives traced sizes as tensors and raises), which would break TorchScript export.
    """
    n, c, h, w = x.shape
    out = x.new_zeros(n, c, 4 * h * w).scatter(2, indices.flatten(2), x.flatten(2))
    return out.view(n, c, 2 * h, 2 * w)


class ENet(PadCropModel):
    """ENet [ENet Table 1]: returns logits ``(N, num_classes, H, W)`` for any ``H x W``.

    The input is padded (replicate, bottom / right) to a multiple of 8, the network's total
    stride, and the logits cropped back. No convolution has a bias [ENet §4: BatchNorm follows
    every one] except the final 2x2 transposed convolution that produces the logits.

    Args:
        num_classes: output channels (1 for crack logits; 19 / 20 for Cityscapes).
        in_channels: input image channels.
    """

    size_divisor = 8

    def __init__(self, num_classes: int = 1, in_channels: int = 3) -> None:
        super().__init__()
        self.initial = InitialBlock(in_channels, 16)
        self.encoder = nn.ModuleList(self._stage(ENET_ENCODER, 16))
        self.decoder = nn.ModuleList(self._stage(ENET_DECODER, 128))
        self.classifier = nn.ConvTranspose2d(16, num_classes, 2, stride=2)

    @staticmethod
    def _stage(table, c: int) -> list[nn.Module]:
        blocks = []
        for kind, out, param, p in table:
            if kind == "down":
                blocks.append(DownsamplingBottleneck(c, out, p))
            elif kind == "up":
                blocks.append(UpsamplingBottleneck(c, out, p))
            else:
                blocks.append(Bottleneck(out, kind, param, p))
            c = out
        return blocks

    def forward_padded(self, x: torch.Tensor, return_aux: bool = False) -> torch.Tensor:
        y = self.initial(x)
        indices = []
        for block in self.encoder:
            if isinstance(block, DownsamplingBottleneck):
                y, idx = block(y)
                indices.append(idx)
            else:
                y = block(y)
        for block in self.decoder:
            y = block(y, indices.pop()) if isinstance(block, UpsamplingBottleneck) else block(y)
        return self.classifier(y)


@register_model("enet")
def enet(*, num_classes: int = 1, in_channels: int = 3) -> ENet:
    """ENet [ENet]: initial block + 5 stages of bottlenecks, max-unpooling decoder, 0.36 M."""
    return ENet(num_classes, in_channels)
