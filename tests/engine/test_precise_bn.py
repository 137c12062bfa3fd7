"""Precise BN: statistics are the plain batch average, training is untouched, and recalibrating a
finished run gives exactly the checkpoint a run with bn_recalib would have saved."""

import torch
from safetensors.torch import load_file
from torch import nn

from crackseg.cli import main
from crackseg.engine.precise_bn import recalibrate_batchnorm
from crackseg.engine.train import load_config, train

from .test_train import TINY


def test_statistics_are_the_plain_mean_over_batches_and_the_model_is_untouched():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Conv2d(4, 1, 1)
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batches = [torch.randn(2, 3, 8, 8) * (i + 1) + i for i in range(5)]
    out = recalibrate_batchnorm(model, batches)

    feats = [model[0](x).detach() for x in batches]
    mean = torch.stack([f.mean((0, 2, 3)) for f in feats]).mean(0)
    var = torch.stack([f.transpose(0, 1).reshape(4, -1).var(1, unbiased=True) for f in feats])
    assert torch.allclose(out[1].running_mean, mean, atol=1e-5)
    assert torch.allclose(out[1].running_var, var.mean(0), atol=1e-4)
    assert out[1].momentum == 0.1 and not out.training and not out[2].training
    for k, v in model.state_dict().items():  # the original keeps its weights and statistics
        assert torch.equal(v, before[k]), k
    for k in ("0.weight", "0.bias", "3.weight", "1.weight"):  # learned weights are copied as is
        assert torch.equal(out.state_dict()[k], before[k])


def test_model_without_batchnorm_and_empty_batches():
    m = nn.Conv2d(3, 1, 1)
    assert isinstance(recalibrate_batchnorm(m, []), nn.Conv2d)
    try:
        recalibrate_batchnorm(nn.Sequential(nn.BatchNorm2d(3)), [])
    except ValueError as e:
        assert "at least one batch" in str(e)
    else:
        raise AssertionError("no error for zero batches")


def test_recalibrating_a_finished_run_equals_training_with_bn_recalib(tmp_path, capsys):
    def run(out, n):
        cfg = load_config(None, [*TINY, "iterations=6", "seed=4", f"bn_recalib={n}"])
        cfg.out_dir = str(tmp_path / out)
        train(cfg)
        return tmp_path / out

    plain, precise = run("plain", 0), run("precise", 3)
    a = load_file(str(plain / "last.safetensors"))
    b = load_file(str(precise / "last.safetensors"))
    bn_keys = [k for k in a if k.endswith("running_mean")]
    assert bn_keys
    for k in a:  # training itself is untouched: every learned weight is identical
        if "running_" not in k and "num_batches" not in k:
            assert torch.equal(a[k], b[k]), k
    assert any(not torch.equal(a[k], b[k]) for k in bn_keys)

    assert main(["recalibrate", str(plain), "--batches", "3"]) == 0
    assert "original weights kept" in capsys.readouterr().out
    c = load_file(str(plain / "last.safetensors"))
    for k in b:
        assert torch.equal(b[k], c[k]), k
    raw = load_file(str(plain / "last_raw.safetensors"))
    for k in a:
        assert torch.equal(a[k], raw[k]), k
    # running it again starts from the kept original: same result, original untouched
    assert main(["recalibrate", str(plain), "--batches", "3"]) == 0
    d = load_file(str(plain / "last.safetensors"))
    assert all(torch.equal(c[k], d[k]) for k in c)


def test_recalibrate_names_a_missing_run(tmp_path, capsys):
    assert main(["recalibrate", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "last.safetensors does not exist" in err and "Traceback" not in err
