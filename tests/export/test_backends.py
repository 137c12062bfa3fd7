"""The shipped CarNet exported and predicted through onnxruntime and TorchScript: the same maps
as the PyTorch backend, the same Predictor, and one-line errors for files that are not models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from crackseg.cli import main
from crackseg.inference import Predictor
from crackseg.inference.backends import ExportedModelError
from crackseg.models.pretrained import get_weights

TILING = dict(tile_size=256, overlap=32)  # a 300 x 420 photo is cut into 2 x 2 blended tiles


@pytest.fixture(scope="module")
def torch_levels(photo):
    predictor = Predictor.from_pretrained(
        backend="torch", precision="fp32", channels_last=False, **TILING
    )
    levels = predictor.predict_levels(photo[0])
    assert levels.max() > 200 and (levels >= 128).mean() > 0.002  # cracks found: a real check
    return levels


@pytest.fixture(scope="module")
def exported(shipped_onnx, shipped_torchscript):
    return {"onnxruntime": shipped_onnx.path, "torchscript": shipped_torchscript.path}


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_shipped_weights_export_with_their_metadata(shipped_onnx, shipped_torchscript, fmt):
    result = {"onnx": shipped_onnx, "torchscript": shipped_torchscript}[fmt]
    weights = get_weights()
    assert len(result.checks) == 4 and 0 <= result.max_abs_diff <= 1e-4
    meta = result.metadata
    assert meta.card == weights.name == meta.name and meta.model == "carnet"
    assert meta.threshold == weights.threshold  # two ways to name the shipped weights:
    assert (
        meta.source == {"onnx": "pretrained:default", "torchscript": "pretrained:carnet_field"}[fmt]
    )
    assert meta.mean == weights.mean and meta.std == weights.std and meta.format == fmt


@pytest.mark.parametrize("backend", ["onnxruntime", "torchscript"])
def test_predictor_on_an_exported_file_matches_the_torch_backend(
    exported, photo, torch_levels, backend
):
    predictor = Predictor.from_exported(exported[backend], threads=2, trust=True, **TILING)
    assert predictor.describe()["backend"] == backend
    assert predictor.threshold == get_weights().threshold and predictor.name == get_weights().name
    assert predictor.size_divisor == 16
    levels = predictor.predict_levels(photo[0])
    assert levels.shape == torch_levels.shape
    assert np.abs(levels.astype(int) - torch_levels).max() <= 1


@pytest.mark.parametrize(
    "backend,flag",
    [("onnxruntime", []), ("torchscript", ["--backend", "torchscript", "--trust-checkpoint"])],
)
def test_crackseg_predict_runs_exported_files(
    exported, photo, torch_levels, tmp_path, backend, flag
):
    out = tmp_path / "out"
    rc = main(["predict", str(photo[1]), "--checkpoint", str(exported[backend]), *flag,
               "--threads", "1", "--out", str(out), "--quiet", "--no-report",
               "--tile-size", "256", "--overlap", "32"])  # fmt: skip
    assert rc == 0
    record = json.loads((out / "predictions.json").read_text())
    assert record["predictor"]["backend"] == backend and record["predictor"]["threads"] == 1
    assert record["threshold"] == get_weights().threshold
    levels = np.asarray(Image.open(out / "road_prob.png"))
    assert np.abs(levels.astype(int) - torch_levels).max() <= 1


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("crackseg predict: error: ")
    return err


def test_an_onnx_file_that_is_not_onnx_is_a_one_line_error(photo, tmp_path, capsys):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    err = _one_line_error(capsys, ["predict", str(photo[1]), "--checkpoint", str(bad),
                                   "--out", str(tmp_path / "o")])  # fmt: skip
    assert str(bad) in err and "not an ONNX model" in err and "crackseg export" in err
    with pytest.raises(ExportedModelError, match="not an ONNX model"):
        Predictor.from_exported(bad)
    with pytest.raises(ExportedModelError, match="not a TorchScript model"):
        Predictor.from_exported(bad, backend="torchscript", trust=True)


def test_an_onnx_model_without_crackseg_metadata_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, "h", "w"])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    path = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ExportedModelError, match="holds no crackseg metadata"):
        Predictor.from_exported(path)


def test_backend_and_checkpoint_that_do_not_fit_are_one_line_errors(exported, photo, capsys):
    onnx_file = str(exported["onnxruntime"])
    err = _one_line_error(capsys, ["predict", str(photo[1]), "--checkpoint", onnx_file,
                                   "--backend", "torch"])  # fmt: skip
    assert "--backend onnxruntime" in err
    err = _one_line_error(capsys, ["predict", str(photo[1]), "--backend", "torchscript"])
    assert "--checkpoint" in err  # the shipped model has graphs for onnxruntime, not a .pt
    err = _one_line_error(capsys, ["predict", str(photo[1]), "--checkpoint", "missing.onnx"])
    assert "missing.onnx does not exist" in err


def test_crackseg_evaluate_scores_an_exported_file_like_the_model(exported, tmp_path, capsys):
    from crackseg.data.synth import write_dataset

    data = write_dataset(tmp_path / "synth", n=3, size=(160, 224), seed=3)
    spec = f"folder:{data / 'images'}:{data / 'masks'}"
    scores = {}
    for name, ckpt in (("torch", "pretrained:default"), ("onnx", exported["onnxruntime"])):
        out = tmp_path / name
        argv = ["evaluate", "--checkpoint", str(ckpt), "--data", spec, "--out", str(out)]
        assert main(argv) == 0
        scores[name] = json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    assert scores["onnx"]["predictor"]["backend"] == "onnxruntime"
    assert scores["onnx"]["model"] == get_weights().name and scores["onnx"]["ODS"] > 0.3
    assert abs(scores["onnx"]["ODS"] - scores["torch"]["ODS"]) < 2e-3
    argv = ["evaluate", "--checkpoint", str(exported["onnxruntime"]), "--data", spec,
            "--precision", "bf16"]  # fmt: skip
    assert main(argv) == 2
    assert "runs in the precision it was exported in" in capsys.readouterr().err
