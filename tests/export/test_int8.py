"""``crackseg export --int8``: quantised files carry QDQ / int8 nodes and the crackseg metadata,
run through the same Predictor (onnxruntime and OpenVINO), agree with the fp32 maps, and bad
``--calib`` specs are one-line errors.

The int8 files are made from the session's fp32 ONNX exports (an ``.onnx`` source is quantised as
it is, no second export from PyTorch), calibrated on a few synthetic crack photos.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crackseg.cli import main
from crackseg.data.synth import generate
from crackseg.export import export_model
from crackseg.export.exporter import INT8_TOLERANCE, ExportError
from crackseg.export.quantize import CALIB_SIZE, calibration_set
from crackseg.inference import Predictor
from crackseg.inference.backends import load_exported

SIZES = ((64, 96), (50, 77))  # as conftest.SIZES: one multiple of 16, one not

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
HAS_NNCF = importlib.util.find_spec("nncf") is not None
needs_openvino = pytest.mark.skipif(
    not HAS_OPENVINO, reason="openvino is not installed (pip install 'crackseg[openvino]')"
)
needs_nncf = pytest.mark.skipif(
    not (HAS_OPENVINO and HAS_NNCF),
    reason="openvino and nncf are not installed (pip install 'crackseg[openvino]')",
)
DEEPCRACK = Path(__file__).resolve().parents[3] / "shared" / "data" / "deepcrack"
TILING = dict(tile_size=256, overlap=32)
CALIB = 4  # calibration images of the tests (synthetic, 512 x 512)


@pytest.fixture(scope="module")
def tiny_int8(tiny_exports, tmp_path_factory):
    """The tiny random-init CarNet's fp32 ONNX export, quantised by onnxruntime (u8s8)."""
    out = tmp_path_factory.mktemp("int8") / "tiny_int8.onnx"
    return export_model(tiny_exports["onnx"].path, "onnx", out, int8=True, calib_images=CALIB,
                        sizes=SIZES)  # fmt: skip


def test_int8_onnx_file_holds_qdq_nodes_int8_weights_and_the_metadata(tiny_int8, tiny_exports):
    import onnx

    model = onnx.load(str(tiny_int8.path))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    int8_weights = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 10  # every convolution's weights, per channel
    assert tiny_int8.path.stat().st_size < tiny_exports["onnx"].path.stat().st_size
    props = {p.key: p.value for p in model.metadata_props}
    assert (
        props["crackseg"] == "crackseg-export" and json.loads(props["crackseg.format_version"]) == 2
    )
    assert json.loads(props["crackseg.precision"]) == "int8"
    quant = json.loads(props["crackseg.quantization"])
    assert quant["runtime"] == "onnxruntime" and quant["scheme"].startswith("u8s8")
    assert quant["calibration"]["images"] == CALIB and "synthetic" in quant["calibration"]["source"]
    # everything else is the fp32 export's metadata, read back by the backend as written
    meta = load_exported(tiny_int8.path).metadata
    fp32 = tiny_exports["onnx"].metadata
    assert meta == tiny_int8.metadata and meta.precision == "int8"
    assert (meta.model, meta.model_kwargs, meta.mean, meta.std, meta.threshold) == (
        fp32.model, fp32.model_kwargs, fp32.mean, fp32.std, fp32.threshold
    )  # fmt: skip
    assert fp32.precision == "fp32" and fp32.to_dict()["format_version"] == 1  # fp32: layout 1


def test_int8_export_is_checked_against_the_fp32_maps(tiny_int8):
    assert tiny_int8.precision == "int8" and tiny_int8.tolerance == INT8_TOLERANCE
    assert [(c.input, c.size, c.shape[0]) for c in tiny_int8.checks] == [
        ("photos", SIZES[0], 3), ("photos", SIZES[1], 3)
    ]  # fmt: skip
    assert all(0 <= c.mask_flipped <= INT8_TOLERANCE for c in tiny_int8.checks)
    assert "mask pixels flipped" in tiny_int8.checks[0].line()
    report = tiny_int8.to_dict()
    assert report["precision"] == "int8" and report["mask_flipped"] == tiny_int8.mask_flipped


def _predict_cli(model, photo, out):
    """``crackseg predict PHOTO --checkpoint MODEL`` at the tests' tiling: (record, levels)."""
    rc = main(["predict", str(photo), "--checkpoint", str(model), "--threads", "1",
               "--out", str(out), "--quiet", "--no-report", "--tile-size", "256",
               "--overlap", "32"])  # fmt: skip
    assert rc == 0
    record = json.loads((out / "predictions.json").read_text())
    return record, np.asarray(Image.open(out / f"{Path(photo).stem}_prob.png"))


def test_crackseg_predict_runs_the_int8_file(tiny_int8, tiny_exports, photo, tmp_path):
    record, levels = _predict_cli(tiny_int8.path, photo[1], tmp_path / "out")
    assert record["predictor"]["backend"] == "onnxruntime"
    assert record["predictor"]["precision"] == "int8"
    fp32 = Predictor.from_exported(tiny_exports["onnx"].path, threads=1, **TILING)
    # the random-init model's map is nearly flat (levels 140..144): within a few levels
    assert np.abs(levels.astype(int) - fp32.predict_levels(photo[0])).max() <= 3


def test_shipped_carnet_int8_mask_agrees_with_pytorch_fp32(shipped_onnx, photo, tmp_path):
    """The real case: the shipped CarNet, quantised, against PyTorch's fp32 maps of a tiled
    crack photo. Tolerance: 99 % of the mask pixels agree (measured: 99.8-99.9 %)."""
    result = export_model(shipped_onnx.path, "onnx", tmp_path / "carnet_int8.onnx", int8=True,
                          calib_images=CALIB, sizes=SIZES)  # fmt: skip
    reference = Predictor.from_pretrained(
        backend="torch", precision="fp32", channels_last=False, **TILING
    )
    ref = reference.predict(photo[0])
    got = Predictor.from_exported(result.path, threads=1, **TILING).predict(photo[0])
    assert got.threshold == ref.threshold and ref.mask.mean() > 0.002  # cracks found
    assert (got.mask == ref.mask).mean() >= 0.99
    assert np.abs(got.levels.astype(int) - ref.levels).mean() <= 2


@needs_openvino
def test_openvino_backend_runs_fp32_onnx_and_ir_files(tiny_exports, tiny_model, photo, tmp_path):
    onnx_file = tiny_exports["onnx"].path
    xml = tmp_path / "tiny.xml"
    result = export_model(onnx_file, "openvino", xml, sizes=SIZES)  # converted as it is
    assert result.precision == "fp32" and result.max_abs_diff <= 1e-4
    assert sorted(os.listdir(tmp_path)) == ["tiny.bin", "tiny.xml"]  # no temporary left
    assert load_exported(xml).metadata.format == "openvino"
    fp32 = Predictor.from_exported(onnx_file, threads=1, **TILING).predict_levels(photo[0])
    for path, backend in ((xml, None), (onnx_file, "openvino")):
        predictor = Predictor.from_exported(path, backend=backend, threads=1, **TILING)
        assert predictor.describe()["backend"] == "openvino"
        assert predictor.describe()["precision"] == "fp32"
        assert np.abs(predictor.predict_levels(photo[0]).astype(int) - fp32).max() <= 1


@needs_nncf
def test_openvino_int8_export_loads_and_predicts(tiny_exports, photo, tmp_path):
    xml = tmp_path / "tiny_int8.xml"
    assert main(["export", str(tiny_exports["onnx"].path), "--format", "openvino", "--int8",
                 "--calib-images", str(CALIB), "--out", str(xml), "--json"]) == 0  # fmt: skip
    meta = load_exported(xml).metadata
    assert meta.precision == "int8" and meta.format == "openvino"
    assert meta.quantization["runtime"] == "openvino" and meta.quantization["nncf"]
    ir = xml.read_text()
    assert "FakeQuantize" in ir or "FakeConvert" in ir  # NNCF's int8 nodes
    record, levels = _predict_cli(xml, photo[1], tmp_path / "out")
    assert record["predictor"]["backend"] == "openvino"
    assert record["predictor"]["precision"] == "int8"
    fp32 = Predictor.from_exported(tiny_exports["onnx"].path, threads=1, **TILING)
    assert np.abs(levels.astype(int) - fp32.predict_levels(photo[0])).max() <= 3


# ---------------------------------------------------------------------------------------------
# calibration sets
# ---------------------------------------------------------------------------------------------
def test_synthetic_calibration_is_normalised_and_padded_like_prediction(tiny_exports):
    meta = tiny_exports["onnx"].metadata
    calib = calibration_set(None, 3, meta)
    assert [b.shape for b in calib.batches] == [(1, 3, CALIB_SIZE, CALIB_SIZE)] * 3
    assert all(b.dtype == np.float32 for b in calib.batches)
    assert -2.5 < float(np.mean(calib.batches[0])) < 2.5 and "synthetic" in calib.source


def test_a_folder_of_photos_calibrates_with_what_it_has(tiny_exports, tmp_path):
    for i, size in enumerate([(200, 300), (700, 90)]):
        Image.fromarray(generate(i, size, "rainy")[0]).save(tmp_path / f"p{i}.jpg")
    calib = calibration_set(str(tmp_path), 8, tiny_exports["onnx"].metadata)
    assert calib.describe()["images"] == 2 and calib.available == 2
    # whole when small, a 512-pixel crop when larger, padded to the size divisor (16)
    assert sorted(b.shape for b in calib.batches) == [(1, 3, 208, 304), (1, 3, 512, 96)]


@pytest.mark.skipif(not DEEPCRACK.is_dir(), reason=f"DeepCrack is not at {DEEPCRACK} (../shared)")
def test_training_photos_calibrate_from_the_train_split(tiny_exports):
    calib = calibration_set(f"deepcrack:{DEEPCRACK}", 3, tiny_exports["onnx"].metadata)
    assert len(calib.batches) == 3 and calib.available == 300
    assert calib.source.endswith("(train split)")
    assert all(b.shape[:2] == (1, 3) and max(b.shape[2:]) <= CALIB_SIZE for b in calib.batches)


# ---------------------------------------------------------------------------------------------
# one-line errors
# ---------------------------------------------------------------------------------------------
def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("crackseg export: error: "), err
    assert "Traceback" not in err
    return err


def test_bad_calib_specs_are_one_line_errors(tiny_exports, tmp_path, capsys):
    src = str(tiny_exports["onnx"].path)
    out = tmp_path / "out"
    out.mkdir()
    empty = tmp_path / "empty"
    empty.mkdir()
    base = ["export", src, "--int8", "--out", str(out / "m.onnx")]
    cases = {
        "no/such/folder": "not a folder of photos nor a dataset spec",
        f"deepcrack:{tmp_path / 'missing'}": "--calib deepcrack:",
        "kitti:/data": "unknown dataset kind 'kitti'",
        str(empty): "holds no images",
    }
    for spec, expected in cases.items():
        err = _one_line_error(capsys, [*base, "--calib", spec])
        assert expected in err, err
    err = _one_line_error(capsys, [*base, "--calib-images", "0"])
    assert "--calib-images must be at least 1" in err
    err = _one_line_error(capsys, [*base, "--calib", "synthetic", "--calib", str(tmp_path)])
    assert "cannot be mixed" in err
    assert os.listdir(out) == []  # nothing written, not even a temporary folder


def test_int8_options_that_do_not_fit_are_one_line_errors(tiny_exports, tmp_path, capsys):
    src = str(tiny_exports["onnx"].path)
    err = _one_line_error(capsys, ["export", "carnet", "--calib", "synthetic",
                                   "--out", str(tmp_path / "m.onnx")])  # fmt: skip
    assert "go with --int8" in err
    err = _one_line_error(capsys, ["export", "carnet", "--int8", "--out", str(tmp_path / "m.pt")])
    assert "--format onnx or --format openvino" in err
    err = _one_line_error(capsys, ["export", src, "--int8", "--int8-scheme", "s8s8", "--format",
                                   "openvino", "--out", str(tmp_path / "m.xml")])  # fmt: skip
    assert "NNCF" in err
    err = _one_line_error(capsys, ["export", src, "--format", "openvino",
                                   "--out", str(tmp_path / "m.ir")])  # fmt: skip
    assert "m.xml" in err
    err = _one_line_error(capsys, ["export", src, "--out", str(tmp_path / "again.onnx")])
    assert "--int8" in err and "--format openvino" in err
    assert os.listdir(tmp_path) == []


def test_an_int8_file_is_not_quantised_again(tiny_int8, tmp_path):
    with pytest.raises(ExportError, match="already int8"):
        export_model(tiny_int8.path, "onnx", tmp_path / "twice.onnx", int8=True)


def test_s8s8_scheme_is_recorded_in_the_file(tiny_exports, tmp_path):
    result = export_model(tiny_exports["onnx"].path, "onnx", tmp_path / "s8.onnx", int8=True,
                          calib_images=2, int8_scheme="s8s8", sizes=SIZES[:1])  # fmt: skip
    quant = load_exported(result.path).metadata.quantization
    assert quant["scheme"].startswith("s8s8") and "7-bit" not in quant["scheme"]


# Runs in a fresh interpreter with torch unimportable: int8 files run by onnxruntime and by
# OpenVINO (when installed) need no torch.
NO_TORCH = """
import json, sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ImportError(f"torch is blocked in this test (import {name})")

sys.meta_path.insert(0, NoTorch())
sys.modules["torch"] = None
import numpy as np
from crackseg.inference import Predictor

image = np.random.default_rng(0).integers(0, 256, (100, 140, 3), dtype=np.uint8)
backends = ["onnxruntime"] + (["openvino"] if sys.argv[2] == "1" else [])
done = []
for backend in backends:
    predictor = Predictor.from_exported(sys.argv[1], backend=backend, threads=1)
    predictor.predict(image)
    done.append(predictor.describe()["precision"])
loaded = [m for m, mod in sys.modules.items() if mod is not None and m.startswith("torch")]
print(json.dumps({"precision": done, "torch_modules": loaded}))
"""


def test_int8_prediction_imports_no_torch(tiny_int8):
    import subprocess
    import sys

    src = Path(__file__).resolve().parents[2] / "src"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(tiny_int8.path), "1" if HAS_OPENVINO else "0"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"precision": ["int8"] * (2 if HAS_OPENVINO else 1), "torch_modules": []}
