"""Exported files shared by the export tests (each written once per test session)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from crackseg.data.synth import generate
from crackseg.export import export_model, resolve_source

#: a small random-init CarNet (same family and code paths as the shipped one, faster to export)
TINY = dict(widths=[8, 16, 16, 32], blocks=[0, 1, 1, 1])
#: parity sizes for the tests: one multiple of 16, one not (padded to 64 x 80)
SIZES = ((64, 96), (50, 77))
SEED = 0


@pytest.fixture()
def tiny_model() -> torch.nn.Module:
    """The random-init model the tiny exports were made from (same seed, same weights)."""
    torch.manual_seed(SEED)
    return resolve_source("carnet", TINY)[0]


@pytest.fixture(scope="session")
def tiny_exports(tmp_path_factory) -> dict:
    """``{format: ExportResult}`` of the tiny random-init CarNet, written by the library."""
    folder = tmp_path_factory.mktemp("tiny")
    out = {}
    for fmt, name in (("onnx", "tiny.onnx"), ("torchscript", "tiny.pt")):
        torch.manual_seed(SEED)
        out[fmt] = export_model("carnet", fmt, folder / name, model_kwargs=TINY, sizes=SIZES)
    return out


@pytest.fixture(scope="session")
def shipped_onnx(tmp_path_factory):
    """The shipped CarNet exported to ONNX by the library (small parity sizes)."""
    path = tmp_path_factory.mktemp("shipped") / "carnet_field.onnx"
    return export_model(None, "onnx", path, sizes=SIZES)


@pytest.fixture(scope="session")
def shipped_torchscript(tmp_path_factory):
    """The shipped CarNet exported to TorchScript by the library (small parity sizes)."""
    path = tmp_path_factory.mktemp("shipped_ts") / "carnet_field.pt"
    return export_model("pretrained:carnet_field", "torchscript", path, sizes=SIZES)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A 300 x 420 synthetic crack photo (2 x 2 tiles at the tests' 256-px tiling) and its PNG."""
    image = generate(7, (300, 420), "sunny")[0]
    path = tmp_path_factory.mktemp("photo") / "road.png"
    Image.fromarray(image).save(path)
    return image, path
