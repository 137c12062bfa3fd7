"""Export a crackseg model to ONNX or TorchScript, checked against PyTorch as it is written.

    crackseg export --format onnx --out carnet_field.onnx       # the shipped CarNet
    crackseg export runs/exp1 --format torchscript --out exp1.pt  # a training run (best)
    crackseg predict photo.jpg --checkpoint carnet_field.onnx   # run it with onnxruntime

In Python::

    from crackseg.export import export_model
    result = export_model("pretrained:default", "onnx", "carnet_field.onnx")
    result.max_abs_diff, result.checks

The file holds the network's core only: normalised ``(N, 3, h, w)`` float32 in, ``(N, 1, h, w)``
logits out, batch, height and width dynamic (height and width multiples of the size divisor).
Padding, tiling, sigmoid and thresholds stay in :class:`crackseg.inference.Predictor`, which
reads normalisation, size divisor, threshold and model names from the file itself
(:class:`crackseg.meta.ModelMeta`).
"""

from __future__ import annotations

__all__ = ["ExportResult", "ParityCheck", "export_model", "resolve_source", "verify_export"]


def __getattr__(name: str):
    # the exporter needs torch; imported on first use, so the command line (which lists
    # `crackseg export`) starts without torch in an onnxruntime-only deployment
    if name in __all__:
        from . import exporter

        return getattr(exporter, name)
    raise AttributeError(f"module 'crackseg.export' has no attribute {name!r}")
