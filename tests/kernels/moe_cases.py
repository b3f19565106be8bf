"""Inputs, reference checks and markers shared by the moe_mlp test modules."""

from __future__ import annotations

import functools

import pytest
import torch

from aam_kernels import use_backend
from aam_kernels.backend import triton_import_error
from aam_kernels.moe.op import moe_mlp_launched
from aam_kernels.moe.reference import moe_mlp_reference
from tests.kernels.tolerances import assert_close

HAS_CUDA = torch.cuda.is_available()
HAS_TRITON = triton_import_error() is None
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="no triton")
needs_cuda = [pytest.mark.cuda, pytest.mark.skipif(not (HAS_CUDA and HAS_TRITON), reason="no CUDA")]
# Sums over D and H of O(1) terms: allow a few fp32 roundings per term on top of the table's bound.
SUM_SCALE = 4.0


def make_inputs(T, D, H, O, E, *, linear=False, logits="random", seed=0, dtype=torch.float32, device="cpu"):
    """x, router_logits, w1, b1, w2, b2 with O(1) pre-activations.

    logits: "random"; "one" (every token prefers expert 0, then 1: k = 1 leaves experts 1.. empty,
    k = 2 leaves 2.. empty); "ties" (values in {0, 1}: many equal logits, lowest index must win).
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, D, generator=g)
    if logits == "random":
        lg = torch.randn(T, E, generator=g) * 2
    elif logits == "one":
        lg = torch.randn(T, E, generator=g) * 0.1
        lg[:, 0] += 20.0
        if E > 1:
            lg[:, 1] += 10.0
    else:
        lg = torch.randint(0, 2, (T, E), generator=g).float()
    if linear:
        w1 = b1 = None
        w2 = torch.randn(E, D, O, generator=g) / D**0.5
    else:
        w1 = torch.randn(E, D, H, generator=g) / D**0.5
        b1 = torch.randn(E, H, generator=g) * 0.5
        w2 = torch.randn(E, H, O, generator=g) / H**0.5
    b2 = torch.randn(E, O, generator=g) * 0.5
    move = lambda t: None if t is None else t.to(device=device, dtype=dtype)  # noqa: E731
    return [move(x), lg.to(device), move(w1), move(b1), move(w2), move(b2)]


def run(fn, inputs, *, top_k, activation="gelu", renormalize=True, backend=None, dtype=None):
    """(y, probs, counts, grads of the six inputs) for loss = <y, gy> + <probs, gp>, fixed gy and gp."""
    leaves = [None if t is None else t.detach().clone().to(dtype or t.dtype).requires_grad_(True) for t in inputs]
    if backend is None:
        y, probs, counts = fn(*leaves, top_k=top_k, activation=activation, renormalize=renormalize)
    else:
        with use_backend(backend):
            y, probs, counts = fn(*leaves, top_k=top_k, activation=activation, renormalize=renormalize)
    g = torch.Generator().manual_seed(123)
    gy = torch.randn(y.shape, generator=g).to(y)
    gp = torch.randn(probs.shape, generator=g).to(probs)
    ((y * gy).sum() + (probs * gp).sum()).backward()
    grads = [None if t is None else t.grad for t in leaves]
    return y, probs, counts, grads


def check_against_reference(inputs, backend, *, top_k, activation="gelu", renormalize=True, dtype=torch.float32, launch=None):
    """``launch``: the Triton kernels' launch configuration (None: the shipped one)."""
    kw = dict(top_k=top_k, activation=activation, renormalize=renormalize)
    y, probs, counts, grads = run(functools.partial(moe_mlp_launched, launch), inputs, backend=backend, **kw)
    ry, rprobs, rcounts, rgrads = run(moe_mlp_reference, [None if t is None else t.cpu() for t in inputs], dtype=torch.float64, **kw)
    assert y.dtype == inputs[0].dtype and probs.dtype == torch.float32 and counts.dtype == torch.int64
    assert_close(y, ry, dtype, SUM_SCALE)
    assert_close(probs, rprobs, torch.float32)
    assert torch.equal(counts.cpu(), rcounts)
    names = ("x", "router_logits", "w1", "b1", "w2", "b2")
    for name, t, g, rg in zip(names, inputs, grads, rgrads):
        if t is None:
            assert g is None and rg is None
            continue
        assert g is not None and g.dtype == t.dtype and g.shape == t.shape, name
        # Weight gradients sum over up to T*k pairs: widen with the number of terms.
        scale = SUM_SCALE * (max(1.0, counts.max().item() ** 0.5) if name in ("w1", "b1", "w2", "b2") else 1.0)
        assert_close(g.cpu(), rg, dtype, scale)


def case_id(T, E, k, activation, extra=""):
    return f"T{T}-E{E}-k{k}-{activation}" + (f"-{extra}" if extra else "")


def run_variant(backend, T, E, k, activation, opts, device="cpu", dtype=torch.float32, dims=(13, 21, 3), launch=None):
    opts = dict(opts)
    renormalize = opts.pop("renormalize", True)
    inputs = make_inputs(T, *dims, E, seed=7, device=device, dtype=dtype, **opts)
    check_against_reference(
        inputs, backend, top_k=k, activation=activation, renormalize=renormalize, dtype=dtype, launch=launch
    )
