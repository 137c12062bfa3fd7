"""CarNet and its ablations.

Li, Wang, Tang, Ma, Zhang, Chen, "Rethinking Lightweight Convolutional Neural Networks for
Efficient and High-quality Pavement Crack Detection", IEEE T-ITS / arXiv 2109.05707 [CarNet].

CarNet is the olive-type encoder (:class:`~.encoders.olive.OliveEncoder`, §III-B) under the UFPB
decoder (:class:`~.decoders.ufpb.UFPBDecoder`, §III-C), assembled by
:class:`~.segmenter.CrackSegmenter`, which pads any ``H x W`` to a multiple of 16 and crops the
``(N, 1, H, W)`` logits back. Every member of the family is one row of :data:`CARNET_VARIANTS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ._registry import register_model
from .decoders import DeepLabV3PlusDecoder, HEDDecoder, UFPBDecoder
from .encoders import OliveEncoder, ResNetEncoder, StagedEncoder
from .segmenter import CrackSegmenter

#: The CarNet family: name -> (stage widths, residual blocks per stage). Every stage is a
#: downsampling block (stride 2) + the residual blocks; stage 1 is DB only and not used by the
#: decoder. The olive shape is the block column: most blocks at stride 4, fewer after.
CARNET_VARIANTS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    # CarNet34 [CarNet §III-B, Table I; widths from the authors' public code]: 34 conv layers
    "carnet": ((16, 64, 128, 256), (0, 7, 6, 2)),
}

_SUMMARY = {
    "carnet": "CarNet34 [CarNet]: olive encoder (0/7/6/2 RBs, 16/64/128/256 ch) + UFPB, 4.95 M.",
}


def _carnet_builder(name: str, widths: Sequence[int], blocks: Sequence[int]) -> Callable:
    def builder(
        *,
        widths: Sequence[int] = widths,
        blocks: Sequence[int] = blocks,
        decoder_channels: int = 32,
        upsample: str = "bilinear",
        refine: bool = True,
        in_channels: int = 3,
    ) -> CrackSegmenter:
        enc = OliveEncoder(widths, blocks, in_channels)
        dec = UFPBDecoder(enc.out_channels, enc.out_strides, decoder_channels, upsample, refine)
        return CrackSegmenter(enc, dec)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = (
        f"{_SUMMARY[name]}\n\n    Stage widths {tuple(widths)}, residual blocks {tuple(blocks)} "
        "(:data:`CARNET_VARIANTS`); any of the keyword arguments overrides the row."
    )
    return builder


for _name, (_widths, _blocks) in CARNET_VARIANTS.items():
    register_model(_name)(_carnet_builder(_name, _widths, _blocks))

_CARNET34 = CARNET_VARIANTS["carnet"]


@register_model("carnet_resnet34")
def carnet_resnet34(
    *,
    decoder_channels: int = 32,
    upsample: str = "bilinear",
    in_channels: int = 3,
    encoder_weights: str | None = None,
) -> CrackSegmenter:
    """Ablation [CarNet §IV-C]: ResNet34 encoder (3/4/6/3, 7x7 stem) + CarNet's UFPB decoder.

    ``encoder_weights``: a local torchvision ``resnet34`` state dict (nothing is downloaded).
    """
    enc = ResNetEncoder(in_channels, encoder_weights=encoder_weights)
    dec = UFPBDecoder(enc.out_channels, enc.out_strides, decoder_channels, upsample)
    return CrackSegmenter(enc, dec)


@register_model("carnet_hed")
def carnet_hed(
    *,
    widths: Sequence[int] = _CARNET34[0],
    blocks: Sequence[int] = _CARNET34[1],
    in_channels: int = 3,
) -> CrackSegmenter:
    """Ablation [CarNet §IV-D]: CarNet's olive encoder + HED-style decoder (deep supervision)."""
    enc = OliveEncoder(widths, blocks, in_channels)
    return CrackSegmenter(enc, HEDDecoder(enc.out_channels, enc.out_strides))


@register_model("carnet_deeplabv3plus")
def carnet_deeplabv3plus(
    *,
    widths: Sequence[int] = _CARNET34[0],
    blocks: Sequence[int] = _CARNET34[1],
    channels: int = 128,
    in_channels: int = 3,
) -> CrackSegmenter:
    """Ablation [CarNet §IV-D]: CarNet's olive encoder + DeepLabV3+-style decoder (ASPP)."""
    enc = OliveEncoder(widths, blocks, in_channels)
    return CrackSegmenter(enc, DeepLabV3PlusDecoder(enc.out_channels, enc.out_strides, channels))


# The names this module exported before the encoders and decoders got their own rooms.
_StagedEncoder = StagedEncoder
__all__ = [
    "CARNET_VARIANTS",
    "CrackSegmenter",
    "DeepLabV3PlusDecoder",
    "HEDDecoder",
    "OliveEncoder",
    "ResNetEncoder",
    "UFPBDecoder",
    "carnet_deeplabv3plus",
    "carnet_hed",
    "carnet_resnet34",
]
