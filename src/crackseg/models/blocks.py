"""Building blocks shared by CarNet and its ablations.

Paper references are to Li et al., "Rethinking Lightweight CNNs for Efficient and High-quality
Pavement Crack Detection" (arXiv 2109.05707), abbreviated [CarNet].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

NormLayer = Callable[[int], nn.Module]


class ConvBNReLU(nn.Sequential):
    """``k x k`` convolution (no bias), BatchNorm, ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(
                in_channels, out_channels, kernel_size, stride, padding, dilation, bias=False
            ),
            norm_layer(out_channels),
            nn.ReLU(inplace=True),
        )


class DownsamplingBlock(nn.Module):
    """Downsampling block (DB) [CarNet §III-B, from ENet's initial block].

    A 3x3 stride-2 convolution with ``out - in`` filters runs in parallel with a 2x2 stride-2
    max-pool that keeps the ``in`` input channels; the two are concatenated to ``out`` channels,
    then BatchNorm and ReLU. When ``out <= in`` the pooling branch cannot fit and a strided
    convolution alone is used. Input height and width must be even (CarNet pads to 16).
    """

    def __init__(
        self, in_channels: int, out_channels: int, norm_layer: NormLayer = nn.BatchNorm2d
    ) -> None:
        super().__init__()
        self.use_pool = out_channels > in_channels
        conv_out = out_channels - in_channels if self.use_pool else out_channels
        self.conv = nn.Conv2d(in_channels, conv_out, 3, stride=2, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2, stride=2) if self.use_pool else None
        self.bn = norm_layer(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.pool is not None:
            y = torch.cat([y, self.pool(x)], dim=1)
        return self.relu(self.bn(y))


class BasicBlock(nn.Module):
    """Residual block (RB): ResNet34's basic block, two 3x3 conv-BN with an identity shortcut.

    [CarNet §III-B]; He et al., "Deep Residual Learning", CVPR 2016, Fig. 5 (left).
    """

    def __init__(self, channels: int, norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = norm_layer(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = norm_layer(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + x)


class DecomposedConvBlock(nn.Module):
    """Decomposed convolution block (DCB) [CarNet §III-C].

    Cascaded factorised convolutions, 3x1 then 1x3, twice, with BatchNorm after each pair: ERFNet's
    non-bottleneck-1D (Romera et al., T-ITS 2018) without its residual. Cracks are mostly thin and
    linear, and a 3x1 + 1x3 pair costs 6/9 of a 3x3.

    Args:
        in_channels: input channels.
        out_channels: output channels (default: ``in_channels``).
        final_activation: end with BN + ReLU. Set False when the block produces logits
            (the 1-channel refinement at the end of CarNet), which must stay signed.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        final_activation: bool = True,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        out_channels = out_channels or in_channels
        self.block = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, (3, 1), padding=(1, 0)),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, in_channels, (1, 3), padding=(0, 1), bias=False),
            norm_layer(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, in_channels, (3, 1), padding=(1, 0)),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, (1, 3), padding=(0, 1), bias=not final_activation),
        )
        self.out = (
            nn.Sequential(norm_layer(out_channels), nn.ReLU(inplace=True))
            if final_activation
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.block(x))


def learned_upsample(channels: int, factor: int) -> nn.ConvTranspose2d:
    """Learned ``factor``x upsampling: transposed conv, kernel ``2*factor``, stride ``factor``.

    The CarNet authors use 3x3 transposed convolutions; at stride 4 a 3x3 kernel leaves one row and
    column in four fed only by the bias. A kernel of twice the stride (padding
    ``factor/2``) covers every output pixel from two input pixels per axis and gives exactly
    ``factor`` times the input size. It is initialised to bilinear interpolation per channel.
    """
    if factor < 2 or factor % 2:
        raise ValueError(f"upsampling factor must be even and >= 2, got {factor}")
    up = nn.ConvTranspose2d(
        channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=True
    )
    with torch.no_grad():
        up.weight.zero_()
        k = 2 * factor
        center = factor - 0.5
        og = torch.arange(k, dtype=torch.float32)
        filt1d = 1 - (og - center).abs() / factor
        filt = filt1d[:, None] * filt1d[None, :]
        for c in range(channels):
            up.weight[c, c] = filt
        up.bias.zero_()
    return up


class UFPB(nn.Module):
    """Upsampling feature pyramid block [CarNet §III-C].

    1x1 convolutions compress each tapped encoder stage to ``channels`` (32 in the paper); every
    coarser map is upsampled with a learned transposed convolution to the finest tapped resolution
    (2x for stage 3, 4x for stage 4 in CarNet) and the maps are fused by **addition** (cheaper
    than concatenation).

    Args:
        in_channels: channels of the tapped stages, finest first.
        strides: their output strides, finest first (each a power-of-two multiple of the first).
        channels: common width after the 1x1 compression.
    """

    def __init__(
        self, in_channels: Sequence[int], strides: Sequence[int], channels: int = 32
    ) -> None:
        super().__init__()
        if len(in_channels) != len(strides):
            raise ValueError("in_channels and strides must have the same length")
        self.out_stride = strides[0]
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.up = nn.ModuleList(
            nn.Identity() if s == strides[0] else learned_upsample(channels, s // strides[0])
            for s in strides
        )

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        out = None
        for f, lat, up in zip(features, self.lateral, self.up, strict=True):
            y = up(lat(f))
            out = y if out is None else out + y
        return out


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (Chen et al., DeepLabV3+, ECCV 2018, §3.1).

    A 1x1 branch, three 3x3 atrous branches and an image-pooling branch, concatenated and projected
    by a 1x1 conv. The pooling branch has no BatchNorm so batch-1 training works.
    """

    def __init__(
        self, in_channels: int, channels: int = 128, rates: Sequence[int] = (6, 12, 18)
    ) -> None:
        super().__init__()
        branches = [ConvBNReLU(in_channels, channels, 1)]
        branches += [ConvBNReLU(in_channels, channels, 3, dilation=r) for r in rates]
        self.branches = nn.ModuleList(branches)
        self.pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, channels, 1), nn.ReLU(inplace=True)
        )
        self.project = ConvBNReLU(channels * (len(rates) + 2), channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches]
        outs.append(self.pool(x).expand(-1, -1, x.shape[2], x.shape[3]))
        return self.project(torch.cat(outs, dim=1))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad ``x`` at the bottom/right (replicate) so H and W are multiples of ``multiple``.

    While tracing (``torch.jit.trace``) the pad is always recorded, even when it is zero at the
    tracing size, so the traced model pads correctly at every other size.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw or torch.jit.is_tracing():
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)
