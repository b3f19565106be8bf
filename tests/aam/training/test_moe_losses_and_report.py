"""MoE router losses and the metrics.json "moe" block, against values worked out by hand."""

import math

import pytest
import torch

from aam.evaluation.metrics import format_metrics
from aam.evaluation.moe_report import UNKNOWN_LEVEL, moe_metrics
from aam.models.moe import Routing
from aam.training.router_loss import RouterLoss, balance_loss, router_z_loss


def routing_of(logits, counts) -> Routing:
    logits = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    return Routing(logits, torch.softmax(logits, -1), torch.tensor(counts))


def test_balance_loss_by_hand():
    # E = 2, k = 1. Sample 0: p = (3/4, 1/4); sample 1: p = (1/2, 1/2). Both routed to expert 0.
    r = routing_of([[math.log(3), 0.0], [0.0, 0.0]], [2, 0])
    # f = (1, 0); P = (5/8, 3/8); E * sum f P = 2 * 5/8.
    loss = balance_loss(r)
    assert loss.item() == pytest.approx(1.25, rel=1e-12)
    # d/d probs[b, e] = E * f_e / B: (1, 0) for both samples; through softmax d/d logits[b] = p * (g - p.g).
    loss.backward()
    p = r.probs.detach()
    g = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    expected = p * (g - (p * g).sum(-1, keepdim=True))
    torch.testing.assert_close(r.logits.grad, expected)


def test_balance_loss_is_one_for_uniform_routing():
    # E = 4, k = 2, 2 samples with equal logits: P_e = 1/4, f_e = 1/4 -> 4 * 4 * 1/16 = 1.
    r = routing_of([[0.0] * 4, [0.0] * 4], [1, 1, 1, 1])
    assert balance_loss(r).item() == pytest.approx(1.0, rel=1e-12)


def test_router_z_loss_by_hand():
    # logsumexp(0, 0) = log 2; logsumexp(log 3, 0) = log 4 = 2 log 2 -> mean of squares = 5/2 (log 2)^2.
    r = routing_of([[0.0, 0.0], [math.log(3), 0.0]], [1, 1])
    assert router_z_loss(r).item() == pytest.approx(2.5 * math.log(2) ** 2, rel=1e-6)


def test_router_loss_weights_and_what_it_logs():
    r = routing_of([[math.log(3), 0.0], [0.0, 0.0]], [2, 0])
    z = 2.5 * math.log(2) ** 2
    total, parts = RouterLoss(0.5, 0.0)(r)
    assert total.item() == pytest.approx(0.5 * 1.25) and set(parts) == {"balance_loss"}
    total, parts = RouterLoss(0.5, 0.1)(r)
    assert total.item() == pytest.approx(0.5 * 1.25 + 0.1 * z, rel=1e-6)
    assert parts["balance_loss"].item() == pytest.approx(1.25) and parts["z_loss"].item() == pytest.approx(z, rel=1e-6)
    assert total.requires_grad and not parts["balance_loss"].requires_grad


def test_moe_metrics_by_hand():
    # E = 3, k = 1, 4 samples; codes 1, 1, 2, 0 (0 = a level not seen in training).
    logits = [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0], [1.0, 1.0, 0.0]]  # last: tie -> expert 0
    r = routing_of(logits, [2, 1, 1])
    report = moe_metrics(r, 1, torch.tensor([1, 1, 2, 0]), ["north", "south"])
    assert report["utilization"] == pytest.approx([0.5, 0.25, 0.25])
    a = math.exp(2) / (math.exp(2) + 2)  # the winner's probability in the first three rows
    h_peaked = -(a * math.log(a) + 2 * ((1 - a) / 2) * math.log((1 - a) / 2))
    b = math.e / (2 * math.e + 1)
    h_tie = -(2 * b * math.log(b) + (1 - 2 * b) * math.log(1 - 2 * b))
    assert report["entropy"] == pytest.approx((3 * h_peaked + h_tie) / 4, rel=1e-9)
    assert report["by_category"] == {UNKNOWN_LEVEL: [1.0, 0.0, 0.0], "north": [0.5, 0.5, 0.0],
                                     "south": [0.0, 0.0, 1.0]}
    assert moe_metrics(r, 1)["by_category"] == {}


def test_moe_metrics_top2_counts_pairs():
    r = routing_of([[3.0, 2.0, 0.0], [0.0, 2.0, 3.0]], [1, 2, 1])
    report = moe_metrics(r, 2, torch.tensor([1, 1]), ["x"])
    assert report["utilization"] == pytest.approx([0.25, 0.5, 0.25])
    assert report["by_category"]["x"] == pytest.approx([0.25, 0.5, 0.25])


def test_format_metrics_prints_targets_then_the_moe_line():
    target = {"mae": 1.0, "rmse": 2.0, "r2": 0.5, "pearson": 0.7, "n": 3}
    lines = format_metrics({"ph": target, "moe": {"utilization": [0.75, 0.25], "entropy": 0.5, "by_category": {}}})
    assert len(lines) == 2 and lines[0].startswith("  ph: MAE 1")
    assert lines[1] == "  moe: expert utilization 0.75 0.25  routing entropy 0.500 nats"
    # A target that happens to be called "moe" (no MoE head) is still a target.
    assert format_metrics({"moe": target})[0].startswith("  moe: MAE 1")
