"""`OutputLoss` and `OutputLayout`: regression and classification targets in one model output, against
plain PyTorch in fp64 and scikit-learn's balanced class weights."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

from aam.models.layout import OutputLayout
from aam.training.losses import ColumnLoss, RegressionLoss
from aam.training.output_loss import OutputLoss, class_weight_tables

# targets: 0 regression (Q = 2), 1 classification (3 levels), 2 regression, 3 classification (2 levels)
LAYOUT = OutputLayout((0, 3, 0, 2), n_quantiles=2)
COLUMNS = [ColumnLoss(0.1, 0.9, 0.0, 1), ColumnLoss(0.9, 0.1, 0.0, 1)] * 2  # pinball at 0.1 and 0.9


def batch(n=23, seed=0):
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(n, 4, 3, generator=g, dtype=torch.float64)
    target = torch.randn(n, 4, generator=g, dtype=torch.float64)
    target[:, 1] = torch.randint(0, 3, (n,), generator=g).double()
    target[:, 3] = torch.randint(0, 2, (n,), generator=g).double()
    target[::5, 1] = float("nan")  # missing levels and values
    target[1::7, 0] = float("nan")
    weight = (torch.rand(n, generator=g) + 0.5).double()  # fp32 values: the regression part's masses are fp32
    return pred, target, weight


def pinball(pred, target, levels):
    r = target[:, None] - pred
    # RegressionLoss keeps its weights of under- and over-prediction in fp32
    under = torch.tensor(levels, dtype=torch.float32).to(pred.dtype)
    over = torch.tensor([1 - q for q in levels], dtype=torch.float32).to(pred.dtype)
    return torch.where(r >= 0, under * r, -over * r)


def test_layout_places_each_targets_outputs_first_in_its_slots():
    regression = torch.arange(2 * 2 * 2, dtype=torch.float64).view(2, 2, 2)
    logits = torch.arange(100, 110, dtype=torch.float64).view(2, 5)
    out = LAYOUT.assemble(regression, logits)
    assert out.shape == (2, 4, 3)
    torch.testing.assert_close(out[:, 0, :2], regression[:, 0])
    torch.testing.assert_close(out[:, 2, :2], regression[:, 1])
    torch.testing.assert_close(LAYOUT.logits(out, 1), logits[:, :3])
    torch.testing.assert_close(LAYOUT.logits(out, 3), logits[:, 3:])
    torch.testing.assert_close(LAYOUT.regression(out), regression)
    assert (out[:, [0, 2], 2] == 0).all() and (out[:, 3, 2] == 0).all()
    plain = OutputLayout((0, 0), n_quantiles=2)
    assert plain.assemble(regression, None) is regression


@pytest.mark.parametrize("use_kernels", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_mixed_loss_is_one_weighted_mean_over_every_output_column(use_kernels, smoothing):
    pred, target, weight = batch()
    class_weights = [torch.tensor([0.5, 2.0, 1.0]), None]
    loss_fn = OutputLoss(RegressionLoss(COLUMNS, n_quantiles=2, use_kernels=use_kernels), LAYOUT, class_weights,
                         smoothing, use_kernels)
    loss, column_means = loss_fn(pred, target, weight)

    elements, masses = [], []
    for t in (0, 2):  # regression: pinball per quantile column, row weight, missing skipped
        known = ~torch.isnan(target[:, t])
        e = pinball(pred[known, t, :2], target[known, t], [0.1, 0.9]) * weight[known, None]
        elements += [e[:, 0].sum(), e[:, 1].sum()]
        masses += [weight[known].sum()] * 2
    for t, k, w in ((1, 3, class_weights[0]), (3, 2, None)):
        known = ~torch.isnan(target[:, t])
        y = target[known, t].long()
        rows = F.cross_entropy(pred[known, t, :k], y, weight=None if w is None else w.double(), reduction="none",
                               label_smoothing=smoothing)
        elements.append((rows * weight[known]).sum())
        masses.append(((w.double()[y] if w is not None else torch.ones(len(y), dtype=torch.float64))
                       * weight[known]).sum())
    expected = torch.stack(elements).sum() / torch.stack(masses).sum()
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(column_means.double(), torch.stack(elements) / torch.stack(masses), rtol=1e-6,
                               atol=1e-7)
    assert loss_fn.column_targets == [0, 0, 2, 2, 1, 3]


def test_the_gradient_matches_autograd_of_the_reference():
    pred, target, weight = batch(seed=3)
    for use_kernels in (False, True):
        p = pred.clone().requires_grad_(True)
        loss_fn = OutputLoss(RegressionLoss(COLUMNS, n_quantiles=2, use_kernels=use_kernels), LAYOUT,
                             use_kernels=use_kernels)
        loss_fn(p, target, weight)[0].backward()
        if use_kernels:
            torch.testing.assert_close(p.grad, plain_grad, rtol=1e-9, atol=1e-12)
        else:
            plain_grad = p.grad
    assert (plain_grad[:, [0, 2], 2] == 0).all()  # the padding slots get no gradient


def test_elementwise_parts_sum_to_the_mean():
    pred, target, weight = batch(seed=5)
    loss_fn = OutputLoss(RegressionLoss(COLUMNS, n_quantiles=2), LAYOUT)
    elements, mass = loss_fn.elementwise(pred, target, weight)
    assert elements.shape == mass.shape == (len(pred), loss_fn.n_columns)
    torch.testing.assert_close(elements.sum() / mass.sum(), loss_fn(pred, target, weight)[0])


def test_a_model_without_classification_targets_is_the_regression_loss():
    pred, target, weight = batch(seed=7)
    layout = OutputLayout((0, 0), n_quantiles=2)
    pred, target = pred[:, [0, 2], :2], target[:, [0, 2]]
    regression = RegressionLoss(COLUMNS, n_quantiles=2)
    a, b = OutputLoss(regression, layout)(pred, target, weight), regression(pred, target, weight)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_auto_class_weights_are_scikit_learns_balanced_weights():
    rng = np.random.default_rng(0)
    targets = np.full((50, 4), np.nan)
    targets[:, 1] = rng.choice([0, 1, 2], 50, p=[0.6, 0.3, 0.1])
    targets[:, 3] = rng.choice([0, 1], 50, p=[0.8, 0.2])
    targets[::9, 1] = np.nan
    tables = class_weight_tables("auto", LAYOUT, targets)
    for table, t in zip(tables, (1, 3)):
        y = targets[~np.isnan(targets[:, t]), t].astype(int)
        np.testing.assert_allclose(table.numpy(), compute_class_weight("balanced", classes=np.unique(y), y=y),
                                   rtol=1e-6)
    assert class_weight_tables("none", LAYOUT, targets) == [None, None]
