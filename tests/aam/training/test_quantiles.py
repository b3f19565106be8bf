"""Quantile pieces by hand: loss plans per target, non-crossing head, point prediction, metrics."""

import numpy as np
import pytest
import torch

from aam.config import LossConfig
from aam.errors import UserError
from aam.evaluation.inference import point_predictions
from aam.evaluation.metrics import quantile_metrics
from aam.models.heads import RegressionHead, non_crossing
from aam.training.losses import ColumnLoss, plan_loss


def test_quantile_plan_columns():
    plan = plan_loss(LossConfig("quantile", quantiles=(0.9, 0.1)), ("ph",))
    assert plan.quantiles == (0.1, 0.9)  # sorted for the user
    assert plan.columns() == [ColumnLoss(0.1, 0.9, 0.0, 1), ColumnLoss(0.9, pytest.approx(0.1), 0.0, 1)]


def test_smooth_pinball_expectile_and_asymmetric():
    smooth = plan_loss(LossConfig("quantile", huber_delta=0.5, quantiles=(0.25,)), ("a",)).columns()
    assert smooth == [ColumnLoss(0.25, 0.75, 0.5, 1)]
    expectile = plan_loss(LossConfig("expectile", quantiles=(0.25,)), ("a",)).columns()
    assert expectile == [ColumnLoss(0.25, 0.75, 0.0, 2)]
    asym = plan_loss(LossConfig("asymmetric", over_penalty=2.0, under_penalty=0.5), ("a",)).columns()
    assert asym == [ColumnLoss(0.5, 2.0, 0.0, 1)]


def test_mixed_loss_config_by_name_and_index():
    config = LossConfig("mae", loss_config='{"ph": "mse", "2": {"type": "huber", "delta": 0.5}}')
    plan = plan_loss(config, ("ph", "temp", "depth"))
    assert plan.quantiles == ()
    assert plan.columns() == [ColumnLoss(1, 1, 0, 2), ColumnLoss(1, 1, 0, 1), ColumnLoss(1, 1, 0.5, 2)]


def test_mixed_point_and_quantile_targets_share_the_quantile_width():
    plan = plan_loss(LossConfig("mse", loss_config='{"ph": "quantile"}'), ("ph", "temp"))
    assert plan.quantiles == (0.1, 0.5, 0.9) and plan.n_quantiles == 3
    cols = plan.columns()
    assert cols[:3] == [ColumnLoss(q, pytest.approx(1 - q), 0.0, 1) for q in (0.1, 0.5, 0.9)]
    assert cols[3:] == [ColumnLoss(1, 1, 0, 2)] * 3


def test_same_target_twice_is_an_error():
    with pytest.raises(UserError, match="twice"):
        plan_loss(LossConfig("mse", loss_config='{"ph": "mse", "0": "mae"}'), ("ph",))


def test_non_crossing_is_first_plus_cumulative_softplus():
    raw = torch.tensor([[1.0, 0.0, -3.0]])
    sp = torch.nn.functional.softplus
    expected = torch.tensor([[1.0, 1.0 + sp(torch.tensor(0.0)), 1.0 + sp(torch.tensor(0.0)) + sp(torch.tensor(-3.0))]])
    torch.testing.assert_close(non_crossing(raw), expected)


def test_head_quantiles_increase_for_any_input():
    torch.manual_seed(0)
    head = RegressionHead(8, n_targets=2, n_quantiles=4, hidden_dims=(8,), residual=True)
    out = head(torch.randn(50, 8) * 10)
    assert out.shape == (50, 2, 4)
    assert (out.diff(dim=-1) >= 0).all()  # never cross (equal only where a softplus step underflows)


def test_point_prediction_median_or_interpolated():
    pred = torch.tensor([[[1.0, 2.0, 6.0]]])
    assert point_predictions(pred, (0.1, 0.5, 0.9)).item() == 2.0
    # 0.5 between 0.25 (value 2) and 0.75 (value 6): 2 + (0.25 / 0.5) * 4 = 4
    assert point_predictions(pred, (0.1, 0.25, 0.75)).item() == pytest.approx(4.0)
    assert point_predictions(pred, (0.6, 0.7, 0.8)).item() == 1.0  # below every level: the lowest


def test_quantile_metrics_by_hand():
    values = np.array([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]])
    observed = np.array([1.5, 3.0])
    m = quantile_metrics(values, observed, (0.1, 0.5, 0.9))
    # r = obs - q: sample 1: 1.5, 0.5, -0.5; sample 2: 3, 2, 1
    assert m["pinball"]["0.1"] == pytest.approx((0.1 * 1.5 + 0.1 * 3) / 2)
    assert m["pinball"]["0.5"] == pytest.approx((0.5 * 0.5 + 0.5 * 2) / 2)
    assert m["pinball"]["0.9"] == pytest.approx((0.1 * 0.5 + 0.9 * 1) / 2)
    assert m["coverage"] == 0.5 and m["nominal_coverage"] == pytest.approx(0.8)
    assert m["interval_width"] == 2.0 and m["crossing_rate"] == 0.0
    assert m["observed_below"] == {"0.1": 0.0, "0.5": 0.0, "0.9": 0.5}
