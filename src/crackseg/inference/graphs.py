"""Which of a shipped model's paths runs here: its exported graphs, or PyTorch.

Shipped weights ``NAME`` may come with exported graphs beside them in ``crackseg/weights/``
(made by ``benchmarks/release_graphs.py``, their parity on the six test splits recorded in
``benchmarks/results/release_NAME.json``): ``NAME.onnx``, the fp32 graph, and
``NAME.int8.xml`` + ``.bin``, the OpenVINO int8 graph. :func:`choose` picks the path for
``Predictor.from_pretrained``:

- ``backend="auto"`` (the default): the graphs with OpenVINO where they are shipped and OpenVINO
  is installed and the device is the CPU, else PyTorch, else an error naming both installs;
  ``"openvino"`` / ``"onnxruntime"`` ask for a graph (onnxruntime runs the fp32 one only);
  ``"torch"`` for PyTorch (bf16 autocast, CUDA, channels-last);
- ``precision="auto"`` on the graph path: int8 where its parity holds on this CPU
  (:func:`int8_holds_here`), else fp32.

Measured on one 2-core Xeon (AVX-512 VNNI), the shipped CarNet at 512 x 512 on one thread
(``benchmarks/results/int8_cpu_field.json``): OpenVINO int8 in 0.21x the time of PyTorch fp32
eager, onnxruntime int8 in 0.31x, both fp32 runtimes in 0.69x. OpenVINO is the runtime of the
light install for that reason; onnxruntime stays behind the ``onnx`` extra.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from crackseg.atomic import atomic_write
from crackseg.errors import CrackSegError
from crackseg.machine import cpu_info

__all__ = ["GraphChoice", "check_photo", "choose", "graph_files", "int8_holds_here"]

#: the runtime of the shipped int8 graph, and of the light install
RUNTIME = "openvino"
#: int8 may flip at most this share of mask pixels against the fp32 graph on the check photo
#: (the bar ``crackseg export --int8`` checks every int8 file against)
MAX_FLIPPED = 0.01


#: ``mask_of(graph file) -> (H, W) bool``: a graph's mask of :func:`check_photo`
MaskOf = Callable[[Path], np.ndarray]


class GraphChoice(NamedTuple):
    """What runs: ``("torch", None, precision)``, or a graph file, its runtime and precision."""

    backend: str
    path: Path | None
    precision: str


def graph_files(name: str, folder: Path) -> dict[str, Path]:
    """``{"fp32": NAME.onnx, "int8": NAME.int8.xml}``, those shipped in ``folder``."""
    files = {"fp32": folder / f"{name}.onnx", "int8": folder / f"{name}.int8.xml"}
    return {k: p for k, p in files.items() if p.is_file()}


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def choose(
    name: str,
    folder: Path,
    backend: str = "auto",
    precision: str = "auto",
    device: str = "cpu",
    mask_of: MaskOf | None = None,
) -> GraphChoice:
    """The path ``Predictor.from_pretrained`` runs for shipped weights ``name`` (module doc).
    ``mask_of(graph file)``: the mask that graph gives for :func:`check_photo`, for the int8
    parity check (the Predictor's own path; None: int8 is not checked, fp32 runs)."""
    graphs = graph_files(name, folder)
    if backend == "torch" or precision == "bf16" or device not in ("cpu", "auto"):
        return GraphChoice("torch", None, precision)
    if backend == "auto":
        if graphs and installed(RUNTIME):
            backend = RUNTIME
        elif installed("torch"):
            return GraphChoice("torch", None, precision)
        else:
            raise CrackSegError(
                f"the shipped model {name} runs with OpenVINO or PyTorch and neither is installed"
                ': pip install openvino (or pip install "crackseg[train]")'
            )
    if not graphs:
        raise CrackSegError(
            f"{name} ships no exported graph for --backend {backend}: use --backend torch, or "
            f"export one: crackseg export pretrained:{name} --out {name}.onnx"
        )
    if backend == "onnxruntime" or precision == "fp32" or "int8" not in graphs:
        if precision == "int8":
            raise CrackSegError(
                f"--precision int8: {name}'s int8 graph runs with OpenVINO (--backend openvino)"
            )
        return GraphChoice(backend, graphs["fp32"], "fp32")
    if precision == "int8" or (
        mask_of is not None and int8_holds_here(graphs["fp32"], graphs["int8"], mask_of)
    ):
        return GraphChoice(RUNTIME, graphs["int8"], "int8")
    return GraphChoice(RUNTIME, graphs["fp32"], "fp32")


def _cache_file() -> Path:
    root = os.environ.get("CRACKSEG_CACHE") or Path.home() / ".cache" / "crackseg"
    return Path(root) / "int8_parity.json"


def _key(fp32: Path, int8: Path) -> str:
    """The files (size and content digest of their headers) on this CPU with this OpenVINO."""
    h = hashlib.sha256()
    for p in (fp32, int8, int8.with_suffix(".bin")):
        h.update(str(p.stat().st_size).encode())
        with open(p, "rb") as f:
            h.update(f.read(1 << 16))
    import openvino

    cpu = cpu_info()
    h.update(f"{cpu['cpu']} {cpu['flags']} {openvino.__version__}".encode())
    return h.hexdigest()[:24]


def int8_holds_here(fp32: Path, int8: Path, mask_of: MaskOf) -> bool:
    """Does the int8 graph give the fp32 graph's mask on this CPU? Checked once per CPU, graph
    and OpenVINO version on :func:`check_photo` (at most :data:`MAX_FLIPPED` of its pixels
    flipped; ``mask_of(file)`` runs a graph on it), the answer cached in ``~/.cache/crackseg``
    (``CRACKSEG_CACHE``)."""
    cache = _cache_file()
    key = _key(fp32, int8)
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if isinstance(known, dict) and isinstance(known.get(key), dict):
        return bool(known[key].get("holds"))
    flipped = float(np.mean(mask_of(fp32) != mask_of(int8)))
    known = known if isinstance(known, dict) else {}
    known[key] = {"holds": flipped <= MAX_FLIPPED, "flipped": round(flipped, 6)}
    try:
        atomic_write(cache, lambda tmp: Path(tmp).write_text(json.dumps(known, indent=1)))
    except OSError:
        pass  # an unwritable cache only means checking again next time
    return flipped <= MAX_FLIPPED


def check_photo() -> np.ndarray:
    """The built-in photo of the int8 parity check: a synthetic sunny pavement, 256 x 256."""
    from crackseg.data.synth import generate

    return generate(20261207, 256, "sunny")[0]
