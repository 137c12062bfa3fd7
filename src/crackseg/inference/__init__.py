"""Prediction: probability maps and masks from images (sigmoid and thresholds live here)."""

from .predict import overlay, predict_probability

__all__ = ["predict_probability", "overlay"]
