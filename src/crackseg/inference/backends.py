"""Backends for exported models (onnxruntime, OpenVINO, TorchScript), and the metadata inside
the files.

A file written by ``crackseg export`` holds the network's exportable core, a function
``(N, 3, h, w) float32 -> (N, 1, h, w) logits`` for any batch and any ``h``, ``w`` divisible by
the size divisor, and, inside the same file, everything the :class:`~.predictor.Predictor` needs
around it (:class:`~crackseg.meta.ModelMeta`): normalisation, size divisor, threshold,
model name and model card. Padding, tiling, sigmoid and thresholds stay in the Predictor, so an
exported model gives the same maps, masks and measurements as the PyTorch one::

    predictor = Predictor.from_exported("carnet_field.onnx", threads=4)
    predictor.predict(read_image("photo.jpg"), measure=True)

Where the metadata lives: ONNX ``metadata_props`` (one entry per field, ``crackseg.FIELD``, the
value JSON-encoded, as in crackseg's safetensors checkpoints); OpenVINO IR (``.xml`` + ``.bin``)
the same entries in the model's ``rt_info`` section ``framework`` (where OpenVINO's ONNX reader
puts ``metadata_props``, so it reads an ``.onnx`` file's metadata the same way); TorchScript
``_extra_files`` (``crackseg.json``, one JSON object). An int8 file (``crackseg export --int8``)
says so in ``precision`` and names its runtime and calibration in ``quantization``.

:class:`OnnxRuntimeBackend` needs onnxruntime and numpy only, :class:`OpenVinoBackend` openvino
and numpy only: no torch is imported on those paths (``pip install "crackseg[onnx]"`` /
``"crackseg[openvino]"``; tests/export/test_no_torch.py checks the onnxruntime one).
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from crackseg.errors import CrackSegError
from crackseg.meta import ModelMeta

__all__ = [
    "ExportedModelError",
    "OnnxRuntimeBackend",
    "OpenVinoBackend",
    "TorchScriptBackend",
    "load_exported",
    "runtime_for_file",
]

#: names of the exported graph's input and output
INPUT_NAME, OUTPUT_NAME = "image", "logits"
#: TorchScript ``_extra_files`` entry holding the metadata
TORCHSCRIPT_META = "crackseg.json"
#: runtime that reads each file suffix (``crackseg predict --checkpoint FILE`` picks by it)
RUNTIMES = {
    ".onnx": "onnxruntime",
    ".xml": "openvino",
    ".pt": "torchscript",
    ".ts": "torchscript",
}
_EXPORT_HINT = {
    "onnxruntime": "crackseg export --format onnx --out FILE.onnx",
    "openvino": "crackseg export --format openvino --out FILE.xml",
    "torchscript": "crackseg export --format torchscript --out FILE.pt",
}


class ExportedModelError(CrackSegError):
    """An exported model file is missing, unreadable or not written by ``crackseg export``."""


def _read_meta(meta: ModelMeta | None, path: Path, runtime: str) -> ModelMeta:
    if meta is None:
        raise _no_metadata(path, runtime)
    return meta


def _no_metadata(path: Path, runtime: str) -> ExportedModelError:
    return ExportedModelError(
        f"{path} holds no crackseg metadata (normalisation, threshold, size divisor): it was not "
        f"written by crackseg export; export the model with: {_EXPORT_HINT[runtime]}"
    )


def runtime_for_file(path: str | Path) -> str | None:
    """``onnxruntime`` / ``openvino`` / ``torchscript`` for an exported file's suffix (``.onnx``,
    ``.xml``, ``.pt`` / ``.ts``), None for anything else."""
    return RUNTIMES.get(Path(path).suffix.lower())


def _check_file(path: str | Path, runtime: str) -> Path:
    p = Path(path)
    if not p.is_file():
        what = "is a folder" if p.is_dir() else "does not exist"
        raise ExportedModelError(
            f"exported model {p} {what}; make one with: {_EXPORT_HINT[runtime]}"
        )
    return p


def _check_divisible(batch: np.ndarray, divisor: int) -> None:
    h, w = batch.shape[-2:]
    if batch.ndim != 4 or h % divisor or w % divisor:
        raise ValueError(
            f"exported models take (N, 3, h, w) batches with h, w multiples of {divisor}, got "
            f"{batch.shape}: pad them (Predictor does) or predict through Predictor.from_exported"
        )


# ---------------------------------------------------------------------------------------------
# onnxruntime
# ---------------------------------------------------------------------------------------------
class OnnxRuntimeBackend:
    """Runs an exported ``.onnx`` file with onnxruntime; reads its crackseg metadata.

    Args:
        path: a file written by ``crackseg export --format onnx``.
        device: ``"cpu"`` (CPUExecutionProvider) or ``"cuda[:N]"`` (CUDAExecutionProvider,
            needs the onnxruntime-gpu package).
        threads: intra-op threads of the session (default: onnxruntime's choice, one per core).
    """

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError(
                "the onnxruntime backend needs onnxruntime: pip install 'crackseg[onnx]'"
            ) from None
        self.path = _check_file(path, "onnxruntime")
        self.threads = int(threads) if threads else None
        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        device = str(device)
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ExportedModelError(
                    f"--device {device}: this onnxruntime has no CUDA provider (install "
                    "onnxruntime-gpu), or predict on the CPU with --device cpu"
                )
            index = int(device.partition(":")[2] or 0)
            providers: list = [("CUDAExecutionProvider", {"device_id": index})]
        elif device == "cpu":
            providers = ["CPUExecutionProvider"]
        else:
            raise ExportedModelError(f"--device {device}: onnxruntime runs on cpu or cuda")
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as e:  # onnxruntime's own exception types (InvalidProtobuf, Fail, ...)
            reason = str(e).split("failed:")[-1].split(" : ")[-1].strip() or type(e).__name__
            raise ExportedModelError(
                f"{self.path} is not an ONNX model onnxruntime can load ({reason}); export one "
                f"with: {_EXPORT_HINT['onnxruntime']}"
            ) from None
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        self.metadata = _read_meta(ModelMeta.from_props(props, self.path, ExportedModelError),
                                   self.path, "onnxruntime")  # fmt: skip
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1 or len(inputs[0].shape) != 4:
            raise ExportedModelError(
                f"{self.path}: expected one (N, 3, H, W) input and one output, found "
                f"{[i.shape for i in inputs]} -> {[o.shape for o in outputs]}; re-export it"
            )
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        self.size_divisor = self.metadata.size_divisor
        self.version = ort.__version__

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        _check_divisible(batch, self.size_divisor)
        x = np.ascontiguousarray(batch, dtype=np.float32)
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "onnxruntime",
            "file": str(self.path),
            "providers": self.session.get_providers(),
            "precision": self.metadata.precision,
            "threads": self.threads or "onnxruntime default",
            "onnxruntime": self.version,
        }


# ---------------------------------------------------------------------------------------------
# OpenVINO
# ---------------------------------------------------------------------------------------------
def openvino_props(model) -> dict[str, str]:
    """The crackseg metadata entries of an OpenVINO model (``rt_info`` section ``framework``:
    an ``.onnx`` file's ``metadata_props`` as OpenVINO reads them, or an IR written by
    ``crackseg export --format openvino``)."""
    info = model.get_rt_info()
    section = info["framework"] if "framework" in info else {}
    if not isinstance(section, dict):
        return {}
    return {str(k): v.astype(str) if hasattr(v, "astype") else str(v) for k, v in section.items()}


class OpenVinoBackend:
    """Runs an exported OpenVINO IR (``.xml`` + ``.bin``) or ``.onnx`` file with OpenVINO.

    Compiled for the CPU with the latency hint (one request at a time, all its threads on it)
    and ``INFERENCE_PRECISION_HINT`` f32: on CPUs with bf16 OpenVINO would otherwise run a float
    model in bf16 by itself; int8 files keep their int8 layers.

    Args:
        path: a file written by ``crackseg export --format openvino`` (``--int8`` or not), or
            any ``crackseg export --format onnx`` file (OpenVINO reads ONNX, int8 QDQ included).
        device: ``"cpu"`` only.
        threads: inference threads (default: OpenVINO's choice, one per physical core).
    """

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise ImportError(
                "the openvino backend needs openvino: pip install 'crackseg[openvino]'"
            ) from None
        self.path = _check_file(path, "openvino")
        if str(device) != "cpu":
            raise ExportedModelError(f"--device {device}: the openvino backend runs on cpu")
        if self.path.suffix.lower() == ".xml" and not self.path.with_suffix(".bin").is_file():
            raise ExportedModelError(
                f"{self.path}: its weights {self.path.with_suffix('.bin').name} are missing (an "
                "OpenVINO model is two files, .xml and .bin, side by side)"
            )
        self.threads = int(threads) if threads else None
        core = ov.Core()
        try:
            model = core.read_model(str(self.path))
        except Exception as e:  # OpenVINO raises RuntimeError / GeneralFailure with long texts
            reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise ExportedModelError(
                f"{self.path} is not a model OpenVINO can read ({reason}); export one with: "
                f"{_EXPORT_HINT['openvino']}"
            ) from None
        props = openvino_props(model)
        self.metadata = _read_meta(ModelMeta.from_props(props, self.path, ExportedModelError),
                                   self.path, "openvino")  # fmt: skip
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise ExportedModelError(
                f"{self.path}: expected one (N, 3, H, W) input and one output, found "
                f"{len(model.inputs)} -> {len(model.outputs)}; re-export it"
            )
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.size_divisor = self.metadata.size_divisor
        self.version = ov.get_version()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        _check_divisible(batch, self.size_divisor)
        x = np.ascontiguousarray(batch, dtype=np.float32)
        out = self.request.infer({0: x})
        return np.array(out[self.compiled.output(0)], dtype=np.float32, copy=True)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "openvino",
            "file": str(self.path),
            "device": "CPU",
            "precision": self.metadata.precision,
            "threads": self.threads or "openvino default",
            "openvino": self.version,
        }


# ---------------------------------------------------------------------------------------------
# TorchScript
# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def quiet_torchscript_deprecation() -> Iterator[None]:
    """Ignore torch's deprecation notice for ``torch.jit`` inside the block: TorchScript is the
    format the user asked for, and the notice would otherwise be printed on every run."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r".*torch\.jit.* is deprecated", FutureWarning)
        yield


#: What :class:`TorchScriptBackend` runs: a TorchScript file is a program (its ``forward``, and
#: any ``__setstate__``, which ``torch.jit.load`` itself executes), so it is loaded only when the
#: user says they trust it, and even then only a graph of pure tensor ops: the ``aten`` and
#: ``prim`` namespaces, less the ops below that touch files, the console, other processes or
#: the network. Anything else (custom ops, ``torch.ops.aten.save``, RPC) is refused unrun.
TORCHSCRIPT_NAMESPACES = ("aten", "prim")
TORCHSCRIPT_DENIED_OPS = frozenset(
    {
        "aten::save",
        "aten::from_file",
        "aten::_print",
        "aten::warn",
        "aten::wait",
        "aten::record_stream",
        "prim::Print",
        "prim::PythonOp",
        "prim::fork",
        "prim::awaitable",
        "prim::awaitable_nowait",
        "prim::awaitable_wait",
        "prim::rpc_async",
        "prim::rpc_remote",
        "prim::rpc_sync",
    }
)
#: the command-line flag that trusts a TorchScript file (predict, evaluate, serve)
TRUST_FLAG = "--trust-checkpoint"
_TS_CODE_REF = re.compile(r"\bops\.(\w+)\.(\w+)|\btorch\.(\w+)\s*\(")


def _untrusted_torchscript(path: Path) -> ExportedModelError:
    return ExportedModelError(
        f"{path} is a TorchScript file, and loading TorchScript runs the program stored in it: "
        f"load it only if you made it yourself, with {TRUST_FLAG}, or export the model as "
        ".onnx / .xml, which hold no code (crackseg export --format onnx)"
    )


def _refused_torchscript(path: Path, what: str) -> ExportedModelError:
    return ExportedModelError(
        f"{path}: refused unrun, {what}: crackseg export never writes that, so this TorchScript "
        "file was made or changed by someone else; re-export the model with "
        f"{_EXPORT_HINT['torchscript']}"
    )


def check_torchscript_code(path: Path) -> None:
    """Refuse, before ``torch.jit.load`` runs anything, a TorchScript archive whose stored source
    defines ``__setstate__`` (executed while loading) or names a denied or foreign op."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            sources = [n for n in z.namelist() if "/code/" in n and n.endswith(".py")]
            for name in sources:
                text = z.read(name).decode("utf-8", "replace")
                if re.search(r"\bdef\s+__setstate__\b", text):
                    raise _refused_torchscript(path, f"{name} defines __setstate__")
                for ns, op, torch_fn in _TS_CODE_REF.findall(text):
                    kind = f"{ns}::{op}" if ns else f"aten::{torch_fn}"
                    if kind in TORCHSCRIPT_DENIED_OPS or (ns and ns not in TORCHSCRIPT_NAMESPACES):
                        raise _refused_torchscript(path, f"its code calls {kind}")
    except (zipfile.BadZipFile, OSError) as e:
        raise ExportedModelError(
            f"{path} is not a TorchScript model torch.jit.load can read ({e}); "
            f"export one with: {_EXPORT_HINT['torchscript']}"
        ) from None


def check_torchscript_graph(module: Any, path: Path) -> None:
    """Refuse a loaded TorchScript module any of whose methods (submodules' included, calls
    inlined) holds an op outside :data:`TORCHSCRIPT_NAMESPACES` or in
    :data:`TORCHSCRIPT_DENIED_OPS`."""
    seen: set[str] = set()

    def blocks(block):
        for node in block.nodes():
            yield node
            for sub in node.blocks():
                yield from blocks(sub)

    for _, sub in module.named_modules():  # the module itself first
        for name in sub._c._method_names():
            for node in blocks(sub._c._get_method(name).inlined_graph):
                seen.add(node.kind())
    for kind in sorted(seen):
        if kind in TORCHSCRIPT_DENIED_OPS or kind.split("::")[0] not in TORCHSCRIPT_NAMESPACES:
            raise _refused_torchscript(path, f"its graph calls {kind}")


class TorchScriptBackend:
    """Runs an exported TorchScript ``.pt`` file; reads its crackseg metadata.

    A TorchScript file is a program, not data: ``torch.jit.load`` compiles its code and runs any
    ``__setstate__`` it defines, and ``forward`` may call any registered op (file writes
    included). So it is loaded only with ``trust=True`` (the command line's
    ``--trust-checkpoint``), and even then only after its stored code and its loaded graph hold
    pure tensor ops (:func:`check_torchscript_code`, :func:`check_torchscript_graph`). ONNX and
    OpenVINO files hold no code and need no trust.

    Args:
        path: a file written by ``crackseg export --format torchscript``.
        device: ``"cpu"``, ``"cuda"``, ...
        threads: CPU threads for torch (default: leave torch's setting).
        trust: the user made or vetted this file (default: refuse it).
    """

    def __init__(
        self,
        path: str | Path,
        device: str = "cpu",
        threads: int | None = None,
        trust: bool = False,
    ) -> None:
        self.path = _check_file(path, "torchscript")
        if not trust:
            raise _untrusted_torchscript(self.path)
        check_torchscript_code(self.path)
        import torch

        self.torch = torch
        if threads:
            torch.set_num_threads(int(threads))
        self.device = torch.device(device)
        extra = {TORCHSCRIPT_META: ""}
        try:
            with quiet_torchscript_deprecation():
                module = torch.jit.load(str(self.path), self.device, _extra_files=extra)
        except Exception as e:  # torch raises RuntimeError / ValueError for non-TorchScript files
            reason = str(e).splitlines()[0].split(". ")[0] if str(e) else type(e).__name__
            raise ExportedModelError(
                f"{self.path} is not a TorchScript model torch.jit.load can read ({reason}); "
                f"export one with: {_EXPORT_HINT['torchscript']}"
            ) from None
        check_torchscript_graph(module, self.path)
        meta = extra[TORCHSCRIPT_META]
        text = meta.decode("utf-8") if isinstance(meta, bytes) else meta
        self.metadata = _read_meta(ModelMeta.from_json(text, self.path, ExportedModelError),
                                   self.path, "torchscript")  # fmt: skip
        self.module = module.eval()
        self.size_divisor = self.metadata.size_divisor

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        _check_divisible(batch, self.size_divisor)
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        with torch.inference_mode():
            y = self.module(x)
        return y.float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "torchscript",
            "file": str(self.path),
            "device": str(self.device),
            "precision": "fp32",
            "threads": self.torch.get_num_threads(),
        }


# ---------------------------------------------------------------------------------------------
# choosing one
# ---------------------------------------------------------------------------------------------
BACKENDS = {
    "onnxruntime": OnnxRuntimeBackend,
    "openvino": OpenVinoBackend,
    "torchscript": TorchScriptBackend,
}


def load_exported(
    path: str | Path,
    backend: str | None = None,
    device: str = "cpu",
    threads: int | None = None,
    trust: bool = False,
) -> OnnxRuntimeBackend | OpenVinoBackend | TorchScriptBackend:
    """The backend running exported file ``path`` (``backend`` None: chosen by its suffix,
    ``.onnx`` -> onnxruntime, ``.xml`` -> OpenVINO, ``.pt`` / ``.ts`` -> TorchScript); its
    ``metadata`` attribute holds the :class:`~crackseg.meta.ModelMeta` read from the
    file. ``trust``: the user vouches for a TorchScript file, which is a program (see
    :class:`TorchScriptBackend`); ONNX and OpenVINO files hold no code and ignore it."""
    runtime = backend or runtime_for_file(path)
    if runtime is None:
        raise ExportedModelError(
            f"cannot tell how to run {path} from its suffix: name it .onnx (onnxruntime), .xml "
            "(OpenVINO) or .pt (TorchScript), or choose with --backend onnxruntime / openvino / "
            "torchscript"
        )
    if runtime not in BACKENDS:
        raise ExportedModelError(
            f"unknown backend {runtime!r} for exported models: choose onnxruntime, openvino or "
            "torchscript"
        )
    if runtime == "torchscript":
        return TorchScriptBackend(path, device=device, threads=threads, trust=trust)
    return BACKENDS[runtime](path, device=device, threads=threads)
