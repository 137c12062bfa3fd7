"""Post-training int8 quantisation of an exported model, calibrated on training photos.

Two routes, both static (activation ranges measured once, on calibration images, and frozen into
the file), both starting from the fp32 ONNX core that ``crackseg export`` writes and verifies:

* **onnxruntime** (:func:`quantize_onnx`): ``onnxruntime.quantization.quantize_static`` in QDQ
  format (QuantizeLinear / DequantizeLinear pairs around each quantised operator; onnxruntime
  fuses them into integer kernels when it loads the file), per-channel int8 weights, MinMax
  calibration, after ``quant_pre_process`` (ONNX shape inference and onnxruntime's basic graph
  optimisation; its symbolic shape inference cannot resolve the exporter's dynamic height and
  width, so it is skipped). The scheme (activation / weight types) is a choice, measured on
  the shipped CarNet with onnxruntime 1.32 on an x86 AVX2 CPU without VNNI:

  - ``s8s8`` (int8 activations and weights; onnxruntime's guide names it the first choice):
    onnxruntime's x86 CPU provider rewrites int8 activations to uint8 while it loads the file
    and, in this network, leaves half the convolutions (each residual block's first) with
    mismatched input and output types, which then run in float between (de)quantise nodes:
    23 of 46 convolutions integer, no faster than fp32;
  - ``u8s8`` (uint8 activations, int8 weights; the default): all 46 convolutions run as integer
    kernels. It is quantised with 7-bit weights (``reduce_range``): x86 CPUs without VNNI
    multiply uint8 x int8 pairs into saturating 16-bit sums, and with full 8-bit weights the
    logits were off by up to 5.7 on 20 DeepCrack test photos (1.5 with 7 bits, 0.14 % of mask
    pixels flipped against fp32).

  ``Conv``, ``ConvTranspose``, ``Add``, ``Concat``, ``MaxPool``, ``Resize`` and ``Relu`` are
  quantised; ``BatchNormalization`` (four, after a concatenation, where they cannot be folded
  into a convolution) stays float.

* **OpenVINO** (:func:`write_openvino`): the ONNX core is converted to OpenVINO IR
  (``ov.convert_model``) and, for int8, quantised with NNCF (``nncf.quantize``, its default
  mixed preset: symmetric int8 weights per channel, activations per tensor, fast bias
  correction), then saved as ``.xml`` + ``.bin`` with fp32 weights where they stay float.

Calibration (:func:`calibration_set`): ``n`` images drawn (seeded) from the *training* split of
one or more dataset specs (``deepcrack:PATH``, ``crack500:PATH``, ... as in ``crackseg train``),
or from a folder of photos, one crop of at most 512 x 512 from each, normalised and padded by
the Predictor's own preprocessing, exactly as prediction feeds the network. Without a spec,
synthetic crack photos (``crackseg.data.synth``, sunny / rainy / night) stand in: the file then
says so in its metadata (``quantization.calibration``), and calibrating on the photos the model
will see is better.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from crackseg.errors import CrackSegError
from crackseg.inference.backends import INPUT_NAME
from crackseg.meta import ModelMeta

__all__ = [
    "CALIB_IMAGES",
    "CALIB_SIZE",
    "ORT_SCHEMES",
    "Calibration",
    "CalibrationError",
    "calibration_set",
    "quantize_onnx",
    "write_openvino",
]

#: calibration images by default, and the largest side of each calibration crop
CALIB_IMAGES = 32
CALIB_SIZE = 512
#: onnxruntime quantisation schemes: (activation type, weight type, 7-bit weights)
ORT_SCHEMES = {"u8s8": ("QUInt8", "QInt8", True), "s8s8": ("QInt8", "QInt8", False)}
#: operators quantised in the onnxruntime route (BatchNormalization stays float)
ORT_OPS = ["Conv", "ConvTranspose", "Add", "Concat", "MaxPool", "Resize", "Relu"]
SYNTHETIC = "synthetic"
SYNTHETIC_SOURCE = "synthetic crack photos (crackseg.data.synth)"


class CalibrationError(CrackSegError):
    """A ``--calib`` spec that gives no calibration images; the message says why."""


@dataclass(frozen=True)
class Calibration:
    """Calibration batches (each ``(1, 3, h, w)`` float32, normalised and padded) and what they
    were drawn from."""

    batches: list[np.ndarray]
    source: str
    available: int

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "images": len(self.batches),
            "drawn_from": self.available,
            "crop": CALIB_SIZE,
        }


# ---------------------------------------------------------------------------------------------
# calibration images
# ---------------------------------------------------------------------------------------------
def _folder_images(folder: Path) -> list[Callable[[], np.ndarray]]:
    from crackseg.data.io import IMAGE_EXTENSIONS, read_image

    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not files:
        raise CalibrationError(
            f"--calib {folder}: the folder holds no images ({', '.join(IMAGE_EXTENSIONS)})"
        )
    return [lambda p=p: read_image(p) for p in files]


def _spec_images(spec: str) -> tuple[list[Callable[[], np.ndarray]], str]:
    """Image loaders of one ``--calib`` spec and how to name it."""
    if spec.lower() in (SYNTHETIC, "synth"):
        return [], SYNTHETIC
    path = Path(spec)
    if ":" not in spec or path.is_dir():
        if path.is_dir():
            return _folder_images(path), f"{spec} (folder of photos)"
        raise CalibrationError(
            f"--calib {spec}: not a folder of photos nor a dataset spec KIND:PATH (e.g. "
            "deepcrack:data/deepcrack, whose train split is used), nor 'synthetic'"
        )
    from crackseg.data.datasets import DatasetError, build_dataset

    try:
        data = build_dataset(spec, split="train")
    except DatasetError as e:
        raise CalibrationError(f"--calib {spec}: {e}") from None
    if len(data) == 0:
        raise CalibrationError(f"--calib {spec}: its train split holds no images")
    return [lambda i=i: data.sample(i)[0] for i in range(len(data))], f"{spec} (train split)"


def _crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    y = int(rng.integers(0, h - size + 1)) if h > size else 0
    x = int(rng.integers(0, w - size + 1)) if w > size else 0
    return image[y : y + size, x : x + size]


def calibration_set(
    specs: str | Sequence[str] | None,
    n: int,
    meta: ModelMeta,
    seed: int = 0,
    size: int = CALIB_SIZE,
) -> Calibration:
    """``n`` calibration batches for the model ``meta`` describes.

    Args:
        specs: dataset spec(s) (train split), folder(s) of photos, ``"synthetic"`` or None
            (synthetic crack photos).
        n: number of images; a source with fewer gives all it has.
        meta: the export's metadata (normalisation, size divisor).
        seed: which images and crops are drawn.
        size: largest side of each crop; smaller images are taken whole.
    """
    from crackseg.inference.predictor import Predictor, Preprocessing

    if n < 1:
        raise CalibrationError(f"--calib-images must be at least 1, got {n}")
    if isinstance(specs, str):
        specs = [specs]
    specs = [str(s) for s in (specs or [SYNTHETIC])]
    synthetic = [s for s in specs if s.lower() in (SYNTHETIC, "synth")]
    if synthetic and len(specs) > 1:
        raise CalibrationError("--calib synthetic cannot be mixed with other sources")
    loaders: list[Callable[[], np.ndarray]] = []
    names = []
    for spec in specs:
        found, name = _spec_images(spec)
        loaders += found
        names.append(name)
    rng = np.random.default_rng(seed)
    if names == [SYNTHETIC]:
        from crackseg.data.synth import CONDITIONS, generate

        images: Iterator[np.ndarray] = (
            generate(1000 + i, size, CONDITIONS[i % len(CONDITIONS)])[0] for i in range(n)
        )
        available = n
    else:
        available = len(loaders)
        picks = rng.choice(available, size=min(n, available), replace=False)
        images = (loaders[int(i)]() for i in sorted(picks))
    pad = Predictor(_PadOnly(meta.size_divisor), Preprocessing(meta.mean, meta.std),
                    tile_size=1 << 15, overlap=0)  # fmt: skip
    batches = [next(pad.iter_tile_batches(_crop(im, size, rng))) for im in images]
    source = SYNTHETIC_SOURCE if names == [SYNTHETIC] else " + ".join(names)
    return Calibration(batches, source, available)


class _PadOnly:
    """Stands in for a backend where the Predictor only normalises and pads."""

    def __init__(self, size_divisor: int) -> None:
        self.size_divisor = size_divisor

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        raise AssertionError("not for running")


# ---------------------------------------------------------------------------------------------
# onnxruntime
# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep the quantisers' progress bars and notices (stdout, logging) off the console."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def quantize_onnx(
    fp32_path: str | Path,
    out_path: str | Path,
    calibration: Calibration,
    meta: ModelMeta,
    scheme: str = "u8s8",
) -> dict[str, Any]:
    """Quantise the fp32 ONNX file ``fp32_path`` to ``out_path`` (QDQ, static, per-channel
    weights) and write ``meta`` into it; returns the ``quantization`` record written there."""
    import onnx
    import onnxruntime
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    if scheme not in ORT_SCHEMES:
        raise CrackSegError(f"--int8-scheme {scheme!r}: choose {' or '.join(ORT_SCHEMES)}")
    activations, weights, reduce_range = ORT_SCHEMES[scheme]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(calibration.batches)

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    with tempfile.TemporaryDirectory(prefix="crackseg-int8-") as tmp, _quiet():
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(out_path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=ORT_OPS,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=getattr(QuantType, activations),
            weight_type=getattr(QuantType, weights),
            calibrate_method=CalibrationMethod.MinMax,
        )
    record = {
        "runtime": "onnxruntime",
        "method": "onnxruntime.quantization.quantize_static, QDQ, MinMax calibration",
        "scheme": f"{scheme}: activations {activations}, weights {weights} per channel"
        + (" (7-bit range)" if reduce_range else ""),
        "calibration": calibration.describe(),
        "onnxruntime": onnxruntime.__version__,
    }
    model = onnx.load(str(out_path))
    props = replace(meta, precision="int8", quantization=record)
    del model.metadata_props[:]
    model.metadata_props.extend(
        onnx.StringStringEntryProto(key=k, value=v) for k, v in props.to_props().items()
    )
    onnx.save(model, str(out_path))
    return record


# ---------------------------------------------------------------------------------------------
# OpenVINO
# ---------------------------------------------------------------------------------------------
def _import_nncf():
    # nncf imports torch, whose C++-extension helper logs a line about CUDA on machines without
    # one; nothing here builds extensions
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    try:
        import nncf
    except ImportError:
        raise ImportError(
            "OpenVINO int8 export needs nncf: pip install 'crackseg[openvino]'"
        ) from None
    nncf.set_log_level(logging.ERROR)
    return nncf


def write_openvino(
    fp32_path: str | Path,
    out_xml: str | Path,
    meta: ModelMeta,
    calibration: Calibration | None = None,
) -> dict[str, Any]:
    """Convert the fp32 ONNX file to OpenVINO IR ``out_xml`` (+ ``.bin``), quantised with NNCF
    when ``calibration`` is given, with ``meta`` in its ``rt_info``; returns the
    ``quantization`` record (empty for fp32)."""
    try:
        import openvino as ov
    except ImportError:
        raise ImportError(
            "OpenVINO export needs openvino: pip install 'crackseg[openvino]'"
        ) from None
    model = ov.convert_model(str(fp32_path))
    record: dict[str, Any] = {}
    if calibration is not None:
        nncf = _import_nncf()
        with _quiet():
            model = nncf.quantize(
                model,
                nncf.Dataset(calibration.batches),
                subset_size=len(calibration.batches),
            )
        record = {
            "runtime": "openvino",
            "method": "nncf.quantize (post-training, default preset, fast bias correction)",
            "scheme": "int8 weights (symmetric, per channel), int8 activations (per tensor)",
            "calibration": calibration.describe(),
            "openvino": ov.get_version(),
            "nncf": nncf.__version__,
        }
        meta = replace(meta, precision="int8", quantization=record)
    for key, value in meta.to_props().items():
        model.set_rt_info(value, ["framework", key])
    ov.save_model(model, str(out_xml), compress_to_fp16=False)
    return record
