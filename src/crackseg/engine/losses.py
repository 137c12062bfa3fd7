"""Losses for crack segmentation under severe class imbalance (cracks are 1-5 % of pixels).

A loss spec is a ``+``-separated sum of terms, each optionally weighted: ``"bce+dice"``,
``"bce+0.5*dice"``, ``"focal+dice"``. Terms:

- ``bce``: binary cross-entropy on logits. ``pos_weight="auto"`` weights crack pixels by the
  batch's negative/positive ratio (the CarNet authors' option), clamped to ``max_pos_weight``;
  a number fixes the weight; ``None`` disables weighting.
- ``dice``: soft Dice loss ``1 - (2*sum(p*g) + eps) / (sum(p) + sum(g) + eps)`` over the batch.
- ``focal``: focal loss (Lin et al., ICCV 2017) with ``gamma=2``, ``alpha=0.25`` on positives.
"""

from __future__ import annotations

import re

import torch
import torch.nn as nn
import torch.nn.functional as F

TERMS = ("bce", "dice", "focal")


def bce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    pos_weight: float | str | None = "auto",
    max_pos_weight: float = 50.0,
) -> torch.Tensor:
    """BCE on logits, crack pixels weighted by ``pos_weight``."""
    if pos_weight == "auto":
        pos = target.sum()
        neg = target.numel() - pos
        w = (neg / pos.clamp(min=1.0)).clamp(1.0, max_pos_weight).detach()
    elif pos_weight is None:
        w = None
    else:
        w = torch.tensor(float(pos_weight), device=logits.device)
    return F.binary_cross_entropy_with_logits(logits, target, pos_weight=w)


def dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    eps: float = 1.0,
) -> torch.Tensor:
    p = torch.sigmoid(logits)
    inter = (p * target).sum()
    return 1 - (2 * inter + eps) / (p.sum() + target.sum() + eps)


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: float = 0.25,
) -> torch.Tensor:
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    pt = p * target + (1 - p) * (1 - target)
    at = alpha * target + (1 - alpha) * (1 - target)
    return (at * (1 - pt) ** gamma * ce).mean()


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
    ) -> None:
        super().__init__()
        self.spec = spec
        self.terms = parse_loss_spec(spec)
        self.pos_weight = pos_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        total = logits.new_zeros(())
        for w, name in self.terms:
            if name == "bce":
                term = bce_loss(logits, target, self.pos_weight)
            elif name == "dice":
                term = dice_loss(logits, target)
            else:
                term = focal_loss(logits, target)
            total = total + w * term
        return total
