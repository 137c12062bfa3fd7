"""HED-style decoder: Xie & Tu, "Holistically-Nested Edge Detection", ICCV 2015, §2.3."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from ..blocks import learned_upsample


class HEDDecoder(nn.Module):
    """HED-style decoder with deep supervision [HED §2.3].

    A 1x1 side output from *every* map, each upsampled straight to the input size with a learned
    transposed convolution (kernel twice the stride), fused by a 1x1 conv over the concatenated
    side maps. With ``return_aux=True`` the side outputs are returned too, for a loss on each
    (their losses must be balanced against the fused one; see the training engine).
    """

    has_aux = True

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
