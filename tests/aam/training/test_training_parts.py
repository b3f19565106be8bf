"""Metrics, schedule, loss weights and atomic writes against hand-computed values."""

import math

import numpy as np
import pytest
import torch

from aam.data.encoders import CategoryEncoder
from aam.errors import UserError
from aam.evaluation.metrics import best_metric_column, regression_metrics
from aam.runtime.checkpoint import atomic_write, load_checkpoint, save_checkpoint
from aam.training.schedule import warmup_cosine
from aam.training.trainer import is_better
from aam.training.weights import category_weight_tables, row_weights


def test_metrics_by_hand():
    # errors: 1, -1, 0, 2 (last observed is NaN: skipped) -> on the first three
    m = regression_metrics(np.array([2.0, 1.0, 3.0, 9.0]), np.array([1.0, 2.0, 3.0, np.nan]))
    assert m["n"] == 3
    assert m["mae"] == pytest.approx(2 / 3)
    assert m["rmse"] == pytest.approx(math.sqrt(2 / 3))
    # observed mean 2, SS_tot = 2, SS_res = 2 -> R^2 = 0
    assert m["r2"] == pytest.approx(0.0)
    # pred centred (0, -1, 1), obs centred (-1, 0, 1): r = 1 / (sqrt 2 * sqrt 2) = 0.5
    assert m["pearson"] == pytest.approx(0.5)


def test_metrics_of_constant_observed_are_nan_not_an_error():
    m = regression_metrics(np.array([1.0, 2.0]), np.array([3.0, 3.0]))
    assert math.isnan(m["r2"]) and math.isnan(m["pearson"]) and m["mae"] == pytest.approx(1.5)


def test_warmup_then_cosine():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = warmup_cosine(opt, warmup_steps=2, total_steps=6)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # warmup 1/2, 2/2; then 0.5 (1 + cos(pi k / 4)) for k = 0..3
    assert lrs == pytest.approx([0.5, 1.0, 1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 - math.cos(math.pi / 4))])


def test_best_metric_spec():
    assert best_metric_column("mae", ("ph", "t")) == ("ph_mae", False)
    assert best_metric_column("t:r2", ("ph", "t")) == ("t_r2", True)
    assert best_metric_column("val_loss", ("ph",)) == ("val_loss", False)
    assert best_metric_column("last", ("ph",)) == ("epoch", True)
    with pytest.raises(UserError):
        best_metric_column("ph:auc", ("ph",))


def test_is_better_handles_nan():
    assert is_better(float("nan"), None, False)
    assert not is_better(float("nan"), 1.0, False)
    assert is_better(0.5, float("nan"), True)
    assert is_better(0.5, 1.0, False) and not is_better(0.5, 1.0, True)


def test_auto_category_weights_balance_levels():
    encoder = CategoryEncoder(("site",), {"site": ["a", "b"]})
    codes = np.array([[1], [1], [1], [2]])  # a three times, b once
    tables = category_weight_tables("auto", encoder, codes)
    # n / (k * n_level): a = 4 / (2 * 3), b = 4 / (2 * 1); unknown = 1
    assert tables[0].tolist() == pytest.approx([1.0, 2 / 3, 2.0])
    assert row_weights(tables, torch.tensor([[1], [2], [0]])).tolist() == pytest.approx([2 / 3, 2.0, 1.0])


def test_json_category_weights_and_errors():
    encoder = CategoryEncoder(("site",), {"site": ["a", "b"]})
    tables = category_weight_tables('{"site": {"b": 3}}', encoder, np.array([[1]]))
    assert tables[0].tolist() == [1.0, 1.0, 3.0]
    for bad in ("{not json", '{"site": {"c": 1}}', '{"site": {"a": -1}}', '["site"]'):
        with pytest.raises(UserError):
            category_weight_tables(bad, encoder, np.array([[1]]))


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1})

    def crash(f):
        f.write(b"half a checkpoint")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, crash)
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
