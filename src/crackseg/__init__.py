"""crackseg: fast pixel-wise crack segmentation for road and concrete photos."""

from .inference.predictor import Prediction, Predictor

__version__ = "0.1.0"
__all__ = ["Prediction", "Predictor", "create_model", "list_models", "__version__"]


def __getattr__(name: str):
    # the model registry needs torch; imported on first use, so that `import crackseg` and the
    # onnxruntime prediction path work in an environment without torch
    if name in ("create_model", "list_models"):
        from . import models

        return getattr(models, name)
    raise AttributeError(f"module 'crackseg' has no attribute {name!r}")
