"""One training step of a quantile model with a residual head: the fused loss path gives the
reference path's loss and parameter gradients up to fp32 rounding."""

import copy

import torch

from aam.config import ModelConfig
from aam.models import AAMRegressor
from aam.training.losses import ColumnLoss, RegressionLoss


def test_fused_and_reference_give_the_same_model_gradients():
    torch.manual_seed(0)
    model = AAMRegressor(ModelConfig(embedding_dim=16, attention_heads=2, asv_layers=1, sample_layers=1, max_bp=12,
                                     n_targets=2, n_quantiles=3, dropout=0.0,
                                     regressor_hidden_dims=(8,), residual_regression_head=True))
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(1, 5, (20, 12), generator=g, dtype=torch.uint8)
    inputs = (tokens, torch.randint(0, 20, (16, 6), generator=g), torch.ones(16, 6, dtype=torch.bool),
              torch.rand(16, 6, generator=g) * 5, torch.zeros(16, 0, dtype=torch.long))
    target = torch.randn(16, 2, generator=g)
    target[::3, 0] = float("nan")
    columns = [ColumnLoss(q, 1 - q, 0.0, 1) for q in (0.1, 0.5, 0.9)] + [ColumnLoss(1, 1, 1.0, 2)] * 3
    results = []
    for fused in (False, True):
        m = copy.deepcopy(model)
        loss, _ = RegressionLoss(columns, n_quantiles=3, use_kernels=fused)(m(*inputs), target)
        loss.backward()
        results.append((loss.detach(), torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None])))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-5, atol=1e-6)
