"""Loss mapping vs hand-computed values: each named loss, missing targets, row weights, mixed columns."""

import math

import pytest
import torch

from aam.config import LossConfig
from aam.errors import UserError
from aam.training.losses import ColumnLoss, RegressionLoss, named_loss, plan_loss

# pred [B=2, T=2, Q=1]; target [2, 2]; residuals r = target - pred = [[1.5, -0.5], [-3.0, 0.2]]
PRED = torch.tensor([[[0.5], [1.0]], [[2.0], [-0.2]]])
TARGET = torch.tensor([[2.0, 0.5], [-1.0, 0.0]])


def build_loss(config: LossConfig, target_columns: tuple[str, ...]) -> RegressionLoss:
    plan = plan_loss(config, target_columns)
    return RegressionLoss(plan.columns(), n_quantiles=plan.n_quantiles)


def test_mse_is_mean_of_squares_not_halved():
    loss, cols = build_loss(LossConfig("mse"), ("a", "b"))(PRED, TARGET)
    assert loss.item() == pytest.approx((1.5**2 + 0.5**2 + 3.0**2 + 0.2**2) / 4, rel=1e-6)
    assert cols.tolist() == pytest.approx([(1.5**2 + 9.0) / 2, (0.25 + 0.04) / 2], rel=1e-6)


def test_mae_is_mean_absolute_error():
    loss, _ = build_loss(LossConfig("mae"), ("a", "b"))(PRED, TARGET)
    assert loss.item() == pytest.approx((1.5 + 0.5 + 3.0 + 0.2) / 4, rel=1e-6)


def test_huber_quadratic_inside_linear_outside():
    loss, _ = build_loss(LossConfig("huber", huber_delta=1.0), ("a", "b"))(PRED, TARGET)
    # |r| = 1.5 -> 1*(1.5-0.5) = 1.0; 0.5 -> 0.125; 3.0 -> 2.5; 0.2 -> 0.02
    assert loss.item() == pytest.approx((1.0 + 0.125 + 2.5 + 0.02) / 4, rel=1e-6)


def test_missing_targets_add_nothing_and_are_not_counted():
    target = TARGET.clone()
    target[0, 0] = math.nan
    pred = PRED.clone().requires_grad_(True)
    loss, cols = build_loss(LossConfig("mae"), ("a", "b"))(pred, target)
    assert loss.item() == pytest.approx((0.5 + 3.0 + 0.2) / 3, rel=1e-6)
    assert cols.tolist() == pytest.approx([3.0, 0.35], rel=1e-6)
    loss.backward()
    assert pred.grad[0, 0, 0].item() == 0.0
    # d/dpred |target - pred| / 3 = -sign(r) / 3
    assert pred.grad[1, 0, 0].item() == pytest.approx(1 / 3, rel=1e-6)


def test_row_weights_weight_the_mean():
    loss, _ = build_loss(LossConfig("mae"), ("a", "b"))(PRED, TARGET, torch.tensor([3.0, 1.0]))
    assert loss.item() == pytest.approx((3 * (1.5 + 0.5) + (3.0 + 0.2)) / (3 * 2 + 2), rel=1e-6)


def test_mixed_columns_in_one_call():
    columns = [named_loss("mse"), ColumnLoss(under=0.9, over=0.1, delta=0.0, power=1)]
    loss, cols = RegressionLoss(columns)(PRED, TARGET)
    # column b: r = -0.5 (over) -> 0.1*0.5; r = 0.2 (under) -> 0.9*0.2
    assert cols.tolist() == pytest.approx([(2.25 + 9.0) / 2, (0.05 + 0.18) / 2], rel=1e-6)
    assert loss.item() == pytest.approx((2.25 + 9.0 + 0.05 + 0.18) / 4, rel=1e-6)


def test_quantile_columns_repeat_the_target():
    pred = torch.tensor([[[0.0, 1.0, 3.0]]])  # B=1, T=1, Q=3
    columns = [ColumnLoss(under=q, over=1 - q, power=1) for q in (0.1, 0.5, 0.9)]
    _, cols = RegressionLoss(columns, n_quantiles=3)(pred, torch.tensor([[2.0]]))
    assert cols.tolist() == pytest.approx([0.1 * 2.0, 0.5 * 1.0, 0.1 * 1.0], rel=1e-6)


def test_unknown_loss_name_is_a_user_error():
    with pytest.raises(UserError, match="unknown loss type"):
        named_loss("cosine")


def test_fused_path_matches_the_reference_path():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(13, 3, 2, generator=g)
    target = torch.randn(13, 3, generator=g)
    target[::4, 1] = math.nan
    weight = torch.rand(13, generator=g) + 0.5
    columns = [named_loss("huber", 0.7), named_loss("huber", 0.7), named_loss("mse"), named_loss("mse"),
               ColumnLoss(0.3, 0.7, 0.0, 1), ColumnLoss(0.8, 0.2, 0.0, 2)]
    results = []
    for fused in (False, True):
        p = pred.clone().requires_grad_(True)
        loss, cols = RegressionLoss(columns, n_quantiles=2, use_kernels=fused)(p, target, weight)
        loss.backward()
        results.append((loss.detach(), cols, p.grad))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
