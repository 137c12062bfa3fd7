"""BiSeNet with a ResNet-18 context path.

Yu, Wang, Peng, Gao, Yu, Sang, "BiSeNet: Bilateral Segmentation Network for Real-time Semantic
Segmentation", ECCV 2018 [BiSeNet].

Two paths: a *spatial path* of three stride-2 conv-BN-ReLU layers keeps detail at stride 8
[BiSeNet §3.1]; a *context path* (a light backbone, here torchvision's ResNet-18 without its
classifier, plus global average pooling) gives a large receptive field [§3.2]. Attention
refinement modules (ARM) reweight its stride-16 and stride-32 features [§3.2]; a feature fusion
module (FFM) merges the two paths and auxiliary losses supervise the context path during
training [§3.3].
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._registry import register_model
from .blocks import ConvBNReLU
from .contract import PadCropModel


class AttentionRefinement(nn.Module):
    """ARM [BiSeNet §3.2, Fig. 2b]: global average pooling, 1x1 convolution, sigmoid, and a
    channel-wise product with the input.

    A 3x3 conv-BN-ReLU first projects the input to ``out_channels`` so the stride-16 and
    stride-32 maps can be added. The attention's 1x1 convolution has a bias instead of the
    paper's BatchNorm: BatchNorm on a 1x1 map cannot train with batch size 1.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_channels, out_channels, 3)
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(out_channels, out_channels, 1), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x * self.attention(x)


class FeatureFusion(nn.Module):
    """FFM [BiSeNet §3.3, Fig. 2c]: concatenate, conv-BN-ReLU, then add a channel-reweighted
    copy (global pooling, 1x1 conv, ReLU, 1x1 conv, sigmoid), like squeeze-and-excitation."""

    def __init__(self, in_channels: int, out_channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_channels, out_channels, 1)
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(out_channels, out_channels // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels // reduction, out_channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = self.conv(torch.cat([spatial, context], dim=1))
        return x + x * self.attention(x)


class SegmentationHead(nn.Sequential):
    """3x3 conv-BN-ReLU and a 1x1 classifier (the main and the auxiliary outputs)."""

    def __init__(self, in_channels: int, mid_channels: int, num_classes: int) -> None:
        super().__init__(
            ConvBNReLU(in_channels, mid_channels, 3), nn.Conv2d(mid_channels, num_classes, 1)
        )


class ContextPath(nn.Module):
    """[BiSeNet §3.2, Fig. 2a]: ResNet-18 to stride 32, a global context vector (global average
    pooling of the stride-32 features), ARMs at strides 32 and 16, each result upsampled 2x and
    refined by a 3x3 conv-BN-ReLU. Returns the refined maps at strides 16 and 8.

    The global branch is a 1x1 convolution with bias and ReLU (no BatchNorm on a 1x1 map, so
    batch-1 training works).
    """

    def __init__(self, in_channels: int = 3, channels: int = 128) -> None:
        super().__init__()
        from torchvision.models import resnet18  # lazy: importing torchvision costs ~170 MB RSS

        net = resnet18(weights=None)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2)
        self.layer3, self.layer4 = net.layer3, net.layer4  # strides 16 and 32 (256, 512 channels)
        self.global_context = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(512, channels, 1), nn.ReLU(inplace=True)
        )
        self.arm32 = AttentionRefinement(512, channels)
        self.arm16 = AttentionRefinement(256, channels)
        self.refine32 = ConvBNReLU(channels, channels, 3)
        self.refine16 = ConvBNReLU(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f8 = self.stem(x)
        f16 = self.layer3(f8)
        f32 = self.layer4(f16)
        y = self.arm32(f32) + self.global_context(f32)
        c16 = self.refine32(F.interpolate(y, size=f16.shape[-2:], mode="bilinear"))
        y = self.arm16(f16) + c16
        c8 = self.refine16(F.interpolate(y, size=f8.shape[-2:], mode="bilinear"))
        return c16, c8


class BiSeNet(PadCropModel):
    """BiSeNet: logits ``(N, num_classes, H, W)`` for any ``H x W``.

    The input is padded (replicate, bottom / right) to a multiple of 32, ResNet-18's stride, and
    the logits are cropped back. ``forward(x, return_aux=True)`` also returns the auxiliary
    logits of the context path (strides 16 and 8, upsampled to the input size) for the training
    loss [BiSeNet §3.3]; the training engine asks for them when ``supports_aux`` is set, as for
    HED-style deep supervision (``carnet_hed``).

    Args:
        num_classes: output channels.
        in_channels: input image channels.
        spatial_channels: widths of the spatial path's three stride-2 layers (the paper does not
            give them; these follow ResNet's widths up to stride 8).
        context_channels: width of the context path after the ARMs.
        fusion_channels: output width of the FFM.
    """

    size_divisor = 32
    supports_aux = True

    def __init__(
        self,
        num_classes: int = 1,
        in_channels: int = 3,
        spatial_channels: tuple[int, int, int] = (64, 128, 256),
        context_channels: int = 128,
        fusion_channels: int = 256,
    ) -> None:
        super().__init__()
        a, b, c = spatial_channels
        self.spatial_path = nn.Sequential(
            ConvBNReLU(in_channels, a, 3, 2), ConvBNReLU(a, b, 3, 2), ConvBNReLU(b, c, 3, 2)
        )
        self.context_path = ContextPath(in_channels, context_channels)
        self.ffm = FeatureFusion(c + context_channels, fusion_channels)
        self.head = SegmentationHead(fusion_channels, 64, num_classes)
        self.aux16 = SegmentationHead(context_channels, 64, num_classes)
        self.aux8 = SegmentationHead(context_channels, 64, num_classes)

    def forward_padded(self, x: torch.Tensor, return_aux: bool = False):
        size = x.shape[-2:]
        c16, c8 = self.context_path(x)
        y = self.head(self.ffm(self.spatial_path(x), c8))
        y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        if not return_aux:
            return y
        aux = [
            F.interpolate(head(f), size=size, mode="bilinear", align_corners=False)
            for head, f in ((self.aux16, c16), (self.aux8, c8))
        ]
        return y, aux


@register_model("bisenet")
def bisenet(*, num_classes: int = 1, in_channels: int = 3) -> BiSeNet:
    """BiSeNet [BiSeNet]: spatial path + ResNet-18 context path, ARM, FFM, 2 auxiliary heads."""
    return BiSeNet(num_classes, in_channels)
