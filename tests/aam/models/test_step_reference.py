"""The model's training step against a plain reference: explicit softmax attention with masks, written
here from the model's parameters alone, in float64. Same weights, dropout off, BatchNorm on batch
statistics (training mode); loss and every parameter gradient must agree to fp32 rounding, with nucleotide
layers and without (`asv_layers` 0, which the model computes from a table of nucleotide-position pairs), and
within the bf16 bound of the tolerance table under `--precision bf16`'s autocast (where the CPU has native
bf16), with the attention kernel in fp32 there. Also: the model traces into one graph under torch.compile
(fullgraph=True)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from aam.config import ModelConfig
from aam.models import AAMRegressor
from aam.runtime.device import autocast, cpu_has_native_bf16
from tests.aam.models.test_model import L, make_inputs
from tests.kernels.tolerances import STEP_TOLERANCES, TOLERANCES


def config(asv_layers: int = 2) -> ModelConfig:
    return ModelConfig(embedding_dim=16, attention_heads=2, asv_layers=asv_layers, sample_layers=2, dropout=0.0,
                       max_bp=L, n_targets=2, category_cardinalities=(3,))


def make_batch(lengths: list[int], counts: list[int], seed: int):
    """ASVs with the given nucleotide lengths (0 pad after), samples with the given ASV counts (padded
    to the largest)."""
    g = torch.Generator().manual_seed(seed)
    tokens, index, mask, log_counts, categories = make_inputs(g, tuple(counts), len(lengths))
    for row, n in enumerate(lengths):
        tokens[row] = 0
        tokens[row, :n] = torch.randint(1, 6, (n,), generator=g, dtype=torch.uint8)
    return (tokens, index, mask, log_counts, categories), torch.randn(len(counts), 2, generator=g)


def _layer_norm(x, p, name):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5) * p[f"{name}.weight"] + p[f"{name}.bias"]


def _linear(x, p, name):
    return x @ p[f"{name}.weight"].T + p[f"{name}.bias"]


def _attention(x, mask, p, name, heads):
    # x [N, S, D], mask [N, S]: explicit scores, -inf at padded keys, softmax over keys
    n, s, d = x.shape
    qkv = _linear(x, p, f"{name}.qkv")
    q, k, v = (qkv[..., i * d:(i + 1) * d].reshape(n, s, heads, d // heads).transpose(1, 2) for i in range(3))
    scores = q @ k.transpose(-1, -2) / math.sqrt(d // heads)  # [N, H, S, S]
    scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    y = torch.softmax(scores, dim=-1) @ v  # [N, H, S, Dh]
    return _linear(y.transpose(1, 2).reshape(n, s, d), p, f"{name}.out")


def _stack(x, mask, p, name, layers, heads):
    for i in range(layers):
        block = f"{name}.blocks.{i}"
        x = x + _attention(_layer_norm(x, p, f"{block}.norm1"), mask, p, f"{block}.attn", heads)
        h = _linear(_layer_norm(x, p, f"{block}.norm2"), p, f"{block}.ff.0")
        h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))  # exact GELU
        x = x + _linear(h, p, f"{block}.ff.3")
    return _layer_norm(x, p, f"{name}.norm")


def _pool(x, mask, p, name):
    scores = _linear(x, p, f"{name}.score").squeeze(-1).masked_fill(~mask, float("-inf"))
    return (torch.softmax(scores, dim=-1)[..., None] * x).sum(1)


def _with_first(mask):
    """Rows without a real element attend to slot 0 (what the model does for an empty row)."""
    mask = mask.clone()
    mask[~mask.any(-1), 0] = True
    return mask


def reference_forward(p, c: ModelConfig, tokens, index, mask, log_counts, categories):
    tokens = tokens.long()
    token_mask = _with_first(tokens != 0)
    x = p["asv_encoder.nucleotides.weight"][tokens] + p["asv_encoder.positions.weight"][: tokens.shape[1]]
    x = _pool(_stack(x, token_mask, p, "asv_encoder.stack", c.asv_layers, c.attention_heads), token_mask,
              p, "asv_encoder.pool")
    mean, var = x.mean(0), x.var(0, unbiased=False)  # BatchNorm in training: biased batch variance
    asv = (x - mean) / torch.sqrt(var + 1e-5) * p["asv_encoder.norm.weight"] + p["asv_encoder.norm.bias"]
    s = asv[index] + log_counts[..., None] * p["sample_encoder.counts.weight"][:, 0] + p["sample_encoder.counts.bias"]
    s = s * mask[..., None]
    slot_mask = _with_first(mask)
    s = _pool(_stack(s, slot_mask, p, "sample_encoder.stack", c.sample_layers, c.attention_heads), slot_mask,
              p, "sample_encoder.pool")
    s = s + p["categories.0.weight"][categories[:, 0]]
    return _linear(s, p, "head.net.0").view(-1, c.n_targets, 1)


def loss_and_grads(model, inputs, targets, precision: str = "fp32"):
    """The trainer's step without the optimizer: forward under `precision`'s training autocast, loss in fp32."""
    model.zero_grad(set_to_none=True)
    with autocast(torch.device("cpu"), precision, training=True):
        pred = model(*inputs)
    loss = F.huber_loss(pred[..., 0].float(), targets)
    loss.backward()
    return loss.detach(), {n: q.grad for n, q in model.named_parameters() if q.grad is not None}


def reference_loss_and_grads(model, inputs, targets):
    params = {n: q.detach().double().requires_grad_() for n, q in model.named_parameters()}
    tokens, index, mask, log_counts, categories = inputs
    pred = reference_forward(params, model.config, tokens, index, mask, log_counts.double(), categories)
    loss = F.huber_loss(pred[..., 0], targets.double())
    loss.backward()
    return loss.detach(), {n: q.grad for n, q in params.items() if q.grad is not None}


BATCHES = {
    # ASVs of different lengths (padding in the ASV encoder), samples of different sizes with one single-ASV
    # sample (padding in the sample encoder)
    "padded": ([12, 9, 5, 12, 1, 7, 12, 3], [5, 1, 8, 3]),
    # every ASV full length and every sample the same size: nothing padded anywhere
    "unpadded": ([12] * 6, [4, 4, 4]),
    # one sample with one ASV
    "single": ([10, 12], [1]),
}


def check_step(name: str, precision: str, asv_layers: int = 2) -> None:
    lengths, counts = BATCHES[name]
    inputs, targets = make_batch(lengths, counts, seed=len(name))
    torch.manual_seed(0)
    model = AAMRegressor(config(asv_layers)).train()
    loss, grads = loss_and_grads(model, inputs, targets, precision)
    ref_loss, ref_grads = reference_loss_and_grads(model, inputs, targets)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    loss_atol, loss_rtol = TOLERANCES[dtype]
    torch.testing.assert_close(loss.double(), ref_loss, rtol=loss_rtol, atol=loss_atol)
    used = {n for n, g in ref_grads.items() if g.abs().max() > 0}
    assert used <= set(grads)
    # Absolute tolerance from the largest gradient of the model. Some gradients are zero in exact
    # arithmetic (the ASV BatchNorm removes any per-feature shift, e.g. of the last LayerNorm's bias):
    # float64 rounding in the reference, fp32 (or bf16) rounding in the model, amplified by the BatchNorm's
    # 1 / (spread of the ASV vectors), which is large for a batch of two ASVs; they must stay that small.
    scale = max(float(g.abs().max()) for g in ref_grads.values())
    atol, rtol = STEP_TOLERANCES[dtype]
    zero = {n for n in used if ref_grads[n].abs().max() < 1e-12 * scale}
    for n in used:
        assert grads[n].dtype == torch.float32  # fp32 master weights get fp32 gradients under autocast too
    for n in used - zero:
        torch.testing.assert_close(grads[n].double(), ref_grads[n], rtol=rtol, atol=atol * scale,
                                   msg=lambda m, n=n: f"{n}: {m}")
    for n in zero:
        assert grads[n].abs().max() < max(1e-4, atol) * scale, n


@pytest.mark.parametrize("asv_layers", [2, 0])
@pytest.mark.parametrize("name", sorted(BATCHES))
def test_step_matches_plain_reference(name, asv_layers):
    check_step(name, "fp32", asv_layers)


NO_BF16 = "this CPU has no native bf16 matrix multiply (AVX-512 BF16 or AMX), so --precision bf16 cannot run here"


@pytest.mark.skipif(not cpu_has_native_bf16(), reason=NO_BF16)
@pytest.mark.parametrize("name", ["padded", "unpadded"])
def test_bf16_step_matches_plain_reference(name):
    """Not "single": its batch has 2 distinct ASVs, and a BatchNorm over two vectors maps each feature to
    +-1 with a gradient of 1 / |x1 - x2|, so any rounding upstream comes out magnified without bound
    (10% of the largest gradient in bf16 here); a training batch has dozens to hundreds of distinct ASVs."""
    check_step(name, "bf16")


class OpDtypes(TorchDispatchMode):
    """{aten op name: the floating dtypes of its tensor arguments} of everything run while active."""

    def __init__(self):
        super().__init__()
        self.seen: dict[str, set[torch.dtype]] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        dtypes = {t.dtype for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor) and t.is_floating_point()}
        self.seen.setdefault(func.overloadpacket.__name__, set()).update(dtypes)
        return func(*args, **(kwargs or {}))


@pytest.mark.skipif(not cpu_has_native_bf16(), reason=NO_BF16)
def test_bf16_step_runs_linear_layers_in_bf16_and_attention_in_fp32():
    inputs, targets = make_batch(*BATCHES["padded"], seed=3)
    torch.manual_seed(0)
    model = AAMRegressor(config()).train()
    with OpDtypes() as ops:
        loss_and_grads(model, inputs, targets, "bf16")
    attention = {name: dtypes for name, dtypes in ops.seen.items() if "scaled_dot_product" in name}
    assert any("backward" in name for name in attention) and len(attention) >= 2, sorted(ops.seen)
    assert all(dtypes == {torch.float32} for dtypes in attention.values()), attention
    assert torch.bfloat16 in ops.seen["addmm"] | ops.seen.get("mm", set())
    assert ops.seen["native_layer_norm"] == {torch.float32}


@pytest.mark.parametrize("asv_layers", [2, 0])
def test_compiles_to_one_graph_with_the_same_step(asv_layers):
    """fullgraph=True fails on any graph break; aot_eager also traces the backward."""
    inputs, targets = make_batch(*BATCHES["padded"], seed=3)
    torch.manual_seed(0)
    model = AAMRegressor(config(asv_layers)).train()
    loss, grads = loss_and_grads(model, inputs, targets)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    model.zero_grad(set_to_none=True)
    compiled_loss = F.huber_loss(compiled(*inputs)[..., 0], targets)
    compiled_loss.backward()
    torch.testing.assert_close(compiled_loss.detach(), loss, rtol=1e-5, atol=1e-6)
    for n, q in model.named_parameters():
        if n in grads:
            torch.testing.assert_close(q.grad, grads[n], rtol=1e-4, atol=1e-6)
