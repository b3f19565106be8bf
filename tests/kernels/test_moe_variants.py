"""moe_mlp kernel variants: the 16-bit forward's zero-padded hidden layer (unpadded, the forward
compiled by Triton 3.6 for an H200 was wrong at H = 100, 130, 136), and the routing kernel with one
program per chunk of tokens (shipped from ``MoELaunchConfig.route_chunks_from`` tokens on), which must give
the one-program kernel's route bit for bit. Helpers in moe_cases.py, backends as in test_moe.py.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from aam_kernels.backend import poison_outputs
from aam_kernels.moe.launch import launch_config
from aam_kernels.moe.reference import moe_mlp_reference
from aam_kernels.moe.state import MoEInputs
from tests.kernels.moe_cases import case_id, make_inputs, needs_cuda, needs_triton, run_variant
from tests.kernels.spy import record_grids


@needs_triton
@pytest.mark.parametrize("activation", ["gelu", "relu", "silu"])
def test_interpret_16bit_pads_hidden(activation):
    """fp16 with H = 13: the forward kernel runs on the hidden layer zero-padded to 16 (see
    ``H_MULTIPLE_16BIT``); outputs and all six gradients still match the reference."""
    run_variant("interpret", 37, 4, 2, activation, {}, dtype=torch.float16, dims=(19, 13, 3))


@pytest.mark.parametrize("activation", ["gelu", "relu", "silu"])
def test_padded_hidden_layer_is_the_same_function(activation):
    """The padding the 16-bit forward applies changes nothing, in fp64 through the reference."""
    from aam_kernels.moe.triton import H_MULTIPLE_16BIT, pad_hidden

    x, lg, w1, b1, w2, b2 = (t.double() for t in make_inputs(37, 19, 13, 3, 4, seed=5))
    pw1, pb1, pw2, hp = pad_hidden(w1, b1, w2)
    assert hp == 16 and hp % H_MULTIPLE_16BIT == 0 and torch.equal(pw1[:, :, :13], w1)
    want = moe_mlp_reference(x, lg, w1, b1, w2, b2, top_k=2, activation=activation)[0]
    got = moe_mlp_reference(x, lg, pw1, pb1, pw2, b2, top_k=2, activation=activation)[0]
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("H", [100, 130, 136])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("backend", [pytest.param("triton", marks=needs_cuda)])
def test_cuda_16bit_hidden_not_multiple_of_16(backend, dtype, H):
    """Widths at which the unpadded 16-bit forward was wrong or faulted on an H200 (Triton 3.6)."""
    run_variant(backend, 4099, 8, 2, "gelu", {}, device="cuda", dtype=dtype, dims=(200, H, 5))


@pytest.mark.parametrize("D", [100, 200])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("backend", [pytest.param("triton", marks=needs_cuda)])
def test_cuda_16bit_linear_experts_odd_width(backend, dtype, D):
    """Linear experts (one 16-bit dot over D) at widths that are not multiples of 16, which the forward
    does not pad."""
    run_variant(backend, 4099, 8, 2, "gelu", dict(linear=True), device="cuda", dtype=dtype, dims=(D, 8, 5))


def chunked(backend, dtype=torch.float32):
    """The shipped launch configuration, routing with one program per chunk of tokens at any T."""
    return dataclasses.replace(launch_config(backend, dtype), route_chunks_from=0)


@pytest.fixture
def route_chunks(monkeypatch):
    """Records the launches of the chunked routing kernel."""
    from aam_kernels.moe import triton_route

    return record_grids(monkeypatch, triton_route._moe_route_chunks_kernel)


CHUNK_CASES = [
    pytest.param(1, 2, 2, "gelu", dict(), id=case_id(1, 2, 2, "gelu")),
    pytest.param(37, 4, 2, "relu", dict(logits="ties"), id=case_id(37, 4, 2, "relu", "ties")),
    pytest.param(130, 4, 2, "gelu", dict(), id=case_id(130, 4, 2, "gelu")),
    pytest.param(37, 8, 1, "silu", dict(logits="one"), id=case_id(37, 8, 1, "silu", "one-expert")),
    pytest.param(37, 8, 8, "gelu", dict(linear=True), id=case_id(37, 8, 8, "gelu", "linear")),
]


@needs_triton
@pytest.mark.parametrize("T,E,k,activation,opts", CHUNK_CASES)
def test_interpret_route_chunks(route_chunks, T, E, k, activation, opts):
    """Several chunks of 16 tokens (T = 130: 9 programs, the last one partial), ties, empty experts."""
    run_variant("interpret", T, E, k, activation, opts, dims=(19, 5, 3), launch=chunked("interpret"))
    assert route_chunks and all(grid == (-(-T // 16),) for grid in route_chunks)


def _route_outputs(backend, device, T, E, k, logits="random", launch=None):
    """y, counts, probs, topi, gates, o_tk and the route buffer of one forward launch."""
    from aam_kernels.moe import triton as mt

    inputs = MoEInputs(*make_inputs(T, 19, 5, 3, E, seed=T + E, device=device, logits=logits))
    with poison_outputs():
        y, counts, saved = mt.forward(inputs, k, "gelu", True, backend, launch)
    return (y, counts, *saved[:5])


@pytest.mark.parametrize(
    "backend,device", [pytest.param("interpret", "cpu", marks=needs_triton), pytest.param("triton", "cuda", marks=needs_cuda)]
)
@pytest.mark.parametrize("T,E,k,logits", [(37, 4, 2, "ties"), (130, 8, 2, "random"), (5, 4, 4, "one")])
def test_route_chunks_give_the_same_route_bit_for_bit(backend, device, T, E, k, logits):
    """probs, counts, topi, gates, o_tk and the whole route buffer (pairs, block experts, segments),
    padding included, equal the one-program kernel's; and a second launch reuses the ticket."""
    one = _route_outputs(backend, device, T, E, k, logits)
    for _ in range(2):
        chunks = _route_outputs(backend, device, T, E, k, logits, launch=chunked(backend))
        for a, b in zip(one, chunks):
            assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("backend", [pytest.param("triton", marks=needs_cuda)])
def test_cuda_route_chunks(route_chunks, backend, dtype):
    """Many chunks on the GPU (4099 tokens: 33 programs of 128), against the reference."""
    run_variant(backend, 4099, 8, 2, "gelu", {}, device="cuda", dtype=dtype, dims=(200, 128, 5), launch=chunked(backend, dtype))
    assert route_chunks
