"""`repeatable(device)`: PyTorch's deterministic algorithms for a CPU run.

With several CPU threads the backward of the ASV gather (`asv_vectors[asv_index]`, an accumulating
index_put) adds into shared rows with float atomics, so two runs with the same seed drift apart from
the first epoch. The deterministic variant sorts the indices first; it costs little next to the matmuls
(measured in docs/performance.md). On CUDA it would also need a fixed cuBLAS workspace and slower
kernels throughout, so GPU runs are left as they are (repeatable to rounding only).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def repeatable(device: torch.device) -> Iterator[None]:
    """Deterministic algorithms inside the block on CPU (previous settings restored after); no-op on CUDA."""
    if device.type != "cpu":
        yield
        return
    settings = torch.utils.deterministic
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              settings.fill_uninitialized_memory)
    # warn_only: an op without a deterministic CPU kernel warns instead of stopping the run; filling every
    # new tensor with NaN (a debugging aid) would only cost time.
    torch.use_deterministic_algorithms(True, warn_only=True)
    settings.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        settings.fill_uninitialized_memory = before[2]
