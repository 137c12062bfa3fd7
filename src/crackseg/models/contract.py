"""The model contract: what training, prediction, export and the benchmark rely on.

Every model the registry builds (``crackseg models``) is a plain ``nn.Module`` that satisfies
:class:`CrackModel`:

- ``forward(x)`` takes a normalised ``(N, 3, H, W)`` float batch of **any** ``H x W`` and returns
  crack logits ``(N, 1, H, W)``: no sigmoid, no threshold (both live in the Predictor, so an
  exported graph is the network alone);
- ``size_divisor``: the network pads its input (replicate, bottom / right) to a multiple of
  this and crops the logits back; the Predictor pads tiles to it too, so an exported graph, whose
  shapes are fixed by the caller, only ever sees multiples of it;
- ``supports_aux``: when True, ``forward(x, return_aux=True)`` returns ``(logits, [side logits,
  ...])``, each side output ``(N, 1, H, W)`` as well, for a deep-supervision loss; otherwise
  ``return_aux`` is accepted and ignored.

:class:`PadCropModel` is the one implementation of the pad-and-crop prologue: the encoder-
decoder pairs (:class:`~crackseg.models.segmenter.CrackSegmenter`) and the self-contained
families (ENet, DRN, BiSeNet, DFANet) subclass it and write only :meth:`~PadCropModel.
forward_padded`. It is a base class, not a wrapper module, so weights keep their names.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
import torch.nn as nn

from .blocks import pad_to_multiple

__all__ = ["CrackModel", "PadCropModel"]

Logits = torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]


@runtime_checkable
class CrackModel(Protocol):
    """A crack segmentation network (see the module docstring)."""

    size_divisor: int
    supports_aux: bool

    def __call__(self, x: torch.Tensor, return_aux: bool = False) -> Logits: ...


class PadCropModel(nn.Module):
    """Pads the batch to :attr:`size_divisor`, runs :meth:`forward_padded`, crops the logits
    (and side outputs) back to the input's size."""

    size_divisor: int = 32
    supports_aux: bool = False

    def forward(self, x: torch.Tensor, return_aux: bool = False) -> Logits:
        if x.dim() != 4:
            raise ValueError(f"expected an (N, C, H, W) batch, got shape {tuple(x.shape)}")
        padded, (h, w) = pad_to_multiple(x, self.size_divisor)
        if return_aux and self.supports_aux:
            out, sides = self.forward_padded(padded, return_aux=True)
            return out[..., :h, :w], [s[..., :h, :w] for s in sides]
        return self.forward_padded(padded)[..., :h, :w]

    def forward_padded(self, x: torch.Tensor, return_aux: bool = False) -> Logits:
        """Logits (and with ``return_aux`` the side outputs) at the padded size of ``x``."""
        raise NotImplementedError
