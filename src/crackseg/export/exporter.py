"""Writing ONNX and TorchScript files, and the parity check every file passes before it is kept.

The steps of :func:`export_model`:

1. **source** (:func:`resolve_source`): the shipped weights (``pretrained:NAME``), a checkpoint
   file or run folder (the loader of ``Predictor.from_checkpoint`` and ``evaluate
   --checkpoint``), or a registered model name (random initialisation, for testing);
2. **write** the network's core with dynamic batch, height and width, and the metadata the
   Predictor needs inside the file, to a temporary name beside ``out``;
3. **verify** (:func:`verify_export`): load the file with the runtime that will run it
   (onnxruntime, ``torch.jit.load``) through the Predictor's own backends, and compare its logits
   with PyTorch's on random and on real (synthetic crack) images at two sizes, one not a multiple
   of 16 and padded exactly as the Predictor pads it; the metadata must read back unchanged;
4. **keep** the file (atomic rename to ``out``) only when every max absolute difference is within
   the tolerance (default 1e-4); otherwise nothing is written and the error names the worst case.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from crackseg.errors import CrackSegError
from crackseg.inference.backends import (
    INPUT_NAME,
    OUTPUT_NAME,
    TORCHSCRIPT_META,
    ExportMetadata,
    load_exported,
    quiet_torchscript_deprecation,
    runtime_for_file,
)
from crackseg.inference.predictor import Predictor, Preprocessing, _meta_kwargs

__all__ = [
    "CHECK_SIZES",
    "FORMATS",
    "TOLERANCE",
    "ExportError",
    "ExportResult",
    "ParityCheck",
    "export_model",
    "resolve_source",
    "verify_export",
]

#: export formats, their usual file suffix and the runtime that checks and runs them
FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
RUNTIME = {"onnx": "onnxruntime", "torchscript": "torchscript"}
#: image sizes (H, W) of the parity check: one a multiple of 16, one not (padded by the Predictor)
CHECK_SIZES = ((224, 320), (250, 333))
#: largest max absolute logit difference accepted between the runtime and PyTorch
TOLERANCE = 1e-4


class ExportError(CrackSegError):
    """An export cannot be written, or does not reproduce PyTorch's logits."""


@dataclass(frozen=True)
class ParityCheck:
    """One comparison of the runtime's logits with PyTorch's.

    Attributes:
        input: ``random`` (uniform noise images) or ``real`` (a synthetic crack photo).
        size: image height and width before padding.
        shape: the batch the exported core got, ``(N, 3, h, w)``, padded to the size divisor.
        max_abs_diff: largest absolute difference of the logits.
    """

    input: str
    size: tuple[int, int]
    shape: tuple[int, int, int, int]
    max_abs_diff: float

    def line(self) -> str:
        h, w = self.size
        padded = (
            "" if self.shape[2:] == self.size else f" (padded to {self.shape[2]}x{self.shape[3]})"
        )
        return f"{self.input:6s} batch {self.shape[0]}, {h}x{w}{padded}: {self.max_abs_diff:.2e}"


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote and how closely it matches PyTorch."""

    path: Path
    format: str
    metadata: ExportMetadata
    checks: list[ParityCheck]
    tolerance: float
    seconds: float
    detail: str = ""

    @property
    def max_abs_diff(self) -> float:
        return max(c.max_abs_diff for c in self.checks)

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "format": self.format,
            "bytes": self.path.stat().st_size,
            "detail": self.detail,
            "max_abs_diff": self.max_abs_diff,
            "tolerance": self.tolerance,
            "checks": [
                {
                    "input": c.input,
                    "size": list(c.size),
                    "shape": list(c.shape),
                    "max_abs_diff": c.max_abs_diff,
                }
                for c in self.checks
            ],
            "seconds": round(self.seconds, 2),
            "metadata": self.metadata.to_dict(),
        }


# ---------------------------------------------------------------------------------------------
# what to export
# ---------------------------------------------------------------------------------------------
def resolve_source(
    source: str | Path | None = None, model_kwargs: dict | None = None
) -> tuple[nn.Module, ExportMetadata]:
    """The model to export (fp32, eval mode, CPU) and the metadata that goes with it.

    Args:
        source: ``None`` or ``pretrained:NAME`` (shipped weights; ``pretrained:default`` is the
            shipped CarNet), a checkpoint (``.safetensors`` file or run folder), or a registered
            model name (random initialisation, for testing exports).
        model_kwargs: constructor arguments for a registered model name.
    """
    from crackseg import __version__
    from crackseg.models import create_model, list_models

    spec = str(source) if source is not None else "pretrained:default"
    common = {"source": spec, "crackseg_version": __version__}
    if spec.startswith("pretrained:"):
        from crackseg.models.pretrained import get_weights

        try:
            weights = get_weights(spec.split(":", 1)[1] or "default")
        except KeyError as e:
            raise ExportError(f"{spec}: {e.args[0]}") from None
        model = weights.load()
        meta = ExportMetadata(
            model=weights.model,
            model_kwargs=dict(weights.model_kwargs),
            name=weights.name,
            card=weights.name,
            mean=weights.mean,
            std=weights.std,
            threshold=weights.threshold,
            size_divisor=_divisor(model),
            **common,
        )
    elif Path(spec).exists():
        from crackseg.engine.checkpoint import load_model

        model, file_meta = load_model(spec)
        kwargs = _meta_kwargs(file_meta)  # the Predictor's reading of the same metadata
        pre = kwargs.get("preprocessing", Preprocessing())
        meta = ExportMetadata(
            model=file_meta["model"],
            model_kwargs=json.loads(file_meta.get("model_kwargs", "{}")),
            name=spec,
            mean=pre.mean,
            std=pre.std,
            threshold=kwargs.get("threshold", 0.5),
            size_divisor=_divisor(model),
            **common,
        )
    elif spec in list_models():
        model = create_model(spec, **(model_kwargs or {}))
        pre = Preprocessing()
        meta = ExportMetadata(
            model=spec,
            model_kwargs=dict(model_kwargs or {}),
            name=f"{spec} (random init)",
            mean=pre.mean,
            std=pre.std,
            threshold=0.5,
            size_divisor=_divisor(model),
            **common,
        )
    else:
        raise ExportError(
            f"{spec!r} is neither a checkpoint (.safetensors file or run folder), pretrained:NAME "
            "nor a registered model; crackseg models lists the models, crackseg models "
            "--pretrained the shipped weights"
        )
    return model.float().cpu().eval(), meta


def _divisor(model: nn.Module) -> int:
    return int(getattr(model, "size_divisor", 32))


def resolve_format(fmt: str | None, out: str | Path) -> str:
    """The export format: ``fmt``, else the one ``out``'s suffix names; they must agree."""
    by_suffix = {"onnxruntime": "onnx", "torchscript": "torchscript"}.get(
        runtime_for_file(out) or ""
    )
    if fmt is None:
        if by_suffix is None:
            raise ExportError(
                f"cannot tell the format from --out {out}: add --format onnx or --format "
                "torchscript (or name the file .onnx / .pt)"
            )
        return by_suffix
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise ExportError(f"unknown --format {fmt!r}: choose {' or '.join(FORMATS)}")
    if by_suffix is not None and by_suffix != fmt:
        raise ExportError(
            f"--out {out} has the suffix of a {by_suffix} file but --format is {fmt}: name it "
            f"{Path(out).with_suffix(FORMATS[fmt]).name} (crackseg predict picks the runtime by it)"
        )
    return fmt


def _check_out(out: Path) -> None:
    """Refuse before the slow part: ``out`` must be a file name in a folder we can write to."""
    if out.is_dir():
        raise ExportError(f"--out {out} is a folder: give a file name, e.g. {out / 'model.onnx'}")
    folder = out.parent
    if not folder.is_dir():
        raise ExportError(
            f"--out {out}: folder {folder} does not exist; create it (mkdir -p {folder}) or "
            "choose another path"
        )
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{out.name}.", suffix=".probe")
    except OSError as e:
        raise ExportError(
            f"--out {out}: cannot write to folder {folder} ({e.strerror or e}); choose a folder "
            "you can write to"
        ) from None
    os.close(fd)
    os.unlink(probe)


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------
def _example(meta: ExportMetadata) -> torch.Tensor:
    d = meta.size_divisor
    return torch.randn(2, 3, 4 * d, 6 * d, generator=torch.Generator().manual_seed(0))


def _write_onnx(model: nn.Module, meta: ExportMetadata, path: Path) -> str:
    try:
        import onnxscript  # noqa: F401  (the exporter below needs it)
    except ImportError:
        raise ImportError(
            "ONNX export needs onnx and onnxscript: pip install 'crackseg[onnx]'"
        ) from None
    dim = torch.export.Dim
    d = meta.size_divisor
    # Height and width are declared multiples of the size divisor: the exporter then proves the
    # model's own pad-to-multiple branch dead for every input, so padding stays with the
    # Predictor, outside the file.
    shapes = ({0: dim("batch"), 2: d * dim("height_blocks"), 3: d * dim("width_blocks")},)
    # The exporter: dynamo=True (torch.export-based). It is torch's default and maintained
    # exporter since 2.9; the TorchScript-based one (dynamo=False) is deprecated and would trace
    # the model, freezing every shape-dependent Python branch at the example's value (only our
    # check would notice), where torch.export keeps the sizes symbolic and checks them.
    # external_data=False keeps the weights inside the one file.
    with contextlib.redirect_stdout(io.StringIO()):
        program = torch.onnx.export(
            model,
            (_example(meta),),
            dynamo=True,
            dynamic_shapes=shapes,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            external_data=False,
            optimize=True,
            verbose=False,
        )
    program.model.metadata_props.update(meta.to_onnx_props())
    program.save(str(path), external_data=False)
    opset = program.model.opset_imports.get("", "?")
    return f"opset {opset}, torch.onnx dynamo exporter (torch {torch.__version__})"


def _write_torchscript(model: nn.Module, meta: ExportMetadata, path: Path) -> str:
    # Traced, not scripted: tracing records the convolutions and the shape arithmetic (sizes
    # are read from the input, so height, width and batch stay dynamic); scripting would need
    # every model in the zoo written in the TorchScript subset. The one shape-dependent Python
    # branch (pad to a multiple of the divisor) is always "no padding" for the divisible
    # inputs the Predictor sends: that is the TracerWarning silenced here, and the parity check
    # runs sizes the example did not have.
    with warnings.catch_warnings(), quiet_torchscript_deprecation():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        with torch.no_grad():
            traced = torch.jit.trace(model, _example(meta), check_trace=False)
        extra = {TORCHSCRIPT_META: json.dumps(meta.to_dict())}
        torch.jit.save(traced, str(path), _extra_files=extra)
    return f"torch.jit.trace (torch {torch.__version__})"


WRITERS = {"onnx": _write_onnx, "torchscript": _write_torchscript}


# ---------------------------------------------------------------------------------------------
# the parity check
# ---------------------------------------------------------------------------------------------
class _DivisorOnly:
    """Stands in for a backend where the Predictor only pads (nothing runs through it)."""

    def __init__(self, size_divisor: int) -> None:
        self.size_divisor = size_divisor

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        raise AssertionError("not for running")


def parity_batches(
    meta: ExportMetadata, sizes=CHECK_SIZES, seed: int = 0
) -> list[tuple[str, tuple[int, int], np.ndarray]]:
    """``(input kind, (h, w), batch)`` for the check: two uniform-noise images (batch 2, so the
    batch axis is exercised) and one synthetic crack photo per size, normalised and padded by
    the Predictor exactly as in prediction."""
    from crackseg.data.synth import generate

    pad = Predictor(
        _DivisorOnly(meta.size_divisor),
        Preprocessing(meta.mean, meta.std),
        tile_size=1 << 15,  # one tile per image: the check is about the core, not tiling
        overlap=0,
    )
    rng = np.random.default_rng(seed)
    out = []
    for h, w in sizes:
        noise = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(2)]
        batch = np.concatenate([next(pad.iter_tile_batches(im)) for im in noise])
        out.append(("random", (h, w), batch))
        photo, _ = generate(seed, (h, w), "sunny")
        out.append(("real", (h, w), next(pad.iter_tile_batches(photo))))
    return out


def verify_export(
    path: str | Path,
    model: nn.Module,
    fmt: str,
    expected: ExportMetadata | None = None,
    sizes=CHECK_SIZES,
    tolerance: float = TOLERANCE,
    seed: int = 0,
    label: str | Path | None = None,
) -> list[ParityCheck]:
    """Compare the exported file's logits with ``model``'s; raise :class:`ExportError` when a
    max absolute difference exceeds ``tolerance`` or the metadata does not read back as
    ``expected``. Returns every check. ``label`` names the file in messages (default ``path``)."""
    runtime = load_exported(path, backend=RUNTIME[fmt])
    path = label or path
    if expected is not None and runtime.metadata != expected:
        raise ExportError(
            f"{path}: the metadata read back from the file differs from what was written "
            f"({runtime.metadata} != {expected})"
        )
    model = model.float().cpu().eval()
    checks = []
    for kind, size, batch in parity_batches(runtime.metadata, sizes, seed):
        with torch.inference_mode():
            ref = model(torch.from_numpy(batch)).float().numpy()
        got = runtime(batch)
        if got.shape != ref.shape:
            raise ExportError(
                f"{path}: the {fmt} model returns {got.shape} for input {batch.shape}, PyTorch "
                f"{ref.shape}"
            )
        checks.append(ParityCheck(kind, size, batch.shape, float(np.max(np.abs(got - ref)))))
    worst = max(checks, key=lambda c: c.max_abs_diff if np.isfinite(c.max_abs_diff) else np.inf)
    if not worst.max_abs_diff <= tolerance:  # NaN fails too
        raise ExportError(
            f"{path}: {fmt} logits differ from PyTorch's by up to {worst.max_abs_diff:.3g} (> "
            f"tolerance {tolerance:g}) on the {worst.input} input {worst.size[0]}x"
            f"{worst.size[1]}; the export is not kept (a different --tolerance accepts it)"
        )
    return checks


# ---------------------------------------------------------------------------------------------
# the whole export
# ---------------------------------------------------------------------------------------------
def export_model(
    source: str | Path | None = None,
    format: str | None = None,
    out: str | Path = "model.onnx",
    *,
    model_kwargs: dict | None = None,
    sizes=CHECK_SIZES,
    tolerance: float = TOLERANCE,
    seed: int = 0,
) -> ExportResult:
    """Export ``source`` to ``out`` as ``format`` (``onnx`` / ``torchscript``; None: by suffix).

    The file is written under a temporary name beside ``out``, verified (:func:`verify_export`)
    and only then renamed to ``out``; a file that fails the check is never left behind.

    Args:
        source: see :func:`resolve_source` (default: the shipped CarNet).
        format: ``onnx`` or ``torchscript``; None picks by ``out``'s suffix (.onnx, .pt).
        out: the file to write.
        model_kwargs: constructor arguments when ``source`` is a registered model name.
        sizes: image sizes ``(H, W)`` of the parity check (each side at least 32).
        tolerance: largest max absolute logit difference accepted.
        seed: seed of the check's inputs.
    """
    t0 = time.perf_counter()
    out = Path(out)
    fmt = resolve_format(format, out)
    if not tolerance > 0:
        raise ExportError(f"--tolerance must be > 0, got {tolerance}")
    _check_out(out)
    model, meta = resolve_source(source, model_kwargs)
    # as the file will hold them (JSON: tuples become lists), so the read-back compares equal
    meta = replace(meta, format=fmt, model_kwargs=json.loads(json.dumps(meta.model_kwargs)))
    fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=out.suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        try:
            detail = WRITERS[fmt](model, meta, tmp)
        except (ImportError, CrackSegError):
            raise
        except Exception as e:  # torch's exporters fail with many exception types
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ExportError(
                f"{fmt} export of {meta.model} failed: {type(e).__name__}: {first} "
                "(CRACKSEG_DEBUG=1 shows the whole traceback)"
            ) from e
        checks = verify_export(tmp, model, fmt, meta, sizes, tolerance, seed, label=out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return ExportResult(out, fmt, meta, checks, tolerance, time.perf_counter() - t0, detail)
