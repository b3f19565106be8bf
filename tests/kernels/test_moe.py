"""moe_mlp against its dense plain-autograd reference (run in fp64), on every backend that can run here.

"torch" is the CPU path, "interpret" the Triton kernels through Triton's interpreter (kept to tiny
shapes: it is slow), "triton" the compiled kernels (only with a GPU). Each case checks y, probs,
tokens_per_expert and the six gradients (the upstream loss uses both y and probs).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from aam_kernels import MoEOutput, count_launches, moe_mlp, use_backend
from aam_kernels.backend import poison_outputs
from aam_kernels.moe.launch import launch_config
from aam_kernels.moe.reference import moe_mlp_reference
from tests.kernels.cuda_compile import compile_for_sm90
from tests.kernels.moe_cases import (
    HAS_CUDA,
    case_id,
    check_against_reference,
    make_inputs,
    needs_cuda,
    needs_triton,
    run,
    run_variant,
)

# The CPU path is fast: the full grid T x E x k, gelu MLP experts, D/H/O not powers of 2.
TORCH_GRID = [
    pytest.param(T, E, k, id=case_id(T, E, k, "gelu"))
    for T in (0, 1, 37, 130)
    for E in (2, 4, 8)
    for k in sorted({1, 2, E})
]


@pytest.mark.parametrize("T,E,k", TORCH_GRID)
def test_torch_grid(T, E, k):
    check_against_reference(make_inputs(T, 13, 21, 3, E, seed=T + E + k), "torch", top_k=k)


# Variants: every activation, Linear experts, no renormalization, empty experts, ties.
VARIANTS = [
    pytest.param(37, 4, 2, "relu", dict(), id=case_id(37, 4, 2, "relu")),
    pytest.param(37, 4, 2, "silu", dict(), id=case_id(37, 4, 2, "silu")),
    pytest.param(37, 4, 2, "gelu", dict(linear=True), id=case_id(37, 4, 2, "gelu", "linear")),
    pytest.param(37, 8, 8, "silu", dict(linear=True), id=case_id(37, 8, 8, "silu", "linear")),
    pytest.param(37, 4, 2, "gelu", dict(renormalize=False), id=case_id(37, 4, 2, "gelu", "norenorm")),
    pytest.param(37, 4, 1, "relu", dict(renormalize=False), id=case_id(37, 4, 1, "relu", "norenorm")),
    pytest.param(37, 8, 1, "gelu", dict(logits="one"), id=case_id(37, 8, 1, "gelu", "one-expert")),
    pytest.param(37, 8, 2, "silu", dict(logits="one"), id=case_id(37, 8, 2, "silu", "two-experts")),
    pytest.param(37, 4, 2, "gelu", dict(logits="ties"), id=case_id(37, 4, 2, "gelu", "ties")),
    pytest.param(37, 2, 2, "relu", dict(logits="ties", linear=True), id=case_id(37, 2, 2, "relu", "ties-linear")),
]


@pytest.mark.parametrize("T,E,k,activation,opts", VARIANTS)
def test_torch_variants(T, E, k, activation, opts):
    run_variant("torch", T, E, k, activation, opts)


# Interpreter: tiny shapes (the interpreter runs each program in numpy), still covering T = 0, 1,
# a non-multiple of the 16-row block, every E in {2, 4, 8} and k in {1, 2, E}, Linear experts,
# empty experts, ties and D/H/O that are not powers of 2 (D = 19 > 16, so the D loops take 2 steps).
INTERPRET_CASES = [
    pytest.param(0, 4, 2, "gelu", dict(), id=case_id(0, 4, 2, "gelu")),
    pytest.param(1, 2, 2, "gelu", dict(), id=case_id(1, 2, 2, "gelu")),
    pytest.param(37, 4, 2, "gelu", dict(), id=case_id(37, 4, 2, "gelu")),
    pytest.param(37, 2, 1, "relu", dict(), id=case_id(37, 2, 1, "relu")),
    pytest.param(37, 4, 4, "silu", dict(renormalize=False), id=case_id(37, 4, 4, "silu", "norenorm")),
    pytest.param(37, 8, 2, "gelu", dict(linear=True), id=case_id(37, 8, 2, "gelu", "linear")),
    pytest.param(37, 8, 1, "silu", dict(logits="one"), id=case_id(37, 8, 1, "silu", "one-expert")),
    pytest.param(37, 4, 2, "relu", dict(logits="ties"), id=case_id(37, 4, 2, "relu", "ties")),
    pytest.param(130, 4, 2, "gelu", dict(), id=case_id(130, 4, 2, "gelu")),
    pytest.param(37, 8, 8, "gelu", dict(), id=case_id(37, 8, 8, "gelu")),
    pytest.param(1, 4, 1, "silu", dict(), id=case_id(1, 4, 1, "silu")),
    pytest.param(0, 8, 8, "relu", dict(linear=True), id=case_id(0, 8, 8, "relu", "linear")),
]


@needs_triton
@pytest.mark.parametrize("T,E,k,activation,opts", INTERPRET_CASES)
def test_interpret(T, E, k, activation, opts):
    run_variant("interpret", T, E, k, activation, opts, dims=(19, 5, 3))


@pytest.mark.parametrize("T,E,k,activation,opts", INTERPRET_CASES + VARIANTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("backend", [pytest.param("triton", marks=needs_cuda)])
def test_cuda(backend, dtype, T, E, k, activation, opts):
    run_variant(backend, T, E, k, activation, opts, device="cuda", dtype=dtype, dims=(96, 80, 3))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("backend", [pytest.param("triton", marks=needs_cuda)])
def test_cuda_large(backend, dtype):
    """Several blocks per expert and several D/H tiles on the GPU."""
    run_variant(backend, 4099, 8, 2, "gelu", {}, device="cuda", dtype=dtype, dims=(200, 130, 5))


def test_reference_gradcheck():
    """The reference itself, fp64, both expert kinds; the loss also uses probs."""
    for linear, activation in ((False, "gelu"), (False, "silu"), (True, "relu")):
        inputs = make_inputs(5, 3, 4, 2, 3, linear=linear, seed=1, dtype=torch.float64)
        inputs[1] = inputs[1].double()
        idx = [i for i, t in enumerate(inputs) if t is not None]

        def f(*ts, inputs=inputs, idx=idx, activation=activation):
            full = list(inputs)
            for i, t in zip(idx, ts):
                full[i] = t
            y, probs, _ = moe_mlp_reference(*full, top_k=2, activation=activation)
            return y, probs

        leaves = [inputs[i].clone().requires_grad_(True) for i in idx]
        assert torch.autograd.gradcheck(f, leaves, eps=1e-6, atol=1e-7)


BACKENDS_HERE = ["torch", pytest.param("interpret", marks=needs_triton)]


@pytest.mark.parametrize("backend", BACKENDS_HERE)
@pytest.mark.parametrize("linear", [False, True], ids=["mlp", "linear"])
def test_poisoned_outputs(backend, linear):
    """Every buffer the op allocates starts as NaN / INT_MIN: an element left unwritten shows up."""
    inputs = make_inputs(37, 19, 5, 3, 4, linear=linear, seed=3)
    with poison_outputs():
        check_against_reference(inputs, backend, top_k=2)


@needs_triton
@pytest.mark.parametrize("linear", [False, True], ids=["mlp", "linear"])
def test_launch_counts(linear):
    inputs = [None if t is None else t.requires_grad_(True) for t in make_inputs(37, 19, 5, 3, 4, linear=linear)]
    with use_backend("interpret"):
        with count_launches() as fwd:
            out = moe_mlp(*inputs, top_k=2)
        with count_launches() as bwd:
            (out.y.sum() + out.probs.square().sum()).backward()
    assert fwd.count == 2, "forward: routing + fused experts"
    # backward: router, weight gradients, input gradient, plus the hidden-layer recompute for MLP experts
    assert bwd.count == (3 if linear else 4)


@pytest.mark.parametrize("backend", BACKENDS_HERE)
def test_bitwise_deterministic(backend):
    inputs = make_inputs(37, 19, 5, 3, 4, seed=5)
    first = run(moe_mlp, inputs, top_k=2, backend=backend)
    second = run(moe_mlp, inputs, top_k=2, backend=backend)
    for a, b in zip(first[:3] + tuple(first[3]), second[:3] + tuple(second[3])):
        assert (a is None and b is None) or torch.equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS_HERE)
def test_non_contiguous_inputs(backend):
    x, lg, w1, b1, w2, b2 = make_inputs(37, 19, 5, 3, 4, seed=6)
    x_t = x.t().contiguous().t()  # same values, column-major strides
    lg_t = lg.t().contiguous().t()
    w1_t = w1.transpose(1, 2).contiguous().transpose(1, 2)
    assert not x_t.is_contiguous() and not w1_t.is_contiguous()
    check_against_reference([x_t, lg_t, w1_t, b1, w2, b2], backend, top_k=2)


def test_returns_named_fields():
    x, lg, w1, b1, w2, b2 = make_inputs(9, 4, 6, 2, 3)
    out = moe_mlp(x, lg, w1, b1, w2, b2, top_k=3)
    assert isinstance(out, MoEOutput)
    assert out.y.shape == (9, 2) and out.probs.shape == (9, 3) and out.tokens_per_expert.tolist() == [9, 9, 9]


@pytest.mark.parametrize("backend,device", [("torch", "cpu"), pytest.param("triton", "cuda", marks=needs_cuda)])
def test_torch_compile_fullgraph(backend, device):
    """The op is a torch.library custom op with a fake: fullgraph tracing works, results match eager."""
    inputs = make_inputs(37, 13, 21, 3, 4, seed=8, device=device)

    def f(x, lg, w1, b1, w2, b2, top_k, activation, renormalize):
        out = moe_mlp(x, lg, w1, b1, w2, b2, top_k=top_k, activation=activation, renormalize=renormalize)
        return out.y * 2.0, out.probs, out.tokens_per_expert

    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    eager = run(f, inputs, top_k=2, backend=backend)
    traced = run(compiled, inputs, top_k=2, backend=backend)
    for a, b in zip(eager[:3] + tuple(eager[3]), traced[:3] + tuple(traced[3])):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_imports_without_loading_triton_kernels():
    code = "import sys, aam_kernels; assert 'aam_kernels.moe.triton' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def _bad(change, exc, match, top_k=2, **kw):
    return pytest.param(change, exc, match, top_k, kw, id=match.split()[0].strip("^") + "-" + exc.__name__)


BAD_INPUTS = [
    _bad(lambda a: a, ValueError, "top_k must be in", top_k=5),
    _bad(lambda a: a, ValueError, "top_k must be in", top_k=0),
    _bad(lambda a: a, TypeError, "top_k must be an int", top_k=2.0),
    _bad(lambda a: a, ValueError, "activation must be one of", activation="tanh"),
    _bad(lambda a: a, TypeError, "renormalize must be a bool", renormalize=1),
    _bad(lambda a: [a[0][:-1]] + a[1:], ValueError, "router_logits must have shape"),
    _bad(lambda a: [a[0][None]] + a[1:], ValueError, "x must be 2-D"),
    _bad(lambda a: [a[0].long()] + a[1:], TypeError, "x must have a floating dtype"),
    _bad(lambda a: [a[0], a[1].long()] + a[2:], TypeError, "router_logits must have a floating dtype"),
    _bad(lambda a: [a[0], a[1], a[2][:, :-1]] + a[3:], ValueError, "w1 must have shape"),
    _bad(lambda a: a[:3] + [a[3][:, :-1]] + a[4:], ValueError, "b1 must have shape"),
    _bad(lambda a: a[:4] + [a[4][:, :-1]] + a[5:], ValueError, "w2 must have shape"),
    _bad(lambda a: a[:5] + [a[5][:, :-1]], ValueError, "b2 must have shape"),
    _bad(lambda a: a[:2] + [None] + a[3:], ValueError, "w1 and b1 must both"),
    _bad(lambda a: a[:4] + [a[4].double()] + a[5:], TypeError, "w2 must have x's dtype"),
    _bad(lambda a: a[:5] + [a[5].to("meta")], ValueError, "b2 is on meta"),
    _bad(lambda a: a[:2] + [a[2].numpy()] + a[3:], TypeError, "w1 must be a torch.Tensor"),
    _bad(lambda a: a[:5] + [a[5].double()], TypeError, "b2 must have x's dtype"),
]


@pytest.mark.parametrize("change,exc,match,top_k,kw", BAD_INPUTS)
def test_bad_inputs(change, exc, match, top_k, kw):
    args = change(make_inputs(5, 4, 6, 2, 3))
    with pytest.raises(exc, match=match):
        moe_mlp(*args, top_k=top_k, **kw)


@needs_triton
def test_fp64_needs_torch_backend():
    args = make_inputs(5, 4, 6, 2, 3, dtype=torch.float64)
    with use_backend("interpret"), pytest.raises(TypeError, match="x must be float32, float16 or bfloat16"):
        moe_mlp(*args, top_k=2)


@needs_triton
@pytest.mark.skipif(HAS_CUDA, reason="the CUDA tests run the compiled kernels")
def test_kernels_compile_for_cuda_without_gpu(monkeypatch):
    """The interpreter accepts code the compiler rejects (dtype mixes in tl.dot, scalar/tensor control
    flow), so compile every kernel with the GPU block sizes of bf16 inputs (tensor-core dots) and of
    fp32 ones (ieee dots)."""
    monkeypatch.setenv("TRITON_DEFAULT_FP_FUSION", "1")
    from aam_kernels.moe import triton as mt
    from aam_kernels.moe import triton_backward, triton_route

    ints = {name: "i32" for name in ("T", "E", "NB", "D", "H", "O")} | {name: "i64" for name in ("s_xt", "s_xd", "s_lt", "s_le")}
    routing = dict(p_pairs="*i32", p_blk_expert="*i32", p_seg_blk="*i32", p_topi="*i64", p_counts="*i64")

    def types(dt):
        # every pointer the kernels take: inputs and weight gradients in the input dtype, the rest fp32
        in_dtype = ("p_x", "p_w1", "p_b1", "p_w2", "p_b2", "p_gy", "p_gw1", "p_gb1", "p_gw2", "p_gb2")
        fp32 = ("p_logits", "p_probs", "p_gates", "p_out", "p_gprobs", "p_glogits", "p_ga", "p_h", "p_gxp")
        return ints | routing | {p: "*" + dt for p in in_dtype} | {p: "*fp32" for p in fp32}

    for dt, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):  # each with its GPU block sizes
        cfg = launch_config("triton", dtype)
        tiles, warps = dict(BM=cfg.bm, BD=cfg.bd, BH=cfg.bh, BO=16), cfg.num_warps
        route = dict(K=2, RENORM=True, BM=cfg.bm, BT=cfg.bt, BE=8, BK=2)
        compile_for_sm90(triton_route._moe_route_kernel, types(dt), route, warps)
        chunk_types = types(dt) | dict(p_chunk="*i32", p_rank="*i32", p_ticket="*i32", C="i32")
        compile_for_sm90(triton_route._moe_route_chunks_kernel, chunk_types, route | dict(BC=cfg.bc, BP=cfg.bp), warps)
        for has_w1 in (True, False):
            compile_for_sm90(mt._moe_fwd_kernel, types(dt), dict(K=2, HAS_W1=has_w1, ACT=0, **tiles), warps)
            compile_for_sm90(triton_backward._moe_bwd_weights_kernel, types(dt), dict(K=2, HAS_W1=has_w1, **tiles), warps)
            compile_for_sm90(triton_backward._moe_bwd_input_kernel, types(dt), dict(K=2, HAS_W1=has_w1, **tiles), warps)
        router_bwd = dict(K=2, RENORM=True, HAS_GPROBS=True, BT=cfg.bt, BE=8, BO=16)
        compile_for_sm90(triton_backward._moe_router_bwd_kernel, types(dt), router_bwd, warps)
        compile_for_sm90(triton_backward._moe_bwd_rows_kernel, types(dt), dict(K=2, ACT=0, **tiles), warps)
