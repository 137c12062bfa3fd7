"""Probability maps from images, and overlays for people to look at."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from ..data.io import to_tensor


@torch.inference_mode()
def predict_probability(
    model: nn.Module, image: np.ndarray, device: str = "cpu", tta: bool = False
) -> np.ndarray:
    """Crack probability in [0, 1] for every pixel of an ``(H, W, 3)`` uint8 RGB image.

    With ``tta`` the probability is averaged over the eight views of the image under the
    dihedral group (four 90-degree rotations, each with and without a horizontal flip), each
    mapped back before averaging: cracks have no preferred direction, so this smooths out the
    model's orientation bias. Eight times the compute of a single pass.
    """
    model.eval()
    x = to_tensor(image).unsqueeze(0).to(device)
    if not tta:
        return torch.sigmoid(model(x))[0, 0].float().cpu().numpy()
    total = torch.zeros(x.shape[-2:], dtype=torch.float32, device=x.device)
    for flip in (False, True):
        view = x.flip(-1) if flip else x
        for k in range(4):
            prob = torch.sigmoid(model(torch.rot90(view, k, (-2, -1)))).float()
            prob = torch.rot90(prob, -k, (-2, -1))
            total += (prob.flip(-1) if flip else prob)[0, 0]
    return (total / 8).cpu().numpy()


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
