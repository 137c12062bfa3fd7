"""The model every encoder-decoder pair in the zoo becomes: :class:`CrackSegmenter`."""

from __future__ import annotations

import torch
import torch.nn as nn

from .contract import PadCropModel


class CrackSegmenter(PadCropModel):
    """Encoder + decoder returning crack logits ``(N, 1, H, W)`` for any input ``H x W``.

    The input is padded (replicate, bottom/right) to a multiple of the encoder's ``size_divisor``
    (its largest stride unless it says otherwise) and the logits are cropped back. Sigmoid and
    thresholds live outside the model (clean export).

    Args:
        encoder: follows the encoder contract of :mod:`crackseg.models.encoders`.
        decoder: follows the decoder contract of :mod:`crackseg.models.decoders`; its
            ``has_aux`` attribute says whether it can return deep-supervision side outputs.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.size_divisor = getattr(encoder, "size_divisor", max(encoder.out_strides))
        #: ``forward(x, return_aux=True)`` gives side outputs (see :mod:`.contract`)
        self.supports_aux = bool(getattr(decoder, "has_aux", False))

    def forward_padded(self, x: torch.Tensor, return_aux: bool = False):
        feats = self.encoder(x)
        if return_aux:
            return self.decoder(feats, x.shape[-2:], return_aux=True)
        return self.decoder(feats, x.shape[-2:])
