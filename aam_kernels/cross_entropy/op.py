"""Autograd-aware, torch.compile-friendly cross-entropy op and its public function.

One forward ``aam_kernels::cross_entropy_fwd`` (a torch.library op for torch.compile, an autograd
Function in eager mode, both over the same implementation) returns (out, grad, stats): the loss already
reduced (or per row), the gradient of the summed per-row loss computed in the same pass, and the sums
with the reduction's scale. Backward only scales that saved gradient: no second pass over the inputs,
no host sync, and no reduction ops launched around the kernel.
"""

from __future__ import annotations

from typing import Optional

import torch

from aam_kernels import backend
from aam_kernels.cross_entropy import cpu
from aam_kernels.cross_entropy.checks import check_inputs, check_target_values
from aam_kernels.cross_entropy.launch import MAX_CLASSES, CrossEntropyLaunchConfig


def _forward_impl(logits, target, weight, row_weight, label_smoothing, ignore_index, reduction, compute_grad, launch=None):
    """``launch``: the Triton kernel's ``CrossEntropyLaunchConfig`` (None: chosen from the shape)."""
    name = backend.resolve(logits)
    args = (logits, target, weight, row_weight, label_smoothing, ignore_index, reduction, compute_grad)
    if name == "torch":
        return cpu.forward(*args)
    from aam_kernels.cross_entropy import triton as triton_impl

    return triton_impl.forward(*args, name, launch)


@torch.library.custom_op("aam_kernels::cross_entropy_fwd", mutates_args=())
def _cross_entropy_fwd(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: Optional[torch.Tensor],
    row_weight: Optional[torch.Tensor],
    label_smoothing: float,
    ignore_index: int,
    reduction: str,
    compute_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    out, grad, stats = _forward_impl(logits, target, weight, row_weight, label_smoothing, ignore_index, reduction, compute_grad)
    # custom ops may not return aliases of one another; only possible for empty outputs
    return out.clone() if out.numel() == 0 else out, grad, stats


@_cross_entropy_fwd.register_fake
def _(logits, target, weight, row_weight, label_smoothing, ignore_index, reduction, compute_grad):
    n, c = logits.shape
    acc = torch.float64 if logits.dtype == torch.float64 else torch.float32
    return (
        logits.new_empty((n,) if reduction == "none" else ()),
        logits.new_empty((n, c) if compute_grad else (0,)),
        logits.new_empty((3,), dtype=acc),
    )


def _setup_context(ctx, inputs, output):
    _, grad, stats = output
    ctx.save_for_backward(grad, stats)
    ctx.mark_non_differentiable(grad, stats)
    ctx.set_materialize_grads(False)


def _backward(ctx, g_out, g_grad, g_stats):
    grad, stats = ctx.saved_tensors
    if g_out is None:
        g_logits = torch.zeros_like(grad)
    elif g_out.dim() == 0:  # mean / sum: d out / d logits = scale * grad
        g_logits = grad * (g_out * stats[2])
    else:  # "none": one scale per row, [N]
        g_logits = grad * g_out[:, None]
    return g_logits, None, None, None, None, None, None, None


_cross_entropy_fwd.register_autograd(_backward, setup_context=_setup_context)


class _EagerCrossEntropy(torch.autograd.Function):
    """The same forward/backward without the torch.library dispatcher, whose Python overhead would
    dominate small batches. Used outside torch.compile; under compile the registered op is traced."""

    @staticmethod
    def forward(ctx, *args):
        """``args``: the registered op's arguments, then the launch configuration."""
        output = _forward_impl(*args)
        _setup_context(ctx, args, output)
        return output

    @staticmethod
    def backward(ctx, *grads):
        return *_backward(ctx, *grads), None


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
    reduction: str = "mean",
    row_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of class logits against class indices, the loss and its gradient in one fused pass.

    The same numbers as ``torch.nn.functional.cross_entropy(logits, target, weight=weight,
    ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing)``, for a classifier
    head with few classes: the softmax, the loss of each row, ``d loss / d logits`` and the reduction
    are computed together (one Triton launch on CUDA, one sweep of PyTorch ops on CPU), and backward
    only scales the saved gradient. Accumulates in fp32 (fp64 for fp64 logits).

    Args:
        logits: [N, C] unnormalized class scores (fp16 / bf16 / fp32 / fp64; any strides; C <= 4096 on
            the Triton backends).
        target: [N] int64 class indices in [0, C), or ``ignore_index`` for a row that adds no loss, no
            gradient and no weight to the mean. Checked for CPU tensors; trusted on the GPU (checking
            would sync the device).
        weight: optional [C] class weights w (not differentiated).
        label_smoothing: eps in [0, 1]: the target becomes (1 - eps) one-hot + eps / C uniform.
        ignore_index: the target value of ignored rows.
        reduction: "mean" = sum(loss) / sum(row_weight * w_y over non-ignored rows) (NaN when that is 0,
            e.g. every row ignored, as in PyTorch), "sum", or "none" ([N], 0 on ignored rows).
        row_weight: optional [N] per-row weights r (not differentiated), an extension of PyTorch's
            API: each row's loss is multiplied by r, and "mean" divides by sum(r * w_y).

    Per row, with log p = log_softmax(logits): loss = r * ((1 - eps) * w_y * (-log p_y)
    + eps / C * sum_c w_c * (-log p_c)). Only ``logits`` gets a gradient.
    """
    return cross_entropy_launched(
        None, logits, target, weight=weight, label_smoothing=label_smoothing, ignore_index=ignore_index,
        reduction=reduction, row_weight=row_weight,
    )  # fmt: skip


def cross_entropy_launched(
    launch: CrossEntropyLaunchConfig | None,
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
    reduction: str = "mean",
    row_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """``cross_entropy`` with the Triton kernel's launch configuration given (tests; None: chosen from the
    shape by ``launch.launch_config``). Under torch.compile the registered op always uses the chosen one."""
    check_inputs(logits, target, weight, row_weight, label_smoothing, ignore_index, reduction)
    c = logits.shape[1]
    if c > MAX_CLASSES and backend.resolve(logits) != "torch":
        raise ValueError(
            f"logits has {c} classes; the Triton kernel takes at most {MAX_CLASSES} (use_backend('torch') takes any)"
        )
    check_target_values(target, c, ignore_index)
    compute_grad = torch.is_grad_enabled() and logits.requires_grad
    args = (logits, target, weight, row_weight, float(label_smoothing), ignore_index, reduction, compute_grad)
    if torch.compiler.is_compiling():  # the registered op takes tensors and primitives: no launch config
        loss, _, _ = torch.ops.aam_kernels.cross_entropy_fwd(*args)
    else:
        loss, _, _ = _EagerCrossEntropy.apply(*args, launch)
    return loss
