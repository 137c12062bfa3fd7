"""Lightweight classification encoders under CarNet's UFPB decoder and the LR-ASPP head.

The encoders of the efficient-segmentation family CarNet is measured against: MobileNetV1/V2/V3,
ShuffleNetV2 and EfficientNet-B0 as torchvision and timm build them (see
:mod:`.encoders.lightweight` for the papers and the taps), ThunderNet's SNet backbone and its
context enhancement module (:mod:`.encoders.snet`), each under

- ``ufpb_<encoder>``: CarNet's decoder [CarNet §III-C] over the maps at strides 4-32;
- ``lraspp_<encoder>``: the Lite R-ASPP head [Howard et al., "Searching for MobileNetV3", ICCV
  2019, §6.2] over the stride-8 map and the deepest one. MobileNetV3 is dilated there (last
  stage at stride 16), as in the paper; the other encoders have no dilated variant in
  torchvision and stay at stride 32.

Every builder takes ``encoder_weights=PATH`` (a local ImageNet state dict of the torchvision /
timm model; nothing is downloaded), ``encoder_kwargs`` (passed to the torchvision / timm
builder) and ``cem=True`` (ThunderNet's neck on the encoder). The ``*_snet146_cem`` models are
ThunderNet's own pairing of backbone and neck [ThunderNet §3]. Parameters and FLOPs next to
the published figures: ``docs/zoo.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch.nn as nn

from ._registry import register_model
from .decoders import LRASPPDecoder, UFPBDecoder
from .encoders import ContextEnhancement, snet_encoder, timm_encoder, torchvision_encoder
from .segmenter import CrackSegmenter

#: registry suffix -> (encoder factory, default encoder_kwargs, what it is)
LIGHTWEIGHT_ENCODERS: dict[str, tuple[Callable[..., nn.Module], dict[str, Any], str]] = {
    "mobilenetv1": (partial(timm_encoder, "mobilenetv1_100"), {}, "MobileNetV1 1.0 (timm)"),
    "mobilenetv2": (partial(torchvision_encoder, "mobilenet_v2"), {}, "MobileNetV2 1.0"),
    "mobilenetv3_large": (
        partial(torchvision_encoder, "mobilenet_v3_large"),
        {},
        "MobileNetV3-Large 1.0",
    ),
    "mobilenetv3_small": (
        partial(torchvision_encoder, "mobilenet_v3_small"),
        {},
        "MobileNetV3-Small 1.0",
    ),
    "shufflenetv2": (partial(torchvision_encoder, "shufflenet_v2_x1_0"), {}, "ShuffleNetV2 1.0x"),
    # Stochastic depth (0.2 in torchvision's ImageNet recipe) drops whole blocks per sample;
    # off by default, a regulariser to turn on with encoder_kwargs, not part of the architecture.
    "efficientnet_b0": (
        partial(torchvision_encoder, "efficientnet_b0"),
        {"stochastic_depth_prob": 0.0},
        "EfficientNet-B0",
    ),
    "snet49": (partial(snet_encoder, 49), {}, "ThunderNet's SNet49"),
    "snet146": (partial(snet_encoder, 146), {}, "ThunderNet's SNet146"),
    "snet535": (partial(snet_encoder, 535), {}, "ThunderNet's SNet535"),
}

#: encoder_kwargs the LR-ASPP models add: MobileNetV3's last stage dilated [MobileNetV3 §6.2]
LRASPP_ENCODER_KWARGS = {
    "mobilenetv3_large": {"dilated": True},
    "mobilenetv3_small": {"dilated": True},
}


def build_encoder(
    key: str,
    *,
    cem: bool = False,
    in_channels: int = 3,
    encoder_weights: str | Path | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
) -> nn.Module:
    """The encoder ``key`` of :data:`LIGHTWEIGHT_ENCODERS`, with ThunderNet's CEM if ``cem``."""
    make, defaults, _ = LIGHTWEIGHT_ENCODERS[key]
    kwargs = {**defaults, **(encoder_kwargs or {})}
    enc = make(in_channels=in_channels, encoder_weights=encoder_weights, **kwargs)
    return ContextEnhancement(enc) if cem else enc


def _ufpb(
    key: str,
    cem: bool,
    decoder_channels: int,
    upsample: str,
    refine: bool,
    in_channels: int,
    encoder_weights: str | None,
    encoder_kwargs: dict | None,
) -> CrackSegmenter:
    enc = build_encoder(
        key,
        cem=cem,
        in_channels=in_channels,
        encoder_weights=encoder_weights,
        encoder_kwargs=encoder_kwargs,
    )
    dec = UFPBDecoder(enc.out_channels, enc.out_strides, decoder_channels, upsample, refine)
    return CrackSegmenter(enc, dec)


def _lraspp(
    key: str,
    cem: bool,
    inter_channels: int,
    in_channels: int,
    encoder_weights: str | None,
    encoder_kwargs: dict | None,
) -> CrackSegmenter:
    kwargs = {**LRASPP_ENCODER_KWARGS.get(key, {}), **(encoder_kwargs or {})}
    enc = build_encoder(
        key,
        cem=cem,
        in_channels=in_channels,
        encoder_weights=encoder_weights,
        encoder_kwargs=kwargs,
    )
    return CrackSegmenter(enc, LRASPPDecoder(enc.out_channels, enc.out_strides, inter_channels))


@register_model("ufpb_mobilenetv1")
def ufpb_mobilenetv1(
    *,
    decoder_channels: int = 32,
    upsample: str = "bilinear",
    refine: bool = True,
    cem: bool = False,
    in_channels: int = 3,
    encoder_weights: str | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
) -> CrackSegmenter:
    """MobileNetV1 1.0 (timm) encoder + CarNet's UFPB decoder [CarNet §III-C]."""
    return _ufpb(
        "mobilenetv1",
        cem,
        decoder_channels,
        upsample,
        refine,
        in_channels,
        encoder_weights,
        encoder_kwargs,
    )


@register_model("ufpb_mobilenetv2")
def ufpb_mobilenetv2(
    *,
    decoder_channels: int = 32,
    upsample: str = "bilinear",
    refine: bool = True,
    cem: bool = False,
    in_channels: int = 3,
    encoder_weights: str | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
) -> CrackSegmenter:
    """MobileNetV2 1.0 encoder + CarNet's UFPB decoder [CarNet §III-C]."""
    return _ufpb(
        "mobilenetv2",
        cem,
        decoder_channels,
        upsample,
        refine,
        in_channels,
        encoder_weights,
        encoder_kwargs,
    )


@register_model("ufpb_mobilenetv3_large")
def ufpb_mobilenetv3_large(
    *,
    decoder_channels: int = 32,
    upsample: str = "bilinear",
    refine: bool = True,
    cem: bool = False,
    in_channels: int = 3,
    encoder_weights: str | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
) -> CrackSegmenter:
    """MobileNetV3-Large 1.0 encoder + CarNet's UFPB decoder [CarNet §III-C]."""
    return _ufpb(
        "mobilenetv3_large",
        cem,
        decoder_channels,
        upsample,
        refine,
        in_channels,
        encoder_weights,
        encoder_kwargs,
    )


@register_model("ufpb_mobilenetv3_small")
def ufpb_mobilenetv3_small(
    *,
    decoder_channels: int = 32,
    upsample: str = "bilinear",
    refine: bool = True,
    cem: bool = False,
    in_channels: int = 3,
    encoder_weights: str | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
) -> CrackSegmenter:
    """MobileNetV3-Small 1.0 encoder + CarNet's UFPB decoder [CarNet §III-C]."""
    return _ufpb(
        "mobilenetv3_small",
        cem,
        decoder_channels,
        upsample,
        refine,
        in_channels,
        encoder_weights,
        encoder_kwargs,
    )


@register_model("ufpb_shufflenetv2")
def ufpb_shufflenetv2(
    *,
    decoder_channels: int = 32,
    upsample: str = "bilinear",
    refine: bool = True,
    cem: bool = False,
    in_channels: int = 3,
    encoder_weights: str | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
) -> CrackSegmenter:
    """ShuffleNetV2 1.0x encoder + CarNet's UFPB decoder [CarNet §III-C]."""
    return _ufpb(
        "shufflenetv2",
        cem,
        decoder_channels,
        upsample,
        refine,
        in_channels,
        encoder_weights,
        encoder_kwargs,
    )


@register_model("ufpb_efficientnet_b0")
def ufpb_efficientnet_b0(
    *,
    decoder_channels: int = 32,
    upsample: str = "bilinear",
    refine: bool = True,
    cem: bool = False,
    in_channels: int = 3,
    encoder_weights: str | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
) -> CrackSegmenter:
    """EfficientNet-B0 encoder + CarNet's UFPB decoder [CarNet §III-C]."""
    return _ufpb(
        "efficientnet_b0",
        cem,
        decoder_channels,
        upsample,
        refine,
        in_channels,
        encoder_weights,
        encoder_kwargs,
    )


@register_model("ufpb_snet49")
def ufpb_snet49(
    *,
    decoder_channels: int = 32,
    upsample: str = "bilinear",
    refine: bool = True,
    cem: bool = False,
    in_channels: int = 3,
    encoder_weights: str | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
) -> CrackSegmenter:
    """ThunderNet's SNet49 encoder + CarNet's UFPB decoder [CarNet §III-C]."""
    return _ufpb(
        "snet49",
        cem,
        decoder_channels,
        upsample,
        refine,
        in_channels,
        encoder_weights,
        encoder_kwargs,
    )


@register_model("ufpb_snet146")
def ufpb_snet146(
    *,
    decoder_channels: int = 32,
    upsample: str = "bilinear",
    refine: bool = True,
    cem: bool = False,
    in_channels: int = 3,
    encoder_weights: str | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
) -> CrackSegmenter:
    """ThunderNet's SNet146 encoder + CarNet's UFPB decoder [CarNet §III-C]."""
    return _ufpb(
        "snet146",
        cem,
        decoder_channels,
        upsample,
        refine,
        in_channels,
        encoder_weights,
        encoder_kwargs,
    )


@register_model("ufpb_snet535")
def ufpb_snet535(
    *,
    decoder_channels: int = 32,
    upsample: str = "bilinear",
    refine: bool = True,
    cem: bool = False,
    in_channels: int = 3,
    encoder_weights: str | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
) -> CrackSegmenter:
    """ThunderNet's SNet535 encoder + CarNet's UFPB decoder [CarNet §III-C]."""
    return _ufpb(
        "snet535",
        cem,
        decoder_channels,
        upsample,
        refine,
        in_channels,
        encoder_weights,
        encoder_kwargs,
    )


@register_model("ufpb_snet146_cem")
def ufpb_snet146_cem(
    *,
    decoder_channels: int = 32,
    upsample: str = "bilinear",
    refine: bool = True,
    cem: bool = True,
    in_channels: int = 3,
    encoder_weights: str | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
) -> CrackSegmenter:
    """ThunderNet's SNet146 + CEM [ThunderNet §3.2] encoder + CarNet's UFPB decoder [CarNet
    §III-C]."""
    return _ufpb(
        "snet146",
        cem,
        decoder_channels,
        upsample,
        refine,
        in_channels,
        encoder_weights,
        encoder_kwargs,
    )


@register_model("lraspp_mobilenetv1")
def lraspp_mobilenetv1(
    *,
    inter_channels: int = 128,
    cem: bool = False,
    in_channels: int = 3,
    encoder_weights: str | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
) -> CrackSegmenter:
    """MobileNetV1 1.0 (timm) encoder + Lite R-ASPP head [MobileNetV3 §6.2]."""
    return _lraspp("mobilenetv1", cem, inter_channels, in_channels, encoder_weights, encoder_kwargs)


@register_model("lraspp_mobilenetv2")
def lraspp_mobilenetv2(
    *,
    inter_channels: int = 128,
    cem: bool = False,
    in_channels: int = 3,
    encoder_weights: str | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
) -> CrackSegmenter:
    """MobileNetV2 1.0 encoder + Lite R-ASPP head [MobileNetV3 §6.2]."""
    return _lraspp("mobilenetv2", cem, inter_channels, in_channels, encoder_weights, encoder_kwargs)


@register_model("lraspp_mobilenetv3_large")
def lraspp_mobilenetv3_large(
    *,
    inter_channels: int = 128,
    cem: bool = False,
    in_channels: int = 3,
    encoder_weights: str | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
) -> CrackSegmenter:
    """MobileNetV3-Large 1.0 encoder (dilated, output stride 16) + Lite R-ASPP head [MobileNetV3
    §6.2]."""
    return _lraspp(
        "mobilenetv3_large", cem, inter_channels, in_channels, encoder_weights, encoder_kwargs
    )


@register_model("lraspp_mobilenetv3_small")
def lraspp_mobilenetv3_small(
    *,
    inter_channels: int = 128,
    cem: bool = False,
    in_channels: int = 3,
    encoder_weights: str | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
) -> CrackSegmenter:
    """MobileNetV3-Small 1.0 encoder (dilated, output stride 16) + Lite R-ASPP head [MobileNetV3
    §6.2]."""
    return _lraspp(
        "mobilenetv3_small", cem, inter_channels, in_channels, encoder_weights, encoder_kwargs
    )


@register_model("lraspp_shufflenetv2")
def lraspp_shufflenetv2(
    *,
    inter_channels: int = 128,
    cem: bool = False,
    in_channels: int = 3,
    encoder_weights: str | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
) -> CrackSegmenter:
    """ShuffleNetV2 1.0x encoder + Lite R-ASPP head [MobileNetV3 §6.2]."""
    return _lraspp(
        "shufflenetv2", cem, inter_channels, in_channels, encoder_weights, encoder_kwargs
    )


@register_model("lraspp_efficientnet_b0")
def lraspp_efficientnet_b0(
    *,
    inter_channels: int = 128,
    cem: bool = False,
    in_channels: int = 3,
    encoder_weights: str | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
) -> CrackSegmenter:
    """EfficientNet-B0 encoder + Lite R-ASPP head [MobileNetV3 §6.2]."""
    return _lraspp(
        "efficientnet_b0", cem, inter_channels, in_channels, encoder_weights, encoder_kwargs
    )


@register_model("lraspp_snet49")
def lraspp_snet49(
    *,
    inter_channels: int = 128,
    cem: bool = False,
    in_channels: int = 3,
    encoder_weights: str | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
) -> CrackSegmenter:
    """ThunderNet's SNet49 encoder + Lite R-ASPP head [MobileNetV3 §6.2]."""
    return _lraspp("snet49", cem, inter_channels, in_channels, encoder_weights, encoder_kwargs)


@register_model("lraspp_snet146")
def lraspp_snet146(
    *,
    inter_channels: int = 128,
    cem: bool = False,
    in_channels: int = 3,
    encoder_weights: str | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
) -> CrackSegmenter:
    """ThunderNet's SNet146 encoder + Lite R-ASPP head [MobileNetV3 §6.2]."""
    return _lraspp("snet146", cem, inter_channels, in_channels, encoder_weights, encoder_kwargs)


@register_model("lraspp_snet535")
def lraspp_snet535(
    *,
    inter_channels: int = 128,
    cem: bool = False,
    in_channels: int = 3,
    encoder_weights: str | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
) -> CrackSegmenter:
    """ThunderNet's SNet535 encoder + Lite R-ASPP head [MobileNetV3 §6.2]."""
    return _lraspp("snet535", cem, inter_channels, in_channels, encoder_weights, encoder_kwargs)


@register_model("lraspp_snet146_cem")
def lraspp_snet146_cem(
    *,
    inter_channels: int = 128,
    cem: bool = True,
    in_channels: int = 3,
    encoder_weights: str | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
) -> CrackSegmenter:
    """ThunderNet's SNet146 + CEM [ThunderNet §3.2] encoder + Lite R-ASPP [MobileNetV3 §6.2]."""
    return _lraspp("snet146", cem, inter_channels, in_channels, encoder_weights, encoder_kwargs)
