"""The encoder written as a list of stages (see the contract in :mod:`crackseg.models.encoders`)."""

from __future__ import annotations

import torch
import torch.nn as nn


class StagedEncoder(nn.Module):
    """An encoder made of ``stages`` run in order; every stage's output is one feature map.

    Subclasses set ``stages`` (an ``nn.ModuleList``), ``out_channels`` and ``out_strides``.
    """

    stages: nn.ModuleList
    out_channels: list[int]
    out_strides: list[int]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats
