"""Probability maps from images, and overlays for people to look at."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .predictor import Predictor

if TYPE_CHECKING:
    import torch.nn as nn


def predict_probability(
    model: nn.Module, image: np.ndarray, device: str = "cpu", tta: bool = False
) -> np.ndarray:
    """Crack probability in [0, 1] for every pixel of an ``(H, W, 3)`` uint8 RGB image.

    A shortcut for ``Predictor.from_model(model, device, tta=tta).probability(image)``: the one
    path of :mod:`crackseg.inference.predictor` (tiles above 1024 px, 8-bit levels).

    With ``tta`` the probability is averaged over the eight views of the image under the
    dihedral group (four 90-degree rotations, each with and without a horizontal flip), each
    mapped back before averaging: cracks have no preferred direction, so this smooths out the
    model's orientation bias. Eight times the compute of a single pass.
    """
    return Predictor.from_model(model, device, tta=tta).probability(image)


def overlay(
    image: np.ndarray,
    prob: np.ndarray,
    threshold: float = 0.5,
    gt: np.ndarray | None = None,
    alpha: float = 0.6,
) -> np.ndarray:
    """Paint predicted cracks red on the image; with ``gt``, missed crack pixels show blue."""
    out = image.astype(np.float32).copy()
    pred = prob >= threshold
    red = np.array([255, 30, 30], np.float32)
    out[pred] = (1 - alpha) * out[pred] + alpha * red
    if gt is not None:
        missed = gt.astype(bool) & ~pred
        out[missed] = (1 - alpha) * out[missed] + alpha * np.array([40, 120, 255], np.float32)
    return out.clip(0, 255).astype(np.uint8)
