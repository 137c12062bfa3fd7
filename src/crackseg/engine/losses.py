"""Losses for crack segmentation under severe class imbalance (cracks are 1-5 % of pixels).

A loss spec is a ``+``-separated sum of terms, each optionally weighted: ``"bce+dice"``,
``"bce+0.5*dice"``, ``"focal+dice"``. Terms:

- ``bce``: binary cross-entropy on logits. ``pos_weight="auto"`` weights crack pixels by the
  batch's negative/positive ratio (the CarNet authors' option), clamped to ``max_pos_weight``;
  a number fixes the weight; ``None`` disables weighting.
- ``dice``: soft Dice loss ``1 - (2*sum(p*g) + eps) / (sum(p) + sum(g) + eps)`` over the batch.
- ``focal``: focal loss (Lin et al., ICCV 2017) with ``gamma=2``, ``alpha=0.25`` on positives.

**Ignore band.** ``ignore_band=r`` (pixels, 0 = off) leaves out of every term the background
pixels within Euclidean distance ``r`` of a crack pixel. Crack datasets disagree on how wide to
draw the same crack (DeepCrack paints the whole dark region, most others a thinner line), so a
model trained on several of them is told "crack" and "background" for the same edge pixels. The
field's evaluation forgives exactly such pixels (a predicted pixel within the tolerance of a
ground-truth pixel counts as correct), so ``r`` at most the evaluation tolerance stops penalising
the disagreement without rewarding anything the evaluation would call wrong.
"""

from __future__ import annotations

import re

import torch
import torch.nn as nn
import torch.nn.functional as F

TERMS = ("bce", "dice", "focal")


def band_weight(target: torch.Tensor, radius: float) -> torch.Tensor:
    """1 where a pixel counts in the loss, 0 on background within ``radius`` px of a crack.

    ``target`` is ``(N, 1, H, W)`` in {0, 1}; the band is a dilation by a disk of that radius
    (one convolution with the disk, so it costs one small conv per batch).
    """
    r = int(radius)
    if r < 1:
        return torch.ones_like(target)
    yy, xx = torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing="ij")
    disk = ((yy**2 + xx**2) <= radius**2).to(target.dtype).to(target.device)[None, None]
    crack = target > 0.5
    near = F.conv2d(crack.to(target.dtype), disk, padding=r) > 0.5
    return (~near | crack).to(target.dtype)


def _mean(x: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return x.mean()
    return (x * weight).sum() / weight.sum().clamp(min=1.0)


def bce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    pos_weight: float | str | None = "auto",
    max_pos_weight: float = 50.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """BCE on logits; ``weight`` (0/1 per pixel, see :func:`band_weight`) drops pixels."""
    if pos_weight == "auto":
        pos = target.sum()
        counted = target.numel() if weight is None else weight.sum()
        neg = counted - pos
        w = (neg / pos.clamp(min=1.0)).clamp(1.0, max_pos_weight).detach()
    elif pos_weight is None:
        w = None
    else:
        w = torch.tensor(float(pos_weight), device=logits.device)
    ce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=w, reduction="none")
    return _mean(ce, weight)


def dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    eps: float = 1.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    p = torch.sigmoid(logits)
    if weight is not None:
        p = p * weight
    inter = (p * target).sum()
    return 1 - (2 * inter + eps) / (p.sum() + target.sum() + eps)


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: float = 0.25,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    pt = p * target + (1 - p) * (1 - target)
    at = alpha * target + (1 - alpha) * (1 - target)
    return _mean(at * (1 - pt) ** gamma * ce, weight)


def parse_loss_spec(spec: str) -> list[tuple[float, str]]:
    """``"bce+0.5*dice"`` -> ``[(1.0, "bce"), (0.5, "dice")]``; errors name the bad term."""
    terms = []
    for part in spec.replace(" ", "").split("+"):
        m = re.fullmatch(r"(?:([0-9.eE-]+)\*)?([a-z]+)", part)
        if not m or m.group(2) not in TERMS:
            raise ValueError(
                f"bad loss term {part!r} in {spec!r}: use a '+'-separated sum of "
                f"{', '.join(TERMS)} with optional weights, e.g. 'bce+0.5*dice'"
            )
        terms.append((float(m.group(1) or 1.0), m.group(2)))
    return terms


class CrackLoss(nn.Module):
    """Weighted sum of loss terms given by a spec string (see module docstring)."""

    def __init__(
        self,
        spec: str = "bce+dice",
        pos_weight: float | str | None = "auto",
        ignore_band: float = 0.0,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.terms = parse_loss_spec(spec)
        self.pos_weight = pos_weight
        if not ignore_band >= 0:
            raise ValueError(f"ignore_band must be >= 0 pixels, got {ignore_band!r}")
        self.ignore_band = float(ignore_band)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        weight = band_weight(target, self.ignore_band) if self.ignore_band >= 1 else None
        total = logits.new_zeros(())
        for w, name in self.terms:
            if name == "bce":
                term = bce_loss(logits, target, self.pos_weight, weight=weight)
            elif name == "dice":
                term = dice_loss(logits, target, weight=weight)
            else:
                term = focal_loss(logits, target, weight=weight)
            total = total + w * term
        return total
