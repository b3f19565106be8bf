"""Autograd-aware, torch.compile-friendly regression loss op and its public functions.

One forward ``aam_kernels::regression_loss_fwd`` (a torch.library op for torch.compile, an
autograd Function in eager mode, both over the same implementation) returns (out, grad, stats):
the loss already reduced (or elementwise), the gradient of sum(elementwise) computed in the same
pass, and per-column sums with the reduction's scale. Backward only scales that saved gradient: no
second pass over the inputs, no host sync, and no reduction ops launched around the kernel.
"""

from __future__ import annotations

from typing import Optional

import torch

from aam_kernels import backend
from aam_kernels.regression_loss import cpu
from aam_kernels.regression_loss.checks import (
    ColumnParams,
    ParamLike,
    check_inputs,
    check_pair,
    check_quantiles,
    column_params,
)
from aam_kernels.regression_loss.launch import LossLaunchConfig


def _forward_impl(pred, target, weight, under, over, delta, power, reduction, compute_grad, launch=None):
    """``launch``: the Triton kernel's ``LossLaunchConfig`` (None: chosen from the shape)."""
    params = ColumnParams(under, over, delta, power)
    name = backend.resolve(pred)
    if name == "torch":
        return cpu.forward(pred, target, weight, params, reduction, compute_grad)
    from aam_kernels.regression_loss import triton as triton_impl

    return triton_impl.forward(pred, target, weight, params, reduction, compute_grad, name, launch)


@torch.library.custom_op("aam_kernels::regression_loss_fwd", mutates_args=())
def _regression_loss_fwd(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: Optional[torch.Tensor],
    under: torch.Tensor,
    over: torch.Tensor,
    delta: torch.Tensor,
    power: torch.Tensor,
    reduction: str,
    compute_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    out, grad, stats = _forward_impl(pred, target, weight, under, over, delta, power, reduction, compute_grad)
    # custom ops may not return aliases of one another; only possible for empty outputs
    return out.clone() if out.numel() == 0 else out, grad, stats


@_regression_loss_fwd.register_fake
def _(pred, target, weight, under, over, delta, power, reduction, compute_grad):
    n, k = pred.shape
    acc = torch.float64 if pred.dtype == torch.float64 else torch.float32
    return (
        pred.new_empty((n, k) if reduction == "none" else ()),
        pred.new_empty((n, k) if compute_grad else (0,)),
        pred.new_empty((3 * k + 1,), dtype=acc),
    )


def _setup_context(ctx, inputs, output):
    _, grad, stats = output
    ctx.save_for_backward(grad, stats)
    ctx.mark_non_differentiable(grad, stats)
    ctx.set_materialize_grads(False)


def _backward(ctx, g_out, g_grad, g_stats):
    grad, stats = ctx.saved_tensors
    if g_out is None:
        g_pred = torch.zeros_like(grad)
    elif g_out.dim() == 0:  # mean / sum: d out / d pred = scale * grad
        g_pred = grad * (g_out * stats[-1])
    else:  # "none": one scale per element, [N, K]
        g_pred = grad * g_out
    # r = target - pred, so d/dtarget = -d/dpred (0 where the target is missing); a full [N, K] pass,
    # so only when the target needs it
    g_target = -g_pred if ctx.needs_input_grad[1] else None
    return g_pred, g_target, None, None, None, None, None, None, None


_regression_loss_fwd.register_autograd(_backward, setup_context=_setup_context)


class _EagerRegressionLoss(torch.autograd.Function):
    """The same forward/backward without the torch.library dispatcher, whose Python overhead would
    dominate the small batches of real training. Used outside
    torch.compile; under compile the registered op is traced instead."""

    # forward(ctx, ...) rather than a separate setup_context: with setup_context, every apply binds
    # its arguments through inspect.signature, a cost comparable to the whole op at training batch sizes.
    @staticmethod
    def forward(ctx, *args):
        """``args``: the registered op's arguments, then the launch configuration."""
        output = _forward_impl(*args)
        _setup_context(ctx, args, output)
        return output

    @staticmethod
    def backward(ctx, *grads):
        return *_backward(ctx, *grads), None


def regression_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    under: ParamLike,
    over: ParamLike,
    delta: ParamLike = None,
    power: ParamLike = None,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    return_column_means: bool = False,
):
    """Every regression loss of the family, forward and gradient in one fused pass.

    Args:
        pred: [N, K] predictions (fp16 / bf16 / fp32 / fp64; any strides).
        target: [N, K], or broadcastable to it; NaN marks a missing value (no loss, no gradient, not counted).
        under, over: per-column weights for r = target - pred >= 0 (under-prediction) and r < 0;
            scalars, sequences or tensors of length 1 or K, all >= 0. Python numbers and CPU tensors
            are checked; values of tensors already on the GPU are trusted (checking would sync).
        delta: per-column Huber threshold (> 0 turns Huber on); default 0.
        power: per-column 1 (absolute) or 2 (squared), used where delta is 0; default 1.
        weight: optional [N] row weights.
        reduction: "mean" = sum(weight*valid*loss) / sum(weight*valid) (0 if nothing is valid),
            "sum", or "none" ([N, K] of weight*valid*loss in pred's dtype).
        return_column_means: also return fp32 [K] per-column weighted means (detached, 0 for a column
            with no valid value), computed in the same pass, for logging.

    Losses: mse (1, 1, power 2), mae (1, 1, power 1), huber(d) (1, 1, delta d), pinball(tau)
    (under tau, over 1 - tau), asymmetric (under p_u, over p_o), expectile(tau) (tau, 1 - tau, power 2),
    smooth pinball (tau, 1 - tau, delta d).
    """
    return regression_loss_launched(
        None, pred, target, under=under, over=over, delta=delta, power=power, weight=weight,
        reduction=reduction, return_column_means=return_column_means,
    )  # fmt: skip


def regression_loss_launched(
    launch: LossLaunchConfig | None,
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    under: ParamLike,
    over: ParamLike,
    delta: ParamLike = None,
    power: ParamLike = None,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    return_column_means: bool = False,
):
    """``regression_loss`` with the Triton kernel's launch configuration given (tests and sweeps; None:
    chosen from the shape by ``launch.launch_config``). Under torch.compile the registered op always
    uses the chosen one."""
    pred, target, weight = check_inputs(pred, target, weight, reduction)
    k = pred.shape[1]
    params = column_params(under, over, delta, power, k, pred.device)
    compute_grad = torch.is_grad_enabled() and (pred.requires_grad or target.requires_grad)
    args = (pred, target, weight, params.under, params.over, params.delta, params.power, reduction, compute_grad)
    if torch.compiler.is_compiling():  # the registered op takes tensors and primitives: no launch config
        loss, _, stats = torch.ops.aam_kernels.regression_loss_fwd(*args)
    else:
        loss, _, stats = _EagerRegressionLoss.apply(*args, launch)
    if not return_column_means:
        return loss
    means = stats[2 * k : 3 * k]
    return loss, means if means.dtype == torch.float32 else means.float()


def pinball_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    quantiles,
    *,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
):
    """Quantile (pinball) loss: ``pred [..., Q]`` against ``target [...]`` repeated over the Q levels.

    ``quantiles``: Q levels strictly inside (0, 1), sorted and unique. ``weight``: broadcastable to
    ``target``'s shape. ``reduction="none"`` returns ``pred``'s shape.
    """
    levels = check_quantiles(quantiles)
    check_pair(pred, target)
    if pred.dim() < 1 or pred.shape[-1] != len(levels):
        raise ValueError(f"pred's last dimension must equal len(quantiles) = {len(levels)}, got shape {tuple(pred.shape)}")
    if target.shape != pred.shape[:-1]:
        raise ValueError(f"target must have shape {tuple(pred.shape[:-1])} (pred without its last dim), got {tuple(target.shape)}")
    rows = target.numel()
    if weight is not None:
        check_pair(pred, weight, "weight")
        try:
            weight = weight.expand(target.shape).reshape(rows)
        except RuntimeError:
            raise ValueError(f"weight shape {tuple(weight.shape)} does not broadcast to target shape {tuple(target.shape)}") from None
    loss = regression_loss(
        pred.reshape(rows, len(levels)),
        target.reshape(rows, 1),
        under=levels,
        over=[1.0 - q for q in levels],
        weight=weight,
        reduction=reduction,
    )
    return loss.reshape(pred.shape) if reduction == "none" else loss


def asymmetric_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    over_penalty: ParamLike = 1.0,
    under_penalty: ParamLike = 1.0,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
):
    """``over_penalty * max(pred - target, 0) + under_penalty * max(target - pred, 0)``.

    ``pred``: [N] or [N, K]; ``target``: same shape; penalties: scalars or length-K; ``weight``: [N].
    """
    check_pair(pred, target)
    if pred.dim() not in (1, 2):
        raise ValueError(f"pred must be [N] or [N, K], got shape {tuple(pred.shape)}")
    if target.shape != pred.shape:
        raise ValueError(f"target shape {tuple(target.shape)} must equal pred shape {tuple(pred.shape)}")
    squeeze = pred.dim() == 1
    loss = regression_loss(
        pred.unsqueeze(1) if squeeze else pred,
        target.unsqueeze(1) if squeeze else target,
        under=_penalty("under_penalty", under_penalty),
        over=_penalty("over_penalty", over_penalty),
        weight=weight,
        reduction=reduction,
    )
    return loss.squeeze(1) if squeeze and reduction == "none" else loss


def _penalty(name: str, value: ParamLike) -> ParamLike:
    """Name the penalty argument in errors instead of the generic under/over."""
    values = value.tolist() if isinstance(value, torch.Tensor) else value
    flat = values if isinstance(values, (list, tuple)) else [values]
    try:
        negative = any(float(v) < 0 for v in flat)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or a sequence of numbers, got {value!r}") from None
    if negative:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value
