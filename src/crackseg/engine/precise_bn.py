"""Precise BatchNorm: recompute BN statistics of trained weights over many training crops.

Training with batches of four crops leaves BatchNorm's running mean / variance an exponential
average over the last ~10 batches (momentum 0.1): noisy, and tilted towards whatever the last
few crops showed. Inference uses those statistics, so the validation ODS of consecutive
checkpoints jumps by a point or more although the weights barely move at the end of a cosine
schedule. Recomputing them as a plain average over ``batches`` batches of training crops (Wu &
Johnson, *Rethinking "Batch" in BatchNorm*, 2021, §3 "precise BN") removes that noise; only the
BN buffers change, never a learned weight.

Measured on the validation splits carved from train (never test), last checkpoints of the
6,000-step recipes, 100 batches of 4 crops (the one-off ``benchmarks/precise_bn_val.py``, in git
at e282501): ODS at 2 px 0.923 -> 0.932 for CarNet on DeepCrack (0.829 -> 0.841 at 0 px), 0.859
-> 0.867 for the ResNet34 ablation on DeepCrack, 0.854 -> 0.853 for CarNet on CRACK500, 0.891 ->
0.891 for CarNet on both.

``crackseg train`` does this before every validation and for every saved checkpoint when
``bn_recalib`` > 0 (the default); ``crackseg recalibrate RUN``
(:func:`crackseg.engine.train.recalibrate_run`) applies the same step to a finished run's
checkpoint.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator

import torch
from torch import nn

__all__ = ["recalibrate_batchnorm", "crop_batches"]


def _bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """A copy of ``model`` in eval mode whose BN running statistics are the plain average of the
    batch statistics over ``batches`` (input tensors already on the model's device).

    Only the BatchNorm layers run in training mode while the statistics are gathered (dropout
    and the like stay in eval mode); ``model`` itself is left untouched. A model without
    BatchNorm is returned as an eval-mode copy.
    """
    m = copy.deepcopy(model).eval()
    layers = _bn_layers(m)
    if not layers:
        return m
    momenta = [bn.momentum for bn in layers]
    for bn in layers:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average = plain mean over the batches seen
        bn.train()
    seen = 0
    with torch.no_grad():
        for x in batches:
            m(x)
            seen += 1
    if seen == 0:
        raise ValueError("recalibrate_batchnorm needs at least one batch")
    for bn, mom in zip(layers, momenta, strict=True):
        bn.momentum = mom
        bn.eval()
    return m


def crop_batches(
    dataset,
    indices: list[int],
    transform_factory,
    n_batches: int,
    batch_size: int,
    seed: int,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
) -> Iterator[torch.Tensor]:
    """``n_batches`` batches of training crops drawn with a private generator seeded by ``seed``.

    ``transform_factory(generator)`` builds the training transform around that generator, so
    the draws neither read nor disturb the global random state (training stays resumable
    bit-for-bit) and the same seed always gives the same crops.
    """
    if not indices:
        raise ValueError("no training images to recalibrate BatchNorm on")
    g = torch.Generator().manual_seed(seed)
    transform = transform_factory(g)
    for _ in range(n_batches):
        xs = []
        for _ in range(batch_size):
            i = indices[int(torch.randint(len(indices), (), generator=g))]
            image, mask = dataset.sample(i)
            xs.append(transform(image, mask)[0])
        x = torch.stack(xs).to(device)
        yield x.contiguous(memory_format=torch.channels_last) if channels_last else x
