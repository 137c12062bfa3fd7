"""Every registered model: odd sizes, output shape, finite values, gradients everywhere,
tracing; and CarNet's own facts."""

import hashlib
import warnings

import pytest
import torch
import torch.nn as nn

import crackseg
from crackseg.models.blocks import DecomposedConvBlock, DownsamplingBlock, learned_upsample
from crackseg.models.contract import CrackModel, PadCropModel
from crackseg.models.summary import count_conv_layers, count_flops, count_params, model_facts

ALL = crackseg.list_models()


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize(
    "shape", [(1, 3, 97, 131), pytest.param((2, 3, 384, 544), marks=pytest.mark.slow)]
)
def test_forward_backward_any_size(name, shape):
    torch.manual_seed(0)
    model = crackseg.create_model(name)
    model.train()
    x = torch.randn(*shape)
    # Train the way the engine does (engine.train.training_loss): models with auxiliary outputs
    # are asked for them, so the auxiliary heads must receive gradients too.
    if model.supports_aux:
        y, aux = model(x, return_aux=True)
    else:
        y, aux = model(x), []
    for out in (y, *aux):
        assert out.shape == (shape[0], 1, shape[2], shape[3])
        assert torch.isfinite(out).all()
    sum(out.float().pow(2).mean() for out in (y, *aux)).backward()
    missing = [
        n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not missing, f"parameters without gradient: {missing[:5]}"


@pytest.mark.parametrize("name", ALL)
def test_every_model_follows_the_contract(name):
    """crackseg.models.contract: size_divisor, supports_aux, forward(x, return_aux)."""
    model = crackseg.create_model(name).eval()
    assert isinstance(model, CrackModel) and isinstance(model, PadCropModel)
    assert isinstance(model.size_divisor, int) and model.size_divisor >= 1
    x = torch.randn(1, 3, 2 * model.size_divisor + 3, model.size_divisor + 5)  # not multiples
    with torch.no_grad():
        plain = model(x)
        out = model(x, return_aux=True)
    if model.supports_aux:
        logits, sides = out
        assert sides and all(s.shape == plain.shape for s in sides)
    else:
        logits = out  # return_aux is accepted and ignored
    assert plain.shape == (1, 1, *x.shape[-2:])
    torch.testing.assert_close(logits, plain)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        model(x[0])


@pytest.mark.parametrize("name", ALL)
def test_eval_mode_is_deterministic_and_batch_independent(name):
    model = crackseg.create_model(name).eval()
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        both = model(x)
        one = model(x[:1])
    torch.testing.assert_close(both[:1], one, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ALL)
def test_traces_at_one_size_and_runs_at_another(name):
    """``torch.jit.trace`` at 64x64 (no padding) must pad and crop like eager at 97x131."""
    torch.manual_seed(0)
    model = crackseg.create_model(name).eval()
    x = torch.randn(1, 3, 97, 131)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation and tracer warnings
        traced = torch.jit.trace(model, torch.randn(1, 3, 64, 64), check_trace=False)
        torch.testing.assert_close(traced(x), model(x), rtol=1e-4, atol=1e-4)


#: ``sha256`` of the ``"key shape"`` lines of each pre-existing model's state dict, recorded
#: before the encoders and decoders moved into their own rooms: shipped and user checkpoints
#: load only while these stay the same.
STATE_DICT_KEYS = {
    "carnet": (244, "5edfdf4dea209f3f0361e2f5ce74e03eff475027135751a02ca9d5baddd443c5"),
    "carnet_resnet34": (260, "c78d87ba569eba0311b914f3a62e6823a5fe1270035aebc038e551e880fbfeda"),
    "carnet_hed": (222, "d1c976f2a1e0b32be3dda8444dab174bb673fca15535e8af038269fb829af7b3"),
    "carnet_deeplabv3plus": (
        256,
        "b25479ecf39755e79e9fb9afe5ed7f787cb173daba7c87e832ec674dcf2def0d",
    ),
}


@pytest.mark.parametrize("name", sorted(STATE_DICT_KEYS))
def test_state_dict_keys_and_shapes_unchanged(name):
    with torch.device("meta"):
        sd = crackseg.create_model(name).state_dict()
    text = "\n".join(f"{k} {tuple(v.shape)}" for k, v in sd.items())
    assert (len(sd), hashlib.sha256(text.encode()).hexdigest()) == STATE_DICT_KEYS[name]


def test_registry_errors():
    with pytest.raises(KeyError) as e:
        crackseg.create_model("carnett")
    assert "carnet_resnet34" in str(e.value) and "Did you mean 'carnet'" in str(e.value)
    from crackseg.models import register_model

    with pytest.raises(ValueError, match="already registered"):
        register_model("carnet")(lambda: nn.Identity())
    assert {"carnet", "carnet_resnet34", "carnet_hed", "carnet_deeplabv3plus"} <= set(ALL)
    assert crackseg.list_models("carnet_h*") == ["carnet_hed"]


def test_carnet_stages_strides_and_conv_count():
    model = crackseg.create_model("carnet")
    enc = model.encoder
    assert enc.out_strides == [2, 4, 8, 16]
    assert enc.out_channels == [16, 64, 128, 256]
    # olive shape: DB only, then DB + 7 / 6 / 2 residual blocks
    assert [len(s) - 1 for s in enc.stages] == [0, 7, 6, 2]
    assert count_conv_layers(enc) == 34
    feats = enc(torch.zeros(1, 3, 64, 96))
    assert [tuple(f.shape[-2:]) for f in feats] == [(32, 48), (16, 24), (8, 12), (4, 6)]


def test_carnet_parameter_count_regression():
    # 4.89 M in the paper's CarNet34 with 3x3 deconvolutions; ours use kernel 2x stride in the
    # UFPB (no bias-only rows), +63,488 weights. Any change to the architecture moves this number.
    assert count_params(crackseg.create_model("carnet")) == 4_953_233
    facts = model_facts(crackseg.create_model("carnet"), "carnet", 512, 512)
    assert facts.macs == pytest.approx(18.96e9, rel=0.01)  # SPEC §2: about 18.9 G MACs


def test_widths_and_blocks_are_arguments():
    m = crackseg.create_model("carnet", widths=(8, 16, 32, 64), blocks=(0, 3, 4, 6))
    assert [len(s) - 1 for s in m.encoder.stages] == [0, 3, 4, 6]
    assert m.encoder.out_channels == [8, 16, 32, 64]
    assert m(torch.randn(1, 3, 40, 40)).shape == (1, 1, 40, 40)
    with pytest.raises(ValueError, match="differ in length"):
        crackseg.create_model("carnet", widths=(8, 16), blocks=(0, 1, 2))


def test_resnet34_ablation_layout():
    m = crackseg.create_model("carnet_resnet34")
    blocks = [
        len(m.encoder.stages[i][-1]) if i == 1 else len(m.encoder.stages[i]) for i in range(1, 5)
    ]
    assert blocks == [3, 4, 6, 3]
    assert m.encoder.out_strides == [2, 4, 8, 16, 32]
    assert m.encoder.stages[0][0].kernel_size == (7, 7)


def test_hed_deep_supervision_outputs():
    m = crackseg.create_model("carnet_hed").train()
    fused, sides = m(torch.randn(1, 3, 50, 70), return_aux=True)
    assert fused.shape == (1, 1, 50, 70)
    assert len(sides) == 4 and all(s.shape == (1, 1, 50, 70) for s in sides)
    assert m(torch.randn(1, 3, 50, 70)).shape == (1, 1, 50, 70)


def test_downsampling_block_concatenates_conv_and_pool():
    db = DownsamplingBlock(16, 64)
    assert db.conv.out_channels == 48 and db.pool is not None
    assert db(torch.randn(2, 16, 8, 10)).shape == (2, 64, 4, 5)
    narrow = DownsamplingBlock(64, 32)  # out <= in: strided conv alone
    assert narrow.pool is None and narrow(torch.randn(1, 64, 8, 8)).shape == (1, 32, 4, 4)


def test_dcb_is_factorised_and_refinement_keeps_logits_signed():
    dcb = DecomposedConvBlock(1, final_activation=False)
    kernels = [m.kernel_size for m in dcb.modules() if isinstance(m, nn.Conv2d)]
    assert kernels == [(3, 1), (1, 3), (3, 1), (1, 3)]
    assert not any(isinstance(m, nn.BatchNorm2d | nn.ReLU) for m in dcb.out.modules())
    with_act = DecomposedConvBlock(8)
    assert (with_act.eval()(torch.randn(1, 8, 8, 8)) >= 0).all()  # ends with BN + ReLU
    dec = crackseg.create_model("carnet").decoder.eval()
    x = torch.randn(1, 1, 16, 16) * 5
    y = x + dec.refine(x)  # what the decoder computes after upsampling
    assert (y < 0).any() and (y > 0).any()


def test_learned_upsample_covers_every_output_pixel():
    # The authors' 3x3 stride-4 deconvolution leaves rows fed only by its bias; ours does not.
    x = torch.ones(1, 1, 4, 4, requires_grad=True)
    ours = learned_upsample(1, 4)
    y = ours(x)
    assert y.shape == (1, 1, 16, 16)
    with torch.no_grad():
        ours.weight.fill_(1.0)
    jac = torch.autograd.functional.jacobian(lambda t: ours(t), x).reshape(256, 16)
    assert (jac.abs().sum(1) > 0).all()
    theirs = nn.ConvTranspose2d(1, 1, 3, stride=4, padding=0, output_padding=1)
    with torch.no_grad():
        theirs.weight.fill_(1.0)
    jac3 = torch.autograd.functional.jacobian(lambda t: theirs(t), x).reshape(-1, 16)
    assert (jac3.abs().sum(1) == 0).any()  # bias-only outputs exist


@pytest.mark.parametrize(
    "k,stride,pad,cin,cout,h,w,bias",
    [
        (3, 1, 1, 3, 16, 32, 40, True),
        (3, 2, 1, 16, 48, 64, 64, False),
        (1, 1, 0, 64, 32, 17, 23, True),
        (7, 2, 3, 3, 64, 31, 45, False),
    ],
)
def test_counter_matches_closed_form_for_a_plain_conv(k, stride, pad, cin, cout, h, w, bias):
    conv = nn.Conv2d(cin, cout, k, stride, pad, bias=bias)
    hout = (h + 2 * pad - k) // stride + 1
    wout = (w + 2 * pad - k) // stride + 1
    assert count_params(conv) == k * k * cin * cout + (cout if bias else 0)
    assert count_flops(conv, (1, cin, h, w)) == 2 * k * k * cin * cout * hout * wout


def test_refinement_chain_starts_with_no_dead_relu():
    """The 1-channel DCB after upsampling is a conv-ReLU chain with no second channel to carry
    the gradient; with default init about one model in eight started with it dead."""
    from crackseg.models.decoders import UFPBDecoder

    for seed in range(40):
        torch.manual_seed(seed)
        refine = UFPBDecoder([8, 8, 8], [4, 8, 16], channels=8).refine.train()
        refine(torch.randn(1, 1, 32, 32) * 3).sum().backward()
        dead = [n for n, p in refine.named_parameters() if not p.grad.abs().sum() > 0]
        assert not dead, (seed, dead)


def test_the_torch_free_name_list_is_the_registry():
    """crackseg.list_models() answers without torch from models.MODEL_NAMES: it must not drift."""
    from crackseg import models

    assert list(models.MODEL_NAMES) == models.list_models()  # torch is here: the registry
