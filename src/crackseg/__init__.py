"""crackseg: fast pixel-wise crack segmentation for road and concrete photos."""

from .inference.predictor import Prediction, Predictor
from .models import create_model, list_models

__version__ = "0.1.0"
__all__ = ["Prediction", "Predictor", "create_model", "list_models", "__version__"]
