"""Model facts: parameters, FLOPs, stage shapes, conv-layer counts; the machine they ran on.

FLOPs come from :class:`torch.utils.flop_counter.FlopCounterMode`, which counts one multiply and
one add as 2 FLOPs for convolutions (transposed too) and matrix products, and ignores
element-wise work (BatchNorm, ReLU, pooling, interpolation). MACs are reported as FLOPs / 2.
Latency is measured in :mod:`crackseg.bench` (the one timing implementation).
For a plain convolution this is the closed form:
params = k*k*Cin*Cout (+Cout bias), FLOPs = 2*k*k*Cin*Cout*Hout*Wout.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from ..machine import cpu_info


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def count_flops(model: nn.Module, input_size: tuple[int, ...]) -> int:
    """FLOPs (2 per multiply-accumulate) of one forward pass on a zero tensor of ``input_size``."""
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(input_size)
        with FlopCounterMode(display=False) as counter:
            model(x)
        return int(counter.get_total_flops())
    finally:
        model.train(was_training)


def count_conv_layers(module: nn.Module) -> int:
    """Number of convolution layers (``Conv2d`` and ``ConvTranspose2d``) inside ``module``."""
    return sum(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in module.modules())


@dataclass
class StageFacts:
    index: int
    stride: int
    channels: int
    shape: list[int]
    conv_layers: int
    params: int


@dataclass
class ModelFacts:
    name: str
    input_size: list[int]
    params: int
    flops: int
    macs: int
    encoder_conv_layers: int
    decoder_conv_layers: int
    encoder_params: int
    decoder_params: int
    stages: list[StageFacts] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def model_facts(
    model: nn.Module, name: str = "", height: int = 512, width: int = 512
) -> ModelFacts:
    """Collect parameters, FLOPs and per-stage facts of an encoder-decoder crack model."""
    size = (1, 3, height, width)
    model.eval()
    flops = count_flops(model, size)
    stages: list[StageFacts] = []
    encoder = getattr(model, "encoder", None)
    if encoder is not None and hasattr(encoder, "stages"):
        x = torch.zeros(size)
        div = model.size_divisor
        x = torch.nn.functional.pad(x, (0, (-width) % div, 0, (-height) % div))
        feats = encoder(x)
        for i, (f, stage) in enumerate(zip(feats, encoder.stages, strict=True)):
            stages.append(
                StageFacts(
                    index=i + 1,
                    stride=encoder.out_strides[i],
                    channels=f.shape[1],
                    shape=list(f.shape),
                    conv_layers=count_conv_layers(stage),
                    params=count_params(stage),
                )
            )
    decoder = getattr(model, "decoder", None)
    return ModelFacts(
        name=name or type(model).__name__,
        input_size=list(size),
        params=count_params(model),
        flops=flops,
        macs=flops // 2,
        encoder_conv_layers=count_conv_layers(encoder) if encoder is not None else 0,
        decoder_conv_layers=count_conv_layers(decoder) if decoder is not None else 0,
        encoder_params=count_params(encoder) if encoder is not None else 0,
        decoder_params=count_params(decoder) if decoder is not None else 0,
        stages=stages,
    )


def machine_info() -> dict:
    """CPU model, flags relevant to inference speed, core count, torch version."""
    info = cpu_info()
    return {**{k: info[k] for k in ("cpu", "flags", "cores")}, "torch": torch.__version__,
            "python": info["python"], "platform": info["platform"]}  # fmt: skip
