"""cross_entropy: fused op (CPU path / Triton) vs eager autograd of torch.nn.functional.cross_entropy.

Cases are [N, C] fp32 logits of a classifier head with few classes against [N] int64 class indices,
mean reduction, timed forward plus backward (the fused op computes the gradient during its forward, so
only fwd+bwd compares like with like). Bytes counted are the least any implementation must move:
read the logits and the targets, write d logits (2 N C logits elements + 8 N bytes).
Run: ``pytest bench/test_cross_entropy.py --benchmark-only``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from aam_kernels import cross_entropy, use_backend
from bench.common import Provider, dtype_name, params, randn, run

BOTH = ("cpu", "cuda")


@dataclass(frozen=True)
class Case:
    name: str
    n: int
    c: int
    dtype: torch.dtype
    devices: tuple[str, ...]  # where this size is worth running


# the CPU goal (CPU path >= 3x eager, fwd+bwd), also on the GPU: 1M rows, 2 to 8 classes; on the GPU each
# call moves at most 72 MB, so the three cases take a few seconds there
CASES = [Case(f"ce-1Mx{c}-fp32", 1_000_000, c, torch.float32, BOTH) for c in (2, 4, 8)]

PROVIDERS = [
    Provider("cpu-path", "cpu"),
    Provider("eager-cpu", "cpu", baseline="eager"),
    Provider("triton", "cuda"),
    Provider("eager-cuda", "cuda", baseline="eager"),
]


def loss_fn(provider: Provider):
    if provider.name in ("cpu-path", "triton"):
        backend = "torch" if provider.name == "cpu-path" else "triton"

        def fused(logits, target):
            with use_backend(backend):
                return cross_entropy(logits, target)

        return fused
    return F.cross_entropy


@pytest.mark.parametrize("case,provider,mode", params(CASES, PROVIDERS, modes=("fwd+bwd",)))
def test_cross_entropy(benchmark, case: Case, provider: Provider, mode: str):
    dev = provider.device
    logits = randn((case.n, case.c), case.dtype, dev, seed=0, scale=2.0).requires_grad_(True)
    gen = torch.Generator(device=dev).manual_seed(1)
    target = torch.randint(0, case.c, (case.n,), generator=gen, device=dev)
    fn = loss_fn(provider)
    run(
        benchmark,
        op="cross_entropy",
        case=case.name,
        provider=provider,
        mode=mode,
        forward=lambda: fn(logits, target),
        wrt=[logits],
        bytes_moved=2 * case.n * case.c * logits.element_size() + 8 * case.n,
        size=case.n * case.c,
        size_label="elements N*C",
        family=f"C={case.c} {dtype_name(case.dtype)}",
        shape=[case.n, case.c],
        dtype=dtype_name(case.dtype),
    )
