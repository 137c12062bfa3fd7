"""CarNet's olive-type encoder [CarNet §III-B].

Li, Wang, Tang, Ma, Zhang, Chen, "Rethinking Lightweight Convolutional Neural Networks for
Efficient and High-quality Pavement Crack Detection", IEEE T-ITS / arXiv 2109.05707 [CarNet].
The stage tables (CarNet34 and the lean variants) live in :mod:`crackseg.models.carnet`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn as nn

from ..blocks import BasicBlock, DownsamplingBlock
from .base import StagedEncoder


class OliveEncoder(StagedEncoder):
    """CarNet's olive-type encoder [CarNet §III-B].

    Every stage starts with a downsampling block (DB) that halves the resolution, followed by
    ``blocks[i]`` residual blocks (RB). With the CarNet34 table (16/64/128/256 channels, 0/7/6/2
    blocks) it has 4 + 2 * 15 = 34 convolution layers, the depth of ResNet34. Output strides are
    2, 4, 8, ... (one per stage).

    Args:
        widths: output channels of each stage.
        blocks: residual blocks per stage (the olive shape, e.g. ``(0, 7, 6, 2)``).
        in_channels: input image channels.
    """

    def __init__(self, widths: Sequence[int], blocks: Sequence[int], in_channels: int = 3) -> None:
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
