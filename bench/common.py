"""The one benchmark runner, and what every benchmark shares.

A benchmark file declares data: its cases (shapes, dtype, devices), its providers (``Provider``) and the
modes to time; ``params`` expands them into pytest parameters, and each test only builds the forward
call and hands it to ``run``, which does the rest the same way for every op:

1. ``timed_call``: the call to time for the mode. ``fwd`` = the forward as in training (inputs that
   need gradients, autograd graph built); ``bwd`` = ``torch.autograd.grad(..., retain_graph=True)`` on a
   forward run once beforehand, outside the timing; ``fwd+bwd`` = both. Every call ends with ``sync``.
2. ``measure``: warm-up (compilation and autotuning are never timed), the peak allocated GPU memory
   around one untimed call, then pytest-benchmark's timing. Calls slower than ``SLOW_CALL_S`` get
   ``SLOW_ROUNDS`` rounds so the CPU suite stays within minutes.
3. ``record``: op, case, mode, provider, device, bytes or flops, p20/p80 and peak memory into
   ``extra_info``, from which ``bench.report`` makes its tables and plots.

Imports torch and pytest only (never ``aam``), so the kernel benchmarks run where only PyTorch and Triton are.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
MODES = ("fwd", "bwd", "fwd+bwd")
SLOW_CALL_S = 0.25  # a call at least this slow is timed over SLOW_ROUNDS rounds, not pytest-benchmark's max-time
SLOW_ROUNDS = 3

# Skip reasons; bench/conftest.py counts the GPU ones in the terminal summary.
GPU_SKIP = "GPU provider skipped: no CUDA device"
NO_RETAIN_SKIP = (
    "backward alone is not timed for this provider: a torch.compile graph donates its saved buffers to "
    "the backward, so it cannot be re-run with retain_graph (timed in fwd+bwd instead)"
)


def sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{_cpu_model()} ({platform.machine()}), {torch.get_num_threads()} thread(s)"


@dataclass(frozen=True)
class Provider:
    """One way of computing an op.

    ``device``: where it runs ("cpu" or "cuda"; cuda ones skip without a GPU).
    ``baseline``: None for a candidate, else the name of the column in which the report gives every
    provider's speed-up over this one ("eager", "compile", "loop", ...).
    ``retains_graph``: False when its backward cannot be re-run on a kept graph (no ``bwd`` mode).
    """

    name: str
    device: str
    baseline: str | None = None
    retains_graph: bool = True

    @property
    def needs_cuda(self) -> bool:
        return self.device == "cuda"


def params(cases: Iterable, providers: Sequence[Provider], modes: Sequence[str] = MODES) -> list:
    """pytest parameters (case, provider, mode) with ids ``<case>-<provider>-<mode>``.

    Only the providers whose device is in ``case.devices`` are crossed with a case; the GPU ones carry
    the ``cuda`` mark (``-m cuda`` selects them) and skip without a GPU.
    """
    out = []
    for case in cases:
        for provider in providers:
            if provider.device not in case.devices:
                continue
            for mode in modes:
                marks = [pytest.mark.cuda] if provider.needs_cuda else []
                if provider.needs_cuda and not HAS_CUDA:
                    marks.append(pytest.mark.skip(reason=GPU_SKIP))
                elif mode == "bwd" and not provider.retains_graph:
                    marks.append(pytest.mark.skip(reason=NO_RETAIN_SKIP))
                out.append(pytest.param(case, provider, mode, id=f"{case.name}-{provider.name}-{mode}", marks=marks))
    return out


def timed_call(
    mode: str,
    forward: Callable[[], torch.Tensor],
    wrt: Sequence[torch.Tensor],
    grad_output: torch.Tensor | None,
    device: str,
) -> Callable[[], object]:
    """The call to time for ``mode``; ``forward()`` returns the output to differentiate w.r.t. ``wrt``."""
    if mode == "fwd":

        def call():
            out = forward()
            sync(device)
            return out

    elif mode == "fwd+bwd":

        def call():
            grads = torch.autograd.grad(forward(), wrt, grad_output)
            sync(device)
            return grads

    elif mode == "bwd":
        out = forward()  # once, untimed; the graph is kept alive by retain_graph

        def call():
            grads = torch.autograd.grad(out, wrt, grad_output, retain_graph=True)
            sync(device)
            return grads

    else:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    return call


def peak_memory(call: Callable[[], object], device: str) -> int | None:
    """Bytes of GPU memory allocated at the peak of one call (inputs and anything already held
    included, as torch.cuda.max_memory_allocated counts them); None on CPU."""
    if torch.device(device).type != "cuda":
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    call()
    return torch.cuda.max_memory_allocated()


def measure(benchmark, call: Callable[[], object], device: str, group: str, rounds: int | None = None) -> int | None:
    """Warm up, take the peak memory, then time ``call``; returns the peak (None on CPU).

    ``group``: pytest-benchmark's group (its tables compare within one), e.g. ``op:case:mode``.
    ``rounds``: fixed rounds after one warm-up call (for calls known to take seconds); by default a
    second warm-up call decides between pytest-benchmark's calibrated timing and SLOW_ROUNDS rounds.
    """
    benchmark.group = group  # read when the timing starts, so set first
    call()  # compilation, autotuning, allocator growth: never timed
    if rounds is None:
        started = time.perf_counter()
        call()
        rounds = SLOW_ROUNDS if time.perf_counter() - started >= SLOW_CALL_S else None
    peak = peak_memory(call, device)
    if rounds is None:
        benchmark(call)
    else:
        benchmark.pedantic(call, rounds=rounds, iterations=1)
    return peak


def _percentile(data: Sequence[float], q: float) -> float:
    ordered = sorted(data)
    pos = q * (len(ordered) - 1)
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def record(
    benchmark,
    *,
    op: str,
    provider: Provider,
    case: str,
    mode: str = "",
    bytes_moved: int = 0,
    flops: int = 0,
    peak_bytes: int | None = None,
    **extra,
) -> None:
    """Metadata for ``bench.report``. ``extra`` may hold ``size``, ``size_label`` and ``family`` (x axis,
    its label, and line of the plots), ``items`` and ``unit`` (a throughput: <unit>_per_second is added),
    ``shape``, ``dtype``."""
    stats = getattr(benchmark.stats, "stats", None)  # None when benchmarking is disabled
    data = list(getattr(stats, "data", None) or [])
    if stats is not None and extra.get("items"):
        extra[f"{extra.get('unit') or 'items'}_per_second"] = extra["items"] / stats.median
    benchmark.extra_info.update(
        op=op,
        provider=provider.name,
        baseline=provider.baseline,
        case=case,
        mode=mode,
        device=device_name(provider.device),
        device_type=torch.device(provider.device).type,
        bytes=bytes_moved,
        flops=flops,
        peak_memory=peak_bytes,
        p20=_percentile(data, 0.2) if data else None,
        p80=_percentile(data, 0.8) if data else None,
        **extra,
    )


def run(
    benchmark,
    *,
    op: str,
    case: str,
    provider: Provider,
    mode: str,
    forward: Callable[[], torch.Tensor],
    wrt: Sequence[torch.Tensor],
    grad_output: torch.Tensor | None = None,
    **metadata,
) -> None:
    """Time ``forward`` (and/or its backward, per ``mode``) for one (case, provider, mode) and record it.
    ``metadata`` goes to ``record`` (bytes_moved, flops, size, family, shape, dtype, ...)."""
    call = timed_call(mode, forward, wrt, grad_output, provider.device)
    peak = measure(benchmark, call, provider.device, group=f"{op}:{case}:{mode}")
    record(benchmark, op=op, provider=provider, case=case, mode=mode, peak_bytes=peak, **metadata)


def dtype_name(dtype: torch.dtype) -> str:
    """Short name for ids and tables: fp32, bf16, fp16, fp64."""
    name = str(dtype).removeprefix("torch.")
    return {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "float64": "fp64"}.get(name, name)


def randn(shape: Sequence[int], dtype: torch.dtype, device: str, seed: int, scale: float = 1.0) -> torch.Tensor:
    """Seeded standard normal numbers made on ``device`` itself (a 64M-element input made on the host
    and copied would cost seconds per benchmark), multiplied by ``scale`` and cast to ``dtype``."""
    gen = torch.Generator(device=device).manual_seed(seed)
    return (torch.randn(tuple(shape), generator=gen, device=device) * scale).to(dtype)
