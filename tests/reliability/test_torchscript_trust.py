"""Loading a model file never runs its author's code unasked.

A TorchScript ``.pt`` is a program: ``torch.jit.load`` runs its ``__setstate__`` and the
Predictor runs its ``forward``, and either can call ``torch.ops.aten.save`` (write any file).
crackseg loads TorchScript only behind ``--trust-checkpoint``, and even then refuses, unrun, a
file whose code or graph holds an op that touches files, the console or other processes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from crackseg.cli import main
from crackseg.inference.backends import (
    ExportedModelError,
    TorchScriptBackend,
    check_torchscript_graph,
    quiet_torchscript_deprecation,
)
from crackseg.meta import ModelMeta

META = ModelMeta(
    model="carnet", name="evil", mean=(0.5,) * 3, std=(0.25,) * 3, threshold=0.5, size_divisor=16
)


class SavesInForward(torch.nn.Module):
    """Looks like a crackseg export; its forward writes ``target``."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.ops.aten.save(x, self.target)
        return x[:, :1]


class SavesWhenLoaded(torch.nn.Module):
    """Its ``__setstate__``, which ``torch.jit.load`` itself runs, writes ``target``."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1]

    @torch.jit.export
    def __getstate__(self) -> tuple[str, bool]:
        return (self.target, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool]) -> None:
        self.target = state[0]
        self.training = state[1]
        torch.ops.aten.save(torch.zeros(1), self.target)


def _write(module_cls, path: Path, target: Path) -> Path:
    with quiet_torchscript_deprecation():
        scripted = torch.jit.script(module_cls(str(target)))
        torch.jit.save(scripted, str(path), _extra_files={"crackseg.json": json.dumps(
            META.to_dict())})  # fmt: skip
    return path


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(path)
    return path


@pytest.mark.parametrize("cls", [SavesInForward, SavesWhenLoaded])
def test_the_attack_is_real(tmp_path, cls):
    """Without crackseg's checks, these files do write their target (so the tests below mean
    something): one when loaded, the other when run."""
    target = tmp_path / "pwned"
    path = _write(cls, tmp_path / "evil.pt", target)
    with quiet_torchscript_deprecation():
        module = torch.jit.load(str(path))
        module(torch.zeros(1, 3, 16, 16))
    assert target.exists()


@pytest.mark.parametrize("cls", [SavesInForward, SavesWhenLoaded])
@pytest.mark.parametrize("trust", [[], ["--trust-checkpoint"]])
def test_predict_refuses_a_torchscript_file_that_writes(tmp_path, photo, capsys, cls, trust):
    target = tmp_path / "pwned"
    evil = _write(cls, tmp_path / "evil.pt", target)
    out = tmp_path / "out"
    rc = main(["predict", str(photo), "--checkpoint", str(evil), *trust, "--out", str(out),
               "--quiet"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and str(evil) in err
    assert "--trust-checkpoint" in err if not trust else "refused unrun" in err
    if trust:
        assert "aten::save" in err or "__setstate__" in err
    assert not target.exists()
    assert not (out / "predictions.json").exists()


def test_evaluate_and_serve_refuse_it_too(tmp_path, capsys, monkeypatch):
    target = tmp_path / "pwned"
    evil = _write(SavesInForward, tmp_path / "evil.pt", target)
    data = f"folder:{tmp_path}:{tmp_path}"
    assert main(["evaluate", "--checkpoint", str(evil), "--data", data]) == 2
    assert "--trust-checkpoint" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(evil), "--data", data,
                 "--trust-checkpoint"]) == 2  # fmt: skip
    assert "refused unrun" in capsys.readouterr().err
    uvicorn = pytest.importorskip("uvicorn")
    pytest.importorskip("fastapi")

    def never(*args, **kwargs):
        raise AssertionError("the service started on a TorchScript file nobody trusted")

    monkeypatch.setattr(uvicorn, "run", never)
    assert main(["serve", "--checkpoint", str(evil), "--port", "8999"]) == 2
    assert "--trust-checkpoint" in capsys.readouterr().err
    assert not target.exists()


def test_the_graph_check_sees_ops_inside_submodules(tmp_path):
    """The loaded graph is checked too (calls inlined, submodules included), not only the
    stored source: a module whose child writes a file is refused."""

    class Parent(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.child = SavesInForward(str(tmp_path / "pwned"))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.child(x) + 1

    with quiet_torchscript_deprecation():
        scripted = torch.jit.script(Parent())
    with pytest.raises(ExportedModelError, match="aten::save"):
        check_torchscript_graph(scripted, tmp_path / "m.pt")
    with quiet_torchscript_deprecation():
        clean = torch.jit.trace(torch.nn.Conv2d(3, 1, 3), torch.zeros(1, 3, 8, 8))
    check_torchscript_graph(clean, tmp_path / "clean.pt")  # pure tensor ops pass


def test_a_trusted_clean_file_loads(tmp_path):
    with quiet_torchscript_deprecation():
        traced = torch.jit.trace(torch.nn.Conv2d(3, 1, 3, padding=1), torch.zeros(1, 3, 16, 16))
        torch.jit.save(traced, str(tmp_path / "ok.pt"),
                       _extra_files={"crackseg.json": json.dumps(META.to_dict())})  # fmt: skip
    with pytest.raises(ExportedModelError, match="--trust-checkpoint"):
        TorchScriptBackend(tmp_path / "ok.pt")
    backend = TorchScriptBackend(tmp_path / "ok.pt", trust=True)
    assert backend.metadata == META
    assert backend(np.zeros((1, 3, 16, 16), np.float32)).shape == (1, 1, 16, 16)
