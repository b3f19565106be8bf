"""Triton kernel: per-row loss, d loss / d logits and the reduced loss in ONE launch.

Each program owns BLOCK_N whole rows as one [BLOCK_N, BLOCK_C] tile (BLOCK_C = next_pow2(C)), so a row's
softmax never leaves the program. It writes the (row-weighted, unnormalized) gradient and its partial
sums of the loss and of the mean's weight into a [2, P] buffer. The last program to finish (an atomic
ticket) sums those over P in a fixed order and writes the reduced loss and its gradient scale: bitwise
deterministic (no float atomics), and no reduction left for the host to launch.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from aam_kernels.backend import cdiv, empty, next_pow2, ticket, triton_kernel
from aam_kernels.cross_entropy.launch import MAX_CLASSES, CrossEntropyLaunchConfig, launch_config

REDUCE_CODE = {"none": 0, "sum": 1, "mean": 2}


@triton.jit
def _finish(p_parts, p_stats, p_out, p_ticket, P, REDUCE: tl.constexpr, ACC: tl.constexpr, BP: tl.constexpr):
    """After this program stored its partial sums: the last of the P programs reduces the [2, P]
    partials in a fixed order ([BP] tiles) into stats = [total, den, scale] and, for REDUCE sum (1) or
    mean (2), the loss into p_out. scale = d loss / d total: 1 for sum and none, 1 / den for mean (0
    when den is 0, where the loss is 0 / 0 = NaN as in PyTorch)."""
    # Every thread's stores before the ticket; acq_rel makes them visible to the last program.
    tl.debug_barrier()
    count = tl.atomic_add(p_ticket, 1, sem="acq_rel")
    if count == P - 1:
        b_sum = tl.zeros([BP], dtype=ACC)
        b_den = tl.zeros([BP], dtype=ACC)
        for p0 in range(0, P, BP):
            o_p = p0 + tl.arange(0, BP).to(tl.int64)  # [BP]
            m_p = o_p < P
            b_sum += tl.load(p_parts + o_p, mask=m_p, other=0.0, cache_modifier=".cg")
            b_den += tl.load(p_parts + P + o_p, mask=m_p, other=0.0, cache_modifier=".cg")
        total = tl.sum(b_sum, axis=0)
        den = tl.sum(b_den, axis=0)
        tl.store(p_stats, total)
        tl.store(p_stats + 1, den)
        if REDUCE == 2:
            tl.store(p_out, (total / den).to(p_out.dtype.element_ty))
            tl.store(p_stats + 2, tl.where(den != 0, 1.0 / den, 0.0))
        else:
            if REDUCE == 1:
                tl.store(p_out, total.to(p_out.dtype.element_ty))
            tl.store(p_stats + 2, tl.full([], 1.0, ACC))
        tl.atomic_xchg(p_ticket, 0)


@triton_kernel
def _cross_entropy_fwd_kernel(
    p_logits,  # [N, C] any strides, fp16/bf16/fp32/fp64
    p_target,  # int64 [N] any stride: a class index in [0, C) or ignore_index
    p_weight,  # [C] any stride, class weights (unused unless HAS_WEIGHT)
    p_row_weight,  # [N] any stride, row weights (unused unless HAS_ROW_WEIGHT)
    p_smooth,  # ACC [2]: keep = 1 - label_smoothing, spread = label_smoothing / C
    p_elem,  # [N] contiguous, logits dtype: per-row loss, 0 on ignored rows (only if STORE_ELEM)
    p_grad,  # [N, C] contiguous, logits dtype: d sum(per-row loss) / d logits (only if STORE_GRAD)
    p_parts,  # ACC [2, P]: per program, the partial sum of the per-row loss and of row weight * w_y
    p_stats,  # ACC [3]: total, den, scale (see _finish)
    p_out,  # logits dtype []: the reduced loss (REDUCE 1 or 2)
    p_ticket,  # int32 [1]: 0 before the launch, put back to 0 by the last program
    N,  # rows
    C,  # classes
    s_xn,  # logits row stride
    s_xc,  # logits column stride
    s_t,  # target stride
    s_w,  # weight stride
    s_rw,  # row_weight stride
    ignore_index,  # target value of a row that adds nothing
    P,  # programs
    HAS_WEIGHT: tl.constexpr,
    HAS_ROW_WEIGHT: tl.constexpr,
    STORE_ELEM: tl.constexpr,
    STORE_GRAD: tl.constexpr,
    ACC: tl.constexpr,  # tl.float32, or tl.float64 for fp64 logits
    REDUCE: tl.constexpr,  # 0 none, 1 sum, 2 mean
    BLOCK_N: tl.constexpr,  # rows per program
    BLOCK_C: tl.constexpr,  # next_pow2(C): a whole row per tile row
    BP: tl.constexpr,  # partial sums per step of the last program's reduction
):
    i_p = tl.program_id(0).to(tl.int64)
    o_n = i_p * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)  # [BN]
    m_n = o_n < N
    o_c = tl.arange(0, BLOCK_C).to(tl.int64)  # [BC]
    m_c = o_c < C
    m_nc = m_n[:, None] & m_c[None, :]  # [BN, BC]

    b_x = tl.load(p_logits + o_n[:, None] * s_xn + o_c[None, :] * s_xc, mask=m_nc, other=0.0).to(ACC)  # [BN, BC]
    b_y = tl.load(p_target + o_n * s_t, mask=m_n, other=ignore_index)  # [BN] int64
    b_valid = m_n & (b_y != ignore_index)  # [BN]
    if HAS_WEIGHT:
        b_w = tl.load(p_weight + o_c * s_w, mask=m_c, other=0.0).to(ACC)  # [BC], 0 beyond C
    else:
        b_w = tl.where(m_c, 1.0, 0.0).to(ACC)  # [BC]
    if HAS_ROW_WEIGHT:
        b_coef = tl.load(p_row_weight + o_n * s_rw, mask=m_n, other=0.0).to(ACC)  # [BN]
    else:
        b_coef = tl.full([BLOCK_N], 1.0, ACC)
    b_coef = tl.where(b_valid, b_coef, 0.0)  # [BN] row weight, 0 on ignored rows and beyond N
    keep = tl.load(p_smooth)
    spread = tl.load(p_smooth + 1)
    w_sum = tl.sum(b_w, axis=0)  # [] W = sum_c w_c

    # softmax of each row: m = max, e = exp(x - m) (0 beyond C), s = sum e, lse = m + log s
    b_xm = tl.where(m_c[None, :], b_x, float("-inf"))
    b_m = tl.max(b_xm, axis=1)  # [BN]
    b_e = tl.exp(b_xm - b_m[:, None])  # [BN, BC]
    b_s = tl.sum(b_e, axis=1)  # [BN]
    b_lse = b_m + tl.log(b_s)  # [BN]
    b_hot = o_c[None, :] == b_y[:, None]  # [BN, BC] the target column
    b_wy = tl.sum(tl.where(b_hot, b_w[None, :], 0.0), axis=1)  # [BN] w_y
    b_xy = tl.sum(tl.where(b_hot, b_x, 0.0), axis=1)  # [BN] x_y
    b_xw = tl.sum(b_x * b_w[None, :], axis=1)  # [BN] x . w (x is 0 beyond C)

    # loss = coef (keep w_y (lse - x_y) + spread (W lse - x . w)); see cpu.py for the gradient
    b_loss = b_coef * (keep * b_wy * (b_lse - b_xy) + spread * (w_sum * b_lse - b_xw))
    b_loss = tl.where(b_valid, b_loss, 0.0)  # 0 even where an ignored row's logits are not finite
    if STORE_ELEM:
        tl.store(p_elem + o_n, b_loss.to(p_elem.dtype.element_ty), mask=m_n)
    if STORE_GRAD:
        b_a = b_coef * (keep * b_wy + spread * w_sum) / b_s  # [BN] multiplier of exp(x - m)
        b_g = b_e * b_a[:, None] - b_coef[:, None] * (spread * b_w[None, :] + tl.where(b_hot, keep * b_wy[:, None], 0.0))
        b_g = tl.where(b_valid[:, None], b_g, 0.0)
        tl.store(p_grad + o_n[:, None] * C + o_c[None, :], b_g.to(p_grad.dtype.element_ty), mask=m_nc)
    tl.store(p_parts + i_p, tl.sum(b_loss, axis=0))
    tl.store(p_parts + P + i_p, tl.sum(b_coef * b_wy, axis=0))
    _finish(p_parts, p_stats, p_out, p_ticket, P, REDUCE, ACC, BP)


# (1 - eps, eps / C) as ACC tensors on a device: a training loop passes the same smoothing every step,
# and building them (a host-to-device copy on GPU) would cost more than the op on small batches.
_SMOOTH_CACHE: dict[tuple, torch.Tensor] = {}


def _smooth(label_smoothing: float, c: int, acc: torch.dtype, device: torch.device) -> torch.Tensor:
    key = (label_smoothing, c, acc, str(device))
    found = _SMOOTH_CACHE.get(key)
    if found is None:
        if len(_SMOOTH_CACHE) >= 64:
            _SMOOTH_CACHE.clear()
        found = _SMOOTH_CACHE[key] = torch.tensor([1.0 - label_smoothing, label_smoothing / c], dtype=acc, device=device)
    return found


def forward(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    row_weight: torch.Tensor | None,
    label_smoothing: float,
    ignore_index: int,
    reduction: str,
    compute_grad: bool,
    backend: str,
    launch: CrossEntropyLaunchConfig | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Same outputs as ``cpu.forward``, from one launch; ``backend`` is "triton" (CUDA) or "interpret"
    (CPU), ``launch`` the block sizes (default: ``launch_config(C)``)."""
    n, c = logits.shape
    assert c <= MAX_CLASSES, f"the kernel takes at most {MAX_CLASSES} classes, got {c}"
    dev = logits.device
    acc = torch.float64 if logits.dtype == torch.float64 else torch.float32
    out = empty((n,) if reduction == "none" else (), dtype=logits.dtype, device=dev)
    grad = empty((n, c) if compute_grad else (0,), dtype=logits.dtype, device=dev)
    if n == 0:  # nothing to launch: a zero sum, and a mean of nothing is 0 / 0
        if reduction != "none":
            out.fill_(float("nan") if reduction == "mean" else 0.0)
        stats = torch.tensor([0.0, 0.0, 0.0 if reduction == "mean" else 1.0], dtype=acc, device=dev)
        return out, grad, stats
    launch = launch or launch_config(c)
    block_c = next_pow2(c)
    block_n = min(max(launch.block // block_c, 1), next_pow2(n))
    n_programs = cdiv(n, block_n)
    parts = empty((2, n_programs), dtype=acc, device=dev)
    stats = empty((3,), dtype=acc, device=dev)
    _cross_entropy_fwd_kernel.launch(
        backend, (n_programs,),
        logits, target, logits if weight is None else weight, logits if row_weight is None else row_weight,
        _smooth(label_smoothing, c, acc, dev), out, grad, parts, stats, out, ticket(dev),
        n, c, logits.stride(0), logits.stride(1), target.stride(0),
        0 if weight is None else weight.stride(0), 0 if row_weight is None else row_weight.stride(0),
        ignore_index, n_programs,
        HAS_WEIGHT=weight is not None, HAS_ROW_WEIGHT=row_weight is not None, STORE_ELEM=reduction == "none",
        STORE_GRAD=compute_grad, ACC=tl.float64 if acc == torch.float64 else tl.float32,
        REDUCE=REDUCE_CODE[reduction], BLOCK_N=block_n, BLOCK_C=block_c, BP=launch.finish_tile,
        num_warps=launch.num_warps,
    )  # fmt: skip
    return out, grad, stats
