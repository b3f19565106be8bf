"""Triton kernels for moe_mlp: forward in 2 launches, backward in 3, bitwise deterministic.

Layout shared by all kernels ("route", one int32 buffer built by the routing kernel):
  pairs      [NB * BM]  pair ids p = t * k + j sorted by expert, each expert's segment padded to a
                        multiple of BM rows with -1; unused tail blocks are -1 too
  blk_expert [NB]       expert of each block of BM sorted rows, E for unused blocks
  seg_blk    [E + 1]    expert e owns blocks [seg_blk[e], seg_blk[e + 1])
NB = cdiv(T * k, BM) + E is a static bound (each segment wastes < 1 block), so every grid is sized
from shapes alone: no host-device synchronization anywhere.

Forward:  (1) _moe_route_kernel, one program: softmax, top-k (ties -> lowest expert index), gates,
          tokens per expert, then a counting sort of the pairs (per-expert block offsets by a cumsum,
          ranks by a running count + in-block cumsum in token order).
          (2) _moe_fwd_kernel, one program per block of BM sorted rows: gathers the x rows by token
          index, h = act(x @ w1 + b1) chunk by chunk over H, out = h @ w2 + b2, all in fp32
          accumulators, and writes out to o_tk[t, j] (the pair's own row: no collisions).
          y = sum_j g[t, j] * o_tk[t, j] is then a fixed-order sum over the k slots of that
          [T, k, O] buffer (O is small), so no float atomics are needed.
Backward: (1) _moe_router_bwd_kernel: d logits from d g = <dy, o_tk> and from d probs.
          (2) _moe_bwd_rows_kernel (MLP experts only), one program per block of sorted rows:
          recomputes a = x @ w1 + b1 once and writes dA = (g dy @ w2^T) * act'(a) and h per
          sorted row, for the weight and input gradients.
          (3) _moe_bwd_reduce_kernel: programs per (expert, weight tile) loop over that expert's
          blocks in order (fixed-order sums, no atomics), plus programs per (block, tile of D)
          writing d x per pair into a [T, k, D] buffer; d x = its fixed-order sum over the k slots.
"""

from __future__ import annotations

import torch
import triton.language as tl

from aam_kernels.backend import cdiv, empty, next_pow2, triton_kernel

_ACT_CODE = {"gelu": 0, "relu": 1, "silu": 2}


def _config(backend: str) -> dict:
    """Block sizes. Compiled: 64 x 64 tl.dot tiles, the usual starting point for tensor-core GEMMs
    (not yet tuned on a GPU: none was available when these kernels were written). Interpreted: the
    smallest tiles tl.dot accepts (16), since the interpreter's cost grows with tile area."""
    if backend == "triton":
        return dict(BM=64, BD=64, BH=64, BT=128, WARPS=4)
    return dict(BM=16, BD=16, BH=16, BT=16, WARPS=1)


def route_numel(T: int, k: int, E: int, backend: str) -> int:
    """Length of the int32 route buffer (see the module docstring)."""
    bm = _config(backend)["BM"]
    nb = cdiv(T * k, bm) + E
    return nb * bm + nb + E + 1


def _pow2(n: int, floor: int = 16) -> int:
    return max(floor, next_pow2(max(n, 1)))


@triton_kernel
def _moe_route_kernel(
    p_logits,  # [T, E] any strides, any float dtype
    p_probs,  # fp32 [T, E] out: softmax
    p_topi,  # int64 [T, K] out: chosen experts, largest logit first
    p_gates,  # fp32 [T, K] out: combine weights
    p_counts,  # int64 [E] out: pairs per expert
    p_pairs,  # int32 [NB * BM] out: expert-sorted pair ids, -1 padding
    p_blk_expert,  # int32 [NB] out: expert of each block, E = unused
    p_seg_blk,  # int32 [E + 1] out: first block of each expert, then the number of used blocks
    T,
    E,
    NB,
    s_lt,
    s_le,
    K: tl.constexpr,
    RENORM: tl.constexpr,
    BM: tl.constexpr,  # sorted rows per block of the expert kernels
    BT: tl.constexpr,  # tokens per step
    BE: tl.constexpr,  # next power of 2 >= E
    BK: tl.constexpr,  # next power of 2 >= K
):
    o_e = tl.arange(0, BE)  # [BE]
    m_e = o_e < E
    o_k = tl.arange(0, BK)  # [BK]
    b_counts = tl.zeros([BE], dtype=tl.int32)
    # Pass 1: softmax, top-k, gates, counts.
    for t0 in range(0, T, BT):
        o_t = t0 + tl.arange(0, BT).to(tl.int64)  # [BT]
        m_t = o_t < T
        m_te = m_t[:, None] & m_e[None, :]  # [BT, BE]
        b_l = tl.load(p_logits + o_t[:, None] * s_lt + o_e[None, :] * s_le, mask=m_te, other=float("-inf"))
        b_l = b_l.to(tl.float32)  # [BT, BE]
        b_max = tl.max(tl.where(m_te, b_l, float("-inf")), axis=1)  # [BT]
        b_max = tl.where(m_t, b_max, 0.0)  # rows past T: keep the maths finite
        b_p = tl.where(m_te, tl.exp(b_l - b_max[:, None]), 0.0)
        b_p = b_p / tl.where(m_t, tl.sum(b_p, axis=1), 1.0)[:, None]  # [BT, BE]
        tl.store(p_probs + o_t[:, None] * E + o_e[None, :], b_p, mask=m_te)

        b_taken = o_e[None, :] >= E  # [BT, BE] padding columns count as taken
        b_taken = b_taken | (o_t[:, None] < 0)  # broadcast to [BT, BE]
        b_sel_all = tl.zeros([BT, BK], dtype=tl.int32)
        b_v_all = tl.zeros([BT, BK], dtype=tl.float32)
        b_vsum = tl.zeros([BT], dtype=tl.float32)
        for j in tl.static_range(K):
            # Largest logit among the experts not yet taken; ties -> lowest index. If nothing
            # compares equal (NaN logits), fall back to the lowest free index so indices stay valid.
            b_cand = tl.where(b_taken, float("-inf"), b_l)
            b_best = tl.max(b_cand, axis=1)  # [BT]
            b_is_best = (b_cand == b_best[:, None]) & (~b_taken)
            b_sel = tl.min(tl.where(b_is_best, o_e[None, :], BE), axis=1)  # [BT]
            b_free = tl.min(tl.where(b_taken, BE, o_e[None, :]), axis=1)
            b_sel = tl.where(b_sel < BE, b_sel, b_free)
            b_hot = o_e[None, :] == b_sel[:, None]  # [BT, BE]
            b_taken = b_taken | b_hot
            b_v = tl.sum(tl.where(b_hot, b_p, 0.0), axis=1)  # [BT] probability of the choice
            b_vsum += b_v
            b_sel_all = tl.where(o_k[None, :] == j, b_sel[:, None], b_sel_all)
            b_v_all = tl.where(o_k[None, :] == j, b_v[:, None], b_v_all)
            b_counts += tl.sum((b_hot & m_t[:, None]).to(tl.int32), axis=0)
        if RENORM:
            b_v_all = b_v_all / tl.where(m_t, b_vsum, 1.0)[:, None]
        m_tk = m_t[:, None] & (o_k[None, :] < K)
        tl.store(p_topi + o_t[:, None] * K + o_k[None, :], b_sel_all.to(tl.int64), mask=m_tk)
        tl.store(p_gates + o_t[:, None] * K + o_k[None, :], b_v_all, mask=m_tk)

    # Segments: expert e owns n_blk[e] = cdiv(count, BM) blocks starting at block seg_start[e].
    b_nblk = (b_counts + BM - 1) // BM  # [BE] (0 in padding columns)
    b_seg_end = tl.cumsum(b_nblk, axis=0)  # [BE] inclusive
    b_seg_start = b_seg_end - b_nblk
    n_used = tl.sum(b_nblk, axis=0)
    tl.store(p_counts + o_e, b_counts.to(tl.int64), mask=m_e)
    tl.store(p_seg_blk + o_e, b_seg_start, mask=m_e)
    tl.store(p_seg_blk + E, n_used)
    # Block -> expert: the number of experts whose segment ends at or before the block (E if unused).
    for b0 in range(0, NB, BT):
        o_b = b0 + tl.arange(0, BT)  # [BT]
        b_exp = tl.sum(((b_seg_end[None, :] <= o_b[:, None]) & m_e[None, :]).to(tl.int32), axis=1)
        tl.store(p_blk_expert + o_b, b_exp, mask=o_b < NB)
    # -1 in each segment's padding rows and in every unused block (disjoint from the pair rows).
    o_r = tl.arange(0, BM)  # [BM]
    b_pad_at = b_seg_start.to(tl.int64) * BM + b_counts  # [BE] first padding row of each segment
    m_pad = m_e[:, None] & (o_r[None, :] < b_nblk[:, None] * BM - b_counts[:, None])  # [BE, BM]
    tl.store(p_pairs + b_pad_at[:, None] + o_r[None, :], tl.full([BE, BM], -1, tl.int32), mask=m_pad)
    for r0 in range(0, NB * BM, BT):
        o_rows = r0 + tl.arange(0, BT).to(tl.int64)
        m_rows = (o_rows >= n_used.to(tl.int64) * BM) & (o_rows < NB * BM)
        tl.store(p_pairs + o_rows, tl.full([BT], -1, tl.int32), mask=m_rows)

    # Pass 2 reads back topi written above by other threads of this program.
    tl.debug_barrier()
    # Rank of pair (t, j) in its expert's segment = pairs of that expert in earlier tokens (a token
    # picks an expert at most once): running count over previous steps + exclusive cumsum in this one.
    b_running = tl.zeros([BE], dtype=tl.int32)
    b_base = b_seg_start * BM  # [BE] first row of each segment
    for t0 in range(0, T, BT):
        o_t = t0 + tl.arange(0, BT).to(tl.int64)
        m_t = o_t < T
        m_tk = m_t[:, None] & (o_k[None, :] < K)
        b_topi = tl.load(p_topi + o_t[:, None] * K + o_k[None, :], mask=m_tk, other=BE).to(tl.int32)  # [BT, BK]
        b_chosen = tl.zeros([BT, BE], dtype=tl.int32)
        for j in tl.static_range(K):
            b_e = tl.sum(tl.where(o_k[None, :] == j, b_topi, 0), axis=1)  # [BT]
            b_chosen += ((o_e[None, :] == b_e[:, None]) & m_t[:, None]).to(tl.int32)
        b_rank = tl.cumsum(b_chosen, axis=0) - b_chosen + b_running[None, :]  # [BT, BE]
        b_row = b_base[None, :] + b_rank  # [BT, BE] destination row if the token chose e
        for j in tl.static_range(K):
            b_e = tl.sum(tl.where(o_k[None, :] == j, b_topi, 0), axis=1)
            b_dst = tl.sum(tl.where(o_e[None, :] == b_e[:, None], b_row, 0), axis=1).to(tl.int64)  # [BT]
            tl.store(p_pairs + b_dst, (o_t * K + j).to(tl.int32), mask=m_t)
        b_running += tl.sum(b_chosen, axis=0)


@triton_kernel
def _moe_fwd_kernel(
    p_x,  # [T, D] any strides
    p_w1,  # [E, D, H] contiguous (unused unless HAS_W1)
    p_b1,  # [E, H]
    p_w2,  # [E, HH, O] contiguous, HH = H (or D for Linear experts)
    p_b2,  # [E, O]
    p_pairs,  # int32 [NB * BM] expert-sorted pair ids
    p_blk_expert,  # int32 [NB]
    p_out,  # fp32 [T * K, O] out: unweighted expert output of each pair
    E,
    D,
    H,
    O,
    s_xt,
    s_xd,
    K: tl.constexpr,
    HAS_W1: tl.constexpr,
    ACT: tl.constexpr,  # 0 gelu (erf), 1 relu, 2 silu
    BM: tl.constexpr,
    BD: tl.constexpr,
    BH: tl.constexpr,
    BO: tl.constexpr,
):
    i_b = tl.program_id(0).to(tl.int64)
    i_e = tl.load(p_blk_expert + i_b)
    b_live = (tl.zeros([BM], dtype=tl.int32) + i_e) < E  # [BM]; a tensor, not a scalar, for the interpreter
    i_e = tl.minimum(i_e, E - 1).to(tl.int64)  # unused blocks: any valid expert, every row masked
    o_m = i_b * BM + tl.arange(0, BM)  # [BM]
    b_pair = tl.load(p_pairs + o_m)  # [BM]
    m_m = (b_pair >= 0) & b_live
    b_pair = tl.where(m_m, b_pair, 0).to(tl.int64)
    o_tok = b_pair // K
    o_o = tl.arange(0, BO)
    m_o = o_o < O
    HH = H if HAS_W1 else D
    b_out = tl.zeros([BM, BO], dtype=tl.float32)
    if HAS_W1:
        for h0 in range(0, H, BH):
            o_h = h0 + tl.arange(0, BH)
            m_h = o_h < H
            b_a = tl.zeros([BM, BH], dtype=tl.float32)
            for d0 in range(0, D, BD):
                o_d = d0 + tl.arange(0, BD)
                m_d = o_d < D
                b_x = tl.load(p_x + o_tok[:, None] * s_xt + o_d[None, :] * s_xd, mask=m_m[:, None] & m_d[None, :], other=0.0)
                b_w1 = tl.load(p_w1 + i_e * D * H + o_d[:, None] * H + o_h[None, :], mask=m_d[:, None] & m_h[None, :], other=0.0)
                b_a = tl.dot(b_x, b_w1, b_a, input_precision="ieee")  # [BM, BH]
            b_a += tl.load(p_b1 + i_e * H + o_h, mask=m_h, other=0.0).to(tl.float32)[None, :]
            if ACT == 0:
                b_h = 0.5 * b_a * (1.0 + tl.math.erf(b_a * 0.7071067811865476))
            elif ACT == 1:
                b_h = tl.maximum(b_a, 0.0)
            else:
                b_h = b_a / (1.0 + tl.exp(-b_a))
            b_w2 = tl.load(p_w2 + i_e * HH * O + o_h[:, None] * O + o_o[None, :], mask=m_h[:, None] & m_o[None, :], other=0.0)
            b_out = tl.dot(b_h.to(b_w2.dtype), b_w2, b_out, input_precision="ieee")  # [BM, BO]
    else:
        for d0 in range(0, D, BD):
            o_d = d0 + tl.arange(0, BD)
            m_d = o_d < D
            b_x = tl.load(p_x + o_tok[:, None] * s_xt + o_d[None, :] * s_xd, mask=m_m[:, None] & m_d[None, :], other=0.0)
            b_w2 = tl.load(p_w2 + i_e * HH * O + o_d[:, None] * O + o_o[None, :], mask=m_d[:, None] & m_o[None, :], other=0.0)
            b_out = tl.dot(b_x, b_w2, b_out, input_precision="ieee")
    b_out += tl.load(p_b2 + i_e * O + o_o, mask=m_o, other=0.0).to(tl.float32)[None, :]
    tl.store(p_out + b_pair[:, None] * O + o_o[None, :], b_out, mask=m_m[:, None] & m_o[None, :])


@triton_kernel
def _moe_router_bwd_kernel(
    p_gy,  # [T, O] contiguous: d loss / d y
    p_gprobs,  # [T, E] contiguous: d loss / d probs (unused unless HAS_GPROBS)
    p_probs,  # fp32 [T, E]
    p_topi,  # int64 [T, K]
    p_gates,  # fp32 [T, K]
    p_out,  # fp32 [T * K, O] per-pair expert outputs
    p_glogits,  # [T, E] out, logits dtype
    T,
    E,
    O,
    K: tl.constexpr,
    RENORM: tl.constexpr,
    HAS_GPROBS: tl.constexpr,
    BT: tl.constexpr,
    BE: tl.constexpr,
    BO: tl.constexpr,
):
    i_t = tl.program_id(0).to(tl.int64)
    o_t = i_t * BT + tl.arange(0, BT)  # [BT]
    m_t = o_t < T
    o_e = tl.arange(0, BE)
    m_te = m_t[:, None] & (o_e[None, :] < E)  # [BT, BE]
    o_o = tl.arange(0, BO)
    m_to = m_t[:, None] & (o_o[None, :] < O)
    b_gy = tl.load(p_gy + o_t[:, None] * O + o_o[None, :], mask=m_to, other=0.0).to(tl.float32)  # [BT, BO]
    b_p = tl.load(p_probs + o_t[:, None] * E + o_e[None, :], mask=m_te, other=0.0)  # [BT, BE]
    # d g_j = <dy, out_j>; with renormalization g_j = v_j / s: d v_j = (d g_j - sum_i d g_i g_i) / s.
    b_dot = tl.zeros([BT], dtype=tl.float32)  # sum_i d g_i g_i
    b_s = tl.zeros([BT], dtype=tl.float32)  # s = sum_i v_i
    for j in tl.static_range(K):
        b_o = tl.load(p_out + (o_t * K + j)[:, None] * O + o_o[None, :], mask=m_to, other=0.0)
        b_dg = tl.sum(b_gy * b_o, axis=1)
        b_g = tl.load(p_gates + o_t * K + j, mask=m_t, other=0.0)
        b_e = tl.load(p_topi + o_t * K + j, mask=m_t, other=0)
        b_dot += b_dg * b_g
        b_s += tl.sum(tl.where(o_e[None, :] == b_e[:, None], b_p, 0.0), axis=1)
    b_s = tl.where(m_t, b_s, 1.0)
    if HAS_GPROBS:
        b_dp = tl.load(p_gprobs + o_t[:, None] * E + o_e[None, :], mask=m_te, other=0.0).to(tl.float32)
    else:
        b_dp = tl.zeros([BT, BE], dtype=tl.float32)
    for j in tl.static_range(K):
        b_o = tl.load(p_out + (o_t * K + j)[:, None] * O + o_o[None, :], mask=m_to, other=0.0)
        b_dg = tl.sum(b_gy * b_o, axis=1)
        b_e = tl.load(p_topi + o_t * K + j, mask=m_t, other=0)
        if RENORM:
            b_dv = (b_dg - b_dot) / b_s
        else:
            b_dv = b_dg
        b_dp += tl.where(o_e[None, :] == b_e[:, None], b_dv[:, None], 0.0)
    b_gl = b_p * (b_dp - tl.sum(b_dp * b_p, axis=1)[:, None])  # softmax backward
    tl.store(p_glogits + o_t[:, None] * E + o_e[None, :], b_gl.to(p_glogits.dtype.element_ty), mask=m_te)


@triton_kernel
def _moe_bwd_rows_kernel(
    p_x,  # [T, D] any strides
    p_w1,  # [E, D, H] contiguous
    p_b1,  # [E, H]
    p_w2,  # [E, H, O] contiguous
    p_gy,  # [T, O] contiguous
    p_gates,  # fp32 [T * K]
    p_pairs,  # int32 [NB * BM]
    p_blk_expert,  # int32 [NB]
    p_ga,  # fp32 [NB * BM, H] out: d loss / d a per sorted row, 0 in padding rows
    p_h,  # fp32 [NB * BM, H] out: act(a) per sorted row
    E,
    D,
    H,
    O,
    s_xt,
    s_xd,
    K: tl.constexpr,
    ACT: tl.constexpr,
    BM: tl.constexpr,
    BD: tl.constexpr,
    BH: tl.constexpr,
    BO: tl.constexpr,
):
    # MLP experts only: recompute a = x @ w1 + b1 once per sorted row (a chunk of H at a time) and
    # write what the weight and input gradients need, so no later kernel recomputes it.
    i_b = tl.program_id(0).to(tl.int64)
    i_e = tl.load(p_blk_expert + i_b)
    b_live = (tl.zeros([BM], dtype=tl.int32) + i_e) < E  # [BM]; a tensor, not a scalar, for the interpreter
    i_e = tl.minimum(i_e, E - 1).to(tl.int64)
    o_m = i_b * BM + tl.arange(0, BM)  # [BM] sorted rows
    b_pair = tl.load(p_pairs + o_m)
    m_m = (b_pair >= 0) & b_live
    b_pair = tl.where(m_m, b_pair, 0).to(tl.int64)
    o_tok = b_pair // K
    o_o = tl.arange(0, BO)
    m_o = o_o < O
    # d loss / d out for each row: gate * dy[token]; zero in padding rows.
    b_gate = tl.load(p_gates + b_pair, mask=m_m, other=0.0)
    b_gy = tl.load(p_gy + o_tok[:, None] * O + o_o[None, :], mask=m_m[:, None] & m_o[None, :], other=0.0)
    b_gout = b_gy.to(tl.float32) * b_gate[:, None]  # [BM, BO]
    for h0 in range(0, H, BH):
        o_h = h0 + tl.arange(0, BH)
        m_h = o_h < H
        b_a = tl.zeros([BM, BH], dtype=tl.float32)
        for d0 in range(0, D, BD):
            o_d = d0 + tl.arange(0, BD)
            m_d = o_d < D
            b_x = tl.load(p_x + o_tok[:, None] * s_xt + o_d[None, :] * s_xd, mask=m_m[:, None] & m_d[None, :], other=0.0)
            b_w1 = tl.load(p_w1 + i_e * D * H + o_d[:, None] * H + o_h[None, :], mask=m_d[:, None] & m_h[None, :], other=0.0)
            b_a = tl.dot(b_x, b_w1, b_a, input_precision="ieee")  # [BM, BH]
        b_a += tl.load(p_b1 + i_e * H + o_h, mask=m_h, other=0.0).to(tl.float32)[None, :]
        if ACT == 0:
            b_cdf = 0.5 * (1.0 + tl.math.erf(b_a * 0.7071067811865476))
            b_h = b_a * b_cdf
            b_dact = b_cdf + b_a * tl.exp(-0.5 * b_a * b_a) * 0.3989422804014327
        elif ACT == 1:
            b_h = tl.maximum(b_a, 0.0)
            b_dact = tl.where(b_a > 0, 1.0, 0.0)
        else:
            b_sig = 1.0 / (1.0 + tl.exp(-b_a))
            b_h = b_a * b_sig
            b_dact = b_sig * (1.0 + b_a * (1.0 - b_sig))
        b_w2 = tl.load(p_w2 + i_e * H * O + o_h[:, None] * O + o_o[None, :], mask=m_h[:, None] & m_o[None, :], other=0.0)
        b_ga = tl.dot(b_gout, tl.trans(b_w2.to(tl.float32)), input_precision="ieee") * b_dact  # [BM, BH]
        m_mh = (o_m[:, None] >= 0) & m_h[None, :]  # every row of the block: padding rows get ga = 0
        tl.store(p_ga + o_m[:, None] * H + o_h[None, :], b_ga, mask=m_mh)
        tl.store(p_h + o_m[:, None] * H + o_h[None, :], b_h, mask=m_mh)


@triton_kernel
def _moe_bwd_reduce_kernel(
    p_x,  # [T, D] any strides
    p_gy,  # [T, O] contiguous
    p_gates,  # fp32 [T * K]
    p_w1,  # [E, D, H] contiguous (HAS_W1)
    p_w2,  # [E, HH, O] contiguous
    p_pairs,  # int32 [NB * BM]
    p_blk_expert,  # int32 [NB]
    p_seg_blk,  # int32 [E + 1]
    p_ga,  # fp32 [NB * BM, H] (HAS_W1)
    p_h,  # fp32 [NB * BM, H] (HAS_W1)
    p_gw1,  # [E, D, H] out (HAS_W1)
    p_gb1,  # [E, H] out (HAS_W1)
    p_gw2,  # [E, HH, O] out
    p_gb2,  # [E, O] out
    p_gxp,  # fp32 [T * K, D] out: d loss / d x per pair
    E,
    D,
    H,
    O,
    s_xt,
    s_xd,
    K: tl.constexpr,
    HAS_W1: tl.constexpr,
    BM: tl.constexpr,
    BD: tl.constexpr,
    BH: tl.constexpr,
    BO: tl.constexpr,
):
    # Programs [0, E * n_w): weight tiles of one expert each; then one per (block, tile of D) for d x.
    HH = H if HAS_W1 else D
    n_dt = tl.cdiv(D, BD)
    n_ht = tl.cdiv(HH, BH)
    n_w1 = n_dt * n_ht if HAS_W1 else 0
    n_w = n_w1 + n_ht
    pid = tl.program_id(0).to(tl.int64)
    o_o = tl.arange(0, BO)
    m_o = o_o < O
    if pid < E * n_w:
        i_e = pid // n_w
        i_r = pid % n_w
        # Segments are contiguous and seg_blk[E] is the number of used blocks, so expert e owns
        # [seg_blk[e], seg_blk[e + 1]); the sums run over those blocks in order: deterministic.
        blk_lo = tl.load(p_seg_blk + i_e).to(tl.int64)
        blk_hi = tl.load(p_seg_blk + i_e + 1).to(tl.int64)
        if i_r < n_w1:
            i_d = i_r // n_ht
            i_h = i_r % n_ht
            o_d = i_d * BD + tl.arange(0, BD)
            m_d = o_d < D
            o_h = i_h * BH + tl.arange(0, BH)
            m_h = o_h < H
            b_gw1 = tl.zeros([BD, BH], dtype=tl.float32)
            b_gb1 = tl.zeros([BH], dtype=tl.float32)
            for blk in range(blk_lo, blk_hi):
                o_m = blk * BM + tl.arange(0, BM)
                b_pair = tl.load(p_pairs + o_m)
                m_m = b_pair >= 0
                o_tok = tl.where(m_m, b_pair, 0).to(tl.int64) // K
                b_x = tl.load(p_x + o_tok[:, None] * s_xt + o_d[None, :] * s_xd, mask=m_m[:, None] & m_d[None, :], other=0.0)
                b_ga = tl.load(p_ga + o_m[:, None] * H + o_h[None, :], mask=m_m[:, None] & m_h[None, :], other=0.0)
                b_gw1 = tl.dot(tl.trans(b_x), b_ga.to(b_x.dtype), b_gw1, input_precision="ieee")  # [BD, BH]
                b_gb1 += tl.sum(b_ga, axis=0)
            tl.store(
                p_gw1 + i_e * D * H + o_d[:, None] * H + o_h[None, :],
                b_gw1.to(p_gw1.dtype.element_ty),
                mask=m_d[:, None] & m_h[None, :],
            )
            if i_d == 0:
                tl.store(p_gb1 + i_e * H + o_h, b_gb1.to(p_gb1.dtype.element_ty), mask=m_h)
        else:
            i_h = i_r - n_w1
            o_h = i_h * BH + tl.arange(0, BH)  # tile of HH
            m_h = o_h < HH
            b_gw2 = tl.zeros([BH, BO], dtype=tl.float32)
            b_gb2 = tl.zeros([BO], dtype=tl.float32)
            for blk in range(blk_lo, blk_hi):
                o_m = blk * BM + tl.arange(0, BM)
                b_pair = tl.load(p_pairs + o_m)
                m_m = b_pair >= 0
                b_pair = tl.where(m_m, b_pair, 0).to(tl.int64)
                o_tok = b_pair // K
                m_mh = m_m[:, None] & m_h[None, :]
                if HAS_W1:
                    b_hid = tl.load(p_h + o_m[:, None] * H + o_h[None, :], mask=m_mh, other=0.0)
                else:
                    b_hid = tl.load(p_x + o_tok[:, None] * s_xt + o_h[None, :] * s_xd, mask=m_mh, other=0.0)
                b_gate = tl.load(p_gates + b_pair, mask=m_m, other=0.0)
                b_gy = tl.load(p_gy + o_tok[:, None] * O + o_o[None, :], mask=m_m[:, None] & m_o[None, :], other=0.0)
                b_gout = b_gy.to(tl.float32) * b_gate[:, None]  # [BM, BO]
                b_gw2 = tl.dot(tl.trans(b_hid.to(tl.float32)), b_gout, b_gw2, input_precision="ieee")  # [BH, BO]
                b_gb2 += tl.sum(b_gout, axis=0)
            tl.store(
                p_gw2 + i_e * HH * O + o_h[:, None] * O + o_o[None, :],
                b_gw2.to(p_gw2.dtype.element_ty),
                mask=m_h[:, None] & m_o[None, :],
            )
            if i_h == 0:
                tl.store(p_gb2 + i_e * O + o_o, b_gb2.to(p_gb2.dtype.element_ty), mask=m_o)
    else:
        # d x per pair for one (block of sorted rows, tile of D): all rows share the block's expert.
        i_q = pid - E * n_w
        i_b = i_q // n_dt
        i_d = i_q % n_dt
        i_e = tl.load(p_blk_expert + i_b)
        b_live = (tl.zeros([BM], dtype=tl.int32) + i_e) < E  # [BM]
        i_e = tl.minimum(i_e, E - 1).to(tl.int64)
        o_m = i_b * BM + tl.arange(0, BM)  # [BM] sorted rows
        b_pair = tl.load(p_pairs + o_m)
        m_m = (b_pair >= 0) & b_live
        b_pair = tl.where(m_m, b_pair, 0).to(tl.int64)
        o_d = i_d * BD + tl.arange(0, BD)
        m_d = o_d < D
        if HAS_W1:
            # d x = d a @ w1^T, over H in chunks
            b_gx = tl.zeros([BM, BD], dtype=tl.float32)
            for h0 in range(0, H, BH):
                o_h = h0 + tl.arange(0, BH)
                m_h = o_h < H
                b_ga = tl.load(p_ga + o_m[:, None] * H + o_h[None, :], mask=m_m[:, None] & m_h[None, :], other=0.0)
                b_w1 = tl.load(p_w1 + i_e * D * H + o_d[:, None] * H + o_h[None, :], mask=m_d[:, None] & m_h[None, :], other=0.0)
                b_gx = tl.dot(b_ga.to(b_w1.dtype), tl.trans(b_w1), b_gx, input_precision="ieee")  # [BM, BD]
        else:
            # d x = (gate * dy) @ w2^T
            b_gate = tl.load(p_gates + b_pair, mask=m_m, other=0.0)
            b_gy = tl.load(p_gy + (b_pair // K)[:, None] * O + o_o[None, :], mask=m_m[:, None] & m_o[None, :], other=0.0)
            b_gout = b_gy.to(tl.float32) * b_gate[:, None]  # [BM, BO]
            b_w2 = tl.load(p_w2 + i_e * D * O + o_d[:, None] * O + o_o[None, :], mask=m_d[:, None] & m_o[None, :], other=0.0)
            b_gx = tl.dot(b_gout, tl.trans(b_w2.to(tl.float32)), input_precision="ieee")  # [BM, BD]
        tl.store(p_gxp + b_pair[:, None] * D + o_d[None, :], b_gx, mask=m_m[:, None] & m_d[None, :])


def _split_route(route: torch.Tensor, T: int, k: int, E: int, bm: int):
    nb = cdiv(T * k, bm) + E
    return nb, route[: nb * bm], route[nb * bm : nb * bm + nb], route[nb * bm + nb :]


# 16-bit inputs: the forward kernel pads the hidden layer to a multiple of this. On an H200 with
# Triton 3.6, its compiled forward (4 warps, bf16 tensor-core dots) gave wrong outputs, or an illegal
# memory access, whenever H was not a multiple of 16 (H = 100, 130, 136; 80 and 128 were right);
# fp32 and the backward kernels were right at every H, and the padded forward at every H tried.
H_MULTIPLE_16BIT = 16


def _pad_hidden(w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor):
    """Zero-pad the hidden layer of MLP experts to a multiple of ``H_MULTIPLE_16BIT``: the same
    function, since a padded unit has pre-activation 0, act(0) = 0 for gelu, relu and silu, and a
    zero row of w2. Returns (w1 [E, D, Hp], b1 [E, Hp], w2 [E, Hp, O], Hp)."""
    pad = -w1.shape[2] % H_MULTIPLE_16BIT
    w1 = torch.nn.functional.pad(w1, (0, pad))
    b1 = torch.nn.functional.pad(b1, (0, pad))
    w2 = torch.nn.functional.pad(w2, (0, 0, 0, pad))
    return w1, b1, w2, w1.shape[2]


def _backend_of(x: torch.Tensor) -> str:
    return "triton" if x.is_cuda else "interpret"


def forward(x, router_logits, w1, b1, w2, b2, top_k: int, activation: str, renormalize: bool):
    """Same contract as ``cpu.forward``; the saved batches are empty (backward recomputes the hidden layer)."""
    backend = _backend_of(x)
    cfg = _config(backend)
    T, D = x.shape
    E = router_logits.shape[1]
    O = w2.shape[2]
    H = w1.shape[2] if w1 is not None else 0
    dev = x.device
    assert x.dtype != torch.float64 and T * top_k < 2**31, "checked by moe_mlp"
    w1c = w1.contiguous() if w1 is not None else x
    b1c = b1.contiguous() if b1 is not None else x
    w2c, b2c = w2.contiguous(), b2.contiguous()
    H_run = H  # the hidden width the forward kernel runs with
    if w1 is not None and x.element_size() == 2 and H % H_MULTIPLE_16BIT:
        w1c, b1c, w2c, H_run = _pad_hidden(w1c, b1c, w2c)
    nb = cdiv(T * top_k, cfg["BM"]) + E

    probs = empty((T, E), dtype=torch.float32, device=dev)
    topi = empty((T, top_k), dtype=torch.int64, device=dev)
    gates = empty((T, top_k), dtype=torch.float32, device=dev)
    counts = empty((E,), dtype=torch.int64, device=dev)
    route = empty((route_numel(T, top_k, E, backend),), dtype=torch.int32, device=dev)
    o_tk = empty((T, top_k, O), dtype=torch.float32, device=dev)
    _, pairs, blk_expert, seg_blk = _split_route(route, T, top_k, E, cfg["BM"])

    _moe_route_kernel.launch(
        backend, (1,),
        router_logits, probs, topi, gates, counts, pairs, blk_expert, seg_blk,
        T, E, nb, router_logits.stride(0), router_logits.stride(1),
        K=top_k, RENORM=renormalize, BM=cfg["BM"], BT=cfg["BT"],
        BE=_pow2(E, 2), BK=_pow2(top_k, 2), num_warps=cfg["WARPS"],
    )  # fmt: skip
    if T > 0:
        _moe_fwd_kernel.launch(
            backend, (nb,),
            x, w1c, b1c, w2c, b2c, pairs, blk_expert, o_tk,
            E, D, H_run, O, x.stride(0), x.stride(1),
            K=top_k, HAS_W1=w1 is not None, ACT=_ACT_CODE[activation],
            BM=cfg["BM"], BD=min(cfg["BD"], _pow2(D)), BH=min(cfg["BH"], _pow2(H_run)), BO=_pow2(O),
            num_warps=cfg["WARPS"],
        )  # fmt: skip
    y = (gates[:, :, None] * o_tk).sum(1).to(x.dtype)  # fixed-order sum over the k slots
    xp, a, h = (x.new_empty(E, 0, n, dtype=torch.float32) for n in (D, H, H))  # nothing saved: cap = 0
    return y, probs, counts, topi, gates, o_tk, route, xp, a, h


def backward(gy, gprobs, x, router_logits, w1, b1, w2, b2, probs, topi, gates, o_tk, route, xp, a, h, top_k, activation, renormalize):
    """Same contract as ``cpu.backward``."""
    backend = _backend_of(x)
    cfg = _config(backend)
    T, D = x.shape
    E = router_logits.shape[1]
    O = w2.shape[2]
    has_w1 = w1 is not None
    H = w1.shape[2] if has_w1 else 0
    HH = H if has_w1 else D
    dev = x.device
    nb, pairs, blk_expert, seg_blk = _split_route(route, T, top_k, E, cfg["BM"])
    w1c = w1.contiguous() if has_w1 else x
    b1c = b1.contiguous() if has_w1 else x
    w2c = w2.contiguous()
    gy = gy.contiguous()
    bd = min(cfg["BD"], _pow2(D))
    bh = min(cfg["BH"], _pow2(HH))
    bo = _pow2(O)

    g_logits = empty(router_logits.shape, dtype=router_logits.dtype, device=dev)
    gw1 = empty(w1.shape, dtype=w1.dtype, device=dev) if has_w1 else None
    gb1 = empty(b1.shape, dtype=b1.dtype, device=dev) if has_w1 else None
    gw2 = empty(w2.shape, dtype=w2.dtype, device=dev)
    gb2 = empty(b2.shape, dtype=b2.dtype, device=dev)
    if T == 0:
        # No pair: every weight gradient is an empty sum.
        for g in (gw1, gb1, gw2, gb2):
            if g is not None:
                g.zero_()
        return x.new_empty(0, D), g_logits, gw1, gb1, gw2, gb2
    ga = empty((nb * cfg["BM"], H), dtype=torch.float32, device=dev) if has_w1 else o_tk
    hs = empty((nb * cfg["BM"], H), dtype=torch.float32, device=dev) if has_w1 else o_tk
    gxp = empty((T, top_k, D), dtype=torch.float32, device=dev)

    _moe_router_bwd_kernel.launch(
        backend, (cdiv(T, cfg["BT"]),),
        gy, gprobs.contiguous() if gprobs is not None else probs, probs, topi, gates, o_tk, g_logits,
        T, E, O,
        K=top_k, RENORM=renormalize, HAS_GPROBS=gprobs is not None,
        BT=cfg["BT"], BE=_pow2(E, 2), BO=bo, num_warps=cfg["WARPS"],
    )  # fmt: skip
    if has_w1:
        _moe_bwd_rows_kernel.launch(
            backend, (nb,),
            x, w1c, b1c, w2c, gy, gates, pairs, blk_expert, ga, hs,
            E, D, H, O, x.stride(0), x.stride(1),
            K=top_k, ACT=_ACT_CODE[activation], BM=cfg["BM"], BD=bd, BH=bh, BO=bo, num_warps=cfg["WARPS"],
        )  # fmt: skip
    n_dt = cdiv(D, bd)
    n_ht = cdiv(HH, bh)
    n_w = (n_dt * n_ht if has_w1 else 0) + n_ht
    _moe_bwd_reduce_kernel.launch(
        backend, (E * n_w + nb * n_dt,),
        x, gy, gates, w1c, w2c, pairs, blk_expert, seg_blk, ga, hs,
        gw1 if has_w1 else gw2, gb1 if has_w1 else gb2, gw2, gb2, gxp,
        E, D, H, O, x.stride(0), x.stride(1),
        K=top_k, HAS_W1=has_w1, BM=cfg["BM"], BD=bd, BH=bh, BO=bo, num_warps=cfg["WARPS"],
    )  # fmt: skip
    gx = gxp.sum(1).to(x.dtype)  # fixed-order sum over the k slots, as for y
    return gx, g_logits, gw1, gb1, gw2, gb2
