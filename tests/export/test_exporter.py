"""``crackseg export``: parity with PyTorch, dynamic shapes, metadata in the file, clear errors."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
import pytest
import torch

from crackseg.cli import main
from crackseg.export import export_model, verify_export
from crackseg.export import exporter as exporter_module
from crackseg.export.exporter import ExportError
from crackseg.inference.backends import load_exported, quiet_torchscript_deprecation

FORMATS = ["onnx", "torchscript"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_is_checked_on_random_and_real_inputs_at_two_sizes(tiny_exports, fmt):
    result = tiny_exports[fmt]
    assert result.path.is_file() and result.format == fmt
    kinds = sorted((c.input, c.size) for c in result.checks)
    assert kinds == [("random", (50, 77)), ("random", (64, 96)), ("real", (50, 77)),
                     ("real", (64, 96))]  # fmt: skip
    by_size = {(c.input, c.size): c.shape for c in result.checks}
    assert by_size["real", (50, 77)] == (1, 3, 64, 80)  # padded to 16 as the Predictor pads
    assert by_size["random", (64, 96)] == (2, 3, 64, 96)  # batch 2: the batch axis is dynamic
    assert all(0 <= c.max_abs_diff <= 1e-4 for c in result.checks)
    assert result.max_abs_diff == max(c.max_abs_diff for c in result.checks)


@pytest.mark.parametrize("fmt", FORMATS)
def test_exported_file_takes_sizes_and_batches_it_never_saw(tiny_exports, tiny_model, fmt):
    runtime = load_exported(tiny_exports[fmt].path, trust=True)
    x = np.random.default_rng(5).standard_normal((3, 3, 48, 112)).astype(np.float32)
    with torch.inference_mode():
        ref = tiny_model(torch.from_numpy(x)).numpy()
    got = runtime(x)
    assert got.shape == (3, 1, 48, 112)
    assert np.abs(got - ref).max() <= 1e-4


@pytest.mark.parametrize("fmt", FORMATS)
def test_metadata_travels_inside_the_file(tiny_exports, fmt):
    result = tiny_exports[fmt]
    path = result.path
    if fmt == "onnx":  # read with the onnx package, independently of crackseg's reader
        import onnx

        model = onnx.load(str(path))
        props = {p.key: p.value for p in model.metadata_props}
        dims = model.graph.input[0].type.tensor_type.shape.dim
        assert [bool(d.dim_param) for d in dims] == [True, False, True, True]  # N, 3, H, W
        raw = {k.split(".", 1)[1]: json.loads(v) for k, v in props.items() if "." in k}
    else:
        extra = {"crackseg.json": ""}
        with quiet_torchscript_deprecation():
            torch.jit.load(str(path), _extra_files=extra)
        raw = json.loads(extra["crackseg.json"])
    assert raw["model"] == "carnet" and raw["model_kwargs"] == {
        "widths": [8, 16, 16, 32],
        "blocks": [0, 1, 1, 1],
    }
    assert raw["size_divisor"] == 16 and raw["threshold"] == 0.5 and raw["format"] == fmt
    assert raw["mean"] == [0.485, 0.456, 0.406] and raw["std"] == [0.229, 0.224, 0.225]
    assert raw["name"] == "carnet (random init)" and raw["card"] == ""
    # and crackseg's own reader gives back exactly what was written
    assert load_exported(path, trust=True).metadata == result.metadata


@pytest.mark.parametrize("fmt", FORMATS)
def test_check_fails_for_a_file_that_does_not_match_the_model(tiny_exports, fmt):
    torch.manual_seed(123)
    other = exporter_module.resolve_source("carnet", {"widths": [8, 16, 16, 32],
                                                      "blocks": [0, 1, 1, 1]})[0]  # fmt: skip
    with pytest.raises(ExportError, match="differ from PyTorch's"):
        verify_export(tiny_exports[fmt].path, other, fmt, sizes=((64, 64),))


def test_a_file_failing_the_check_is_not_kept(tmp_path, monkeypatch):
    write = exporter_module.WRITERS["torchscript"]

    def write_perturbed(model, meta, path):  # the file is not the model that is checked
        import copy

        model = copy.deepcopy(model)
        with torch.no_grad():
            next(model.parameters()).add_(0.5)
        return write(model, meta, path)

    monkeypatch.setitem(exporter_module.WRITERS, "torchscript", write_perturbed)
    with pytest.raises(ExportError, match="not kept"):
        export_model("carnet", "torchscript", tmp_path / "bad.pt",
                     model_kwargs={"widths": [8, 16, 16, 32], "blocks": [0, 1, 1, 1]},
                     sizes=((64, 64),))  # fmt: skip
    assert os.listdir(tmp_path) == []  # neither bad.pt nor its temporary file


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("crackseg export: error: ")
    assert "Traceback" not in err
    return err


def test_unknown_format_is_a_one_line_error(tmp_path, capsys):
    err = _one_line_error(capsys, ["export", "--format", "tflite", "--out", str(tmp_path / "m")])
    assert "'tflite'" in err and "onnx, torchscript or openvino" in err
    err = _one_line_error(capsys, ["export", "--out", str(tmp_path / "model.bin")])
    assert "--format" in err  # no format and a suffix that names none
    err = _one_line_error(capsys, ["export", "--format", "torchscript", "--out",
                                   str(tmp_path / "m.onnx")])  # fmt: skip
    assert "m.pt" in err  # the suffix would make crackseg predict pick onnxruntime
    assert os.listdir(tmp_path) == []


def test_missing_output_folder_is_a_one_line_error(tmp_path, capsys):
    out = tmp_path / "no" / "such" / "m.onnx"
    err = _one_line_error(capsys, ["export", "--out", str(out)])
    assert str(out.parent) in err and "does not exist" in err and "mkdir -p" in err
    err = _one_line_error(capsys, ["export", "--format", "onnx", "--out", str(tmp_path)])
    assert "is a folder" in err


def _refuses_writes(folder: str) -> bool:
    try:
        fd, probe = tempfile.mkstemp(dir=folder)
    except OSError:
        return True
    os.close(fd)
    os.unlink(probe)
    return False


@pytest.fixture()
def unwritable_folder(tmp_path):
    """A folder this process cannot create files in (chmod; as root, a read-only /sys)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        for folder in (str(locked), "/sys"):
            if os.path.isdir(folder) and _refuses_writes(folder):
                yield folder
                return
        pytest.skip("no folder here refuses writes (root, and /sys is writable)")
    finally:
        locked.chmod(0o700)


def test_unwritable_output_folder_is_a_one_line_error(unwritable_folder, capsys):
    out = os.path.join(unwritable_folder, "m.onnx")
    err = _one_line_error(capsys, ["export", "--out", out])
    assert "cannot write to folder" in err and str(unwritable_folder) in err


def test_unknown_model_or_checkpoint_is_a_one_line_error(tmp_path, capsys):
    err = _one_line_error(capsys, ["export", "carnett", "--out", str(tmp_path / "m.onnx")])
    assert "'carnett'" in err and "crackseg models" in err
    err = _one_line_error(capsys, ["export", "pretrained:nope", "--out", str(tmp_path / "m.pt")])
    assert "nope" in err and "carnet_general" in err


def test_a_checkpoint_exports_with_its_own_metadata(tmp_path, tiny_model, capsys):
    from crackseg.models.weights_io import save_weights

    ckpt = tmp_path / "run" / "best.safetensors"
    ckpt.parent.mkdir()
    kwargs = {"widths": [8, 16, 16, 32], "blocks": [0, 1, 1, 1]}
    extra = {"threshold": 0.3, "preprocessing": {"mean": [0.5] * 3, "std": [0.25] * 3}}
    save_weights(ckpt, tiny_model, "carnet", kwargs, extra)
    out = tmp_path / "mine.pt"
    # a run folder (its best checkpoint); --json: the report of the default check, for scripts
    assert main(["export", str(ckpt.parent), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "torchscript" and len(report["checks"]) == 4
    assert {tuple(c["size"]) for c in report["checks"]} == {(224, 320), (250, 333)}
    shapes = {tuple(c["shape"]) for c in report["checks"]}
    assert shapes == {(2, 3, 224, 320), (1, 3, 224, 320), (2, 3, 256, 336), (1, 3, 256, 336)}
    assert 0 <= report["max_abs_diff"] <= 1e-4
    meta = load_exported(out, trust=True).metadata
    assert meta.threshold == 0.3 and meta.mean == (0.5,) * 3 and meta.std == (0.25,) * 3
    assert meta.model == "carnet" and meta.model_kwargs == kwargs and meta.format == "torchscript"
    assert meta.name == str(ckpt.parent) and meta.card == ""


def test_export_prints_every_parity_check(tiny_exports, monkeypatch, capsys):
    result = tiny_exports["onnx"]
    monkeypatch.setattr(exporter_module, "export_model", lambda *args, **kwargs: result)
    assert main(["export", "carnet", "--out", str(result.path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    head = "exported carnet (carnet (random init), model carnet) -> "
    assert lines[0].startswith(head + str(result.path)) and "parity with PyTorch" in lines[1]
    assert len(lines) == 2 + len(result.checks)
    padded = [line for line in lines if "50x77 (padded to 64x80)" in line]
    assert len(padded) == 2 and any("random batch 2" in line for line in padded)
