"""One path from a photo to a crack map: :class:`Predictor`.

Everything that turns an image into a probability map goes through here: prediction, evaluation
of a checkpoint, validation during training, the demo, and (through other backends) exported
models and the service. The path, each step written once:

1. **preprocess** (:class:`Preprocessing`): optional rescale (a fixed factor, or ``"auto"``: a
   second pass at half size for photos whose cracks come out wide), normalisation with the
   mean / std stored with the weights, as numpy ``float32`` ``(3, h, w)`` tiles;
2. **tile** (:func:`tile_starts`): an image larger than ``tile_size`` is cut into overlapping
   tiles, evenly spread so the last one ends at the border; each tile is padded (replicate,
   bottom / right) to a multiple of the backend's ``size_divisor``, so the exportable core only
   ever sees divisible sizes and never branches on them;
3. **backend**: any callable ``(N, 3, h, w) float32 -> (N, 1, h, w) logits`` with a
   ``size_divisor`` attribute: :class:`TorchBackend` here; the onnxruntime and TorchScript
   backends of exported files (:mod:`crackseg.inference.backends`) plug in the same way.
   Tiles go through in batches of ``batch_size``; with ``tta`` each batch also goes through its
   seven other dihedral views, mapped back and averaged;
4. **postprocess**: crop the padding, sigmoid, blend overlapping tiles with a smooth window
   (:func:`blend_window`: a raised-cosine ramp across the overlap, so a tile's border pixels,
   which saw the least context, count least), quantise to 8-bit levels
   (:func:`crackseg.metrics.protocol.quantize`, ``round(p * 255)``, the protocol's own rule), and
   threshold (``p >= t`` iff ``level >= ceil(255 t)``, again the protocol's rule).

Memory stays bounded for any image size: tiles are blended in one band of tile rows at a time
(two ``float32`` buffers of ``tile_size x width``), finished rows are quantised straight into the
``uint8`` output, and no full-image float tensor is ever made or sent through the model.

This module imports numpy only; torch is imported by :class:`TorchBackend` when it is built, so
an onnxruntime deployment does not need torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crackseg.meta import MEAN, STD, ModelMeta
from crackseg.metrics.protocol import quantize, threshold_level

Backend = Callable[[np.ndarray], np.ndarray]

#: ``scale="auto"``: photos whose cracks come out wider than this many pixels (median width along
#: the skeleton of the native-resolution mask at the predictor's threshold, by default the model
#: card's) are predicted a second time at :data:`AUTO_SCALE` and the two maps averaged. The
#: shipped model learnt cracks mostly 1-6 px wide and leaves the middle of much wider ones
#: uncertain; at half size they look familiar, while the native pass keeps the hairline detail.
#: Chosen on the cross-dataset matrix (README, ``benchmarks/results/cross_scale_auto.json``).
AUTO_SCALE_WIDTH_PX = 5.0
AUTO_SCALE = 0.5

__all__ = [
    "Preprocessing",
    "Prediction",
    "Predictor",
    "TorchBackend",
    "blend_window",
    "resolve_precision",
    "tile_starts",
]


# ---------------------------------------------------------------------------------------------
# Pre- and postprocessing
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preprocessing:
    """How the weights expect their input: RGB in [0, 1], minus ``mean``, over ``std``."""

    mean: tuple[float, float, float] = MEAN
    std: tuple[float, float, float] = STD

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """``(h, w, 3)`` uint8 RGB -> ``(3, h, w)`` float32, normalised."""
        x = image.astype(np.float32).transpose(2, 0, 1) / np.float32(255.0)
        mean = np.asarray(self.mean, np.float32)[:, None, None]
        std = np.asarray(self.std, np.float32)[:, None, None]
        return (x - mean) / std

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std)}


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function in float32, stable for large ``|x|``."""
    x = np.asarray(x, dtype=np.float32)
    return (np.float32(0.5) * (np.tanh(np.float32(0.5) * x) + np.float32(1.0))).astype(np.float32)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``0..length`` with at least ``overlap``.

    One tile when ``length <= tile``; otherwise the fewest tiles whose neighbours overlap by at
    least ``overlap`` pixels, spread evenly so the first starts at 0 and the last ends at
    ``length`` (no tile hangs over the border, none is thinner than the others).
    """
    if length <= tile:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile_size), got {overlap} for tile {tile}")
    n = math.ceil((length - tile) / (tile - overlap)) + 1
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def blend_window(size: int, ramp: int) -> np.ndarray:
    """1-D blending weights of a tile: a raised-cosine ramp over ``ramp`` pixels at each end.

    The weights never reach 0 (the outermost pixel gets ``~1/(2 ramp)^2``), so a pixel covered by
    a single tile, at the image border, is that tile's value exactly after normalisation.
    """
    w = np.ones(size, np.float32)
    ramp = min(ramp, size // 2)
    if ramp > 0:
        t = (np.arange(ramp, dtype=np.float32) + 0.5) / ramp
        edge = 0.5 - 0.5 * np.cos(np.pi * t)
        w[:ramp] = edge
        w[size - ramp :] = edge[::-1]
    return w


def _dihedral(x: np.ndarray, k: int, flip: bool) -> np.ndarray:
    x = x[..., ::-1] if flip else x
    return np.rot90(x, k, axes=(-2, -1))


def _undo_dihedral(y: np.ndarray, k: int, flip: bool) -> np.ndarray:
    y = np.rot90(y, -k, axes=(-2, -1))
    return y[..., ::-1] if flip else y


def _pad_to(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Replicate-pad an ``(N, C, h0, w0)`` batch at the bottom / right to ``h x w``."""
    ph, pw = h - x.shape[-2], w - x.shape[-1]
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="edge")


# ---------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------
def cpu_has_native_bf16() -> bool:
    """True when this CPU runs bf16 matrix work natively (AVX512-BF16 or AMX), per /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """``auto`` -> ``bf16`` on CUDA and on CPUs with native bf16, else ``fp32``."""
    precision = precision.lower()
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    if precision != "auto":
        return precision
    if str(device).startswith("cuda") or cpu_has_native_bf16():
        return "bf16"
    return "fp32"


class TorchBackend:
    """Runs a PyTorch model on divisible ``(N, 3, h, w)`` float32 batches; returns logits.

    Args:
        model: a crackseg model (logits ``(N, 1, h, w)``); put in eval mode here.
        device: ``"cpu"``, ``"cuda"``, ...
        precision: ``"fp32"``, ``"bf16"`` (autocast) or ``"auto"`` (see :func:`resolve_precision`).
        channels_last: NHWC tensors (faster oneDNN / cuDNN convolutions); default on.
        threads: CPU threads for torch (default: leave torch's setting).
    """

    def __init__(
        self,
        model,
        device: str = "cpu",
        precision: str = "auto",
        channels_last: bool = True,
        threads: int | None = None,
    ) -> None:
        import torch

        from crackseg.models.contract import CrackModel

        if not isinstance(model, CrackModel):
            raise TypeError(
                f"{type(model).__name__} does not follow crackseg's model contract (attributes "
                "size_divisor and supports_aux, forward(x, return_aux=False); see "
                "crackseg.models.contract): build it with crackseg.create_model"
            )
        self.torch = torch
        if threads:
            torch.set_num_threads(int(threads))
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, str(device))
        self.channels_last = channels_last
        self.model = model.to(self.device).eval()
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.size_divisor = int(model.size_divisor)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        bf16 = self.precision == "bf16"
        with torch.inference_mode(), torch.autocast(self.device.type, torch.bfloat16, bf16):
            y = self.model(x)
        return y.float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "torch",
            "device": str(self.device),
            "precision": self.precision,
            "channels_last": self.channels_last,
            "threads": self.torch.get_num_threads(),
        }


# ---------------------------------------------------------------------------------------------
# The predictor
# ---------------------------------------------------------------------------------------------
@dataclass
class Prediction:
    """The result of :meth:`Predictor.predict` for one image.

    Attributes:
        levels: crack probability as 8-bit levels ``(H, W)`` uint8, ``round(p * 255)``.
        threshold: the probability threshold behind :attr:`mask`.
        cracks: measured crack instances (:class:`crackseg.inference.measure.Crack`), filled by
            ``predict(..., measure=True)``.
        summary: per-image measurement summary (count, total length, density), when measured.
    """

    levels: np.ndarray
    threshold: float
    cracks: list = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def probability(self) -> np.ndarray:
        """Crack probability in [0, 1], float32 ``(H, W)`` (from the 8-bit levels)."""
        return self.levels.astype(np.float32) / np.float32(255.0)

    @property
    def mask(self) -> np.ndarray:
        """Boolean crack mask: ``p >= threshold`` (the protocol's rule on levels)."""
        return self.levels >= threshold_level(self.threshold)


class Predictor:
    """Image -> crack probability map, mask and measurements, for any image size.

    Build one from the shipped weights, a checkpoint, or any backend::

        predictor = Predictor.from_pretrained()                 # the shipped CarNet
        predictor = Predictor.from_checkpoint("runs/x/last.safetensors")
        predictor = Predictor.from_exported("carnet_field.onnx")  # crackseg export; no torch
        result = predictor.predict(image, measure=True, mm_per_px=0.5)
        result.levels, result.mask, result.cracks

    Args:
        backend: callable ``(N, 3, h, w) float32 -> (N, 1, h, w)`` logits, with ``size_divisor``.
        preprocessing: the normalisation the weights expect.
        threshold: default probability threshold for masks (the model card's ODS threshold).
        tile_size: largest tile side in pixels (rounded down to the size divisor); images no
            larger are predicted whole.
        overlap: minimum overlap of neighbouring tiles in pixels (blended smoothly).
        batch_size: tiles per backend call.
        tta: average the eight dihedral views of every tile (8x the compute).
        scale: resize the photo by this factor before the model, and the map back after (1 =
            native resolution; see the README for the measured choice), or ``"auto"``: predict
            at native resolution and, when the cracks of its mask at ``threshold`` come out
            wide (median width over :data:`AUTO_SCALE_WIDTH_PX`,
            :func:`crackseg.inference.measure.typical_width_px`), also at :data:`AUTO_SCALE`,
            and average the two maps (close-up photos).
        name: what the predictor runs (recorded in outputs).
    """

    def __init__(
        self,
        backend: Backend,
        preprocessing: Preprocessing | None = None,
        threshold: float = 0.5,
        tile_size: int = 1024,
        overlap: int = 128,
        batch_size: int = 1,
        tta: bool = False,
        scale: float | str = 1.0,
        name: str = "model",
    ) -> None:
        self.backend = backend
        self.preprocessing = preprocessing or Preprocessing()
        self.size_divisor = int(getattr(backend, "size_divisor", 32))
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
        if tile_size < self.size_divisor:
            raise ValueError(f"tile_size must be >= {self.size_divisor}, got {tile_size}")
        if not 0 <= overlap < tile_size // 2:
            raise ValueError(f"overlap must be in [0, tile_size / 2), got {overlap}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.auto_scale = isinstance(scale, str)
        if self.auto_scale and scale != "auto":
            raise ValueError(f"scale must be a number in [0.05, 8] or 'auto', got {scale!r}")
        scale = 1.0 if self.auto_scale else scale
        if not 0.05 <= scale <= 8:
            raise ValueError(f"scale must be in [0.05, 8], got {scale}")
        self.threshold = float(threshold)
        self.tile_size = tile_size - tile_size % self.size_divisor
        self.overlap = int(overlap)
        self.batch_size = int(batch_size)
        self.tta = bool(tta)
        self.scale = float(scale)
        self.name = name

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_model(
        cls,
        model,
        device: str = "cpu",
        precision: str = "fp32",
        channels_last: bool = False,
        threads: int | None = None,
        **kwargs,
    ) -> Predictor:
        """Wrap an in-memory PyTorch model (defaults: plain fp32 NCHW, as in training)."""
        backend = TorchBackend(model, device, precision, channels_last, threads)
        return cls(backend, **kwargs)

    @classmethod
    def from_checkpoint(
        cls,
        path,
        device: str = "cpu",
        precision: str = "auto",
        channels_last: bool = True,
        threads: int | None = None,
        **kwargs,
    ) -> Predictor:
        """Load a crackseg checkpoint (a ``.safetensors`` file or a run folder).

        Normalisation and threshold stored in the file's metadata are used when present.
        """
        from crackseg.models.weights_io import load_model

        model, file_meta = load_model(path, map_location=device)
        meta = ModelMeta.from_safetensors(file_meta, name=str(path))
        backend = TorchBackend(model, device, precision, channels_last, threads)
        return cls(backend, **{**meta_arguments(meta), **kwargs})

    @classmethod
    def from_exported(
        cls,
        path,
        backend: str | None = None,
        device: str = "cpu",
        threads: int | None = None,
        trust: bool = False,
        **kwargs,
    ) -> Predictor:
        """Run a file written by ``crackseg export`` (``.onnx`` with onnxruntime, ``.pt`` with
        TorchScript; ``backend`` overrides the choice by suffix). A TorchScript file is a program
        and loads only with ``trust=True`` (see :class:`~.backends.TorchScriptBackend`).

        Normalisation, size divisor, threshold and name are read from the file itself (see
        :mod:`crackseg.inference.backends`); the onnxruntime path imports no torch.
        """
        from .backends import load_exported

        runtime = load_exported(path, backend=backend, device=device, threads=threads, trust=trust)
        return cls(runtime, **{**meta_arguments(runtime.metadata), **kwargs})

    @classmethod
    def from_pretrained(
        cls,
        name: str = "default",
        device: str = "cpu",
        precision: str = "auto",
        channels_last: bool = True,
        threads: int | None = None,
        backend: str = "auto",
        **kwargs,
    ) -> Predictor:
        """The shipped weights ``name`` (``crackseg models --pretrained`` lists them).

        ``backend="auto"`` runs the exported graph shipped with them where it can (OpenVINO;
        ``precision="auto"``: int8 where its parity holds on this CPU), else PyTorch;
        ``"torch"`` asks for PyTorch, ``"openvino"`` / ``"onnxruntime"`` for a graph
        (:mod:`crackseg.inference.graphs`).
        """
        from crackseg.models.pretrained import get_weights, weights_dir

        from .backends import load_exported
        from .graphs import check_photo, choose

        def mask_of(graph):  # the int8 parity check runs each graph through this same path
            return cls.from_exported(graph, backend="openvino").predict(check_photo()).mask

        weights = get_weights(name)
        choice = choose(weights.name, weights_dir(), backend, precision, device, mask_of)
        if choice.backend == "torch":
            runtime = TorchBackend(weights.load(), device, choice.precision, channels_last, threads)
        else:
            runtime = load_exported(choice.path, backend=choice.backend, threads=threads)
        return cls(runtime, **{**meta_arguments(weights.meta), **kwargs})

    def describe(self) -> dict[str, Any]:
        """What runs, for records: backend settings, tiling, threshold, normalisation."""
        info = getattr(self.backend, "describe", lambda: {"backend": type(self.backend).__name__})
        return {
            "model": self.name,
            **info(),
            "threshold": self.threshold,
            "tile_size": self.tile_size,
            "overlap": self.overlap,
            "batch_size": self.batch_size,
            "tta": self.tta,
            "scale": "auto" if self.auto_scale else self.scale,
            "size_divisor": self.size_divisor,
            **self.preprocessing.to_dict(),
        }

    # -- the path -------------------------------------------------------------------------------
    def _run_batch(self, tiles: np.ndarray) -> np.ndarray:
        """Probabilities ``(N, h, w)`` float32 for a batch of normalised tiles ``(N, 3, h, w)``."""
        n, _, h, w = tiles.shape
        d = self.size_divisor
        ph, pw = -(-h // d) * d, -(-w // d) * d
        if not self.tta:
            logits = self.backend(_pad_to(tiles, ph, pw))
            return sigmoid(logits[:, 0, :h, :w])
        total = np.zeros((n, h, w), np.float32)
        for flip in (False, True):
            for k in range(4):
                view = np.ascontiguousarray(_dihedral(tiles, k, flip))
                vh, vw = view.shape[-2:]
                logits = self.backend(_pad_to(view, -(-vh // d) * d, -(-vw // d) * d))
                total += _undo_dihedral(sigmoid(logits[:, 0, :vh, :vw]), k, flip)
        return total / np.float32(8.0)

    def _tiles(self, h: int, w: int) -> tuple[list[int], list[int], int, int]:
        th, tw = min(self.tile_size, h), min(self.tile_size, w)
        return tile_starts(h, th, self.overlap), tile_starts(w, tw, self.overlap), th, tw

    def num_tiles(self, height: int, width: int) -> int:
        """How many tiles an image of this size (after ``scale``) is cut into."""
        h, w = _scaled(height, width, self.scale)
        ys, xs, _, _ = self._tiles(h, w)
        return len(ys) * len(xs)

    def iter_tile_batches(self, image: np.ndarray) -> Iterator[np.ndarray]:
        """The normalised, divisor-padded tile batches of ``image`` as the backend gets them
        (for benchmarks timing the bare backend on exactly the predictor's work)."""
        h, w = image.shape[:2]
        ys, xs, th, tw = self._tiles(h, w)
        d = self.size_divisor
        boxes = [(y, x) for y in ys for x in xs]
        for i in range(0, len(boxes), self.batch_size):
            chunk = boxes[i : i + self.batch_size]
            batch = np.stack([self.preprocessing(image[y : y + th, x : x + tw]) for y, x in chunk])
            yield _pad_to(batch, -(-th // d) * d, -(-tw // d) * d)

    def predict_levels(self, image: np.ndarray, progress: Callable[[int], None] | None = None):
        """Crack probability of an ``(H, W, 3)`` uint8 RGB image as 8-bit levels ``(H, W)``.

        ``progress``, if given, is called with the number of tiles finished after each batch
        (with ``scale="auto"``, of the native-resolution pass).
        """
        _check_image(image)
        levels = self._levels_at(image, self.scale, progress)
        if self.auto_scale and self.wants_second_scale(levels, self.threshold):
            levels = average_levels(levels, self._levels_at(image, AUTO_SCALE, None))
        return levels

    @staticmethod
    def wants_second_scale(
        levels: np.ndarray, threshold: float, width_px: float = AUTO_SCALE_WIDTH_PX
    ) -> bool:
        """``scale="auto"``'s rule: do the cracks of this native-resolution map come out wide
        (median width of its mask at ``threshold`` over ``width_px``)?"""
        from crackseg.inference.measure import typical_width_px

        return typical_width_px(levels >= threshold_level(threshold)) > width_px

    def _levels_at(self, image: np.ndarray, scale: float, progress) -> np.ndarray:
        full_h, full_w = image.shape[:2]
        if scale != 1.0:
            image = _resize_rgb(image, *_scaled(full_h, full_w, scale))
        h, w = image.shape[:2]
        ys, xs, th, tw = self._tiles(h, w)
        out = np.empty((h, w), np.uint8)
        wy, wx = blend_window(th, self.overlap), blend_window(tw, self.overlap)
        if len(ys) == 1:
            wy = np.ones(th, np.float32)
        if len(xs) == 1:
            wx = np.ones(tw, np.float32)
        weight = wy[:, None] * wx[None, :]
        carry_acc = carry_w = None
        for r, y in enumerate(ys):
            acc = np.zeros((th, w), np.float32)
            wsum = np.zeros((th, w), np.float32)
            if carry_acc is not None:
                acc[: len(carry_acc)] = carry_acc
                wsum[: len(carry_w)] = carry_w
            for i in range(0, len(xs), self.batch_size):
                chunk = xs[i : i + self.batch_size]
                tiles = np.stack([self.preprocessing(image[y : y + th, x : x + tw]) for x in chunk])
                probs = self._run_batch(tiles)
                for x, p in zip(chunk, probs, strict=True):
                    acc[:, x : x + tw] += weight * p
                    wsum[:, x : x + tw] += weight
                if progress is not None:
                    progress(len(chunk))
            end = ys[r + 1] if r + 1 < len(ys) else h
            rows = end - y
            out[y:end] = quantize(acc[:rows] / wsum[:rows])
            carry_acc, carry_w = acc[rows:], wsum[rows:]
        if (h, w) != (full_h, full_w):
            out = _resize_grey(out, full_h, full_w)
        return out

    def probability(self, image: np.ndarray) -> np.ndarray:
        """Crack probability in [0, 1] as float32 ``(H, W)``, on the 8-bit grid."""
        return self.predict_levels(image).astype(np.float32) / np.float32(255.0)

    def predict(
        self,
        image: np.ndarray,
        threshold: float | None = None,
        measure: bool = False,
        mm_per_px: float | None = None,
        progress: Callable[[int], None] | None = None,
        keep_lines: bool = False,
        severity: Any = "astm-d6433",
        ignore: np.ndarray | None = None,
        **measure_kwargs,
    ) -> Prediction:
        """Probability levels, mask and (with ``measure``) crack measurements for one image.

        Measured instances carry a ``kind``: ``crack``, or ``joint_or_line`` for straight, even,
        aligned structures (:mod:`crackseg.inference.lines`), which the summary's totals leave
        out unless ``keep_lines``. ``severity`` is the severity scheme (a name or a
        :class:`crackseg.inference.severity.SeverityScheme`; classes need ``mm_per_px``).
        ``ignore``, an ``(H, W)`` boolean mask, marks pixels that are not the surface (a scale
        marker): their probability is set to 0 before the mask is taken."""
        t = self.threshold if threshold is None else float(threshold)
        result = Prediction(self.predict_levels(image, progress=progress), t)
        if ignore is not None:
            result.levels[ignore] = 0
        if measure:
            from crackseg.inference.measure import image_summary, measure_cracks

            release_memory()  # the model's freed activations, before the label images

            result.cracks = measure_cracks(
                result.mask, mm_per_px=mm_per_px, image=image, severity=severity, **measure_kwargs
            )
            result.summary = image_summary(
                result.cracks,
                result.levels.shape,
                mm_per_px,
                keep_lines=keep_lines,
                severity=severity,
            )
        return result


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def average_levels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The mean of two 8-bit maps, rounded half up (``scale="auto"``'s two passes)."""
    return ((a.astype(np.uint16) + b + 1) // 2).astype(np.uint8)


def _scaled(h: int, w: int, scale: float) -> tuple[int, int]:
    if scale == 1.0:
        return h, w
    return max(1, round(h * scale)), max(1, round(w * scale))


def release_memory() -> None:
    """Hand memory freed by numpy / torch back to the OS (glibc keeps it in its arenas
    otherwise, so a later allocation would add to the peak instead of reusing it)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise ValueError(
            f"expected an (H, W, 3) uint8 RGB image, got {shape}: read photos with "
            "crackseg.data.io.read_image"
        )
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if min(image.shape[:2]) < 1:
        raise ValueError(f"empty image of shape {image.shape}")


def _resize_rgb(image: np.ndarray, h: int, w: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR))


def _resize_grey(levels: np.ndarray, h: int, w: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(levels).resize((w, h), Image.Resampling.BILINEAR))


def meta_arguments(meta: ModelMeta) -> dict[str, Any]:
    """The :class:`Predictor` arguments a model file fixes (normalisation, threshold, name), the
    same whichever file the :class:`~crackseg.meta.ModelMeta` was read from."""
    return {
        "preprocessing": Preprocessing(meta.mean, meta.std),
        "threshold": meta.threshold,
        "name": meta.name,
    }
