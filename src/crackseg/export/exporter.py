"""Writing ONNX, OpenVINO and TorchScript files, and the parity check every file passes before it
is kept.

The steps of :func:`export_model`:

1. **source** (:func:`resolve_source`): the shipped weights (``pretrained:NAME``), a checkpoint
   file or run folder (the loader of ``Predictor.from_checkpoint`` and ``evaluate
   --checkpoint``), or a registered model name (random initialisation, for testing);
2. **write** the network's core with dynamic batch, height and width, and the metadata the
   Predictor needs inside the file, to a temporary folder beside ``out``; OpenVINO files are
   converted from the ONNX core (verified first, as in step 3), and ``int8`` files quantised
   from it (:mod:`.quantize`: onnxruntime ``quantize_static`` or NNCF, calibrated on training
   images);
3. **verify** (:func:`verify_export`): load the file with the runtime that will run it
   (onnxruntime, OpenVINO, ``torch.jit.load``) through the Predictor's own backends, and compare
   its logits with PyTorch's on random and on real (synthetic crack) images at two sizes, one not
   a multiple of 16 and padded exactly as the Predictor pads it; the metadata must read back
   unchanged. An int8 file is compared with PyTorch's fp32 *maps* instead (:func:`verify_int8`):
   8-bit probability levels and the mask at the model's threshold, on synthetic crack photos;
4. **keep** the file (atomic rename to ``out``) only when every max absolute difference is within
   the tolerance (default 1e-4; int8: at most 1 % of mask pixels flipped); otherwise nothing is
   written and the error names the worst case.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
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
    load_exported,
    quiet_torchscript_deprecation,
    runtime_for_file,
)
from crackseg.inference.predictor import Predictor, Preprocessing, sigmoid
from crackseg.meta import ModelMeta
from crackseg.metrics.protocol import quantize, threshold_level
from crackseg.models.contract import CrackModel

from .quantize import CALIB_IMAGES, ORT_SCHEMES, calibration_set, quantize_onnx, write_openvino

__all__ = [
    "CHECK_SIZES",
    "FORMATS",
    "INT8_TOLERANCE",
    "TOLERANCE",
    "ExportError",
    "ExportResult",
    "ParityCheck",
    "export_model",
    "resolve_source",
    "verify_export",
    "verify_int8",
]

#: export formats, their usual file suffix and the runtime that checks and runs them
FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "openvino": ".xml"}
RUNTIME = {"onnx": "onnxruntime", "torchscript": "torchscript", "openvino": "openvino"}
#: image sizes (H, W) of the parity check: one a multiple of 16, one not (padded by the Predictor)
CHECK_SIZES = ((224, 320), (250, 333))
#: largest max absolute logit difference accepted between the runtime and PyTorch
TOLERANCE = 1e-4
#: int8 files: largest share of mask pixels (at the model's threshold) allowed to differ from
#: PyTorch's fp32 mask on the check's crack photos. The shipped CarNet flips 0.1-0.2 % of its
#: DeepCrack test pixels when quantised well (``benchmarks/int8.py``); a broken quantisation
#: (an uncalibrated range, saturating arithmetic) flips far more
INT8_TOLERANCE = 0.01


class ExportError(CrackSegError):
    """An export cannot be written, or does not reproduce PyTorch's logits."""


@dataclass(frozen=True)
class ParityCheck:
    """One comparison of the runtime's logits with PyTorch's.

    Attributes:
        input: ``random`` (uniform noise images), ``real`` (a synthetic crack photo) or
            ``photos`` (int8 check: synthetic crack photos, sunny, rainy and night).
        size: image height and width before padding.
        shape: the batch the exported core got, ``(N, 3, h, w)``, padded to the size divisor.
        max_abs_diff: largest absolute difference of the logits.
        mask_flipped: int8 check: share of pixels whose mask (at the model's threshold) differs
            from PyTorch's fp32 mask.
        max_level_diff, mean_level_diff: int8 check: largest and mean absolute difference of
            the 8-bit probability levels.
    """

    input: str
    size: tuple[int, int]
    shape: tuple[int, int, int, int]
    max_abs_diff: float
    mask_flipped: float | None = None
    max_level_diff: int | None = None
    mean_level_diff: float | None = None

    def line(self) -> str:
        h, w = self.size
        padded = (
            "" if self.shape[2:] == self.size else f" (padded to {self.shape[2]}x{self.shape[3]})"
        )
        head = f"{self.input:6s} batch {self.shape[0]}, {h}x{w}{padded}: "
        if self.mask_flipped is None:
            return head + f"{self.max_abs_diff:.2e}"
        return head + (
            f"mask pixels flipped {self.mask_flipped:.3%}, 8-bit levels max |diff| "
            f"{self.max_level_diff}, mean {self.mean_level_diff:.2f}; logits max |diff| "
            f"{self.max_abs_diff:.3g}"
        )

    def to_dict(self) -> dict:
        d = {
            "input": self.input,
            "size": list(self.size),
            "shape": list(self.shape),
            "max_abs_diff": self.max_abs_diff,
        }
        if self.mask_flipped is not None:
            d["mask_flipped"] = self.mask_flipped
            d["max_level_diff"] = self.max_level_diff
            d["mean_level_diff"] = self.mean_level_diff
        return d


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote and how closely it matches PyTorch."""

    path: Path
    format: str
    metadata: ModelMeta
    checks: list[ParityCheck]
    tolerance: float
    seconds: float
    detail: str = ""
    reference: str = "PyTorch"

    @property
    def max_abs_diff(self) -> float:
        return max(c.max_abs_diff for c in self.checks)

    @property
    def precision(self) -> str:
        return self.metadata.precision

    @property
    def mask_flipped(self) -> float | None:
        """int8 files: the largest share of mask pixels flipped against PyTorch's fp32 mask."""
        flips = [c.mask_flipped for c in self.checks if c.mask_flipped is not None]
        return max(flips) if flips else None

    @property
    def files(self) -> list[Path]:
        """Every file written: OpenVINO IR is ``.xml`` + ``.bin``."""
        return (
            [self.path, self.path.with_suffix(".bin")] if self.format == "openvino" else [self.path]
        )

    @property
    def bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)

    def to_dict(self) -> dict:
        d = {
            "path": str(self.path),
            "format": self.format,
            "precision": self.precision,
            "bytes": self.bytes,
            "detail": self.detail,
            "max_abs_diff": self.max_abs_diff,
            "tolerance": self.tolerance,
            "checks": [c.to_dict() for c in self.checks],
            "seconds": round(self.seconds, 2),
            "reference": self.reference,
            "metadata": self.metadata.to_dict(),
        }
        if self.format == "openvino":
            d["files"] = [str(f) for f in self.files]
        if self.mask_flipped is not None:
            d["mask_flipped"] = self.mask_flipped
        return d


# ---------------------------------------------------------------------------------------------
# what to export
# ---------------------------------------------------------------------------------------------
def resolve_source(
    source: str | Path | None = None, model_kwargs: dict | None = None
) -> tuple[nn.Module, ModelMeta]:
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
    if spec.startswith("pretrained:"):
        from crackseg.models.pretrained import get_weights

        try:
            weights = get_weights(spec.split(":", 1)[1] or "default")
        except KeyError as e:
            raise ExportError(f"{spec}: {e.args[0]}") from None
        model, meta = weights.load(), weights.meta
    elif Path(spec).exists():
        from crackseg.models.weights_io import load_model

        model, file_meta = load_model(spec)
        meta = ModelMeta.from_safetensors(file_meta, name=spec)
    elif spec in list_models():
        model = create_model(spec, **(model_kwargs or {}))
        meta = ModelMeta(spec, f"{spec} (random init)", model_kwargs=dict(model_kwargs or {}))
    else:
        raise ExportError(
            f"{spec!r} is neither a checkpoint (.safetensors file or run folder), pretrained:NAME "
            "nor a registered model; crackseg models lists the models, crackseg models "
            "--pretrained the shipped weights"
        )
    meta = replace(meta, size_divisor=_divisor(model), source=spec, crackseg_version=__version__)
    return model.float().cpu().eval(), meta


def _divisor(model: CrackModel) -> int:
    return int(model.size_divisor)


def resolve_format(fmt: str | None, out: str | Path) -> str:
    """The export format: ``fmt``, else the one ``out``'s suffix names; they must agree."""
    by_suffix = {"onnxruntime": "onnx", "torchscript": "torchscript", "openvino": "openvino"}.get(
        runtime_for_file(out) or ""
    )
    if fmt is None:
        if by_suffix is None:
            raise ExportError(
                f"cannot tell the format from --out {out}: add --format onnx, torchscript or "
                "openvino (or name the file .onnx / .pt / .xml)"
            )
        return by_suffix
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise ExportError(f"unknown --format {fmt!r}: choose onnx, torchscript or openvino")
    if fmt == "openvino" and Path(out).suffix.lower() != ".xml":
        raise ExportError(
            f"--out {out}: an OpenVINO model is an .xml file (its weights go to a .bin beside "
            f"it): name it {Path(out).with_suffix('.xml').name}"
        )
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
def _example(meta: ModelMeta) -> torch.Tensor:
    d = meta.size_divisor
    return torch.randn(2, 3, 4 * d, 6 * d, generator=torch.Generator().manual_seed(0))


def _write_onnx(model: nn.Module, meta: ModelMeta, path: Path) -> str:
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
    program.model.metadata_props.update(meta.to_props())
    program.save(str(path), external_data=False)
    opset = program.model.opset_imports.get("", "?")
    return f"opset {opset}, torch.onnx dynamo exporter (torch {torch.__version__})"


def _write_torchscript(model: nn.Module, meta: ModelMeta, path: Path) -> str:
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
    meta: ModelMeta, sizes=CHECK_SIZES, seed: int = 0
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
    expected: ModelMeta | None = None,
    sizes=CHECK_SIZES,
    tolerance: float = TOLERANCE,
    seed: int = 0,
    label: str | Path | None = None,
    runtime: str | None = None,
) -> list[ParityCheck]:
    """Compare the exported file's logits with ``model``'s; raise :class:`ExportError` when a
    max absolute difference exceeds ``tolerance`` or the metadata does not read back as
    ``expected``. Returns every check. ``label`` names the file in messages (default ``path``);
    ``runtime`` runs it (default: the one of ``fmt``). An int8 file (its metadata says so) is
    checked by :func:`verify_int8` instead, ``tolerance`` being its share of flipped pixels."""
    backend = load_exported(path, backend=runtime or RUNTIME[fmt], trust=True)  # we just wrote it
    path = label or path
    if expected is not None and backend.metadata != expected:
        raise ExportError(
            f"{path}: the metadata read back from the file differs from what was written "
            f"({backend.metadata} != {expected})"
        )
    if backend.metadata.precision == "int8":
        return verify_int8(backend, model, sizes, tolerance, seed, label=path)
    reference, whose = _reference(model)
    checks = []
    for kind, size, batch in parity_batches(backend.metadata, sizes, seed):
        ref, got = _run_both(reference, whose, backend, batch, f"{path}: the {fmt} model")
        checks.append(ParityCheck(kind, size, batch.shape, float(np.max(np.abs(got - ref)))))
    worst = max(checks, key=lambda c: c.max_abs_diff if np.isfinite(c.max_abs_diff) else np.inf)
    if not worst.max_abs_diff <= tolerance:  # NaN fails too
        raise ExportError(
            f"{path}: {fmt} logits differ from {whose} by up to {worst.max_abs_diff:.3g} (> "
            f"tolerance {tolerance:g}) on the {worst.input} input {worst.size[0]}x"
            f"{worst.size[1]}; the export is not kept (a different --tolerance accepts it)"
        )
    return checks


def _reference(model) -> tuple:
    """``(run, whose)``: the fp32 reference as a function of a numpy batch, and its name in
    messages. ``model`` is a PyTorch module, or the backend of an fp32 ONNX source file."""
    if isinstance(model, nn.Module):
        module = model.float().cpu().eval()

        def run(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(batch)).float().numpy()

        return run, "PyTorch's"
    return model, f"the source's ({getattr(model, 'path', 'model')})"


def _run_both(reference, whose: str, backend, batch: np.ndarray, what: str) -> tuple:
    """``(reference logits, file's logits)`` for ``batch``; an :class:`ExportError` when their
    shapes differ (``what`` names the file in the message)."""
    ref = reference(batch)
    got = backend(batch)
    if got.shape != ref.shape:
        raise ExportError(
            f"{what} returns {got.shape} for input {batch.shape}, {whose} {ref.shape}"
        )
    return ref, got


def int8_batches(
    meta: ModelMeta, sizes=CHECK_SIZES, seed: int = 0
) -> list[tuple[str, tuple[int, int], np.ndarray]]:
    """``("photos", (h, w), batch)`` per size: three synthetic crack photos (sunny, rainy,
    night; batch 3), normalised and padded by the Predictor as in prediction."""
    from crackseg.data.synth import CONDITIONS, generate

    pad = Predictor(_DivisorOnly(meta.size_divisor), Preprocessing(meta.mean, meta.std),
                    tile_size=1 << 15, overlap=0)  # fmt: skip
    out = []
    for k, (h, w) in enumerate(sizes):
        photos = [generate(seed + 10 * k + i, (h, w), c)[0] for i, c in enumerate(CONDITIONS)]
        batch = np.concatenate([next(pad.iter_tile_batches(p)) for p in photos])
        out.append(("photos", (h, w), batch))
    return out


def verify_int8(
    backend,
    model: nn.Module,
    sizes=CHECK_SIZES,
    tolerance: float = INT8_TOLERANCE,
    seed: int = 0,
    label: str | Path | None = None,
) -> list[ParityCheck]:
    """Compare an int8 file's maps with PyTorch's fp32 maps; raise :class:`ExportError` when
    more than ``tolerance`` of the mask pixels flip.

    The comparison is on what prediction outputs, 8-bit probability levels and the mask at the
    model's threshold, on crack photos: quantisation error is by design (about one activation
    step per layer, logits off by tenths where fp32 files agree to 1e-5), so a logit tolerance
    would say nothing, and uniform noise images (the fp32 check's other input) drive the
    activations outside the calibrated ranges no photo reaches."""
    label = label or getattr(backend, "path", "model")
    meta = backend.metadata
    level = threshold_level(meta.threshold)
    reference, whose = _reference(model)
    checks = []
    for kind, (h, w), batch in int8_batches(meta, sizes, seed):
        ref, got = _run_both(reference, whose, backend, batch, f"{label}: the int8 model")
        ref, got = ref[:, 0, :h, :w], got[:, 0, :h, :w]  # the padding is cropped off maps
        ref_levels = np.stack([quantize(sigmoid(m)) for m in ref])
        got_levels = np.stack([quantize(sigmoid(m)) for m in got])
        diff = np.abs(got_levels.astype(np.int16) - ref_levels.astype(np.int16))
        flipped = float(np.mean((got_levels >= level) != (ref_levels >= level)))
        checks.append(
            ParityCheck(
                kind,
                (h, w),
                batch.shape,
                float(np.max(np.abs(got - ref))),
                mask_flipped=flipped,
                max_level_diff=int(diff.max()),
                mean_level_diff=float(diff.mean()),
            )
        )
    worst = max(checks, key=lambda c: c.mask_flipped)
    if not worst.mask_flipped <= tolerance or not np.isfinite(worst.max_abs_diff):
        raise ExportError(
            f"{label}: the int8 mask differs from {whose} fp32 mask on {worst.mask_flipped:.2%} "
            f"of the pixels (> tolerance {tolerance:.2%}) of the crack photos {worst.size[0]}x"
            f"{worst.size[1]}; the export is not kept (calibrate on photos like those you "
            "predict, --calib; a different --tolerance accepts it)"
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
    tolerance: float | None = None,
    seed: int = 0,
    int8: bool = False,
    calib: str | list[str] | None = None,
    calib_images: int = CALIB_IMAGES,
    int8_scheme: str | None = None,
) -> ExportResult:
    """Export ``source`` to ``out`` as ``format`` (``onnx`` / ``openvino`` / ``torchscript``;
    None: by suffix), optionally quantised to int8.

    The file is written in a temporary folder beside ``out``, verified (:func:`verify_export`)
    and only then renamed to ``out``; a file that fails the check is never left behind.

    Args:
        source: see :func:`resolve_source` (default: the shipped CarNet).
        format: ``onnx``, ``openvino`` (IR: ``out`` is the ``.xml``, its ``.bin`` goes beside
            it) or ``torchscript``; None picks by ``out``'s suffix (.onnx, .xml, .pt).
        out: the file to write.
        model_kwargs: constructor arguments when ``source`` is a registered model name.
        sizes: image sizes ``(H, W)`` of the parity check (each side at least 32).
        tolerance: largest max absolute logit difference accepted (default 1e-4); int8: largest
            share of mask pixels flipped against PyTorch's fp32 mask (default 0.01).
        seed: seed of the check's inputs and of the calibration draw.
        int8: quantise (post-training, static; ``onnx``: onnxruntime, ``openvino``: NNCF).
        calib: int8 calibration images: dataset spec(s) (their train split), folder(s) of
            photos, or None / ``"synthetic"`` (synthetic crack photos); see :mod:`.quantize`.
        calib_images: how many calibration images (default 32).
        int8_scheme: ``onnx`` int8 only: ``u8s8`` (default) or ``s8s8`` (see :mod:`.quantize`).
    """
    t0 = time.perf_counter()
    out = Path(out)
    fmt = resolve_format(format, out)
    scheme, tolerance = _check_options(fmt, int8, calib, int8_scheme, tolerance)
    _check_out(out)
    onnx_source = _onnx_source(source, fmt, int8)
    if onnx_source is not None:
        from crackseg import __version__

        model = onnx_source
        meta = replace(onnx_source.metadata, crackseg_version=__version__)
    else:
        model, meta = resolve_source(source, model_kwargs)
    # as the file will hold them (JSON: tuples become lists), so the read-back compares equal
    meta = replace(meta, format=fmt, model_kwargs=json.loads(json.dumps(meta.model_kwargs)))
    calibration = calibration_set(calib, calib_images, meta, seed) if int8 else None
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        staged = tmp / f"model{out.suffix or FORMATS[fmt]}"
        core = staged if fmt == "onnx" and not int8 else tmp / "core.onnx"
        core_meta = replace(meta, format="onnx") if fmt != "torchscript" else meta
        if onnx_source is not None:  # quantise / convert a crackseg ONNX export as it is
            core = onnx_source.path
            detail = f"from {core} (fp32 ONNX)"
        else:
            writer = WRITERS["torchscript" if fmt == "torchscript" else "onnx"]
            detail = _write(writer, model, core_meta, staged if fmt == "torchscript" else core)
        if core != staged and fmt != "torchscript" and (onnx_source is None or fmt != "onnx"):
            # the fp32 core first, run by the runtime of the final file: a conversion or
            # quantisation error is then told apart from an export error
            verify_export(core, model, "onnx", core_meta, sizes, TOLERANCE, seed,
                          label=f"{out} (its fp32 ONNX core)", runtime=RUNTIME[fmt])  # fmt: skip
        expected = meta
        if fmt == "onnx" and int8:
            record = quantize_onnx(core, staged, calibration, meta, scheme)
            expected = replace(meta, precision="int8", quantization=record)
            detail += f"; int8 by onnxruntime {record['onnxruntime']} ({scheme})"
        elif fmt == "openvino":
            record = write_openvino(core, staged, meta, calibration)
            if record:
                expected = replace(meta, precision="int8", quantization=record)
            detail += f"; OpenVINO IR ({'int8 by NNCF ' + record['nncf'] if record else 'fp32'})"
        expected = replace(expected, quantization=json.loads(json.dumps(expected.quantization)))
        checks = verify_export(staged, model, fmt, expected, sizes, tolerance, seed, label=out)
        if fmt == "openvino":
            os.replace(staged.with_suffix(".bin"), out.with_suffix(".bin"))
        os.replace(staged, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    reference = "PyTorch" if onnx_source is None else f"the fp32 ONNX source {onnx_source.path}"
    seconds = time.perf_counter() - t0
    return ExportResult(out, fmt, expected, checks, tolerance, seconds, detail, reference)


def _check_options(fmt: str, int8: bool, calib, int8_scheme, tolerance) -> tuple[str, float]:
    """The int8 scheme and the parity tolerance, after checking the options fit together."""
    if int8 and fmt == "torchscript":
        raise ExportError(
            "--int8 quantises ONNX (onnxruntime) and OpenVINO files: add --format onnx or "
            "--format openvino"
        )
    if not int8 and (calib is not None or int8_scheme is not None):
        raise ExportError("--calib and --int8-scheme go with --int8 (a quantised export)")
    if int8_scheme is not None and fmt != "onnx":
        raise ExportError(
            "--int8-scheme chooses onnxruntime's quantisation (--format onnx); OpenVINO files "
            "are quantised by NNCF"
        )
    scheme = int8_scheme or "u8s8"
    if scheme not in ORT_SCHEMES:
        raise ExportError(f"unknown --int8-scheme {scheme!r}: choose {' or '.join(ORT_SCHEMES)}")
    if tolerance is None:
        tolerance = INT8_TOLERANCE if int8 else TOLERANCE
    if not tolerance > 0:
        raise ExportError(f"--tolerance must be > 0, got {tolerance}")
    return scheme, tolerance


def _onnx_source(source, fmt: str, int8: bool):
    """The onnxruntime backend of ``source`` when it is an fp32 ``.onnx`` file written by
    ``crackseg export`` (quantised or converted as it is, its logits the reference), else None."""
    if source is None or Path(str(source)).suffix.lower() != ".onnx":
        return None
    path = Path(str(source))
    if not path.is_file():
        raise ExportError(f"{path} does not exist (an ONNX source is a crackseg export file)")
    backend = load_exported(path, backend="onnxruntime")
    if backend.metadata.precision != "fp32":
        raise ExportError(
            f"{path} is already {backend.metadata.precision}: quantise its fp32 export, or the "
            "model itself"
        )
    if fmt == "torchscript" or (fmt == "onnx" and not int8):
        raise ExportError(
            f"{path} is an fp32 ONNX export: it can be quantised (--int8) or converted "
            "(--format openvino); export the model itself for other formats"
        )
    return backend


def _write(writer, model: nn.Module, meta: ModelMeta, path: Path) -> str:
    try:
        return writer(model, meta, path)
    except (ImportError, CrackSegError):
        raise
    except Exception as e:  # torch's exporters fail with many exception types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(
            f"{meta.format} export of {meta.model} failed: {type(e).__name__}: {first} "
            "(CRACKSEG_DEBUG=1 shows the whole traceback)"
        ) from e
