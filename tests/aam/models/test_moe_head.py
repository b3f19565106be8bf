"""The mixture-of-experts head: against a per-sample loop written from the maths, fused path
(aam_kernels.moe_mlp) against the dense path for the output and every gradient, ties, per-category
routing with an unseen level, and the model's routing output."""

import copy
import math

import pytest
import torch

from aam.config import ModelConfig
from aam.models import AAMRegressor
from aam.models.moe import MoEHead

D, T, Q, E = 12, 2, 3, 4
LEVELS = 3  # levels of the routing column; code 0 = unknown
KINDS = {  # name -> (hidden_dims, residual)
    "linear": ((), False),
    "mlp1": ((8,), False),
    "mlp2": ((8, 5), False),
    "residual": ((8,), True),
}


def make_head(kind: str, top_k: int, routed: bool = True, fused: bool = False, seed: int = 0) -> MoEHead:
    hidden, residual = KINDS[kind]
    torch.manual_seed(seed)
    head = MoEHead(D, n_targets=T, n_quantiles=Q, hidden_dims=hidden, dropout=0.0, residual=residual, experts=E,
                   top_k=top_k, routing_index=1 if routed else -1, routing_levels=LEVELS, use_kernels=fused)
    if routed:  # a non-zero bias per level (it starts at zero), so the hand loop must add the right row
        torch.nn.init.normal_(head.route_bias.weight, std=0.5)
    return head


def make_inputs(n: int = 9, seed: int = 1, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, D, generator=g, dtype=dtype)
    categories = torch.stack([torch.zeros(n, dtype=torch.long), torch.arange(n) % (LEVELS + 1)], dim=1)  # [n, 2]
    return x, categories


def hand_head(head: MoEHead, x: torch.Tensor, categories: torch.Tensor) -> torch.Tensor:
    """One sample at a time from the definitions: softmax router, the k largest logits (ties to the
    lower index) by sorting Python tuples, renormalized gates, each chosen expert as its own chain of
    affine maps with exact GELU, mixed raw outputs, then q_0 = raw_0, q_j = q_{j-1} + log(1 + e^raw_j)."""
    rows = []
    for b in range(x.shape[0]):
        logits = x[b] @ head.router.weight.T + head.router.bias
        if head.route_bias is not None:
            logits = logits + head.route_bias.weight[categories[b, head.routing_index]]
        p = torch.exp(logits - logits.max())
        p = p / p.sum()
        chosen = sorted(range(head.experts), key=lambda e: (-logits[e].item(), e))[:head.top_k]
        mass = sum(p[e] for e in chosen)
        raw = torch.zeros(T * Q, dtype=x.dtype)
        for e in chosen:
            h = x[b]
            for layer in range(len(head.weights)):
                h = h @ head.weights[layer][e] + head.biases[layer][e]
                if layer < len(head.weights) - 1:
                    h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))
            if head.skip_weight is not None:
                h = h + x[b] @ head.skip_weight[e] + head.skip_bias[e]
            raw = raw + p[e] / mass * h
        raw = raw.view(T, Q)
        levels = [raw[:, 0]]
        for j in range(1, Q):
            levels.append(levels[-1] + torch.log1p(torch.exp(raw[:, j])))
        rows.append(torch.stack(levels, dim=-1))
    return torch.stack(rows)


def grads(module: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    return [x.grad] + [p.grad if p.grad is not None else torch.zeros_like(p) for p in module.parameters()]


@pytest.mark.parametrize("top_k", [1, 2, E], ids=lambda k: f"k{k}")
@pytest.mark.parametrize("kind", list(KINDS))
def test_head_equals_the_per_sample_loop_with_gradients(kind, top_k):
    head = make_head(kind, top_k).double()
    x, categories = make_inputs(dtype=torch.float64)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    weight = torch.randn(x.shape[0], T, Q, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    pred, routing = head(x1, categories)
    (pred * weight).sum().backward()
    got = grads(head, x1)
    hand = copy.deepcopy(head)
    hand.zero_grad()
    expected_pred = hand_head(hand, x2, categories)
    (expected_pred * weight).sum().backward()
    torch.testing.assert_close(pred, expected_pred, rtol=1e-10, atol=1e-12)
    # The router only gets gradient through the gates (no balance loss here), as in the loop.
    for a, b in zip(got, grads(hand, x2)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
    assert (torch.diff(pred, dim=-1) > 0).all()  # quantiles never cross
    assert int(routing.tokens_per_expert.sum()) == x.shape[0] * top_k


@pytest.mark.parametrize("top_k", [1, 2, E], ids=lambda k: f"k{k}")
@pytest.mark.parametrize("kind", ["linear", "mlp1", "residual"])
def test_fused_equals_dense_forward_and_every_gradient(kind, top_k):
    dense = make_head(kind, top_k)
    fused = copy.deepcopy(dense)
    fused.use_kernels = True
    x, categories = make_inputs(n=33)
    weight = torch.randn(33, T, Q, generator=torch.Generator().manual_seed(3))
    results = []
    for head in (dense, fused):
        xi = x.clone().requires_grad_()
        pred, routing = head(xi, categories)
        # The probabilities get a gradient of their own (as from the balance loss), besides the gates'.
        ((pred * weight).sum() + (routing.probs.mean(0) ** 2).sum() * 10).backward()
        results.append((pred.detach(), routing, grads(head, xi)))
    (pa, ra, ga), (pb, rb, gb) = results
    torch.testing.assert_close(pb, pa, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rb.probs, ra.probs, rtol=1e-6, atol=1e-7)
    assert torch.equal(rb.tokens_per_expert, ra.tokens_per_expert)
    names = ["x"] + [n for n, _ in dense.named_parameters()]
    for name, a, b in zip(names, ga, gb):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("fused", [False, True], ids=["dense", "fused"])
def test_tied_logits_pick_the_lowest_experts(fused):
    head = make_head("mlp1", 2, routed=False, fused=fused)
    torch.nn.init.zeros_(head.router.weight)
    torch.nn.init.zeros_(head.router.bias)  # every logit equal: experts 0 and 1 win, gates 1/2 each
    x, categories = make_inputs()
    pred, routing = head(x, categories)
    assert routing.tokens_per_expert.tolist() == [x.shape[0], x.shape[0], 0, 0]
    raw = head.expert_outputs(x)[:, :2].mean(1).view(-1, T, Q)
    torch.testing.assert_close(pred[..., 0], raw[..., 0])


def test_unseen_level_routes_by_the_sample_vector_and_known_levels_follow_their_bias():
    head = make_head("linear", 1)
    with torch.no_grad():
        head.route_bias.weight.zero_()
        head.route_bias.weight[1:, 3] = 100.0  # every known level: expert 3, whatever the sample vector
    x, categories = make_inputs(n=40)
    _, routing = head(x, categories)
    chosen = routing.logits.argmax(-1)
    codes = categories[:, 1]
    assert (chosen[codes > 0] == 3).all()
    unseen = codes == 0
    plain = (x[unseen] @ head.router.weight.T + head.router.bias).argmax(-1)
    assert torch.equal(chosen[unseen], plain)
    assert len(set(plain.tolist())) > 1  # the unseen level is spread by the router, not stuck on one expert


def test_unseen_level_row_stays_at_zero_when_training_sees_only_known_levels():
    head = make_head("mlp1", 2)
    torch.nn.init.zeros_(head.route_bias.weight)
    x, categories = make_inputs(n=16)
    categories[:, 1] = 1 + torch.arange(16) % LEVELS  # known levels only
    pred, _ = head(x, categories)
    pred.square().sum().backward()
    assert torch.count_nonzero(head.route_bias.weight.grad[0]) == 0
    assert torch.count_nonzero(head.route_bias.weight.grad[1:]) > 0


def test_fused_head_rejects_what_moe_mlp_cannot_express():
    with pytest.raises(ValueError, match="one hidden layer"):
        MoEHead(D, n_targets=1, n_quantiles=1, hidden_dims=(8, 4), experts=2, top_k=1, use_kernels=True)
    with pytest.raises(ValueError, match="dropout"):
        MoEHead(D, n_targets=1, n_quantiles=1, hidden_dims=(8,), dropout=0.1, experts=2, top_k=1, use_kernels=True)


def test_model_returns_predictions_and_exposes_routing_only_when_asked():
    config = ModelConfig(embedding_dim=16, attention_heads=2, asv_layers=1, sample_layers=1, dropout=0.0, max_bp=8,
                         n_targets=T, n_quantiles=Q, category_cardinalities=(2, LEVELS), moe_experts=E,
                         moe_routing="site", moe_routing_index=1)
    g = torch.Generator().manual_seed(4)
    inputs = (torch.randint(1, 5, (6, 8), generator=g, dtype=torch.uint8), torch.randint(0, 6, (5, 3), generator=g),
              torch.ones(5, 3, dtype=torch.bool), torch.rand(5, 3, generator=g), torch.zeros(5, 2, dtype=torch.long))
    torch.manual_seed(0)
    model = AAMRegressor(config).eval()
    pred = model(*inputs)
    again, routing = model(*inputs, return_routing=True)
    assert pred.shape == (5, T, Q) and torch.equal(pred, again)
    assert routing.probs.shape == routing.logits.shape == (5, E)
    assert model.head.route_bias.weight.shape == (LEVELS + 1, E)
    plain = AAMRegressor(ModelConfig(embedding_dim=16, attention_heads=2, asv_layers=1, sample_layers=1, max_bp=8,
                                     category_cardinalities=(2, LEVELS)))
    assert plain(*inputs, return_routing=True)[1] is None
