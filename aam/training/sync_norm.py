"""The ASV BatchNorm's batch statistics over the distinct ASVs of the global batch, across processes.

One process normalizes each batch by the mean and variance over its U distinct ASV vectors. With
the global batch split across ranks, an ASV can sit in the share of several ranks; `ShardInfo.asv_owned`
marks the one rank that counts it, so the sums below, all-reduced, run over exactly the global batch's
distinct ASVs. The all-reduces are differentiable (their backward all-reduces the gradients), as in
SyncBatchNorm, so every rank's gradient includes what its ASVs do to the other ranks' normalization.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from aam.data.batch import ShardInfo
from aam.models.blocks import ASVBatchNorm
from aam.runtime.distributed import stats_group


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the gradient of every rank's input is the sum over ranks of the output gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out, group=stats_group())
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        out = grad.contiguous().clone()
        dist.all_reduce(out, group=stats_group())
        return out


def all_reduce(x: torch.Tensor) -> torch.Tensor:
    return _AllReduceSum.apply(x)


def distinct_moments(x: torch.Tensor, shard: ShardInfo | None,
                     unbiased: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
    """x [U, D] -> (mean [D], variance [D], number of distinct ASVs) over the batch's distinct ASVs:
    this process's batch without `shard`, the global batch with it (two passes: sum, then squared
    deviations from the global mean)."""
    if shard is None:
        if x.shape[0] <= 1:  # no spread to measure; callers keep the running statistics then
            return x.mean(0), x.new_zeros(x.shape[1:]), x.shape[0]
        return x.mean(0), x.var(0, unbiased=unbiased), x.shape[0]
    n = shard.global_distinct
    owned = shard.asv_owned.to(device=x.device, dtype=x.dtype)[:, None]  # [U, 1]
    mean = all_reduce((x * owned).sum(0)) / n
    squares = all_reduce(((x - mean).square() * owned).sum(0))
    return mean, squares / (n - 1 if unbiased else n), n


class SyncASVBatchNorm(ASVBatchNorm):
    """ASVBatchNorm whose training statistics cover the global batch (set `shard` before each forward).

    Same parameters and buffers as ASVBatchNorm (checkpoints are interchangeable); in evaluation, or
    without a shard, it is ASVBatchNorm.
    """

    shard: ShardInfo | None = None

    @classmethod
    def convert(cls, norm: ASVBatchNorm) -> SyncASVBatchNorm:
        """Turn `norm` into this class in place, keeping its parameter and buffer objects (the optimizer's)."""
        norm.__class__ = cls
        return norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.shard is None:
            return super().forward(x)
        if self.shard.global_distinct <= 1:  # one distinct ASV in the whole batch: the running statistics
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        xf = x.float()
        mean, var, n = distinct_moments(xf, self.shard, unbiased=False)
        with torch.no_grad():  # what F.batch_norm does to the running statistics (unbiased variance)
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean.detach())
            self.running_var.mul_(1 - self.momentum).add_(self.momentum * var.detach() * (n / (n - 1)))
        y = (xf - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias
        return y.to(x.dtype)
