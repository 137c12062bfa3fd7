"""Decoders: an encoder's feature maps in, 1-channel crack logits out.

**The decoder contract**: a decoder is built as ``Decoder(encoder_channels, encoder_strides,
...)`` from the encoder's ``out_channels`` and ``out_strides`` (see
:mod:`crackseg.models.encoders`), and called as ``decoder(features, size)`` with the encoder's
maps and the (padded) input size ``(H, W)``; it returns logits ``(N, 1, H, W)``. It chooses its
inputs **by stride** (:func:`stride_index`), never by list position. The class attribute
``has_aux`` says whether ``decoder(features, size, return_aux=True)`` also returns side outputs
for deep supervision, as ``(fused, [side, ...])``.
"""

from ._select import deepest_index, stride_index
from .deeplabv3plus import DeepLabV3PlusDecoder
from .hed import HEDDecoder
from .lraspp import LRASPPDecoder
from .ufpb import UFPBDecoder

__all__ = [
    "DeepLabV3PlusDecoder",
    "HEDDecoder",
    "LRASPPDecoder",
    "UFPBDecoder",
    "deepest_index",
    "stride_index",
]
