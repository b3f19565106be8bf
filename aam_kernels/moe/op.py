"""Public ``moe_mlp`` op: argument checks, backend dispatch, torch.library registration and autograd.

Forward and backward are two custom ops (``aam_kernels::moe_mlp_fwd`` / ``moe_mlp_bwd``) with fake
implementations, so ``torch.compile(fullgraph=True)`` traces through without graph breaks; in eager
mode the same functions run through a plain ``torch.autograd.Function`` (less dispatcher overhead).
The backend is resolved in Python (``backend.resolve``) and passed down as a string; the Triton
module is imported only when a Triton backend runs, so ``aam_kernels`` imports without Triton.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from aam_kernels.backend import resolve
from aam_kernels.moe import cpu
from aam_kernels.moe.launch import MoELaunchConfig, launch_config
from aam_kernels.moe.reference import ACTIVATIONS
from aam_kernels.moe.state import MoEInputs, MoESaved


class MoEOutput(NamedTuple):
    y: Tensor  # [T, O], x's dtype
    probs: Tensor  # [T, E] fp32 softmax of the router logits (for the balance loss)
    tokens_per_expert: Tensor  # [E] int64, (token, slot) pairs routed to each expert


@torch.compiler.assume_constant_result
def _backend_for(device: torch.device) -> str:
    """``backend.resolve`` for a tensor on ``device``. Under torch.compile it is evaluated once while
    tracing (Dynamo cannot trace the ContextVar that ``use_backend`` sets) and baked into the graph."""
    return resolve(torch.empty(0, device=device))


def _forward(backend: str, launch: MoELaunchConfig | None, inputs: MoEInputs, top_k, activation, renormalize):
    """(y, counts, MoESaved) from the backend's implementation; the Triton modules are imported only
    when a Triton backend runs."""
    if backend == "torch":
        return cpu.forward(inputs, top_k, activation, renormalize)
    from aam_kernels.moe import triton as moe_triton

    return moe_triton.forward(inputs, top_k, activation, renormalize, backend, launch)


def _backward_impl(backend: str, launch: MoELaunchConfig | None, gy, gprobs, inputs: MoEInputs, saved: MoESaved, top_k, activation, renormalize):
    """(gx, g_logits, gw1, gb1, gw2, gb2); gw1 = gb1 = None for Linear experts."""
    if backend == "torch":
        return cpu.backward(gy, gprobs, inputs, saved, top_k, activation, renormalize)
    from aam_kernels.moe import triton_backward

    return triton_backward.backward(gy, gprobs, inputs, saved, top_k, activation, renormalize, backend, launch)


def _route_numel(backend: str, T: int, k: int, E: int, dtype: torch.dtype) -> int:
    if backend == "torch":
        return T * k
    from aam_kernels.moe import triton as moe_triton

    return moe_triton.route_numel(T, k, E, launch_config(backend, dtype).bm)


@torch.library.custom_op("aam_kernels::moe_mlp_fwd", mutates_args=())
def _moe_fwd(
    x: Tensor,
    router_logits: Tensor,
    w1: Optional[Tensor],
    b1: Optional[Tensor],
    w2: Tensor,
    b2: Tensor,
    top_k: int,
    activation: str,
    renormalize: bool,
    backend: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(y, tokens_per_expert, *MoESaved): the saved tensors one by one, probs first. xp, a, h are the
    CPU path's padded [E, cap, .] batches (cap depends on the routing: a dynamic size under
    torch.compile); the Triton path recomputes them and returns cap = 0."""
    inputs = MoEInputs(x, router_logits, w1, b1, w2, b2)
    y, counts, saved = _forward(backend, None, inputs, top_k, activation, renormalize)
    return (y, counts, *saved)


@_moe_fwd.register_fake
def _moe_fwd_fake(x, router_logits, w1, b1, w2, b2, top_k, activation, renormalize, backend):
    T, E = router_logits.shape
    O = w2.shape[2]
    f32, dev = torch.float32, x.device
    acc = torch.float64 if x.dtype == torch.float64 else f32
    cap = torch.library.get_ctx().new_dynamic_size() if backend == "torch" else 0
    H = w1.shape[2] if w1 is not None else 0
    saved = MoESaved(
        probs=x.new_empty(T, E, dtype=f32),
        topi=x.new_empty(T, top_k, dtype=torch.int64),
        gates=x.new_empty(T, top_k, dtype=f32),
        o_tk=x.new_empty(T, top_k, O, dtype=acc),
        route=torch.empty(_route_numel(backend, T, top_k, E, x.dtype), dtype=torch.int32, device=dev),
        xp=x.new_empty(E, cap, x.shape[1], dtype=acc),
        a=x.new_empty(E, cap, H, dtype=acc),
        h=x.new_empty(E, cap, H, dtype=acc),
    )
    return (x.new_empty(T, O), x.new_empty(E, dtype=torch.int64), *saved)


@torch.library.custom_op("aam_kernels::moe_mlp_bwd", mutates_args=())
def _moe_bwd(
    gy: Tensor,
    gprobs: Optional[Tensor],
    x: Tensor,
    router_logits: Tensor,
    w1: Optional[Tensor],
    b1: Optional[Tensor],
    w2: Tensor,
    b2: Tensor,
    probs: Tensor,
    topi: Tensor,
    gates: Tensor,
    o_tk: Tensor,
    route: Tensor,
    xp: Tensor,
    a: Tensor,
    h: Tensor,
    top_k: int,
    activation: str,
    renormalize: bool,
    backend: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(gx, g_logits, gw1, gb1, gw2, gb2) from MoEInputs and MoESaved passed field by field; gw1 and
    gb1 are empty for Linear experts (custom ops return tensors)."""
    inputs = MoEInputs(x, router_logits, w1, b1, w2, b2)
    saved = MoESaved(probs, topi, gates, o_tk, route, xp, a, h)
    grads = _backward_impl(backend, None, gy, gprobs, inputs, saved, top_k, activation, renormalize)
    return tuple(g if g is not None else x.new_empty(0) for g in grads)


@_moe_bwd.register_fake
def _moe_bwd_fake(gy, gprobs, x, router_logits, w1, b1, w2, b2, *rest):
    return (
        torch.empty_like(x),
        torch.empty_like(router_logits),
        torch.empty_like(w1) if w1 is not None else x.new_empty(0),
        torch.empty_like(b1) if b1 is not None else x.new_empty(0),
        torch.empty_like(w2),
        torch.empty_like(b2),
    )


def _save(ctx, inputs: MoEInputs, saved: MoESaved, top_k, activation, renormalize, backend, launch) -> None:
    ctx.save_for_backward(*inputs, *saved)
    ctx.args = (top_k, activation, renormalize, backend, launch)


def _setup_context(ctx, inputs, output):
    *tensors, top_k, activation, renormalize, backend = inputs
    _save(ctx, MoEInputs(*tensors), MoESaved(*output[2:]), top_k, activation, renormalize, backend, None)


def _backward(ctx, gy, g_counts, gprobs, *unused, traced: bool = True):
    """Gradients of the registered op's inputs, from the gradients of its outputs (y, counts, probs,
    then the other saved tensors, which get none). ``traced``: called from the registered op's
    autograd, which torch.compile traces with fake tensors, so the backward must be the
    ``moe_mlp_bwd`` op too (``torch.compiler.is_compiling()`` is False while AOTAutograd traces a
    backward on some PyTorch versions). The eager Function calls the implementation directly."""
    tensors = ctx.saved_tensors
    inputs, saved = MoEInputs(*tensors[:6]), MoESaved(*tensors[6:])
    top_k, activation, renormalize, backend, launch = ctx.args
    x = inputs.x
    if gy is None:
        gy = torch.zeros(x.shape[0], inputs.w2.shape[2], dtype=x.dtype, device=x.device)
    gy = gy.contiguous()
    if traced:
        gx, g_logits, gw1, gb1, gw2, gb2 = _moe_bwd(gy, gprobs, *inputs, *saved, top_k, activation, renormalize, backend)
    else:
        gx, g_logits, gw1, gb1, gw2, gb2 = _backward_impl(
            backend, launch, gy, gprobs, inputs, saved, top_k, activation, renormalize
        )
    if inputs.w1 is None:
        gw1 = gb1 = None
    return gx, g_logits, gw1, gb1, gw2, gb2, None, None, None, None


_moe_fwd.register_autograd(_backward, setup_context=_setup_context)


class _EagerMoE(torch.autograd.Function):
    """The same forward/backward without the torch.library dispatcher, whose Python overhead is a
    sizeable part of the CPU path's time. Used outside torch.compile; under compile the registered
    ops are traced instead."""

    @staticmethod
    def forward(ctx, x, router_logits, w1, b1, w2, b2, top_k, activation, renormalize, backend, launch):
        inputs = MoEInputs(x, router_logits, w1, b1, w2, b2)
        y, counts, saved = _forward(backend, launch, inputs, top_k, activation, renormalize)
        _save(ctx, inputs, saved, top_k, activation, renormalize, backend, launch)
        ctx.mark_non_differentiable(counts, *saved[1:])
        # Unused outputs get None, not materialized zeros: zero-filling the saved [E, cap, D] batches
        # would cost a pass over memory per call for nothing.
        ctx.set_materialize_grads(False)
        return (y, counts, *saved)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads):
        return *_backward(ctx, *grads, traced=False), None


def _check_tensor(name: str, t: object, ndim: int, device: torch.device | None) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {t.dtype}")
    if t.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(t.shape)}")
    if device is not None and t.device != device:
        raise ValueError(f"{name} is on {t.device} but x is on {device}; all inputs must share one device")
    return t


def _check_shape(name: str, t: Tensor, expected: tuple, meaning: str) -> None:
    if tuple(t.shape) != expected:
        raise ValueError(f"{name} must have shape {meaning} = {expected}, got {tuple(t.shape)}")


def _check_args(x, router_logits, w1, b1, w2, b2, top_k, activation, renormalize) -> None:
    _check_tensor("x", x, 2, None)
    dev = x.device
    _check_tensor("router_logits", router_logits, 2, dev)
    T, D = x.shape
    if router_logits.shape[0] != T:
        raise ValueError(f"router_logits must have shape [T, E] with T = {T} (rows of x), got {tuple(router_logits.shape)}")
    E = router_logits.shape[1]
    if E < 1:
        raise ValueError(f"router_logits must have at least one expert column, got shape {tuple(router_logits.shape)}")
    if isinstance(top_k, bool) or not isinstance(top_k, int):
        raise TypeError(f"top_k must be an int, got {type(top_k).__name__}")
    if not 1 <= top_k <= E:
        raise ValueError(f"top_k must be in [1, E] = [1, {E}], got {top_k}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}")
    if not isinstance(renormalize, bool):
        raise TypeError(f"renormalize must be a bool, got {type(renormalize).__name__}")
    if (w1 is None) != (b1 is None):
        raise ValueError("w1 and b1 must both be tensors (MLP experts) or both None (Linear experts)")
    _check_tensor("w2", w2, 3, dev)
    _check_tensor("b2", b2, 2, dev)
    if w1 is not None:
        _check_tensor("w1", w1, 3, dev)
        _check_tensor("b1", b1, 2, dev)
        H = w1.shape[2]
        _check_shape("w1", w1, (E, D, w1.shape[2]), "[E, D, H]")
        _check_shape("b1", b1, (E, H), "[E, H]")
        _check_shape("w2", w2, (E, H, w2.shape[2]), "[E, H, O]")
    else:
        _check_shape("w2", w2, (E, D, w2.shape[2]), "[E, D, O] (Linear experts)")
    _check_shape("b2", b2, (E, w2.shape[2]), "[E, O]")
    for name, t in (("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2)):
        if t is not None and t.dtype != x.dtype:
            raise TypeError(f"{name} must have x's dtype {x.dtype}, got {t.dtype}")


def moe_mlp(
    x: Tensor,
    router_logits: Tensor,
    w1: Optional[Tensor],
    b1: Optional[Tensor],
    w2: Tensor,
    b2: Tensor,
    *,
    top_k: int,
    activation: str = "gelu",
    renormalize: bool = True,
) -> MoEOutput:
    """Top-k mixture of expert MLPs: y[t] = sum_j g[t, j] * expert_{i[t, j]}(x[t]).

    p = softmax(router_logits) (fp32); (v, i) = top-k of p, ties to the lowest expert index;
    g = v / sum(v) if ``renormalize`` else v; expert_e(x) = act(x @ w1[e] + b1[e]) @ w2[e] + b2[e],
    or x @ w2[e] + b2[e] when ``w1 = b1 = None``. ``activation``: "gelu" (exact erf), "relu", "silu".

    Shapes: x [T, D], router_logits [T, E], w1 [E, D, H], b1 [E, H], w2 [E, H, O] ([E, D, O] for
    Linear experts), b2 [E, O]. x and the weights share one floating dtype; the logits may differ.
    Differentiable in x, router_logits (through g and through ``probs``), w1, b1, w2, b2.
    Runs the Triton kernels on CUDA tensors, the pure-PyTorch path on CPU (see ``use_backend``).
    """
    return moe_mlp_launched(
        None, x, router_logits, w1, b1, w2, b2, top_k=top_k, activation=activation, renormalize=renormalize
    )


def moe_mlp_launched(
    launch: MoELaunchConfig | None,
    x: Tensor,
    router_logits: Tensor,
    w1: Optional[Tensor],
    b1: Optional[Tensor],
    w2: Tensor,
    b2: Tensor,
    *,
    top_k: int,
    activation: str = "gelu",
    renormalize: bool = True,
) -> MoEOutput:
    """``moe_mlp`` with the Triton kernels' launch configuration given (tests and sweeps; None: chosen
    by ``launch.launch_config``). Under torch.compile the registered ops always use the chosen one."""
    _check_args(x, router_logits, w1, b1, w2, b2, top_k, activation, renormalize)
    backend = _backend_for(x.device)
    if backend != "torch" and x.dtype == torch.float64:
        raise TypeError("x must be float32, float16 or bfloat16 for the Triton kernels, got torch.float64 (use the torch backend)")
    if backend != "torch" and x.shape[0] * top_k >= 2**31:
        raise ValueError(f"T * top_k must be below 2**31 for the Triton kernels (int32 pair ids), got {x.shape[0] * top_k}")
    args = (x, router_logits, w1, b1, w2, b2, top_k, activation, renormalize, backend)
    if torch.compiler.is_compiling():  # the registered op takes tensors and primitives: no launch config
        y, counts, probs, *_ = _moe_fwd(*args)
    else:
        y, counts, probs, *_ = _EagerMoE.apply(*args, launch)
    return MoEOutput(y, probs, counts)
