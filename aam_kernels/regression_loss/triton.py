"""Triton kernels: loss, d loss / d pred and the reduced loss in ONE launch.

Each program owns a block of elements: BLOCK flat elements e = n * K + k (flat layout, K <= FLAT_MAX_K)
or BLOCK_N rows walked in column tiles of BLOCK_K (tiled layout). It writes the (weighted,
unnormalized) gradient and, per column, its partial weighted loss and weight into its two rows of a
[2, P, K] buffer. The last program to finish (an atomic ticket) sums those over P in a fixed order and
writes the per-column sums and means, the reduced loss and its scale: bitwise deterministic (no float
atomics), and no reduction left for the host to launch.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from aam_kernels.backend import cdiv, empty, next_pow2, ticket, triton_kernel
from aam_kernels.regression_loss.checks import ColumnParams
from aam_kernels.regression_loss.launch import FLAT_MAX_K, MAX_BLOCK_K, LossLaunchConfig, launch_config

REDUCE_CODE = {"none": 0, "sum": 1, "mean": 2}


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


@triton.jit
def _finish(
    p_parts, p_stats, p_out, p_ticket, P, K,
    REDUCE: tl.constexpr, ACC: tl.constexpr, BC: tl.constexpr, BP: tl.constexpr,
):  # fmt: skip
    """After this program stored its partial sums: the last of the P programs reduces the [2, P, K]
    partials in a fixed order ([BP, BC] tiles) into stats = [col_sum (K), col_den (K), col_mean (K),
    scale] and, for REDUCE sum (1) or mean (2), the loss into p_out. scale = d loss / d sum(elementwise):
    1 for sum, 1 / total weight for mean (nothing valid: loss 0 and scale 0, not 0/0)."""
    # Every thread's stores before the ticket; acq_rel makes them visible to the last program.
    tl.debug_barrier()
    count = tl.atomic_add(p_ticket, 1, sem="acq_rel")
    if count == P - 1:
        total = tl.full([], 0.0, ACC)
        den = tl.full([], 0.0, ACC)
        for c0 in range(0, K, BC):
            o_c = c0 + tl.arange(0, BC)
            m_c = o_c < K
            b_sum = tl.zeros([BP, BC], dtype=ACC)
            b_den = tl.zeros([BP, BC], dtype=ACC)
            for p0 in range(0, P, BP):
                o_r = p0 + tl.arange(0, BP).to(tl.int64)
                o_rc = o_r[:, None] * K + o_c[None, :]
                m_rc = (o_r < P)[:, None] & m_c[None, :]
                b_sum += tl.load(p_parts + o_rc, mask=m_rc, other=0.0, cache_modifier=".cg")
                b_den += tl.load(p_parts + P * K + o_rc, mask=m_rc, other=0.0, cache_modifier=".cg")
            b_col_sum = tl.sum(b_sum, axis=0)  # [BC], 0 beyond K
            b_col_den = tl.sum(b_den, axis=0)
            tl.store(p_stats + o_c, b_col_sum, mask=m_c)
            tl.store(p_stats + K + o_c, b_col_den, mask=m_c)
            tl.store(p_stats + 2 * K + o_c, b_col_sum / tl.maximum(b_col_den, 1e-30), mask=m_c)
            total += tl.sum(b_col_sum, axis=0)
            den += tl.sum(b_col_den, axis=0)
        if REDUCE == 2:
            tl.store(p_out, (total / tl.maximum(den, 1e-30)).to(p_out.dtype.element_ty))
            # nothing valid: the loss is a constant 0, so its gradient is 0 (not 0 * 1e30, inf in fp16)
            tl.store(p_stats + 3 * K, tl.where(den > 0, 1.0 / tl.maximum(den, 1e-30), 0.0))
        else:
            if REDUCE == 1:
                tl.store(p_out, total.to(p_out.dtype.element_ty))
            tl.store(p_stats + 3 * K, tl.full([], 1.0, ACC))
        tl.atomic_xchg(p_ticket, 0)


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
    p_parts,  # ACC [2, P, K] per program: partial sums of elem, of weight * valid
    p_stats,  # ACC [3 K + 1]: col_sum, col_den, col_mean, scale (see _finish)
    p_out,  # pred dtype [] reduced loss (REDUCE 1 or 2)
    p_ticket,  # int32 [1]: 0 before the launch, put back to 0 by the last program
    N,
    K,
    s_pn,
    s_pk,
    s_tn,
    s_tk,
    s_w,
    P,  # programs
    HAS_WEIGHT: tl.constexpr,
    STORE_ELEM: tl.constexpr,
    STORE_GRAD: tl.constexpr,
    ACC: tl.constexpr,  # tl.float32, or tl.float64 for fp64 inputs
    REDUCE: tl.constexpr,  # 0 none, 1 sum, 2 mean
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BP: tl.constexpr,  # partial-sum rows per step of the last program's reduction
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
        tl.store(p_parts + i_n * K + o_k, tl.sum(b_loss, axis=0), mask=m_k)
        tl.store(p_parts + (P + i_n) * K + o_k, tl.sum(b_mass, axis=0), mask=m_k)
    _finish(p_parts, p_stats, p_out, p_ticket, P, K, REDUCE, ACC, BLOCK_K, BP)


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
    p_parts,  # ACC [2, P, K]
    p_stats,  # ACC [3 K + 1]
    p_out,  # pred dtype [] (REDUCE 1 or 2)
    p_ticket,  # int32 [1]
    NK,  # N * K
    s_pn,
    s_pk,
    s_tn,
    s_tk,
    s_w,
    P,
    HAS_WEIGHT: tl.constexpr,
    STORE_ELEM: tl.constexpr,
    STORE_GRAD: tl.constexpr,
    ACC: tl.constexpr,
    REDUCE: tl.constexpr,
    BP: tl.constexpr,
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
    tl.store(p_parts + i_p * K + o_c, b_sum, mask=o_c < K)
    tl.store(p_parts + (P + i_p) * K + o_c, b_den, mask=o_c < K)
    _finish(p_parts, p_stats, p_out, p_ticket, P, K, REDUCE, ACC, KP, BP)


def forward(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    params: ColumnParams,
    reduction: str,
    compute_grad: bool,
    backend: str,
    launch: LossLaunchConfig | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Same outputs as ``cpu.forward``, from one launch; ``backend`` is "triton" (CUDA) or "interpret" (CPU),
    ``launch`` the block sizes (default: ``launch_config(K)``)."""
    n, k = pred.shape
    dev = pred.device
    acc = torch.float64 if pred.dtype == torch.float64 else torch.float32
    out = empty((n, k) if reduction == "none" else (), dtype=pred.dtype, device=dev)
    grad = empty((n, k) if compute_grad else (0,), dtype=pred.dtype, device=dev)
    if n == 0 or k == 0:  # nothing to launch: zero sums, a zero loss
        stats = torch.zeros(3 * k + 1, dtype=acc, device=dev)
        stats[-1] = 1.0
        return out.zero_(), grad, stats
    stats = empty((3 * k + 1,), dtype=acc, device=dev)
    launch = launch or launch_config(k)
    flat = launch.flat_layout
    assert k <= FLAT_MAX_K or not flat, f"the flat layout takes at most {FLAT_MAX_K} columns, got {k}"
    if flat:
        block = min(launch.block, next_pow2(n * k))
        n_programs = cdiv(n * k, block)
    else:
        block_k = min(next_pow2(k), MAX_BLOCK_K)
        block_n = min(max(launch.block // block_k, 1), next_pow2(n))
        n_programs = cdiv(n, block_n)
    parts = empty((2, n_programs, k), dtype=acc, device=dev)
    common = (
        pred, target, pred if weight is None else weight,
        params.under, params.over, params.delta, params.power,
        out if reduction == "none" else grad, grad, parts, stats, out, ticket(dev),
    )  # fmt: skip
    consts = dict(
        HAS_WEIGHT=weight is not None, STORE_ELEM=reduction == "none", STORE_GRAD=compute_grad,
        ACC=tl.float64 if acc == torch.float64 else tl.float32, REDUCE=REDUCE_CODE[reduction],
        num_warps=launch.num_warps,
    )  # fmt: skip
    strides = (pred.stride(0), pred.stride(1), target.stride(0), target.stride(1), 0 if weight is None else weight.stride(0))
    if flat:
        _regression_loss_flat_kernel.launch(
            backend, (n_programs,), *common, n * k, *strides, n_programs, K=k, KP=next_pow2(k),
            BP=launch.finish_tile // next_pow2(k), PRED_FLAT=pred.is_contiguous(), TARGET_FLAT=target.is_contiguous(),
            BLOCK=block, **consts,
        )  # fmt: skip
    else:
        _regression_loss_fwd_kernel.launch(
            backend, (n_programs,), *common, n, k, *strides, n_programs,
            BLOCK_N=block_n, BLOCK_K=block_k, BP=launch.finish_tile // block_k, **consts,
        )  # fmt: skip
    return out, grad, stats
