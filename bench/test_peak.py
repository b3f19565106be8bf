"""The device's measured peaks, which the report divides by: copy bandwidth and dense matmul rate.

Measured here rather than taken from a datasheet, so "fraction of peak" is against what this very
machine achieves in the same run.
"""

from __future__ import annotations

import pytest
import torch

from bench.common import HAS_CUDA, Provider, record, sync

DEVICES = [
    pytest.param(Provider("peak-cpu", "cpu"), id="cpu"),
    pytest.param(Provider("peak-cuda", "cuda"), id="cuda", marks=pytest.mark.skipif(not HAS_CUDA, reason="no CUDA")),
]


@pytest.mark.parametrize("provider", DEVICES)
def test_copy_bandwidth(benchmark, provider):
    # 1 GiB on a GPU (well past any cache), 256 MiB on a CPU
    n_bytes = (1 << 30) if provider.needs_cuda else (1 << 28)
    src = torch.empty(n_bytes // 4, dtype=torch.float32, device=provider.device).uniform_()
    dst = torch.empty_like(src)

    def copy():
        dst.copy_(src)
        sync(provider.device)

    copy()
    benchmark(copy)
    record(benchmark, op="peak", provider=provider, case="copy", bytes_moved=2 * n_bytes, peak="bandwidth")


@pytest.mark.parametrize("provider", DEVICES)
def test_matmul_rate(benchmark, provider):
    n, dtype = (8192, torch.bfloat16) if provider.needs_cuda else (1024, torch.float32)
    a = torch.randn(n, n, device=provider.device).to(dtype)
    b = torch.randn(n, n, device=provider.device).to(dtype)

    def matmul():
        torch.mm(a, b)
        sync(provider.device)

    matmul()
    benchmark(matmul)
    record(
        benchmark, op="peak", provider=provider, case=f"matmul-{str(dtype).removeprefix('torch.')}",
        flops=2 * n**3, peak="compute",
    )
