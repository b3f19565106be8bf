"""The one place that decides how an op runs: Triton compiled, Triton interpreted, or plain torch.

Resolution order for a call on tensor ``x``:
1. the innermost active ``use_backend(name)`` context;
2. the environment variable ``AAM_KERNELS_BACKEND`` (read at call time, never at import);
3. automatic: Triton for CUDA tensors when Triton imports, the torch (CPU) path otherwise.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

BACKENDS = ("torch", "triton", "interpret")
ENV_VAR = "AAM_KERNELS_BACKEND"

_forced: contextvars.ContextVar[str | None] = contextvars.ContextVar("aam_kernels_backend", default=None)
_counters: list["LaunchCounter"] = []


@functools.lru_cache(maxsize=1)
def triton_import_error() -> str | None:
    """None when Triton imports, else the reason it does not (shown to the user)."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception as exc:  # ImportError, or a broken install raising anything
        return f"{type(exc).__name__}: {exc}"
    return None


def _check_name(name: str, source: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"{source} must be one of {', '.join(BACKENDS)}; got {name!r}")
    return name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Force every aam_kernels op inside the block onto one backend.

    ``"torch"``: the pure-PyTorch path (any device). ``"triton"``: compiled Triton kernels (CUDA tensors).
    ``"interpret"``: the same Triton kernels run by Triton's interpreter on CPU tensors (slow; for tests).
    """
    token = _forced.set(_check_name(name, "use_backend(name)"))
    try:
        yield name
    finally:
        _forced.reset(token)


def requested_backend() -> str | None:
    """The backend forced by a context or the environment, or None for automatic choice."""
    forced = _forced.get()
    if forced is not None:
        return forced
    env = os.environ.get(ENV_VAR, "").strip()
    return _check_name(env, ENV_VAR) if env else None


def resolve(x: torch.Tensor) -> str:
    """The backend a call whose main input is ``x`` runs on; raises if a forced one cannot run."""
    name = requested_backend()
    if name is None:
        return "triton" if x.is_cuda and triton_import_error() is None else "torch"
    if name in ("triton", "interpret") and triton_import_error() is not None:
        raise RuntimeError(f"aam_kernels backend {name!r} needs Triton, which does not import ({triton_import_error()})")
    if name == "triton" and not x.is_cuda:
        raise RuntimeError(
            f"aam_kernels backend 'triton' needs CUDA tensors, got a tensor on {x.device}; "
            "use 'interpret' to run the Triton kernels on CPU tensors"
        )
    if name == "interpret" and x.device.type != "cpu":
        raise RuntimeError(f"aam_kernels backend 'interpret' runs on CPU tensors, got a tensor on {x.device}")
    return name


_poison: contextvars.ContextVar[bool] = contextvars.ContextVar("aam_kernels_poison", default=False)


@contextlib.contextmanager
def poison_outputs() -> Iterator[None]:
    """Testing aid: buffers from ``empty`` are filled with NaN (floats) or the minimum integer, so an
    element a kernel forgets to write shows up in the result instead of passing by luck."""
    token = _poison.set(True)
    try:
        yield
    finally:
        _poison.reset(token)


# Grid and block arithmetic on the host in plain Python: Triton's own ``triton.cdiv`` and
# ``triton.next_power_of_2`` are constexpr-function wrappers, costly to call on every launch.
def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def next_pow2(n: int) -> int:
    """Smallest power of 2 >= n (1 for n <= 1)."""
    return 1 << max(n - 1, 0).bit_length()


def empty(shape, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``torch.empty`` for kernel outputs; honours ``poison_outputs``."""
    if not _poison.get():
        return torch.empty(shape, dtype=dtype, device=device)
    fill = float("nan") if dtype.is_floating_point else torch.iinfo(dtype).min
    return torch.full(shape, fill, dtype=dtype, device=device)


# One zeroed int32 ticket per (device, stream) for kernels whose last program to finish (an atomic
# ticket count) does a final step and puts the ticket back to 0: launches on one stream run in order,
# so they never share a ticket at once.
_TICKETS: dict[tuple, torch.Tensor] = {}


def ticket(device: torch.device) -> torch.Tensor:
    stream = torch.cuda.current_stream(device).cuda_stream if device.type == "cuda" else 0
    key = (device, stream)
    found = _TICKETS.get(key)
    if found is None:
        found = _TICKETS[key] = torch.zeros(1, dtype=torch.int32, device=device)
    return found


@dataclass
class LaunchCounter:
    """Counts Triton kernel launches (compiled or interpreted) made while it is active."""

    count: int = 0


@contextlib.contextmanager
def count_launches() -> Iterator[LaunchCounter]:
    """``with count_launches() as c: ...`` then ``c.count`` is the number of Triton launches inside."""
    counter = LaunchCounter()
    _counters.append(counter)
    try:
        yield counter
    finally:
        _counters.remove(counter)


class TritonKernel:
    """A Triton kernel wrapped twice, compiled and interpreted, so both run in one process.

    Triton decides compiled vs interpreted when ``triton.jit`` runs (it reads ``TRITON_INTERPRET``
    then), so switching at run time needs both wrappers of the same Python function.
    """

    def __init__(self, fn: Callable):
        self.fn = fn
        self.__name__ = fn.__name__

    @functools.cached_property
    def compiled(self):
        import triton

        return triton.jit(self.fn)

    @functools.cached_property
    def interpreted(self):
        from triton.runtime.interpreter import InterpretedFunction

        return InterpretedFunction(self.fn)

    def launch(self, backend: str, grid: tuple, *args, **kwargs) -> None:
        assert backend in ("triton", "interpret"), backend
        if backend == "triton":
            self.compiled[grid](*args, **kwargs)
        else:
            with _language_restored(), _jit_calls_interpreted():
                self.interpreted[grid](*args, **kwargs)
        for counter in _counters:
            counter.count += 1


@contextlib.contextmanager
def _jit_calls_interpreted() -> Iterator[None]:
    """Let an interpreted kernel call ``@triton.jit`` library functions (``tl.sum``, ``tl.max``, ...).

    Those were decorated while ``TRITON_INTERPRET`` was unset, so they are compiled-mode
    JITFunctions that refuse calls outside a compiled kernel. For the duration of one interpreted
    launch their ``__call__`` runs the function through the interpreter instead, as Triton does for
    device functions when the whole process is in interpreter mode.
    """
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    original = JITFunction.__call__

    def call_interpreted(jit_fn, *args, **kwargs):
        wrapped = _INTERPRETED_HELPERS.get(jit_fn.fn)
        if wrapped is None:
            wrapped = _INTERPRETED_HELPERS.setdefault(jit_fn.fn, InterpretedFunction(jit_fn.fn))
        return wrapped(*args, **kwargs)

    JITFunction.__call__ = call_interpreted
    try:
        yield
    finally:
        JITFunction.__call__ = original


_INTERPRETED_HELPERS: dict[Callable, object] = {}


@contextlib.contextmanager
def _language_restored() -> Iterator[None]:
    """Undo every change the interpreter makes to ``triton.language`` during one launch.

    To interpret, Triton swaps the builtins of ``triton.language`` (``tl.zeros``, ``tensor.__add__``, ...)
    for interpreter versions. A device-function call (``tl.sum`` inside a kernel) swaps them without
    swapping back, and a compiled kernel built later in the same process then fails with "Unsupported
    function referenced". Snapshotting the namespaces and putting them back is independent of which
    Triton 3.x did the swapping.
    """
    import triton.language as tl

    owners = [tl, tl.core, tl.math, tl.core.tensor, tl.core.dtype]
    owners += [getattr(tl.core, name) for name in ("condition", "tensor_descriptor_base") if hasattr(tl.core, name)]
    saved = [(owner, dict(vars(owner))) for owner in owners]
    try:
        yield
    finally:
        for owner, before in saved:
            now = vars(owner)
            for name in [n for n in now if n not in before]:
                delattr(owner, name)
            for name, value in before.items():
                if now.get(name, _ABSENT) is not value:
                    setattr(owner, name, value)


_ABSENT = object()


def triton_kernel(fn: Callable) -> TritonKernel:
    """Decorator used instead of ``@triton.jit`` for every kernel of this library."""
    return TritonKernel(fn)
