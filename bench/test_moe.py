"""moe_mlp: CPU path / Triton vs the dense all-experts einsum (the reference, eager autograd), torch.compile
of it, and a Python loop over experts.

Gradients are taken w.r.t. x, router_logits and all four weights, against a fixed random d y.
FLOPs counted are the useful ones of a top-k MoE MLP, F = 2 T k (D H + H O) per forward: fwd F, bwd 2F
(d input and d weight), fwd+bwd 3F. The dense einsum does E / k times more work, the reference computes
in fp32 even for bf16 inputs, and the Triton kernels recompute the first layer in backward; none of that
counts.
Run: ``pytest bench/test_moe.py --benchmark-only``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pytest
import torch

from aam_kernels import moe_mlp, use_backend
from aam_kernels.moe.reference import moe_mlp_expert_loop, moe_mlp_reference
from bench.common import Provider, dtype_name, params, randn, run

BOTH, GPU = ("cpu", "cuda"), ("cuda",)
SCALE_TOKENS = 4096  # T from which a case is a scale case (its own torch.compile graph)
FLOP_PASSES = {"fwd": 1, "bwd": 2, "fwd+bwd": 3}  # multiples of the forward's useful flops


@dataclass(frozen=True)
class Case:
    name: str
    T: int  # tokens: one sample vector per token in AAM's MoE head
    D: int
    H: int
    O: int
    E: int
    k: int
    dtype: torch.dtype
    devices: tuple[str, ...]  # where this size is worth running

    @property
    def family(self) -> str:
        return f"D{self.D}-H{self.H}-O{self.O}-E{self.E}-k{self.k} {dtype_name(self.dtype)}"


def _head(T: int, E: int, dtype: torch.dtype, devices: tuple[str, ...]) -> Case:
    """AAM's MoE head over T sample vectors: D = 128 (embedding), H = 64, O = 3 outputs, top-2."""
    return Case(f"T{T}-D128-H64-O3-E{E}-k2-{dtype_name(dtype)}", T, 128, 64, 3, E, 2, dtype, devices)


# Work per case, which sizes the GPU suite to gpu_check.sh's step limit: 11 benchmarks of at least 3 rounds
# (--benchmark-max-time=0.05). The D = 128 cases are a few MFLOP per call, bound by launches and the expert
# loop's host sync per expert; the largest, T = 32768 D = 1024 H = 2048, is where the dense einsum does
# 3 x 2 x 8 x 32768 x 1024 x 2048 = 3.3 TFLOP in fp32 (~13 GB of activations) per call. Two torch.compile
# graphs (fp32, bf16) are built once.
CASES = [
    # AAM-realistic: a training batch of 8 to 256 samples, 4 or 8 experts
    *[_head(T, E, torch.float32, BOTH) for E in (4, 8) for T in (8, 64, 256)],
    # the CPU goal (CPU path >= 2x the expert loop, fwd+bwd; docs/performance.md), also on the GPU
    _head(4096, 8, torch.float32, BOTH),
    # scale, GPU only: up to 64k tokens in bf16, and transformer-sized experts
    *[_head(T, 8, torch.bfloat16, GPU) for T in (4096, 16384, 65536)],
    Case("T32768-D1024-H2048-O3-E8-k2-bf16", 32768, 1024, 2048, 3, 8, 2, torch.bfloat16, GPU),
]

PROVIDERS = [
    Provider("cpu-path", "cpu"),
    Provider("dense-einsum-cpu", "cpu", baseline="eager"),
    Provider("compile-cpu", "cpu", baseline="compile", retains_graph=False),
    Provider("expert-loop-cpu", "cpu", baseline="loop"),
    Provider("triton", "cuda"),
    Provider("dense-einsum-cuda", "cuda", baseline="eager"),
    Provider("compile-cuda", "cuda", baseline="compile", retains_graph=False),
    Provider("expert-loop-cuda", "cuda", baseline="loop"),
]


def _reference_aam_sizes(*args, **kw):
    return moe_mlp_reference(*args, **kw)


def _reference_scale_sizes(*args, **kw):
    return moe_mlp_reference(*args, **kw)


@functools.lru_cache(maxsize=None)
def _compiled(scale: bool):
    # Dynamic shapes, one graph per device and dtype for each size class (see bench/test_regression_loss.py).
    return torch.compile(_reference_scale_sizes if scale else _reference_aam_sizes, dynamic=True)


def moe_fn(provider: Provider, case: Case):
    if provider.name in ("cpu-path", "triton"):
        backend = "torch" if provider.name == "cpu-path" else "triton"

        def fused(*args, **kw):
            with use_backend(backend):
                return moe_mlp(*args, **kw)

        return fused
    if provider.name.startswith("expert-loop"):
        return moe_mlp_expert_loop
    if provider.name.startswith("dense-einsum"):
        return moe_mlp_reference
    return _compiled(case.T >= SCALE_TOKENS)


def make_inputs(case: Case, device: str) -> list[torch.Tensor]:
    """x [T, D], router_logits [T, E] (fp32, as the model computes them), w1 [E, D, H], b1 [E, H],
    w2 [E, H, O], b2 [E, O], scaled so activations stay O(1); all require gradients."""
    T, D, H, O, E = case.T, case.D, case.H, case.O, case.E
    specs = [
        ((T, D), case.dtype, 1.0),
        ((T, E), torch.float32, 1.0),
        ((E, D, H), case.dtype, D**-0.5),
        ((E, H), case.dtype, 0.1),
        ((E, H, O), case.dtype, H**-0.5),
        ((E, O), case.dtype, 0.1),
    ]
    tensors = [randn(shape, dtype, device, seed, scale) for seed, (shape, dtype, scale) in enumerate(specs)]
    return [t.requires_grad_(True) for t in tensors]


@pytest.mark.parametrize("case,provider,mode", params(CASES, PROVIDERS))
def test_moe(benchmark, case: Case, provider: Provider, mode: str):
    inputs = make_inputs(case, provider.device)
    gy = randn((case.T, case.O), case.dtype, provider.device, seed=len(inputs))
    fn = moe_fn(provider, case)
    run(
        benchmark,
        op="moe_mlp",
        case=case.name,
        provider=provider,
        mode=mode,
        forward=lambda: fn(*inputs, top_k=case.k)[0],
        wrt=inputs,
        grad_output=gy,
        flops=FLOP_PASSES[mode] * 2 * case.T * case.k * (case.D * case.H + case.H * case.O),
        size=case.T,
        size_label="tokens T",
        family=case.family,
        shape=[case.T, case.D, case.H, case.O, case.E, case.k],
        dtype=dtype_name(case.dtype),
    )
