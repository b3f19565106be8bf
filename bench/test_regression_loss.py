"""regression_loss: fused op (CPU path / Triton) vs eager autograd of the reference vs torch.compile.

Every provider computes the loss and d loss / d pred (forward + backward), timed side by side.
Bytes moved = pred read + target read + gradient written.
Run: ``pytest bench/test_regression_loss.py --benchmark-only``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from aam_kernels import regression_loss, use_backend
from aam_kernels.regression_loss.reference import regression_loss_reference
from bench.common import HAS_CUDA, Provider, record, sync


@dataclass(frozen=True)
class Case:
    name: str
    n: int
    k: int
    dtype: torch.dtype
    loss: str  # "pinball" (3 quantiles cycling over columns) or "mse"
    devices: tuple[str, ...]  # where this size is worth running


CASES = [
    # AAM-realistic: batch 64, two targets x 3 quantiles; batch 256, one target MSE
    Case("aam-B64-K6-fp32", 64, 6, torch.float32, "pinball", ("cpu", "cuda")),
    Case("aam-B256-K1-fp32", 256, 1, torch.float32, "mse", ("cpu", "cuda")),
    # the CPU goal of the kernel issue: pinball 1M x 3
    Case("pinball-1Mx3-fp32", 1_000_000, 3, torch.float32, "pinball", ("cpu", "cuda")),
    # scale: the GPU goal (N*K = 16M fp32) and large low-precision inputs
    Case("pinball-16Mx1-fp32", 16_777_216, 1, torch.float32, "pinball", ("cuda",)),
    Case("pinball-4Mx4-fp32", 4_194_304, 4, torch.float32, "pinball", ("cuda",)),
    Case("pinball-21Mx3-bf16", 21_333_334, 3, torch.bfloat16, "pinball", ("cuda",)),
]

PROVIDERS = [
    Provider("cpu-path", "cpu"),
    Provider("eager-cpu", "cpu"),
    Provider("compile-cpu", "cpu"),
    Provider("triton", "cuda"),
    Provider("eager-cuda", "cuda"),
    Provider("compile-cuda", "cuda"),
]


def params(case: Case) -> dict:
    if case.loss == "mse":
        return dict(under=1.0, over=1.0, power=2)
    taus = [(0.1, 0.5, 0.9)[i % 3] for i in range(case.k)]
    return dict(under=taus, over=[1 - t for t in taus])


def make_step(provider: Provider, case: Case):
    kw = params(case)
    if provider.name in ("cpu-path", "triton"):
        backend = "torch" if provider.name == "cpu-path" else "triton"

        def loss_fn(p, t):
            with use_backend(backend):
                return regression_loss(p, t, **kw)

    elif provider.name.startswith("eager"):

        def loss_fn(p, t):
            return regression_loss_reference(p, t, **kw)

    else:
        loss_fn = torch.compile(lambda p, t: regression_loss_reference(p, t, **kw))
    return loss_fn


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.name)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_regression_loss(benchmark, case: Case, provider: Provider):
    if provider.device not in case.devices:
        pytest.skip(f"{case.name} is not benchmarked on {provider.device}")
    if provider.needs_cuda and not HAS_CUDA:
        pytest.skip("GPU provider skipped: no CUDA device")
    gen = torch.Generator().manual_seed(0)
    pred = torch.randn(case.n, case.k, generator=gen).to(provider.device, case.dtype).requires_grad_(True)
    target = torch.randn(case.n, case.k, generator=gen).to(provider.device, case.dtype)
    loss_fn = make_step(provider, case)

    def step():
        loss = loss_fn(pred, target)
        (grad,) = torch.autograd.grad(loss, pred)
        sync(provider.device)
        return grad

    step()  # warm-up: compilation and autotuning are not timed
    benchmark(step)
    elem = pred.element_size()
    record(
        benchmark,
        op="regression_loss",
        provider=provider,
        case=case.name,
        bytes_moved=3 * case.n * case.k * elem,
        shape=[case.n, case.k],
        dtype=str(case.dtype).removeprefix("torch."),
    )
