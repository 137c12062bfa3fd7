"""The model zoo's rooms: encoder contract and taps, decoders choosing maps by stride, local
encoder weights, ThunderNet's SNet and CEM, the LR-ASPP head, the CarNet family table."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
import torchvision
from safetensors.torch import save_file

import crackseg
from crackseg.models.carnet import CARNET_VARIANTS
from crackseg.models.decoders import (
    DeepLabV3PlusDecoder,
    HEDDecoder,
    LRASPPDecoder,
    UFPBDecoder,
    stride_index,
)
from crackseg.models.encoders import ContextEnhancement, snet_encoder, torchvision_encoder
from crackseg.models.encoders.snet import SNET_WIDTHS, snet
from crackseg.models.lightweight_zoo import LIGHTWEIGHT_ENCODERS
from crackseg.models.segmenter import CrackSegmenter
from crackseg.models.summary import count_params

LIGHT = sorted(LIGHTWEIGHT_ENCODERS)


def test_every_lightweight_encoder_is_registered_under_both_heads():
    names = set(crackseg.list_models())
    for key in LIGHT:
        assert {f"ufpb_{key}", f"lraspp_{key}"} <= names
    assert {"ufpb_snet146_cem", "lraspp_snet146_cem", "carnet_s", "carnet_xs"} <= names


@pytest.mark.parametrize("key", LIGHT)
def test_lightweight_encoders_follow_the_contract(key):
    """Five maps at strides 2-32, finest first, with the channels the encoder says."""
    model = crackseg.create_model(f"ufpb_{key}")
    enc = model.encoder
    assert enc.out_strides == [2, 4, 8, 16, 32]
    assert model.size_divisor == 32
    with torch.no_grad():
        feats = enc.eval()(torch.zeros(1, 3, 64, 96))
    assert [f.shape[1] for f in feats] == enc.out_channels
    assert [(64 // f.shape[2], 96 // f.shape[3]) for f in feats] == [
        (s, s) for s in enc.out_strides
    ]


def test_lraspp_on_mobilenetv3_is_dilated_and_matches_torchvision_parameter_count():
    """Our LR-ASPP on MobileNetV3 is torchvision's ``lraspp_mobilenet_v3_*`` with one class."""
    ours = crackseg.create_model("lraspp_mobilenetv3_large")
    assert ours.encoder.out_strides == [2, 4, 8, 16, 16] and ours.size_divisor == 16
    ref = torchvision.models.segmentation.lraspp_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=1
    )
    assert count_params(ours) == count_params(ref)
    undilated = crackseg.create_model("lraspp_mobilenetv3_small", encoder_kwargs={"dilated": False})
    assert undilated.encoder.out_strides[-1] == 32


def test_encoder_weights_from_a_local_torchvision_file(tmp_path):
    """A torchvision classifier's state dict (safetensors) loads into the encoder by name; the
    classifier head in the file is ignored."""
    torch.manual_seed(1)
    src = torchvision.models.mobilenet_v3_small(weights=None)
    sd = {k: v.contiguous() for k, v in src.state_dict().items()}
    save_file(sd, str(tmp_path / "mbv3s.safetensors"))
    model = crackseg.create_model(
        "ufpb_mobilenetv3_small", encoder_weights=str(tmp_path / "mbv3s.safetensors")
    )
    enc_sd = model.encoder.body.state_dict()
    assert len(enc_sd) > 200 and set(enc_sd) < set(sd)  # everything but the classifier
    for k, v in enc_sd.items():
        assert torch.equal(v, sd[k]), k
    fresh = crackseg.create_model("ufpb_mobilenetv3_small").encoder.body.state_dict()
    assert not torch.equal(fresh["features.0.0.weight"], sd["features.0.0.weight"])


def test_encoder_weights_from_a_local_timm_file(tmp_path):
    """timm's ``features_only`` model keeps the classifier's names; torch.save format."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(2)
    sd = timm.create_model("mobilenetv1_100", pretrained=False).state_dict()
    torch.save({"state_dict": sd}, tmp_path / "mbv1.pth")  # a checkpoint holding one
    model = crackseg.create_model("lraspp_mobilenetv1", encoder_weights=str(tmp_path / "mbv1.pth"))
    enc_sd = model.encoder.body.state_dict()
    assert len(enc_sd) > 100
    for k, v in enc_sd.items():
        assert torch.equal(v, sd[k]), k


def test_encoder_weights_for_snet_and_resnet34_and_a_wrong_file(tmp_path):
    torch.manual_seed(3)
    sd = snet(49).state_dict()
    torch.save(sd, tmp_path / "snet49.pt")
    enc = snet_encoder(49, encoder_weights=tmp_path / "snet49.pt")
    for k, v in enc.body.state_dict().items():
        assert torch.equal(v, sd[k]), k
    rsd = torchvision.models.resnet34(weights=None).state_dict()
    torch.save(rsd, tmp_path / "r34.pt")
    m = crackseg.create_model("carnet_resnet34", encoder_weights=str(tmp_path / "r34.pt"))
    assert torch.equal(m.encoder.stages[0][0].weight, rsd["conv1.weight"])
    assert torch.equal(m.encoder.stages[4][2].conv2.weight, rsd["layer4.2.conv2.weight"])
    with pytest.raises(ValueError, match="encoder tensors are not in the file"):
        torchvision_encoder("mobilenet_v2", encoder_weights=tmp_path / "snet49.pt")
    with pytest.raises(FileNotFoundError):
        crackseg.create_model("ufpb_mobilenetv2", encoder_weights=str(tmp_path / "none.pt"))


def test_a_checkpoint_does_not_need_the_encoder_weights_file(tmp_path):
    """encoder_weights only initialises: a saved model loads after the ImageNet file is gone."""
    from crackseg.models.weights_io import load_model, save_weights

    src = tmp_path / "mbv3s.pt"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), src)
    kwargs = {"encoder_weights": str(src), "decoder_channels": 16}
    model = crackseg.create_model("ufpb_mobilenetv3_small", **kwargs)
    save_weights(tmp_path / "w.safetensors", model, "ufpb_mobilenetv3_small", kwargs)
    src.unlink()
    loaded, meta = load_model(tmp_path / "w.safetensors")
    assert json.loads(meta["model_kwargs"]) == {"decoder_channels": 16}
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k


@pytest.mark.parametrize("variant", sorted(SNET_WIDTHS))
def test_snet_is_shufflenetv2_with_5x5_depthwise(variant):
    """[ThunderNet §3.1, Table 1]: every depthwise conv 5x5, widths from the table, Conv5 only in
    SNet49."""
    enc = snet_encoder(variant)
    depthwise = [
        m for m in enc.modules() if isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1
    ]
    assert len(depthwise) == 4 + 8 + 4 + 3  # one per unit, two in each downsampling unit
    assert all(m.kernel_size == (5, 5) for m in depthwise)
    c1, c2, c3, c4, c5 = SNET_WIDTHS[variant]
    assert enc.out_channels == [c1, c1, c2, c3, c5 or c4]


def test_cem_neck_replaces_strides_16_and_32_by_one_stride_16_map():
    model = crackseg.create_model("lraspp_snet146_cem")
    enc = model.encoder
    assert isinstance(enc, ContextEnhancement)
    assert enc.out_strides == [2, 4, 8, 16] and enc.out_channels[-1] == 245
    assert model.size_divisor == 32  # the wrapped encoder still needs multiples of 32
    assert model(torch.randn(1, 3, 40, 72)).shape == (1, 1, 40, 72)
    with pytest.raises(ValueError, match="strides 16 and 32"):
        ContextEnhancement(crackseg.create_model("carnet").encoder)


class _FakeEncoder(nn.Module):
    """Maps of the given channels and strides (contract of crackseg.models.encoders)."""

    def __init__(self, channels, strides):
        super().__init__()
        self.out_channels, self.out_strides = list(channels), list(strides)
        self.proj = nn.ModuleList(nn.Conv2d(3, c, 1) for c in channels)

    def forward(self, x):
        return [p(x[..., ::s, ::s]) for p, s in zip(self.proj, self.out_strides, strict=True)]


def test_decoders_choose_maps_by_stride_not_position():
    """An extra stride-2 map in front changes nothing in the decoders that do not use it."""
    full = _FakeEncoder([8, 16, 24, 32, 40], [2, 4, 8, 16, 32])
    short = _FakeEncoder([16, 24, 32, 40], [4, 8, 16, 32])
    for dec_cls in (UFPBDecoder, DeepLabV3PlusDecoder, LRASPPDecoder):
        a = dec_cls(full.out_channels, full.out_strides)
        b = dec_cls(short.out_channels, short.out_strides)
        assert count_params(a) == count_params(b) > 0, dec_cls.__name__
    lr = LRASPPDecoder(full.out_channels, full.out_strides)
    assert (lr.low_index, lr.high_index) == (2, 4)
    model = CrackSegmenter(full, LRASPPDecoder(full.out_channels, full.out_strides))
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1, 64, 64)
    assert stride_index([2, 4, 8, 16, 16], 16) == 4  # dilated: the deepest of equal strides
    with pytest.raises(ValueError, match="needs a stride-4 map"):
        DeepLabV3PlusDecoder([16, 32], [8, 16])


def test_auxiliary_outputs_are_the_decoders_attribute():
    assert HEDDecoder.has_aux and not UFPBDecoder.has_aux and not LRASPPDecoder.has_aux
    for name, aux in [("carnet_hed", True), ("carnet", False), ("lraspp_mobilenetv2", False)]:
        assert crackseg.create_model(name).supports_aux is aux


def test_carnet_family_comes_from_one_table():
    for name, (widths, blocks) in CARNET_VARIANTS.items():
        enc = crackseg.create_model(name).encoder
        assert enc.out_channels == list(widths)
        assert [len(s) - 1 for s in enc.stages] == list(blocks)
    carnet, small, tiny = (count_params(crackseg.create_model(n)) for n in CARNET_VARIANTS)
    assert carnet > small > tiny
    assert crackseg.create_model("carnet_hed").encoder.out_channels == list(
        CARNET_VARIANTS["carnet"][0]
    )
