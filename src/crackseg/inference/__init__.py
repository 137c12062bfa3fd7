"""Prediction: one path from photos to probability maps, masks and crack measurements."""

from .predict import overlay, predict_probability
from .predictor import Prediction, Predictor, Preprocessing, TorchBackend

__all__ = [
    "Prediction",
    "Predictor",
    "Preprocessing",
    "TorchBackend",
    "overlay",
    "predict_probability",
]
