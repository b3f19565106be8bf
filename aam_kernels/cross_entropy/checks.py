"""Argument checks shared by the op and its reference.

Caller mistakes raise ValueError/TypeError naming the argument and what was given.
"""

from __future__ import annotations

import math

import torch

REDUCTIONS = ("mean", "sum", "none")


def _check_float(name: str, x: object, logits: torch.Tensor, shape: tuple[int, ...], meaning: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")
    if x.device != logits.device:
        raise ValueError(f"{name} is on {x.device} but logits is on {logits.device}")
    if tuple(x.shape) != shape:
        raise ValueError(f"{name} must have shape {meaning} = {list(shape)}, got {tuple(x.shape)}")


def check_inputs(
    logits: object,
    target: object,
    weight: object,
    row_weight: object,
    label_smoothing: object,
    ignore_index: object,
    reduction: object,
) -> None:
    """logits [N, C] floating, target [N] int64 on the same device, weight [C], row_weight [N], a label
    smoothing in [0, 1], an integer ignore_index and a known reduction."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must have a floating dtype, got {logits.dtype}")
    if logits.dim() != 2:
        raise ValueError(f"logits must be 2-D [N, C], got shape {tuple(logits.shape)}")
    n, c = logits.shape
    if c == 0:
        raise ValueError(f"logits must have at least one class (C >= 1), got shape {tuple(logits.shape)}")
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor of class indices, got {type(target).__name__}")
    if target.dtype != torch.int64:
        raise TypeError(f"target must hold int64 class indices, got dtype {target.dtype}")
    if target.device != logits.device:
        raise ValueError(f"target is on {target.device} but logits is on {logits.device}")
    if tuple(target.shape) != (n,):
        raise ValueError(f"target must have shape [N] = [{n}], got {tuple(target.shape)}")
    if weight is not None:
        _check_float("weight", weight, logits, (c,), "[C]")
    if row_weight is not None:
        _check_float("row_weight", row_weight, logits, (n,), "[N]")
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)):
        raise TypeError(f"label_smoothing must be a number, got {label_smoothing!r}")
    if not (math.isfinite(label_smoothing) and 0.0 <= label_smoothing <= 1.0):
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index must be an int, got {ignore_index!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}; got {reduction!r}")


def check_target_values(target: torch.Tensor, c: int, ignore_index: int) -> None:
    """Every target is a class index in [0, C) or ignore_index. Read only for CPU tensors in eager mode:
    reading a GPU tensor would sync the device every step, and torch.compile could not trace the read."""
    if torch.compiler.is_compiling() or target.device.type != "cpu" or target.numel() == 0:
        return
    low, high = torch.aminmax(target)
    if int(low) >= 0 and int(high) < c:
        return
    bad = ((target < 0) | (target >= c)) & (target != ignore_index)
    if bool(bad.any()):
        row = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"target must hold class indices in [0, {c}) or ignore_index={ignore_index}; "
            f"got {int(target[row])} at row {row}"
        )
