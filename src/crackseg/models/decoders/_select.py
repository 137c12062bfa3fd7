"""Choosing an encoder's feature maps by stride."""

from __future__ import annotations

from collections.abc import Sequence


def stride_index(strides: Sequence[int], stride: int) -> int:
    """Index of the map at ``stride`` (the deepest one when a dilated encoder repeats it)."""
    strides = list(strides)
    if stride not in strides:
        raise ValueError(f"this decoder needs a stride-{stride} map; the encoder has {strides}")
    return len(strides) - 1 - strides[::-1].index(stride)


def deepest_index(strides: Sequence[int]) -> int:
    """Index of the deepest map: the last one at the largest stride."""
    return stride_index(strides, max(strides))
