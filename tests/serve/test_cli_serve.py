"""``crackseg serve``: flags checked before the model loads, one-line errors, and the glue to
uvicorn (which is replaced here, so no server starts)."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the service needs FastAPI: pip install -e '.[dev]'")
pytest.importorskip("httpx", reason="the service's tests need httpx: pip install -e '.[dev]'")

from pathlib import Path

import torch

from crackseg import create_model
from crackseg.cli import main
from crackseg.models.weights_io import save_weights

from .conftest import TINY


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "tiny.safetensors"
    save_weights(path, create_model("carnet", **TINY), "carnet", TINY, {"threshold": 0.4})
    return path


@pytest.fixture
def ran(monkeypatch):
    """Replaces uvicorn.run; returns what it was called with."""
    import uvicorn

    calls: list[tuple] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    monkeypatch.delenv("CRACKSEG_TOKEN", raising=False)
    threads = torch.get_num_threads()  # --threads sets torch's: give the other tests theirs back
    yield calls
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "flags,words",
    [
        (["--port", "70000"], ["--port", "1..65535"]),
        (["--queue", "-1"], ["--queue"]),
        (["--timeout", "0"], ["--timeout"]),
        (["--read-timeout", "0"], ["--read-timeout", "> 0"]),
        (["--header-timeout", "nan"], ["--header-timeout", "> 0"]),
        (["--max-upload-mb", "0"], ["--max-upload-mb"]),
        (["--max-megapixels", "500"], ["--max-megapixels", "decompression-bomb"]),
        (["--threshold", "2"], ["--threshold", "[0, 1]"]),
        (["--threads", "0"], ["--threads"]),
        (["--token", ""], ["--token", "empty"]),
        (["--checkpoint", "nope.safetensors"], ["nope.safetensors", "does not exist"]),
    ],
)
def test_bad_flags_are_one_line_exit_2(ran, capsys, flags, words):
    assert main(["serve", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("crackseg serve: error: ") and err.count("\n") == 1, err
    for w in words:
        assert w in err
    assert ran == []


def test_serve_builds_the_app_once_and_binds_loopback(ran, capsys, ckpt):
    assert main(["serve", "--checkpoint", str(ckpt), "--threads", "1", "--queue", "3"]) == 0
    ((app, kw),) = ran
    assert kw["host"] == "127.0.0.1" and kw["port"] == 8000
    assert app.state.predictor.threshold == 0.4  # the checkpoint's own
    assert app.state.settings.queue == 3 and app.state.settings.token is None
    assert torch.get_num_threads() == 1
    err = capsys.readouterr().err
    assert f"{ckpt}" in err and "http://127.0.0.1:8000/" in err and "warning" not in err


def test_serve_bounds_request_heads_not_connections(ran, ckpt):
    """uvicorn's limit_concurrency counts connections that only dawdle (issue 28): not set; the
    head timeout is, with the flag's value, and the body's pause limit reaches the app."""
    from crackseg.serve._server import HeadTimeoutProtocol

    argv = ["serve", "--checkpoint", str(ckpt), "--header-timeout", "3", "--read-timeout", "7"]
    assert main(argv) == 0
    ((app, kw),) = ran
    assert "limit_concurrency" not in kw
    assert issubclass(kw["http"], HeadTimeoutProtocol) and kw["http"].header_timeout_s == 3.0
    assert app.state.settings.read_timeout_s == 7.0 and app.state.settings.header_timeout_s == 3.0


def test_token_from_env_threshold_flag_and_a_warning_off_loopback(ran, capsys, ckpt, monkeypatch):
    monkeypatch.setenv("CRACKSEG_TOKEN", "from-env")
    argv = ["serve", "--checkpoint", str(ckpt), "--threshold", "0.7", "--host", "::1"]
    assert main(argv) == 0
    app, kw = ran[-1]
    assert app.state.settings.token == "from-env" and app.state.predictor.threshold == 0.7
    assert "warning" not in capsys.readouterr().err  # ::1 is loopback
    monkeypatch.delenv("CRACKSEG_TOKEN")
    assert main(["serve", "--checkpoint", str(ckpt), "--host", "0.0.0.0"]) == 0
    assert "without a token" in capsys.readouterr().err
    assert main(["serve", "--checkpoint", str(ckpt), "--host", "0.0.0.0", "--token", "t"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_without_fastapi_the_error_says_what_to_install(ran, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi -> ModuleNotFoundError
    monkeypatch.delitem(sys.modules, "crackseg.serve.app", raising=False)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "fastapi is missing" in err and "pip install 'crackseg[serve]'" in err
    assert err.count("\n") == 1 and ran == []


def test_an_exported_file_is_served_by_its_runtime(ran, capsys, tmp_path):
    pytest.importorskip("onnxruntime", reason="ONNX export needs pip install -e '.[dev]'")
    from crackseg.export import export_model

    torch.manual_seed(0)
    onnx = export_model("carnet", "onnx", tmp_path / "tiny.onnx", model_kwargs=TINY,
                        sizes=((64, 96), (50, 77))).path  # fmt: skip
    assert main(["serve", "--checkpoint", str(onnx), "--threads", "1"]) == 0
    app, _ = ran[-1]
    assert app.state.predictor.describe()["backend"] == "onnxruntime"
    capsys.readouterr()
    assert main(["serve", "--checkpoint", str(onnx), "--backend", "torch"]) == 2
    assert "is an exported model" in capsys.readouterr().err
