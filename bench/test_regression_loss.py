"""regression_loss: fused op (CPU path / Triton) vs eager autograd of the reference vs torch.compile of it.

Cases are [N, K] predictions against [N, K] targets, with the loss parameters as [K] tensors on the
device, as ``aam.training.losses.RegressionLoss`` passes its buffers. Modes: see bench/common.py; the
fused op computes the gradient during its forward, so its ``fwd`` includes that work and its ``bwd``
only scales the saved gradient.
Bytes counted are the least any implementation must move: fwd reads pred and target (2 N K elements),
bwd writes d pred from one [N, K] tensor (2 N K), fwd+bwd reads pred and target and writes d pred (3 N K).
Run: ``pytest bench/test_regression_loss.py --benchmark-only``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pytest
import torch

from aam_kernels import regression_loss, use_backend
from aam_kernels.regression_loss.reference import regression_loss_reference
from bench.common import Provider, dtype_name, params, randn, run

BOTH, GPU = ("cpu", "cuda"), ("cuda",)
SCALE_ELEMENTS = 1_000_000  # N * K from which a case is a scale case (its own torch.compile graph)
ELEMENTS_MOVED = {"fwd": 2, "bwd": 2, "fwd+bwd": 3}  # per [N, K] element, see the module docstring


@dataclass(frozen=True)
class Case:
    name: str
    n: int
    k: int
    dtype: torch.dtype
    loss: str  # "pinball" (quantiles 0.1, 0.5, 0.9 cycling over the columns) or "mse"
    devices: tuple[str, ...]  # where this size is worth running


def _aam(batch: int, k: int) -> Case:
    """A training batch through the default head widths: K = 1 (one target, point output, MSE),
    3 (one target x 3 quantiles) or 6 (two targets x 3 quantiles)."""
    return Case(f"aam-B{batch}-K{k}-fp32", batch, k, torch.float32, "mse" if k == 1 else "pinball", BOTH)


# Work per case, which sizes the GPU suite to gpu_check.sh's step limit: 8 benchmarks of at least 3 rounds
# (--benchmark-max-time=0.05), each call memory-bound (the largest, eager fp32 at 64M elements, is ~20
# passes of 256 MB); three torch.compile graphs (fp32 K=1, fp32 K>1, bf16) are built once.
CASES = [
    *[_aam(batch, k) for k in (1, 3, 6) for batch in (8, 64, 256)],
    # the CPU goal (CPU path >= 3x eager, fwd+bwd; docs/performance.md), also on the GPU
    Case("pinball-1Mx3-fp32", 1_000_000, 3, torch.float32, "pinball", BOTH),
    # the GPU goal: fp32, N*K = 16M
    Case("pinball-16Mx1-fp32", 16_777_216, 1, torch.float32, "pinball", GPU),
    # scale, GPU only: N*K = 16M and 64M, fp32 and bf16
    Case("pinball-5.6Mx3-fp32", 5_592_405, 3, torch.float32, "pinball", GPU),
    Case("pinball-22Mx3-fp32", 22_369_621, 3, torch.float32, "pinball", GPU),
    Case("pinball-5.6Mx3-bf16", 5_592_405, 3, torch.bfloat16, "pinball", GPU),
    Case("pinball-22Mx3-bf16", 22_369_621, 3, torch.bfloat16, "pinball", GPU),
]

PROVIDERS = [
    Provider("cpu-path", "cpu"),
    Provider("eager-cpu", "cpu", baseline="eager"),
    Provider("compile-cpu", "cpu", baseline="compile", retains_graph=False),
    Provider("triton", "cuda"),
    Provider("eager-cuda", "cuda", baseline="eager"),
    Provider("compile-cuda", "cuda", baseline="compile", retains_graph=False),
]


def column_params(case: Case, device: str) -> dict[str, torch.Tensor]:
    """under, over, delta, power as fp32 [K] tensors on ``device``."""
    if case.loss == "mse":
        under = over = [1.0] * case.k
        power = [2.0] * case.k
    else:
        under = [(0.1, 0.5, 0.9)[i % 3] for i in range(case.k)]
        over = [1.0 - tau for tau in under]
        power = [1.0] * case.k
    values = dict(under=under, over=over, delta=[0.0] * case.k, power=power)
    return {name: torch.tensor(v, dtype=torch.float32, device=device) for name, v in values.items()}


def _reference(pred, target, under, over, delta, power):
    return regression_loss_reference(pred, target, under=under, over=over, delta=delta, power=power)


def _reference_aam_sizes(*args):
    return _reference(*args)


def _reference_scale_sizes(*args):
    return _reference(*args)


@functools.lru_cache(maxsize=None)
def _compiled(scale: bool):
    """torch.compile of the reference, dynamic shapes: one graph per device and dtype (and K = 1,
    which Dynamo specializes) serves every case of a size class, as a training loop with varying
    batch sizes gets after its first recompile (static graphs per case would exceed the GPU check's
    time and Dynamo's recompile limit). Two size classes, two functions (Dynamo caches per function):
    Inductor picks its reduction configs from the sizes of the first call, and a graph first
    compiled for 8 rows reduced 16M rows far slower than eager."""
    return torch.compile(_reference_scale_sizes if scale else _reference_aam_sizes, dynamic=True)


def loss_fn(provider: Provider, case: Case):
    if provider.name in ("cpu-path", "triton"):
        backend = "torch" if provider.name == "cpu-path" else "triton"

        def fused(*args):
            pred, target, under, over, delta, power = args
            with use_backend(backend):
                return regression_loss(pred, target, under=under, over=over, delta=delta, power=power)

        return fused
    if provider.name.startswith("eager"):
        return _reference
    return _compiled(case.n * case.k >= SCALE_ELEMENTS)


@pytest.mark.parametrize("case,provider,mode", params(CASES, PROVIDERS))
def test_regression_loss(benchmark, case: Case, provider: Provider, mode: str):
    dev = provider.device
    pred = randn((case.n, case.k), case.dtype, dev, seed=0).requires_grad_(True)
    target = randn((case.n, case.k), case.dtype, dev, seed=1)
    p = column_params(case, dev)
    fn = loss_fn(provider, case)
    run(
        benchmark,
        op="regression_loss",
        case=case.name,
        provider=provider,
        mode=mode,
        forward=lambda: fn(pred, target, p["under"], p["over"], p["delta"], p["power"]),
        wrt=[pred],
        bytes_moved=ELEMENTS_MOVED[mode] * case.n * case.k * pred.element_size(),
        size=case.n * case.k,
        size_label="elements N*K",
        family=f"{case.loss} K={case.k} {dtype_name(case.dtype)}",
        shape=[case.n, case.k],
        dtype=dtype_name(case.dtype),
    )
