"""Triton kernel: loss, d loss / d pred and per-column partial sums in ONE launch.

Each program owns BLOCK_N rows and walks the K columns in tiles of BLOCK_K. It writes the
(weighted, unnormalized) gradient and, per column, its partial weighted loss and weight into
row ``i_n`` of two [P, K] buffers; the host sums those over P in a fixed order, so the
reduction is bitwise deterministic (no float atomics).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from aam_kernels.backend import cdiv, empty, next_pow2, triton_kernel
from aam_kernels.regression_loss.checks import ColumnParams

# Elements per program: 4096 keeps a program's loads in flight for bandwidth on recent GPUs
# (8 warps x 32 lanes x 16 elements) and makes the [P, K] partials ~1/4096 of the input.
ELEMENTS_PER_PROGRAM = 4096
MAX_BLOCK_K = 64
NUM_WARPS = 8
# Flat layout for K <= FLAT_MAX_K columns (the tiled kernel takes wider K): each program owns a run of
# BLOCK flat elements e = n * K + k, with K a compile-time constant, and only the last program masks. For
# contiguous inputs the loads are whole 16-byte vectors; the tiled kernel's [rows, next_pow2(K)] tiles
# are K apart and masked, so they never are. On an H200 (Triton 3.6) the tiled kernel alone moved
# 0.6 TB/s at 5.6M x 3 fp32 against 3.4 TB/s at 16M x 1 (bench/gpu_sweep.py times both layouts).
FLAT_LAYOUT = True
FLAT_MAX_K = 8


@triton.jit
def _loss_and_slope(b_r, b_under, b_over, b_delta, b_power):
    """Per element, for residuals r = target - pred (0 where missing): the loss and dl/dr."""
    b_w = tl.where(b_r >= 0, b_under, b_over)
    # power 1: loss = w |r|, dl/dr = w sign(r)
    b_g = tl.where(b_r > 0, b_under, tl.where(b_r < 0, -b_over, 0.0))
    b_loss = b_g * b_r
    # power 2: loss = w r^2, dl/dr = 2 w r
    is_sq = b_power == 2.0
    b_loss = tl.where(is_sq, b_w * b_r * b_r, b_loss)
    b_g = tl.where(is_sq, 2.0 * b_w * b_r, b_g)
    # Huber: c = clamp(r, -delta, delta); loss = w c (r - c/2), dl/dr = w c
    is_hub = b_delta > 0
    b_c = tl.minimum(tl.maximum(b_r, -b_delta), b_delta)
    b_loss = tl.where(is_hub, b_w * b_c * (b_r - 0.5 * b_c), b_loss)
    b_g = tl.where(is_hub, b_w * b_c, b_g)
    return b_loss, b_g


@triton_kernel
def _regression_loss_fwd_kernel(
    p_pred,  # [N, K] any strides, fp16/bf16/fp32/fp64
    p_target,  # [N, K] any strides (0 where broadcast), NaN = missing
    p_weight,  # [N] row weights (unused unless HAS_WEIGHT)
    p_under,  # fp32 [K] weight where r >= 0
    p_over,  # fp32 [K] weight where r < 0
    p_delta,  # fp32 [K] Huber threshold, 0 = off
    p_power,  # fp32 [K] 1.0 or 2.0
    p_elem,  # [N, K] contiguous, pred dtype: weight * valid * loss (only if STORE_ELEM)
    p_grad,  # [N, K] contiguous, pred dtype: d sum(elem) / d pred (only if STORE_GRAD)
    p_part_sum,  # ACC [P, K] partial sums of elem per program
    p_part_den,  # ACC [P, K] partial sums of weight * valid per program
    N,
    K,
    s_pn,
    s_pk,
    s_tn,
    s_tk,
    s_w,
    HAS_WEIGHT: tl.constexpr,
    STORE_ELEM: tl.constexpr,
    STORE_GRAD: tl.constexpr,
    ACC: tl.constexpr,  # tl.float32, or tl.float64 for fp64 inputs
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    i_n = tl.program_id(0).to(tl.int64)
    o_n = i_n * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)  # [BN]
    m_n = o_n < N
    if HAS_WEIGHT:
        b_rw = tl.load(p_weight + o_n * s_w, mask=m_n, other=0.0).to(ACC)  # [BN]
    else:
        b_rw = tl.where(m_n, 1.0, 0.0).to(ACC)  # [BN]
    for k0 in range(0, K, BLOCK_K):
        o_k = k0 + tl.arange(0, BLOCK_K).to(tl.int64)  # [BK]
        m_k = o_k < K
        m_nk = m_n[:, None] & m_k[None, :]  # [BN, BK]
        b_under = tl.load(p_under + o_k, mask=m_k, other=0.0).to(ACC)[None, :]  # [1, BK]
        b_over = tl.load(p_over + o_k, mask=m_k, other=0.0).to(ACC)[None, :]
        b_delta = tl.load(p_delta + o_k, mask=m_k, other=0.0).to(ACC)[None, :]
        b_power = tl.load(p_power + o_k, mask=m_k, other=1.0)[None, :]

        b_pred = tl.load(p_pred + o_n[:, None] * s_pn + o_k[None, :] * s_pk, mask=m_nk, other=0.0).to(ACC)
        b_tgt = tl.load(p_target + o_n[:, None] * s_tn + o_k[None, :] * s_tk, mask=m_nk, other=0.0).to(ACC)
        b_valid = m_nk & (b_tgt == b_tgt)  # NaN != NaN marks a missing target
        b_r = tl.where(b_valid, b_tgt - b_pred, 0.0)  # [BN, BK]; r = 0 gives loss 0, gradient 0
        b_loss, b_g = _loss_and_slope(b_r, b_under, b_over, b_delta, b_power)
        b_loss = b_loss * b_rw[:, None]
        o_out = o_n[:, None] * K + o_k[None, :]  # [BN, BK] into contiguous outputs
        if STORE_ELEM:
            tl.store(p_elem + o_out, b_loss.to(p_elem.dtype.element_ty), mask=m_nk)
        if STORE_GRAD:
            tl.store(p_grad + o_out, (-b_g * b_rw[:, None]).to(p_grad.dtype.element_ty), mask=m_nk)
        b_mass = tl.where(b_valid, b_rw[:, None], 0.0)
        tl.store(p_part_sum + i_n * K + o_k, tl.sum(b_loss, axis=0), mask=m_k)
        tl.store(p_part_den + i_n * K + o_k, tl.sum(b_mass, axis=0), mask=m_k)


@triton.jit
def _load(p, o, m, MASKED: tl.constexpr):
    """A block load, masked only in a tail block: unmasked contiguous loads become 16-byte vector loads."""
    if MASKED:
        return tl.load(p + o, mask=m, other=0.0)
    return tl.load(p + o)


@triton.jit
def _store(p, o, v, m, MASKED: tl.constexpr):
    if MASKED:
        tl.store(p + o, v.to(p.dtype.element_ty), mask=m)
    else:
        tl.store(p + o, v.to(p.dtype.element_ty))


@triton.jit
def _flat_block(
    p_pred, p_target, p_weight, p_under, p_over, p_delta, p_power, p_elem, p_grad,
    start, NK, s_pn, s_pk, s_tn, s_tk, s_w,
    HAS_WEIGHT: tl.constexpr, STORE_ELEM: tl.constexpr, STORE_GRAD: tl.constexpr, ACC: tl.constexpr,
    K: tl.constexpr, KP: tl.constexpr, PRED_FLAT: tl.constexpr, TARGET_FLAT: tl.constexpr,
    BLOCK: tl.constexpr, MASKED: tl.constexpr,
):  # fmt: skip
    """Elements e = start .. start + BLOCK - 1 of the row-major [N, K] problem: stores the gradient (and
    the elementwise loss), returns the block's per-column loss and weight sums, [KP] each."""
    o_l = tl.arange(0, BLOCK)  # [B] int32
    o_e = start + o_l  # [B] int64 flat index e = n * K + k
    # row and column by int32 division by the constexpr K (a multiply and a shift), not int64 division
    o_lk = (start % K).to(tl.int32) + o_l
    o_k = o_lk % K  # [B]
    o_n = start // K + o_lk // K  # [B] int64
    m_e = o_e < NK
    o_p = o_e if PRED_FLAT else o_n * s_pn + o_k * s_pk
    o_t = o_e if TARGET_FLAT else o_n * s_tn + o_k * s_tk
    b_pred = _load(p_pred, o_p, m_e, MASKED).to(ACC)
    b_tgt = _load(p_target, o_t, m_e, MASKED).to(ACC)
    if HAS_WEIGHT:
        b_rw = _load(p_weight, o_n * s_w, m_e, MASKED).to(ACC)
    elif MASKED:
        b_rw = tl.where(m_e, 1.0, 0.0).to(ACC)
    else:
        b_rw = tl.full([BLOCK], 1.0, ACC)
    if K == 1:
        b_under = tl.load(p_under).to(ACC)
        b_over = tl.load(p_over).to(ACC)
        b_delta = tl.load(p_delta).to(ACC)
        b_power = tl.load(p_power)
    else:  # [K] parameters gathered per element: a few bytes, served from L1
        b_under = tl.load(p_under + o_k).to(ACC)
        b_over = tl.load(p_over + o_k).to(ACC)
        b_delta = tl.load(p_delta + o_k).to(ACC)
        b_power = tl.load(p_power + o_k)
    b_valid = b_tgt == b_tgt  # NaN != NaN marks a missing target
    if MASKED:
        b_valid = b_valid & m_e
    b_r = tl.where(b_valid, b_tgt - b_pred, 0.0)
    b_loss, b_g = _loss_and_slope(b_r, b_under, b_over, b_delta, b_power)
    b_loss = b_loss * b_rw
    if STORE_ELEM:
        _store(p_elem, o_e, b_loss, m_e, MASKED)
    if STORE_GRAD:
        _store(p_grad, o_e, -b_g * b_rw, m_e, MASKED)
    b_mass = tl.where(b_valid, b_rw, 0.0)
    o_c = tl.arange(0, KP)
    if K == 1:
        b_sum = tl.zeros([KP], dtype=ACC) + tl.sum(b_loss, axis=0)
        b_den = tl.zeros([KP], dtype=ACC) + tl.sum(b_mass, axis=0)
    else:  # one fixed-order block reduction per column
        b_sum = tl.zeros([KP], dtype=ACC)
        b_den = tl.zeros([KP], dtype=ACC)
        for c in tl.static_range(K):
            b_in = o_k == c
            b_sum = tl.where(o_c == c, tl.sum(tl.where(b_in, b_loss, 0.0), axis=0), b_sum)
            b_den = tl.where(o_c == c, tl.sum(tl.where(b_in, b_mass, 0.0), axis=0), b_den)
    return b_sum, b_den


@triton_kernel
def _regression_loss_flat_kernel(
    p_pred,  # [N, K] any strides
    p_target,  # [N, K] any strides (0 where broadcast), NaN = missing
    p_weight,  # [N] row weights (unused unless HAS_WEIGHT)
    p_under,  # fp32 [K]
    p_over,  # fp32 [K]
    p_delta,  # fp32 [K]
    p_power,  # fp32 [K]
    p_elem,  # [N, K] contiguous (only if STORE_ELEM)
    p_grad,  # [N, K] contiguous (only if STORE_GRAD)
    p_part_sum,  # ACC [P, K]
    p_part_den,  # ACC [P, K]
    NK,  # N * K
    s_pn,
    s_pk,
    s_tn,
    s_tk,
    s_w,
    HAS_WEIGHT: tl.constexpr,
    STORE_ELEM: tl.constexpr,
    STORE_GRAD: tl.constexpr,
    ACC: tl.constexpr,
    K: tl.constexpr,  # 1 .. FLAT_MAX_K columns
    KP: tl.constexpr,  # next power of 2 >= K
    PRED_FLAT: tl.constexpr,  # pred is row-major contiguous: element e at offset e
    TARGET_FLAT: tl.constexpr,
    BLOCK: tl.constexpr,  # flat elements per program
):
    """The tiled kernel's maths over flat element indices: each program reads one contiguous run of
    BLOCK elements (whole 16-byte vectors for contiguous inputs), with no masks except in the last."""
    i_p = tl.program_id(0).to(tl.int64)
    start = i_p * BLOCK
    if start + BLOCK <= NK:
        b_sum, b_den = _flat_block(
            p_pred, p_target, p_weight, p_under, p_over, p_delta, p_power, p_elem, p_grad,
            start, NK, s_pn, s_pk, s_tn, s_tk, s_w, HAS_WEIGHT, STORE_ELEM, STORE_GRAD, ACC,
            K, KP, PRED_FLAT, TARGET_FLAT, BLOCK, False,
        )  # fmt: skip
    else:
        b_sum, b_den = _flat_block(
            p_pred, p_target, p_weight, p_under, p_over, p_delta, p_power, p_elem, p_grad,
            start, NK, s_pn, s_pk, s_tn, s_tk, s_w, HAS_WEIGHT, STORE_ELEM, STORE_GRAD, ACC,
            K, KP, PRED_FLAT, TARGET_FLAT, BLOCK, True,
        )  # fmt: skip
    o_c = tl.arange(0, KP)
    tl.store(p_part_sum + i_p * K + o_c, b_sum, mask=o_c < K)
    tl.store(p_part_den + i_p * K + o_c, b_den, mask=o_c < K)


def forward(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    params: ColumnParams,
    store_elementwise: bool,
    compute_grad: bool,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Same outputs as ``cpu.forward``; ``backend`` is "triton" (CUDA) or "interpret" (CPU)."""
    n, k = pred.shape
    acc = torch.float64 if pred.dtype == torch.float64 else torch.float32
    flat = FLAT_LAYOUT and k <= FLAT_MAX_K
    if flat:
        block = min(ELEMENTS_PER_PROGRAM, next_pow2(max(n * k, 1)))
        n_programs = cdiv(n * k, block)
    else:
        block_k = min(next_pow2(max(k, 1)), MAX_BLOCK_K)
        block_n = min(max(ELEMENTS_PER_PROGRAM // block_k, 1), next_pow2(max(n, 1)))
        n_programs = cdiv(n, block_n)

    elem = empty((n, k) if store_elementwise else (0,), dtype=pred.dtype, device=pred.device)
    grad = empty((n, k) if compute_grad else (0,), dtype=pred.dtype, device=pred.device)
    part_sum = empty((n_programs, k), dtype=acc, device=pred.device)
    part_den = empty((n_programs, k), dtype=acc, device=pred.device)
    if n > 0 and k > 0 and flat:
        _regression_loss_flat_kernel.launch(
            backend, (n_programs,),
            pred, target, pred if weight is None else weight,
            params.under, params.over, params.delta, params.power,
            elem, grad, part_sum, part_den,
            n * k, pred.stride(0), pred.stride(1), target.stride(0), target.stride(1),
            0 if weight is None else weight.stride(0),
            HAS_WEIGHT=weight is not None, STORE_ELEM=store_elementwise, STORE_GRAD=compute_grad,
            ACC=tl.float64 if acc == torch.float64 else tl.float32, K=k, KP=next_pow2(k),
            PRED_FLAT=pred.is_contiguous(), TARGET_FLAT=target.is_contiguous(), BLOCK=block, num_warps=NUM_WARPS,
        )  # fmt: skip
    elif n > 0 and k > 0:
        _regression_loss_fwd_kernel.launch(
            backend,
            (n_programs,),
            pred,
            target,
            pred if weight is None else weight,
            params.under,
            params.over,
            params.delta,
            params.power,
            elem,
            grad,
            part_sum,
            part_den,
            n,
            k,
            pred.stride(0),
            pred.stride(1),
            target.stride(0),
            target.stride(1),
            0 if weight is None else weight.stride(0),
            HAS_WEIGHT=weight is not None,
            STORE_ELEM=store_elementwise,
            STORE_GRAD=compute_grad,
            ACC=tl.float64 if acc == torch.float64 else tl.float32,
            BLOCK_N=block_n,
            BLOCK_K=block_k,
            num_warps=NUM_WARPS,
        )
    # fixed-order sums over programs: deterministic
    return elem, grad, part_sum.sum(0), part_den.sum(0)
