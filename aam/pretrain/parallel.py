"""Data-parallel pretraining under torchrun: which rows a process encodes, and how pieces meet.

Every process loads the whole batch and takes a contiguous share of its samples (`local_rows`). The
losses are written so that the processes' pieces add up to the single-process loss
(`aam.pretrain.objectives`); the gradients are then summed over processes (`sum_gradients`), and every
process applies the same update. The pairwise distances need every sample's projected vector:
`gather_rows` joins them, and its backward hands each process the summed gradient of its own rows.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from aam.runtime import distributed


def local_rows(n: int) -> slice:
    """This process's share of a batch of n samples: process r takes rows [r n / W, (r + 1) n / W)."""
    world, rank = distributed.world_size(), distributed.rank()
    return slice(rank * n // world, (rank + 1) * n // world)


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, local: torch.Tensor, n: int) -> torch.Tensor:
        world = distributed.world_size()
        bounds = [(r * n // world, (r + 1) * n // world) for r in range(world)]
        width = max(b - a for a, b in bounds)
        padded = local.new_zeros(width, *local.shape[1:])
        padded[: local.shape[0]] = local
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded.contiguous())
        ctx.rows = local_rows(n)
        return torch.cat([p[: b - a] for p, (a, b) in zip(parts, bounds)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rows], None


def gather_rows(local: torch.Tensor, n: int) -> torch.Tensor:
    """[n, ...] from every process's rows (the identity in one process), differentiable."""
    if not distributed.active():
        return local
    return _GatherRows.apply(local, n)


def sum_gradients(parameters) -> None:
    """Each gradient summed over processes, in one all-reduce. A parameter without a gradient gets zeros, in
    one process too, so that a step updates the same parameters however many processes run it."""
    params = [p for p in parameters if p.requires_grad]
    if not distributed.active():
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p in params:
        size = p.numel()
        p.grad = flat[offset: offset + size].view_as(p).clone()
        offset += size
