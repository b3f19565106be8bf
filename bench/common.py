"""What every benchmark shares: device synchronization, the device's name, and per-run metadata.

Each timed call ends with ``sync(device)`` so GPU work is inside the measurement. Metadata goes into
pytest-benchmark's ``extra_info`` (op, provider, shape, bytes or flops) so ``bench.report`` can turn
times into GB/s or TFLOP/s without knowing each op.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

import torch

HAS_CUDA = torch.cuda.is_available()


def sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.machine()} CPU, {torch.get_num_threads()} thread(s)"


@dataclass(frozen=True)
class Provider:
    """One way of computing an op. ``device`` is where it runs; ``needs_cuda`` ones skip without a GPU."""

    name: str
    device: str

    @property
    def needs_cuda(self) -> bool:
        return self.device == "cuda"


def record(benchmark, *, op: str, provider: Provider, case: str, bytes_moved: int = 0, flops: int = 0, **extra) -> None:
    benchmark.group = f"{op}:{case}"
    benchmark.extra_info.update(
        op=op,
        provider=provider.name,
        case=case,
        device=device_name(provider.device),
        bytes=bytes_moved,
        flops=flops,
        **extra,
    )
