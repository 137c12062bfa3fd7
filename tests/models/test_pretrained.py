"""Shipped pretrained weights: registry, metadata, model card, and that they find cracks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import crackseg
from crackseg.cli import main
from crackseg.models import pretrained
from crackseg.models.pretrained import get_weights, list_pretrained
from crackseg.models.weights_io import load_model

TINY = {"widths": [8, 16, 16, 32], "blocks": [0, 1, 1, 1]}


@pytest.fixture()
def fake_weights(tmp_path, monkeypatch):
    """A weights folder with one tiny set, to test the registry without the shipped file."""
    torch.manual_seed(0)
    model = crackseg.create_model("carnet", **TINY)
    tensors = {k: v.half() for k, v in model.state_dict().items()}
    save_file(tensors, str(tmp_path / "tiny_test.safetensors"), metadata={
        "format": "crackseg", "model": "carnet", "model_kwargs": json.dumps(TINY),
        "threshold": "0.4"})  # fmt: skip
    info = {"name": "tiny_test", "model": "carnet", "model_kwargs": TINY, "threshold": 0.4,
            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "summary": "test",
            "params": 1, "metrics": {"deepcrack": {"ODS_2px": 0.5}}}  # fmt: skip
    (tmp_path / "tiny_test.json").write_text(json.dumps(info))
    (tmp_path / "tiny_test.md").write_text("# card of tiny_test\n")
    (tmp_path / "orphan.json").write_text(json.dumps({**info, "name": "orphan"}))  # no tensors
    monkeypatch.setattr(pretrained, "weights_dir", lambda: tmp_path)
    monkeypatch.setitem(pretrained.DEFAULT_WEIGHTS, "carnet", "tiny_test")
    return model


def test_registry_lists_loads_and_refuses(fake_weights):
    assert [w.name for w in list_pretrained()] == ["tiny_test"]  # orphan json without tensors
    m = crackseg.create_model("carnet", weights="default")
    assert not m.training
    for k, v in m.state_dict().items():
        ref = fake_weights.state_dict()[k]
        assert v.dtype == ref.dtype  # fp16 storage comes back as fp32
        torch.testing.assert_close(v, ref.half().to(ref.dtype))
    with pytest.raises(KeyError, match="no pretrained weights named 'nope'"):
        get_weights("nope")
    with pytest.raises(KeyError, match="no default pretrained weights"):
        crackseg.create_model("carnet_hed", weights="default")
    with pytest.raises(ValueError, match="fix the architecture"):
        crackseg.create_model("carnet", weights="tiny_test", widths=(16, 16, 16, 16))


def test_shipped_file_reads_as_a_checkpoint_and_predictor(fake_weights):
    model, meta = load_model(get_weights("tiny_test").file)
    assert meta["model"] == "carnet"
    p = crackseg.Predictor.from_pretrained(backend="torch", precision="fp32")
    assert p.threshold == 0.4 and p.name == "tiny_test"


def test_cli_lists_pretrained_and_prints_the_card(fake_weights, capsys):
    assert main(["models", "--pretrained"]) == 0
    assert "tiny_test" in capsys.readouterr().out
    assert main(["models", "--card", "tiny_test"]) == 0
    assert "# card of tiny_test" in capsys.readouterr().out


# ------------------------------------------------------------------ the real shipped weights
shipped = pytest.mark.skipif(
    not list_pretrained(), reason="no pretrained weights shipped in this checkout"
)


@shipped
def test_default_weights_have_a_card_with_data_terms_and_metrics():
    w = get_weights("default")
    card = w.card()
    for needed in ("DeepCrack", "CRACK500", "Cross-dataset", "threshold", "cite"):
        assert needed.lower() in card.lower(), needed
    assert 0.05 < w.threshold < 0.99  # a validation ODS threshold, not a default 0.5 or 1
    assert w.metrics["deepcrack"]["ODS_2px"] > 0.85  # a floor: broken weights score far lower
    assert w.params == sum(p.numel() for p in w.load().parameters())


@shipped
def test_default_weights_find_a_synthetic_crack():
    """Plausibility on an image no weights have seen: a synthetic crack on pavement."""
    from crackseg.data.synth import generate

    image, mask = generate(seed=12345, size=384, condition="sunny")
    result = crackseg.Predictor.from_pretrained(backend="torch", precision="fp32").predict(image)
    found = result.mask
    # within 2 px tolerance, most of the crack is found and most of what is found is crack
    from scipy import ndimage

    near_gt = ndimage.binary_dilation(mask, iterations=2)
    near_pred = ndimage.binary_dilation(found, iterations=2)
    recall = (mask & near_pred).sum() / mask.sum()
    precision = (found & near_gt).sum() / max(1, found.sum())
    assert recall > 0.5 and precision > 0.5, (recall, precision)
    assert np.isfinite(result.levels).all()


@shipped
def test_shipped_weights_load_strictly_and_give_the_recorded_logits():
    """The shipped CarNet, loaded with strict key matching, gives the logits recorded before the
    models were split into encoder and decoder rooms (any change to the architecture, the
    parameter names or the padding moves them)."""
    model = crackseg.create_model("carnet", weights="carnet_general")  # the recorded weights
    model.load_state_dict(get_weights("carnet_general").state_dict(), strict=True)
    torch.manual_seed(0)
    with torch.no_grad():
        y = model(torch.randn(1, 3, 97, 131))
    # recorded with the code from before the split (commit 2aae590) on these weights
    recorded = torch.tensor([
        [-0.489265, -1.886444, -0.655085, -1.371017, -0.079110],
        [0.708222, -2.546360, -2.739722, -1.556537, 0.095759],
        [0.176368, -1.103357, -2.708398, -0.923425, -1.250269],
        [-2.541330, -2.619332, -1.704007, -0.393189, 0.112168],
    ])  # fmt: skip
    torch.testing.assert_close(y[0, 0, ::32, ::32], recorded, rtol=0, atol=1e-3)
    assert y.mean().item() == pytest.approx(-1.700199, abs=1e-3)
