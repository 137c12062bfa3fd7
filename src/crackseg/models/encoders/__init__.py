"""Encoders: image batch in, a list of feature maps out.

**The encoder contract** (every encoder here follows it, and every decoder relies on nothing
else):

- ``forward(x)`` takes an ``(N, C, H, W)`` batch whose ``H`` and ``W`` are multiples of
  ``size_divisor`` and returns a ``list`` of feature maps, **finest first**;
- ``out_channels: list[int]``: the channels of each map;
- ``out_strides: list[int]``: the output stride of each map (input size / map size),
  non-decreasing; a dilated encoder repeats its last stride (``[2, 4, 8, 16, 16]``);
- ``size_divisor: int`` (optional): the multiple ``H`` and ``W`` must be; default
  ``max(out_strides)``. :class:`~crackseg.models.segmenter.CrackSegmenter` pads to it.

Decoders choose their inputs **by stride** ("the stride-4 map", "the deepest map"), never by
list position, so an encoder may offer more maps than a decoder uses. The lightweight encoders
offer the last layer at each of the strides 2, 4, 8, 16 and 32 (timm's ``features_only``
convention).

Rooms: :mod:`.olive` (CarNet's encoder), :mod:`.resnet` (the ResNet34 ablation),
:mod:`.adapter` (any torchvision / timm feature extractor as an encoder, and loading local
ImageNet weights), :mod:`.lightweight` (MobileNetV1/V2/V3, ShuffleNetV2, EfficientNet-B0 taps),
:mod:`.snet` (ThunderNet's SNet backbone and its context enhancement neck).
"""

from .adapter import FeatureExtractorEncoder, load_encoder_weights, read_state_dict
from .base import StagedEncoder
from .lightweight import timm_encoder, torchvision_encoder
from .olive import OliveEncoder
from .resnet import ResNetEncoder
from .snet import ContextEnhancement, snet_encoder

__all__ = [
    "ContextEnhancement",
    "FeatureExtractorEncoder",
    "OliveEncoder",
    "ResNetEncoder",
    "StagedEncoder",
    "load_encoder_weights",
    "read_state_dict",
    "snet_encoder",
    "timm_encoder",
    "torchvision_encoder",
]
