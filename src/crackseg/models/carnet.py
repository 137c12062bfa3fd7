"""CarNet and its ablations.

Li, Wang, Tang, Ma, Zhang, Chen, "Rethinking Lightweight Convolutional Neural Networks for
Efficient and High-quality Pavement Crack Detection", IEEE T-ITS / arXiv 2109.05707 [CarNet].

All models here are an encoder (a list of stage features, finest first, with their channels and
output strides) plus a decoder that turns those features into 1-channel crack logits at the
(padded) input size. :class:`CrackSegmenter` pads the input to a multiple of the encoder's total
stride and crops back, so any ``H x W`` works and the output is ``(N, 1, H, W)`` logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from ._registry import register_model
from .blocks import (
    ASPP,
    UFPB,
    BasicBlock,
    ConvBNReLU,
    DecomposedConvBlock,
    DownsamplingBlock,
    learned_upsample,
    pad_to_multiple,
)

# Stage table of CarNet34 [CarNet §III-B, Table I; widths from the authors' public code]:
# the olive shape is the block column: few convs in stage 1, most in stage 2, falling after.
#               (width, residual blocks)
CARNET34_STAGES = (
    (16, 0),  # stage 1: DB only, stride 2 (early downsampling; not used by the decoder)
    (64, 7),  # stage 2: DB + 7 RB, stride 4
    (128, 6),  # stage 3: DB + 6 RB, stride 8
    (256, 2),  # stage 4: DB + 2 RB, stride 16
)


# ---------------------------------------------------------------------------------- encoders
class _StagedEncoder(nn.Module):
    """Encoder contract: ``stages`` run in order; ``forward`` returns every stage's output,
    finest first, with ``out_channels`` and ``out_strides`` describing them."""

    stages: nn.ModuleList
    out_channels: list[int]
    out_strides: list[int]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class OliveEncoder(_StagedEncoder):
    """CarNet's olive-type encoder [CarNet §III-B].

    Every stage starts with a downsampling block (DB) that halves the resolution, followed by
    ``blocks[i]`` residual blocks (RB). With the CarNet34 table (16/64/128/256 channels, 0/7/6/2
    blocks) it has 4 + 2 * 15 = 34 convolution layers, the depth of ResNet34.

    Args:
        widths: output channels of each stage.
        blocks: residual blocks per stage (the olive shape, e.g. ``(0, 7, 6, 2)``).
        in_channels: input image channels.
    """

    def __init__(
        self,
        widths: Sequence[int] = tuple(w for w, _ in CARNET34_STAGES),
        blocks: Sequence[int] = tuple(b for _, b in CARNET34_STAGES),
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if len(widths) != len(blocks):
            raise ValueError(f"widths {tuple(widths)} and blocks {tuple(blocks)} differ in length")
        stages, c = [], in_channels
        for w, n in zip(widths, blocks, strict=True):
            stages.append(
                nn.Sequential(DownsamplingBlock(c, w), *[BasicBlock(w) for _ in range(n)])
            )
            c = w
        self.stages = nn.ModuleList(stages)
        self.out_channels = list(widths)
        self.out_strides = [2 ** (i + 1) for i in range(len(widths))]


class ResNetEncoder(_StagedEncoder):
    """ResNet34 layout (3/4/6/3 basic blocks after the 7x7 stem) for the olive-vs-ResNet ablation.

    Built from torchvision's ``resnet34`` (no pretrained weights: crack models train from
    scratch, and nothing may be downloaded at run time). Stages, finest first: the stem (7x7
    stride-2 conv, stride 2), max-pool + layer1 (stride 4), layer2 (8), layer3 (16), layer4 (32).
    Like CarNet's stage 1, the stem's output is not used by the decoder.
    """

    def __init__(self, in_channels: int = 3, layers: Sequence[int] = (3, 4, 6, 3)) -> None:
        super().__init__()
        net = torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, list(layers))
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.stages = nn.ModuleList(
            [
                nn.Sequential(net.conv1, net.bn1, net.relu),
                nn.Sequential(net.maxpool, net.layer1),
                net.layer2,
                net.layer3,
                net.layer4,
            ]
        )
        self.out_channels = [64, 64, 128, 256, 512]
        self.out_strides = [2, 4, 8, 16, 32]


# ---------------------------------------------------------------------------------- decoders
class UFPBDecoder(nn.Module):
    """CarNet's decoder [CarNet §III-C, Fig. 4].

    UFPB over every stage but the first (fused at the finest of them, stride 4 for CarNet), a DCB,
    a 1x1 conv to 1 channel, upsampling to the input size, and a DCB refining the 1-channel map.

    Args:
        encoder_channels, encoder_strides: the encoder's stages, finest first.
        channels: UFPB width (32 in the paper).
        upsample: final upsampling, ``"bilinear"`` (default) or ``"deconv"`` (learned, kernel 2x
            the stride). The authors' 3x3 stride-4 deconvolution leaves bias-only rows (SPEC §2);
            on 1 channel, bilinear is the smooth, parameter-free choice.
        refine: apply the 1-channel DCB refinement after upsampling. It is added to the
            upsampled logits (``y + DCB(y)``): a 1-channel chain of ReLUs alone can clip every
            logit to one sign and stop its gradient; the residual keeps the map signed.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        encoder_strides: Sequence[int],
        channels: int = 32,
        upsample: str = "bilinear",
        refine: bool = True,
    ) -> None:
        super().__init__()
        if upsample not in ("bilinear", "deconv"):
            raise ValueError(f"upsample must be 'bilinear' or 'deconv', got {upsample!r}")
        self.ufpb = UFPB(encoder_channels[1:], encoder_strides[1:], channels)
        self.dcb = DecomposedConvBlock(channels)
        self.classifier = nn.Conv2d(channels, 1, 1)
        self.factor = encoder_strides[1]
        self.up = learned_upsample(1, self.factor) if upsample == "deconv" else None
        self.refine = DecomposedConvBlock(1, final_activation=False) if refine else None

    def forward(self, features: Sequence[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        y = self.classifier(self.dcb(self.ufpb(features[1:])))
        if self.up is not None:
            y = self.up(y)
        else:
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return y if self.refine is None else y + self.refine(y)


class HEDDecoder(nn.Module):
    """HED-style decoder (Xie & Tu, "Holistically-Nested Edge Detection", ICCV 2015, §2.3).

    A 1x1 side output from *every* stage, each upsampled straight to the input size with a learned
    transposed convolution (kernel twice the stride), fused by a 1x1 conv over the concatenated side
    maps. With deep supervision the side outputs are returned too, for a loss on each (their
    losses must be balanced against the fused one; see the training engine).
    """

    def __init__(self, encoder_channels: Sequence[int], encoder_strides: Sequence[int]) -> None:
        super().__init__()
        self.side = nn.ModuleList(nn.Conv2d(c, 1, 1) for c in encoder_channels)
        self.up = nn.ModuleList(learned_upsample(1, s) for s in encoder_strides)
        self.fuse = nn.Conv2d(len(encoder_channels), 1, 1)
        with torch.no_grad():  # start as the mean of the side outputs, as in HED
            self.fuse.weight.fill_(1.0 / len(encoder_channels))
            self.fuse.bias.zero_()

    def forward(
        self, features: Sequence[torch.Tensor], size: tuple[int, int], return_aux: bool = False
    ):
        sides = [up(side(f)) for f, side, up in zip(features, self.side, self.up, strict=True)]
        fused = self.fuse(torch.cat(sides, dim=1))
        return (fused, sides) if return_aux else fused


class DeepLabV3PlusDecoder(nn.Module):
    """DeepLabV3+-style decoder (Chen et al., ECCV 2018, §3.2, Fig. 2).

    ASPP on the deepest stage, 4x bilinear upsampling, concatenation with the stride-4 low-level
    features (reduced to 48 channels), two 3x3 conv-BN-ReLU, a 1x1 classifier and a second 4x
    upsampling. Widths are reduced (128 instead of 256) to stay in CarNet's budget.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        encoder_strides: Sequence[int],
        channels: int = 128,
        low_level_channels: int = 48,
        rates: Sequence[int] = (6, 12, 18),
    ) -> None:
        super().__init__()
        self.low_index = encoder_strides.index(4)
        self.aspp = ASPP(encoder_channels[-1], channels, rates)
        self.low = ConvBNReLU(encoder_channels[self.low_index], low_level_channels, 1)
        self.fuse = nn.Sequential(
            ConvBNReLU(channels + low_level_channels, channels, 3),
            ConvBNReLU(channels, channels, 3),
        )
        self.classifier = nn.Conv2d(channels, 1, 1)

    def forward(self, features: Sequence[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        low = self.low(features[self.low_index])
        y = F.interpolate(self.aspp(features[-1]), size=low.shape[-2:], mode="bilinear")
        y = self.classifier(self.fuse(torch.cat([y, low], dim=1)))
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


# ---------------------------------------------------------------------------------- model
class CrackSegmenter(nn.Module):
    """Encoder + decoder returning crack logits ``(N, 1, H, W)`` for any input ``H x W``.

    The input is padded (replicate, bottom/right) to a multiple of the encoder's largest stride and
    the logits are cropped back. Sigmoid and thresholds live outside the model (clean export).
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.size_divisor = max(encoder.out_strides)
        self.supports_aux = isinstance(decoder, HEDDecoder)

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        if x.dim() != 4:
            raise ValueError(f"expected an (N, C, H, W) batch, got shape {tuple(x.shape)}")
        x, (h, w) = pad_to_multiple(x, self.size_divisor)
        feats = self.encoder(x)
        if return_aux and self.supports_aux:
            fused, sides = self.decoder(feats, x.shape[-2:], return_aux=True)
            return fused[..., :h, :w], [s[..., :h, :w] for s in sides]
        out = self.decoder(feats, x.shape[-2:])
        return out[..., :h, :w]


# ---------------------------------------------------------------------------------- builders
@register_model("carnet")
def carnet(
    *,
    widths: Sequence[int] = (16, 64, 128, 256),
    blocks: Sequence[int] = (0, 7, 6, 2),
    decoder_channels: int = 32,
    upsample: str = "bilinear",
    refine: bool = True,
    in_channels: int = 3,
) -> CrackSegmenter:
    """CarNet34 [CarNet]: olive encoder (0/7/6/2 RBs, 16/64/128/256 ch) + UFPB decoder, 4.95 M."""
    enc = OliveEncoder(widths, blocks, in_channels)
    dec = UFPBDecoder(enc.out_channels, enc.out_strides, decoder_channels, upsample, refine)
    return CrackSegmenter(enc, dec)


@register_model("carnet_resnet34")
def carnet_resnet34(
    *, decoder_channels: int = 32, upsample: str = "bilinear", in_channels: int = 3
) -> CrackSegmenter:
    """Ablation [CarNet §IV-C]: ResNet34 encoder (3/4/6/3, 7x7 stem) + CarNet's UFPB decoder."""
    enc = ResNetEncoder(in_channels)
    dec = UFPBDecoder(enc.out_channels, enc.out_strides, decoder_channels, upsample)
    return CrackSegmenter(enc, dec)


@register_model("carnet_hed")
def carnet_hed(
    *,
    widths: Sequence[int] = (16, 64, 128, 256),
    blocks: Sequence[int] = (0, 7, 6, 2),
    in_channels: int = 3,
) -> CrackSegmenter:
    """Ablation [CarNet §IV-D]: CarNet's olive encoder + HED-style decoder (deep supervision)."""
    enc = OliveEncoder(widths, blocks, in_channels)
    return CrackSegmenter(enc, HEDDecoder(enc.out_channels, enc.out_strides))


@register_model("carnet_deeplabv3plus")
def carnet_deeplabv3plus(
    *,
    widths: Sequence[int] = (16, 64, 128, 256),
    blocks: Sequence[int] = (0, 7, 6, 2),
    channels: int = 128,
    in_channels: int = 3,
) -> CrackSegmenter:
    """Ablation [CarNet §IV-D]: CarNet's olive encoder + DeepLabV3+-style decoder (ASPP)."""
    enc = OliveEncoder(widths, blocks, in_channels)
    return CrackSegmenter(enc, DeepLabV3PlusDecoder(enc.out_channels, enc.out_strides, channels))
