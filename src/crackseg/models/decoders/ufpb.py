"""CarNet's decoder [CarNet §III-C, Fig. 4]: UFPB, DCB, classifier, upsampling, refinement.

Li et al., "Rethinking Lightweight Convolutional Neural Networks for Efficient and High-quality
Pavement Crack Detection", arXiv 2109.05707 [CarNet].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..blocks import UFPB, DecomposedConvBlock, learned_upsample


class UFPBDecoder(nn.Module):
    """CarNet's decoder [CarNet §III-C, Fig. 4].

    UFPB over every map at stride ``min_stride`` (4) or coarser, fused at the finest of them, a
    DCB, a 1x1 conv to 1 channel, upsampling to the input size, and a DCB refining the 1-channel
    map. CarNet's stride-2 stage is not used, nor is any encoder's.

    Args:
        encoder_channels, encoder_strides: the encoder's maps, finest first.
        channels: UFPB width (32 in the paper).
        upsample: final upsampling, ``"bilinear"`` (default) or ``"deconv"`` (learned, kernel 2x
            the stride). The authors' 3x3 stride-4 deconvolution leaves bias-only rows (see
            :func:`~crackseg.models.blocks.learned_upsample`);
            on 1 channel, bilinear is the smooth, parameter-free choice.
        refine: apply the 1-channel DCB refinement after upsampling. It is added to the
            upsampled logits (``y + DCB(y)``): a 1-channel chain of ReLUs alone can clip every
            logit to one sign and stop its gradient; the residual keeps the map signed.
        min_stride: the finest map fused (the UFPB output stride).
    """

    has_aux = False

    def __init__(
        self,
        encoder_channels: Sequence[int],
        encoder_strides: Sequence[int],
        channels: int = 32,
        upsample: str = "bilinear",
        refine: bool = True,
        min_stride: int = 4,
    ) -> None:
        super().__init__()
        if upsample not in ("bilinear", "deconv"):
            raise ValueError(f"upsample must be 'bilinear' or 'deconv', got {upsample!r}")
        self.taps = [i for i, s in enumerate(encoder_strides) if s >= min_stride]
        if not self.taps:
            raise ValueError(f"no map at stride >= {min_stride} in {list(encoder_strides)}")
        strides = [encoder_strides[i] for i in self.taps]
        self.ufpb = UFPB([encoder_channels[i] for i in self.taps], strides, channels)
        self.dcb = DecomposedConvBlock(channels)
        self.classifier = nn.Conv2d(channels, 1, 1)
        self.factor = strides[0]
        self.up = learned_upsample(1, self.factor) if upsample == "deconv" else None
        self.refine = DecomposedConvBlock(1, final_activation=False) if refine else None
        if self.refine is not None:
            _keep_relus_alive(self.refine)

    def forward(self, features: Sequence[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        y = self.classifier(self.dcb(self.ufpb([features[i] for i in self.taps])))
        if self.up is not None:
            y = self.up(y)
        else:
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return y if self.refine is None else y + self.refine(y)


def _keep_relus_alive(block: nn.Module) -> None:
    """Start a 1-channel conv-ReLU chain with no dead ReLU.

    With one channel there is no other path for the gradient: under PyTorch's default
    initialisation a 3-tap conv whose weights and bias come out mostly negative maps the
    non-negative output of the previous ReLU to all-negative values, the next ReLU outputs zero
    everywhere, and the convs before it never receive a gradient (12% of 600 random
    initialisations, on a signed input). Non-negative weights and zero biases in every conv
    that feeds a ReLU keep the chain passing positive values from the start; the last conv
    (signed logits) keeps its default initialisation.
    """
    layers = list(block.modules())
    with torch.no_grad():
        for conv, nxt in zip(layers, layers[1:], strict=False):
            if isinstance(conv, nn.Conv2d) and isinstance(nxt, nn.ReLU):
                conv.weight.abs_()
                if conv.bias is not None:
                    conv.bias.zero_()
