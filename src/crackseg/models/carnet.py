"""CarNet, its lean variants and its ablations.

Li, Wang, Tang, Ma, Zhang, Chen, "Rethinking Lightweight Convolutional Neural Networks for
Efficient and High-quality Pavement Crack Detection", IEEE T-ITS / arXiv 2109.05707 [CarNet].

CarNet is the olive-type encoder (:class:`~.encoders.olive.OliveEncoder`, §III-B) under the UFPB
decoder (:class:`~.decoders.ufpb.UFPBDecoder`, §III-C), assembled by
:class:`~.segmenter.CrackSegmenter`, which pads any ``H x W`` to a multiple of 16 and crops the
``(N, 1, H, W)`` logits back. Every member of the family is one row of :data:`CARNET_VARIANTS`.

The lean variants were chosen by CPU latency (the one-off ``benchmarks/carnet_lean.py``, in git
at e282501; results in ``benchmarks/results/carnet_lean_cpu*.json``): 512x512, batch 1, fp32
eager, NCHW, median of 15 runs after 2 warm-up runs, candidates interleaved, on an "AMD EPYC"
(as /proc/cpuinfo names it) with 2 cores shared with other jobs (load average 7-8 during the
runs: the 2-thread medians carry much scheduling noise, the 1-thread ones less)::

    candidate (widths / blocks)           params  GMACs   2 threads ms (x)  1 thread ms (x)
    16-64-128-256 / 0-7-6-2  (carnet)     4.95 M  18.96   4322 (1.00)       1427 (1.00)
    16-48-96-192  / 0-5-4-2               2.42 M   8.13   2595 (0.60)        772 (0.54)
    16-32-64-128  / 0-5-4-2  (carnet_s)   1.13 M   3.83   2240 (0.52)        417 (0.29)
    16-32-96-192  / 0-3-4-2               2.26 M   5.58   2178 (0.50)        569 (0.40)
    16-32-64-128  / 0-3-3-1               0.72 M   2.62   1442 (0.33)        330 (0.23)
    16-24-48-96   / 0-3-2-1  (carnet_xs)  0.41 M   1.46   1093 (0.25)        256 (0.18)
    8-24-48-96    / 0-3-2-1               0.41 M   1.45    942 (0.22)        245 (0.17)
    16-16-32-64   / 0-2-2-1               0.23 M   0.81    908 (0.21)        190 (0.13)

``carnet_s`` keeps CarNet34's depth profile (5/4/2 residual blocks against 7/6/2) at half the
widths, for about a third of its single-thread latency. ``carnet_xs`` is the knee: narrower
still, the time goes to what the table does not set: in a 1-thread profile of ``carnet_xs``
(about 255 ms) the UFPB decoder (32 channels at stride 4, the 1-channel refinement at full
size) took about 85 ms, stage 1 (at full resolution) about 30 ms, and the downsampling blocks'
max-pools 17% of the whole. So 16-16-32-64 saves another 44% of the MACs but only 5% of
CarNet34's time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ._registry import register_model
from .decoders import DeepLabV3PlusDecoder, HEDDecoder, UFPBDecoder
from .encoders import OliveEncoder, ResNetEncoder
from .segmenter import CrackSegmenter

#: The CarNet family: name -> (stage widths, residual blocks per stage). Every stage is a
#: downsampling block (stride 2) + the residual blocks; stage 1 is DB only and not used by the
#: decoder. The olive shape is the block column: most blocks at stride 4, fewer after.
CARNET_VARIANTS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    # CarNet34 [CarNet §III-B, Table I; widths from the authors' public code]: 34 conv layers
    "carnet": ((16, 64, 128, 256), (0, 7, 6, 2)),
    # CPU-lean variants, chosen by measured CPU latency (the table in the module docstring)
    "carnet_s": ((16, 32, 64, 128), (0, 5, 4, 2)),
    "carnet_xs": ((16, 24, 48, 96), (0, 3, 2, 1)),
}

_SUMMARY = {
    "carnet": "CarNet34 [CarNet]: olive encoder (0/7/6/2 RBs, 16/64/128/256 ch) + UFPB, 4.95 M.",
    "carnet_s": "CarNet-S: CarNet34's olive at half width (0/5/4/2 RBs, 16/32/64/128), 1.13 M.",
    "carnet_xs": "CarNet-XS: the lean CarNet (0/3/2/1 RBs, 16/24/48/96 ch) + UFPB, 0.41 M.",
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


__all__ = ["CARNET_VARIANTS", "carnet_deeplabv3plus", "carnet_hed", "carnet_resnet34"]
