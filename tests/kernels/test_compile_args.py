"""Every public loss op traces under torch.compile(fullgraph=True) with its parameters given as Python
lists or as tensors, and matches the plain-autograd reference (moe_mlp takes tensors only; its
fullgraph test is in test_moe.py)."""

from __future__ import annotations

import pytest
import torch

from aam_kernels import asymmetric_loss, pinball_loss, regression_loss
from aam_kernels.regression_loss.reference import regression_loss_reference
from tests.kernels.tolerances import assert_close

LEVELS = [0.1, 0.5, 0.9]
OVER, UNDER = [2.0, 1.0, 0.5], [1.0, 3.0, 1.0]


def as_kind(values, kind):
    return torch.tensor(values) if kind == "tensor" else list(values)


def cases(kind):
    """(op call, reference call), both taking (pred [N, 3], target [N])."""
    return {
        "regression_loss": (
            lambda p, t: regression_loss(p, t[:, None], under=as_kind(LEVELS, kind),
                                         over=as_kind([1 - q for q in LEVELS], kind),
                                         delta=as_kind([0.0, 0.5, 0.0], kind), power=as_kind([1.0, 1.0, 2.0], kind)),
            lambda p, t: regression_loss_reference(p, t[:, None], under=LEVELS, over=[1 - q for q in LEVELS],
                                                   delta=[0.0, 0.5, 0.0], power=[1.0, 1.0, 2.0])),
        "pinball_loss": (
            lambda p, t: pinball_loss(p, t, as_kind(LEVELS, kind)),
            lambda p, t: regression_loss_reference(p, t[:, None], under=LEVELS, over=[1 - q for q in LEVELS])),
        "asymmetric_loss": (
            lambda p, t: asymmetric_loss(p, t[:, None].expand_as(p).contiguous(),
                                         over_penalty=as_kind(OVER, kind), under_penalty=as_kind(UNDER, kind)),
            lambda p, t: regression_loss_reference(p, t[:, None], under=UNDER, over=OVER)),
    }


@pytest.mark.parametrize("kind", ["list", "tensor"])
@pytest.mark.parametrize("op", ["regression_loss", "pinball_loss", "asymmetric_loss"])
def test_fullgraph_compile(op, kind):
    torch._dynamo.reset()
    g = torch.Generator().manual_seed(4)
    pred, target = torch.randn(37, 3, generator=g), torch.randn(37, generator=g)
    call, reference = cases(kind)[op]
    compiled = torch.compile(call, fullgraph=True, backend="aot_eager")
    p1, p2 = pred.clone().requires_grad_(True), pred.clone().requires_grad_(True)
    loss, ref = compiled(p1, target), reference(p2, target)
    loss.backward()
    ref.backward()
    assert_close(loss, ref, torch.float32)
    assert_close(p1.grad, p2.grad, torch.float32)


def test_tensor_quantiles_are_still_checked_in_eager_mode():
    pred, target = torch.randn(4, 3), torch.randn(4)
    with pytest.raises(ValueError, match="quantiles must be sorted"):
        pinball_loss(pred, target, torch.tensor([0.5, 0.1, 0.9]))
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        pinball_loss(pred, target, torch.tensor([0.1, 0.5, 1.0]))
