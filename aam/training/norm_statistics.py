"""Recompute the ASV BatchNorm's running statistics with the current weights (after each epoch).

The momentum averages BatchNorm keeps mix batches seen under many past weights; with an encoder that
still moves fast they describe none of them, and validation metrics jumped several-fold from epoch
to epoch (demo, epochs 1-13: validation loss 0.65, 0.58, 1.33, 0.44, ... with the averages, a smooth
0.64, 0.53, 0.36, 0.30, ... with statistics recomputed from the same weights).
"""

from __future__ import annotations

import torch

from aam.models import AAMRegressor
from aam.runtime.device import autocast
from aam.training.sync_norm import distinct_moments


@torch.no_grad()
def recompute_norm_statistics(model: AAMRegressor, loader, device: torch.device, max_batches: int,
                              precision: str = "auto") -> None:
    """Running mean/variance of the ASV BatchNorm = the average over up to `max_batches` batches of
    `loader` of the mean and unbiased variance across each batch's distinct ASVs, computed in
    evaluation mode (no dropout), as the vectors are when the statistics are used. 0 = keep the averages.
    In a data-parallel run each batch is the global batch, its statistics gathered from every rank."""
    if max_batches == 0:
        return
    was_training = model.training
    model.eval()
    means, variances = [], []
    for batch, _ in zip(loader, range(max_batches)):
        with autocast(device, precision):
            pooled = model.asv_encoder.pooled(batch.asv_tokens.to(device, non_blocking=True))  # [U, D]
        shard = getattr(batch, "shard", None)  # anything with asv_tokens will do outside a data-parallel run
        mean, variance, n = distinct_moments(pooled.float(), shard, unbiased=True)
        if n > 1:  # one distinct ASV has no variance (that batch trained on the averages too)
            means.append(mean)
            variances.append(variance)
    if means:
        model.asv_encoder.norm.set_statistics(means, variances)
    model.train(was_training)
