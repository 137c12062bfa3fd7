"""Which path runs the shipped model (crackseg.inference.graphs), and the int8 parity check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crackseg.errors import CrackSegError
from crackseg.inference import graphs
from crackseg.models.pretrained import weights_dir

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A weights folder holding both graphs of ``m`` (empty files), OpenVINO and torch present,
    int8 parity holding."""
    (tmp_path / "m.onnx").write_bytes(b"")
    (tmp_path / "m.int8.xml").write_bytes(b"")
    monkeypatch.setattr(graphs, "installed", lambda module: True)
    monkeypatch.setattr(graphs, "int8_holds_here", lambda fp32, int8, mask_of: True)
    return tmp_path


def _masks(path):
    raise AssertionError("the check is stubbed in these tests")


def test_auto_runs_the_int8_graph_with_openvino_where_parity_holds(shipped):
    assert graphs.choose("m", shipped, mask_of=_masks) == (
        "openvino",
        shipped / "m.int8.xml",
        "int8",
    )
    # without a way to check int8 (no mask function), fp32 runs
    assert graphs.choose("m", shipped).precision == "fp32"


def test_auto_falls_back_to_the_fp32_graph_where_int8_parity_fails(shipped, monkeypatch):
    monkeypatch.setattr(graphs, "int8_holds_here", lambda fp32, int8, mask_of: False)
    assert graphs.choose("m", shipped, mask_of=_masks) == ("openvino", shipped / "m.onnx", "fp32")
    # asked for explicitly, int8 runs anyway (the user's choice)
    assert graphs.choose("m", shipped, precision="int8").precision == "int8"


def test_torch_paths_are_taken_when_asked_or_needed(shipped):
    assert graphs.choose("m", shipped, backend="torch").backend == "torch"
    assert graphs.choose("m", shipped, precision="bf16") == ("torch", None, "bf16")
    assert graphs.choose("m", shipped, device="cuda").backend == "torch"
    assert graphs.choose("m", shipped, precision="fp32") == ("openvino", shipped / "m.onnx", "fp32")
    ort = graphs.choose("m", shipped, backend="onnxruntime")
    assert ort == ("onnxruntime", shipped / "m.onnx", "fp32")
    with pytest.raises(CrackSegError, match="int8 graph runs with OpenVINO"):
        graphs.choose("m", shipped, backend="onnxruntime", precision="int8")


def test_without_graphs_or_runtimes(tmp_path, monkeypatch):
    monkeypatch.setattr(graphs, "installed", lambda module: module == "torch")
    assert graphs.choose("m", tmp_path).backend == "torch"  # no graph shipped
    with pytest.raises(CrackSegError, match="ships no exported graph"):
        graphs.choose("m", tmp_path, backend="openvino")
    monkeypatch.setattr(graphs, "installed", lambda module: False)
    (tmp_path / "m.onnx").write_bytes(b"")
    with pytest.raises(CrackSegError, match="pip install openvino .*crackseg\\[train\\]"):
        graphs.choose("m", tmp_path)


def test_int8_parity_is_checked_once_per_cpu_and_cached(tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    monkeypatch.setenv("CRACKSEG_CACHE", str(tmp_path / "cache"))
    fp32, int8 = tmp_path / "m.onnx", tmp_path / "m.int8.xml"
    for path, data in ((fp32, b"graph"), (int8, b"int8 graph"), (int8.with_suffix(".bin"), b"w")):
        path.write_bytes(data)
    calls = []

    def mask_of(path):  # 2 % of the int8 mask flipped: over the 1 % bar
        calls.append(path)
        mask = np.zeros(100, bool)
        mask[:2] = path == int8
        return mask

    assert graphs.int8_holds_here(fp32, int8, mask_of) is False
    assert graphs.int8_holds_here(fp32, int8, mask_of) is False
    assert len(calls) == 2  # both graphs once; the second answer came from the cache
    cached = json.loads((tmp_path / "cache" / "int8_parity.json").read_text())
    assert [v["flipped"] for v in cached.values()] == [0.02]
    int8.with_suffix(".bin").write_bytes(b"other weights")  # another graph: checked again
    graphs.int8_holds_here(fp32, int8, mask_of)
    assert len(calls) == 4


def _predict_child(tmp_path: Path, code: str, photo: str) -> subprocess.CompletedProcess:
    """``crackseg predict PHOTO --measure`` in a fresh interpreter running ``code`` (which calls
    ``main(sys.argv[1:])``), with a cache of this test's own."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "CRACKSEG_CACHE": str(tmp_path / "cache")}
    argv = ["predict", photo, "--measure", "--threads", "1", "--quiet", "--out", "out"]
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )  # fmt: skip


_SHIPPED = graphs.graph_files("carnet_field", weights_dir())


@pytest.mark.skipif(len(_SHIPPED) < 2, reason="the shipped graphs are made by release_graphs.py")
def test_predict_runs_the_shipped_int8_graph_without_torch(tmp_path):
    """``crackseg predict photo.jpg --measure`` where torch cannot be imported at all: the
    shipped int8 graph runs (its parity checked on this CPU first), and the record says so."""
    pytest.importorskip("openvino")
    from crackseg.data.synth import generate

    image, _ = generate(7, 192, "sunny")
    Image.fromarray(image).save(tmp_path / "photo.jpg")
    code = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'torchvision', 'timm'):\n"
        "            raise ModuleNotFoundError(name, name=name)\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "from crackseg.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "print('torch' in sys.modules)\n"
        "sys.exit(rc)\n"
    )
    res = _predict_child(tmp_path, code, "photo.jpg")
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == "False"  # torch never imported
    record = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert record["predictor"]["backend"] == "openvino"
    assert record["predictor"]["precision"] in ("int8", "fp32")
    assert (tmp_path / "out" / "cracks.csv").is_file()
    mask = np.asarray(Image.open(tmp_path / "out" / "photo_mask.png"))
    assert mask.shape == (192, 192)


@pytest.mark.skipif(len(_SHIPPED) < 2, reason="the shipped graphs are made by release_graphs.py")
def test_predict_with_the_shipped_graph_imports_no_torch_where_torch_is_installed(tmp_path):
    """The default path needs no torch, so it does not load it (~300 MB resident) either."""
    pytest.importorskip("openvino")
    from crackseg.data.synth import generate

    Image.fromarray(generate(8, 128, "rainy")[0]).save(tmp_path / "photo.png")
    code = (
        "import sys\nfrom crackseg.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'numba', 'pandas'}))\n"
        "sys.exit(rc)\n"
    )
    res = _predict_child(tmp_path, code, "photo.png")
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.skipif(len(_SHIPPED) < 2, reason="the shipped graphs are made by release_graphs.py")
def test_the_shipped_graphs_carry_the_weights_metadata():
    """A graph released from other weights (an older threshold, another model) is caught here:
    re-run benchmarks/release_graphs.py after changing the shipped weights."""
    pytest.importorskip("openvino")
    from crackseg.inference.backends import load_exported
    from crackseg.models.pretrained import get_weights

    meta = get_weights("carnet_field").meta
    for precision, path in _SHIPPED.items():
        got = load_exported(path, backend="openvino").metadata
        assert (got.model, got.model_kwargs, got.name, got.card) == (
            meta.model, meta.model_kwargs, meta.name, meta.card
        ), precision  # fmt: skip
        assert (got.threshold, got.mean, got.std) == (meta.threshold, meta.mean, meta.std)
        assert got.precision == precision
    record = json.loads(
        (SRC.parent / "benchmarks" / "results" / "release_carnet_field.json").read_text()
    )
    assert record["fp32_parity"] and record["int8_parity"]
    assert sorted(record["files"].values()) == sorted(p.name for p in _SHIPPED.values())
