"""The device's measured peaks, which the report divides by: copy bandwidth and dense matmul rate.

Measured here rather than taken from a datasheet, so "fraction of peak" is against what this very
machine achieves in the same run. The matmul rate is measured per dtype (the report matches an op's
dtype; fp32 on the GPU is true fp32, TF32 stays off as PyTorch's default leaves it).
"""

from __future__ import annotations

import pytest
import torch

from bench.common import GPU_SKIP, HAS_CUDA, Provider, dtype_name, measure, record, sync

CPU, CUDA = Provider("peak-cpu", "cpu"), Provider("peak-cuda", "cuda")
_GPU_MARKS = [pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason=GPU_SKIP)]
DEVICES = [pytest.param(CPU, id="cpu"), pytest.param(CUDA, id="cuda", marks=_GPU_MARKS)]
MATMULS = [  # (provider, n, dtype): n x n x n, a few ms each
    pytest.param(CPU, 1024, torch.float32, id="cpu-fp32"),
    pytest.param(CUDA, 8192, torch.bfloat16, id="cuda-bf16", marks=_GPU_MARKS),
    pytest.param(CUDA, 4096, torch.float32, id="cuda-fp32", marks=_GPU_MARKS),
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

    measure(benchmark, copy, provider.device, group="peak:copy")
    record(benchmark, op="peak", provider=provider, case="copy", bytes_moved=2 * n_bytes, peak="bandwidth")


@pytest.mark.parametrize("provider,n,dtype", MATMULS)
def test_matmul_rate(benchmark, provider, n, dtype):
    a = torch.randn(n, n, device=provider.device).to(dtype)
    b = torch.randn(n, n, device=provider.device).to(dtype)

    def matmul():
        torch.mm(a, b)
        sync(provider.device)

    tag = dtype_name(dtype)
    measure(benchmark, matmul, provider.device, group=f"peak:matmul-{tag}")
    record(benchmark, op="peak", provider=provider, case=f"matmul-{tag}", flops=2 * n**3, peak="compute", dtype=tag)
