"""The training loss without --fused-kernels (`plain_regression_loss`) against the fp64 spec
(`aam_kernels`' `regression_loss_reference`): every loss of the family on a hand-made batch with missing
targets and row weights, the mean, the per-column means, the elementwise losses and their gradients."""

import math

import pytest
import torch

from aam.training.losses import ColumnLoss, RegressionLoss
from aam.training.plain_loss import plain_regression_loss
from aam_kernels.regression_loss.reference import regression_loss_reference

NAN = math.nan
QUANTILES = (0.1, 0.5, 0.9)
# One row of the table per loss: (under, over, delta, power) of each of the K = 3 columns.
LOSSES = {
    "pinball": [ColumnLoss(q, 1 - q, 0.0, 1) for q in QUANTILES],
    "asymmetric": [ColumnLoss(under=1.0, over=2.5, delta=0.0, power=1)] * 3,
    "huber": [ColumnLoss(1.0, 1.0, 0.8, 2)] * 3,
    "mse": [ColumnLoss(1.0, 1.0, 0.0, 2)] * 3,
    "mae": [ColumnLoss(1.0, 1.0, 0.0, 1)] * 3,
    "expectile": [ColumnLoss(q, 1 - q, 0.0, 2) for q in QUANTILES],
    "smooth pinball": [ColumnLoss(q, 1 - q, 0.5, 1) for q in QUANTILES],
}
# pred [N=6, K=3]; residuals target - pred of both signs, 0, inside and outside the Huber thresholds
# (|r| = 0.8 sits on the first one); NaN targets are missing, row 4 has no valid target at all.
PRED = torch.tensor([[0.5, -1.0, 2.0],
                     [1.0, 0.0, -0.3],
                     [-2.0, 0.4, 0.1],
                     [0.25, 3.0, -1.5],
                     [0.0, 1.0, 2.0],
                     [1.5, -0.5, 0.7]])
TARGET = torch.tensor([[1.3, -1.0, -1.0],
                       [NAN, 0.6, -0.2],
                       [-4.5, 0.1, NAN],
                       [0.25, 1.0, 2.5],
                       [NAN, NAN, NAN],
                       [1.2, 0.3, 0.7]])
WEIGHT = torch.tensor([1.0, 2.0, 0.5, 3.0, 4.0, 0.25])


def params(columns):
    return {name: torch.tensor([float(getattr(c, name)) for c in columns]) for name in ("under", "over", "delta",
                                                                                        "power")}


def reference(pred, target, columns, weight, reduction):
    p = {n: v.double() for n, v in params(columns).items()}
    return regression_loss_reference(pred, target, **p, weight=weight, reduction=reduction,
                                     return_column_means=reduction == "mean")


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-6)], ids=["fp64", "fp32"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("name", list(LOSSES))
def test_plain_loss_matches_the_fp64_reference(name, weighted, dtype, tol):
    columns = LOSSES[name]
    weight = WEIGHT if weighted else None
    pred64 = PRED.double().requires_grad_(True)
    ref, ref_columns = reference(pred64, TARGET.double(), columns, None if weight is None else weight.double(),
                                 "mean")
    ref.backward()
    pred = PRED.to(dtype).clone().requires_grad_(True)
    loss, column_means = plain_regression_loss(pred, TARGET.to(dtype), **params(columns), weight=weight,
                                               reduction="mean", return_column_means=True)
    loss.backward()
    assert loss.dtype == dtype and column_means.dtype == torch.float32
    torch.testing.assert_close(loss.double(), ref.detach(), rtol=tol, atol=tol)
    torch.testing.assert_close(column_means.double(), ref_columns.double(), rtol=max(tol, 2e-6), atol=max(tol, 2e-6))
    torch.testing.assert_close(pred.grad.double(), pred64.grad, rtol=tol, atol=tol)
    assert (pred.grad[TARGET.isnan()] == 0).all()

    # The elementwise form that data-parallel ranks sum, with the gradient of a weighted sum of it.
    g = torch.linspace(-1.0, 2.0, PRED.numel()).reshape(PRED.shape)
    pred64.grad, pred.grad = None, None
    ref = reference(pred64, TARGET.double(), columns, None if weight is None else weight.double(), "none")
    (ref * g.double()).sum().backward()
    elements = plain_regression_loss(pred, TARGET.to(dtype), **params(columns), weight=weight, reduction="none")
    (elements * g.to(dtype)).sum().backward()
    torch.testing.assert_close(elements.double(), ref.detach(), rtol=tol, atol=tol)
    torch.testing.assert_close(pred.grad.double(), pred64.grad, rtol=tol, atol=tol)


def test_no_valid_target_gives_zero_loss_and_gradient():
    pred = PRED.clone().requires_grad_(True)
    loss, column_means = plain_regression_loss(pred, torch.full_like(PRED, NAN), **params(LOSSES["mse"]),
                                               weight=WEIGHT, return_column_means=True)
    loss.backward()
    assert loss.item() == 0.0 and column_means.tolist() == [0.0, 0.0, 0.0]
    assert (pred.grad == 0).all()


def test_regression_loss_uses_the_plain_loss_without_fused_kernels():
    """`RegressionLoss` (a [B, T, Q] quantile head, each target repeated per level) equals the reference on
    the flattened columns."""
    columns = LOSSES["pinball"] * 2  # T = 2 targets x Q = 3 levels
    pred = torch.cat([PRED, PRED.flip(0)], dim=1).reshape(6, 2, 3)
    target = TARGET[:, :2]
    loss, column_means = RegressionLoss(columns, n_quantiles=3)(pred, target, WEIGHT)
    ref, ref_columns = reference(pred.reshape(6, 6).double(), target.double().repeat_interleave(3, dim=1), columns,
                                 WEIGHT.double(), "mean")
    torch.testing.assert_close(loss.double(), ref, rtol=2e-6, atol=2e-6)
    torch.testing.assert_close(column_means.double(), ref_columns.double(), rtol=2e-6, atol=2e-6)
