"""moe_mlp: CPU path / Triton vs a Python loop over experts vs a dense all-experts einsum vs torch.compile.

Every provider runs forward + backward (gradients of x, router_logits and all four weights) on the same
inputs. FLOPs counted are the useful ones of a top-k MoE MLP: 3 matmul passes (forward, d input, d weight)
x 2 x T x k x (D x H + H x O); the dense einsum does E / k times more work and the kernels recompute the
first layer in backward, neither of which is counted.
Run: ``pytest bench/test_moe.py --benchmark-only``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from aam_kernels import moe_mlp, use_backend
from aam_kernels.moe.reference import moe_mlp_expert_loop, moe_mlp_reference
from bench.common import HAS_CUDA, Provider, record, sync


@dataclass(frozen=True)
class Case:
    name: str
    T: int
    D: int
    H: int
    O: int
    E: int
    k: int
    dtype: torch.dtype
    devices: tuple[str, ...]  # where this size is worth running


CASES = [
    # the CPU goal of the MoE issue: an AAM head over a large batch of sample vectors
    Case("T4096-D128-H64-O3-E8-k2-fp32", 4096, 128, 64, 3, 8, 2, torch.float32, ("cpu", "cuda")),
    # scale: transformer-sized experts, GPU only
    Case("T32768-D1024-H2048-O3-E8-k2-bf16", 32768, 1024, 2048, 3, 8, 2, torch.bfloat16, ("cuda",)),
]

PROVIDERS = [
    Provider("cpu-path", "cpu"),
    Provider("expert-loop-cpu", "cpu"),
    Provider("dense-einsum-cpu", "cpu"),
    Provider("triton", "cuda"),
    Provider("expert-loop-cuda", "cuda"),
    Provider("dense-einsum-cuda", "cuda"),
    Provider("compile-cuda", "cuda"),
]


def make_fn(provider: Provider):
    if provider.name in ("cpu-path", "triton"):
        backend = "torch" if provider.name == "cpu-path" else "triton"

        def fn(*args, **kw):
            with use_backend(backend):
                return moe_mlp(*args, **kw)

        return fn
    if provider.name.startswith("expert-loop"):
        return moe_mlp_expert_loop
    if provider.name.startswith("dense-einsum"):
        return moe_mlp_reference
    return torch.compile(moe_mlp_reference)


def make_inputs(case: Case, device: str):
    g = torch.Generator().manual_seed(0)
    E, D, H, O = case.E, case.D, case.H, case.O
    tensors = [
        torch.randn(case.T, D, generator=g),
        torch.randn(case.T, E, generator=g),
        torch.randn(E, D, H, generator=g) / D**0.5,
        torch.randn(E, H, generator=g) * 0.1,
        torch.randn(E, H, O, generator=g) / H**0.5,
        torch.randn(E, O, generator=g) * 0.1,
    ]
    dtypes = [case.dtype, torch.float32, case.dtype, case.dtype, case.dtype, case.dtype]
    return [t.to(device=device, dtype=dt).requires_grad_(True) for t, dt in zip(tensors, dtypes)]


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.name)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_moe(benchmark, case: Case, provider: Provider):
    if provider.device not in case.devices:
        pytest.skip(f"{case.name} is not benchmarked on {provider.device}")
    if provider.needs_cuda and not HAS_CUDA:
        pytest.skip("GPU provider skipped: no CUDA device")
    inputs = make_inputs(case, provider.device)
    gy = torch.randn(case.T, case.O, generator=torch.Generator().manual_seed(1)).to(provider.device, case.dtype)
    fn = make_fn(provider)

    def step():
        y, _, _ = fn(*inputs, top_k=case.k)
        grads = torch.autograd.grad(y, inputs, grad_outputs=gy)
        sync(provider.device)
        return grads

    step()  # warm-up: compilation and autotuning are not timed
    benchmark(step)
    record(
        benchmark,
        op="moe_mlp",
        provider=provider,
        case=case.name,
        flops=3 * 2 * case.T * case.k * (case.D * case.H + case.H * case.O),
        shape=[case.T, case.D, case.H, case.O, case.E, case.k],
        dtype=str(case.dtype).removeprefix("torch."),
    )
