"""Lightweight classification encoders under CarNet's UFPB decoder and the LR-ASPP head.

SPEC §3: MobileNetV1/V2/V3, ShuffleNetV2 and EfficientNet-B0 as torchvision and timm build them
(see :mod:`.encoders.lightweight` for the papers and the taps), ThunderNet's SNet backbone and its
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


def _ufpb_builder(name: str, key: str, cem_default: bool) -> Callable[..., CrackSegmenter]:
    def builder(
        *,
        decoder_channels: int = 32,
        upsample: str = "bilinear",
        refine: bool = True,
        cem: bool = cem_default,
        in_channels: int = 3,
        encoder_weights: str | None = None,
        encoder_kwargs: dict[str, Any] | None = None,
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

    title = LIGHTWEIGHT_ENCODERS[key][2] + (" + CEM [ThunderNet §3.2]" if cem_default else "")
    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"{title} encoder + CarNet's UFPB decoder [CarNet §III-C]."
    return builder


def _lraspp_builder(name: str, key: str, cem_default: bool) -> Callable[..., CrackSegmenter]:
    lraspp_kwargs = LRASPP_ENCODER_KWARGS.get(key, {})

    def builder(
        *,
        inter_channels: int = 128,
        cem: bool = cem_default,
        in_channels: int = 3,
        encoder_weights: str | None = None,
        encoder_kwargs: dict[str, Any] | None = None,
    ) -> CrackSegmenter:
        enc = build_encoder(
            key,
            cem=cem,
            in_channels=in_channels,
            encoder_weights=encoder_weights,
            encoder_kwargs={**lraspp_kwargs, **(encoder_kwargs or {})},
        )
        return CrackSegmenter(enc, LRASPPDecoder(enc.out_channels, enc.out_strides, inter_channels))

    title = LIGHTWEIGHT_ENCODERS[key][2] + (" + CEM [ThunderNet §3.2]" if cem_default else "")
    dilated = " (dilated, output stride 16)" if lraspp_kwargs.get("dilated") else ""
    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"{title} encoder{dilated} + Lite R-ASPP head [MobileNetV3 §6.2]."
    return builder


for _key in LIGHTWEIGHT_ENCODERS:
    register_model(f"ufpb_{_key}")(_ufpb_builder(f"ufpb_{_key}", _key, False))
    register_model(f"lraspp_{_key}")(_lraspp_builder(f"lraspp_{_key}", _key, False))
register_model("ufpb_snet146_cem")(_ufpb_builder("ufpb_snet146_cem", "snet146", True))
register_model("lraspp_snet146_cem")(_lraspp_builder("lraspp_snet146_cem", "snet146", True))
