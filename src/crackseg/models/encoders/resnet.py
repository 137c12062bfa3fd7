"""The ResNet34 encoder of CarNet's olive-vs-ResNet ablation [CarNet §IV-C].

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016, Table 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch.nn as nn

from .adapter import load_encoder_weights
from .base import StagedEncoder


class ResNetEncoder(StagedEncoder):
    """ResNet34 layout (3/4/6/3 basic blocks after the 7x7 stem) as a staged encoder.

    Built from torchvision's ``ResNet`` (random initialisation unless ``encoder_weights`` names
    a local torchvision ``resnet34`` state dict: nothing is downloaded). Stages, finest first:
    the stem (7x7 stride-2 conv, stride 2), max-pool + layer1 (stride 4), layer2 (8),
    layer3 (16), layer4 (32). Like CarNet's stage 1, the stem's output is not used by UFPB.

    Args:
        in_channels: input image channels (a new stem conv when not 3).
        layers: basic blocks per layer.
        encoder_weights: a local torchvision ResNet state dict file (safetensors or
            ``torch.save``), loaded before the stages are taken apart; the ``fc`` head is ignored.
    """

    def __init__(
        self,
        in_channels: int = 3,
        layers: Sequence[int] = (3, 4, 6, 3),
        encoder_weights: str | Path | None = None,
    ) -> None:
        super().__init__()
        import torchvision  # lazy: importing torchvision costs ~170 MB of RSS

        net = torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, list(layers))
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        if encoder_weights is not None:
            net.fc = nn.Identity()  # the classifier is not part of the encoder
            load_encoder_weights(net, encoder_weights)
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
