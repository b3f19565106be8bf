"""Routing kernels of moe_mlp: softmax, top-k, gates, pairs per expert, and the expert-sorted pair
layout ("route", described in ``aam_kernels/moe/triton.py``) that the expert kernels read.

_moe_route_kernel (below ``MoELaunchConfig.route_chunks_from`` tokens, launch.py): one program walks all tokens twice,
    scoring them, then ranking each pair within its expert by a running count.
_moe_route_chunks_kernel: one program per chunk of BT tokens scores its tokens and ranks its pairs
    within the chunk. The last program to finish (an integer ticket) turns the per-chunk counts into
    per-chunk offsets, writes the segment table and places every pair. Only integer work follows
    the ticket, so the route buffer is the same bit for bit whichever program is last, and the same as
    the one-program kernel's. The one-program kernel walks the tokens a step at a time, so chunks are
    faster wherever the GPU routes many tokens.
``route`` launches one of them.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from aam_kernels.backend import cdiv, empty, ticket, triton_kernel
from aam_kernels.moe.launch import MoELaunchConfig
from aam_kernels.moe.triton_parts import pow2, split_route


@triton.jit
def _score_tokens(
    p_logits, p_probs, p_topi, p_gates, o_t, T, E, s_lt, s_le,
    K: tl.constexpr, RENORM: tl.constexpr, BT: tl.constexpr, BE: tl.constexpr, BK: tl.constexpr,
):  # fmt: skip
    """Tokens o_t [BT]: writes probs [T, E], topi [T, K] (ties -> lowest expert index) and gates
    [T, K]; returns (sel [BT, BK] chosen experts, chosen [BT, BE] int32: 1 where a token of o_t < T
    picked the expert)."""
    o_e = tl.arange(0, BE)
    m_e = o_e < E
    o_k = tl.arange(0, BK)
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
    b_chosen = tl.zeros([BT, BE], dtype=tl.int32)
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
        b_chosen += (b_hot & m_t[:, None]).to(tl.int32)
    if RENORM:
        b_v_all = b_v_all / tl.where(m_t, b_vsum, 1.0)[:, None]
    m_tk = m_t[:, None] & (o_k[None, :] < K)
    tl.store(p_topi + o_t[:, None] * K + o_k[None, :], b_sel_all.to(tl.int64), mask=m_tk)
    tl.store(p_gates + o_t[:, None] * K + o_k[None, :], b_v_all, mask=m_tk)
    return b_sel_all, b_chosen


@triton.jit
def _write_segments(
    p_counts, p_pairs, p_blk_expert, p_seg_blk, b_counts, E, NB,
    BM: tl.constexpr, BT: tl.constexpr, BE: tl.constexpr,
):  # fmt: skip
    """From the pairs per expert b_counts [BE] (0 in padding columns): counts, the segment table,
    the expert of every block and -1 in every padding row. Returns each expert's first block [BE]."""
    o_e = tl.arange(0, BE)
    m_e = o_e < E
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
    return b_seg_start


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
    o_k = tl.arange(0, BK)  # [BK]
    b_counts = tl.zeros([BE], dtype=tl.int32)
    # Pass 1: softmax, top-k, gates, counts.
    for t0 in range(0, T, BT):
        o_t = t0 + tl.arange(0, BT).to(tl.int64)  # [BT]
        _, b_chosen = _score_tokens(p_logits, p_probs, p_topi, p_gates, o_t, T, E, s_lt, s_le, K, RENORM, BT, BE, BK)
        b_counts += tl.sum(b_chosen, axis=0)
    b_seg_start = _write_segments(p_counts, p_pairs, p_blk_expert, p_seg_blk, b_counts, E, NB, BM, BT, BE)

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
def _moe_route_chunks_kernel(
    p_logits,  # [T, E] any strides, any float dtype
    p_probs,  # fp32 [T, E] out
    p_topi,  # int64 [T, K] out
    p_gates,  # fp32 [T, K] out
    p_counts,  # int64 [E] out
    p_pairs,  # int32 [NB * BM] out
    p_blk_expert,  # int32 [NB] out
    p_seg_blk,  # int32 [E + 1] out
    p_chunk,  # int32 [C, BE] workspace: pairs per (chunk, expert), then each chunk's offset in its segments
    p_rank,  # int32 [T * K] workspace: rank of each pair among its chunk's pairs of the same expert
    p_ticket,  # int32 [1]: 0 before the launch, put back to 0 by the last program
    T,
    E,
    NB,
    C,  # chunks = programs
    s_lt,
    s_le,
    K: tl.constexpr,
    RENORM: tl.constexpr,
    BM: tl.constexpr,
    BT: tl.constexpr,  # tokens per chunk
    BE: tl.constexpr,
    BK: tl.constexpr,
    BC: tl.constexpr,  # chunks per step of the last program's scan
    BP: tl.constexpr,  # pairs per step of the last program's placement
):
    i_c = tl.program_id(0)
    o_e = tl.arange(0, BE)
    o_k = tl.arange(0, BK)
    o_t = i_c.to(tl.int64) * BT + tl.arange(0, BT).to(tl.int64)  # [BT]
    m_t = o_t < T
    b_sel, b_chosen = _score_tokens(p_logits, p_probs, p_topi, p_gates, o_t, T, E, s_lt, s_le, K, RENORM, BT, BE, BK)
    # A token picks an expert at most once, so a pair's rank among the chunk's pairs of its expert is
    # the number of earlier tokens of the chunk that picked it: an exclusive cumsum over tokens.
    b_rank_te = tl.cumsum(b_chosen, axis=0) - b_chosen  # [BT, BE]
    for j in tl.static_range(K):
        b_e = tl.sum(tl.where(o_k[None, :] == j, b_sel, 0), axis=1)  # [BT]
        b_r = tl.sum(tl.where(o_e[None, :] == b_e[:, None], b_rank_te, 0), axis=1)
        tl.store(p_rank + o_t * K + j, b_r, mask=m_t)
    tl.store(p_chunk + i_c * BE + o_e, tl.sum(b_chosen, axis=0))
    # Every thread's stores before the ticket; acq_rel makes them visible to the last program.
    tl.debug_barrier()
    ticket = tl.atomic_add(p_ticket, 1, sem="acq_rel")
    if ticket == C - 1:
        # Exclusive prefix over chunks, per expert, in place; its carry ends as the pairs per expert.
        b_run = tl.zeros([BE], dtype=tl.int32)
        for c0 in range(0, C, BC):
            o_c = c0 + tl.arange(0, BC)
            m_c = (o_c < C)[:, None]
            o_tab = o_c[:, None] * BE + o_e[None, :]  # [BC, BE]
            b_tab = tl.load(p_chunk + o_tab, mask=m_c, other=0, cache_modifier=".cg")
            tl.store(p_chunk + o_tab, tl.cumsum(b_tab, axis=0) - b_tab + b_run[None, :], mask=m_c)
            b_run += tl.sum(b_tab, axis=0)
        b_seg_start = _write_segments(p_counts, p_pairs, p_blk_expert, p_seg_blk, b_run, E, NB, BM, BT, BE)
        tl.debug_barrier()  # the offsets stored above are read below by other threads
        b_base = b_seg_start * BM  # [BE] first row of each segment
        for p0 in range(0, T * K, BP):
            o_p = p0 + tl.arange(0, BP).to(tl.int64)  # pair ids t * K + j
            m_p = o_p < T * K
            b_pe = tl.load(p_topi + o_p, mask=m_p, other=0, cache_modifier=".cg").to(tl.int32)  # expert
            b_pr = tl.load(p_rank + o_p, mask=m_p, other=0, cache_modifier=".cg")  # rank in (chunk, expert)
            b_off = tl.load(p_chunk + (o_p // K // BT) * BE + b_pe, mask=m_p, other=0)
            b_seg = tl.sum(tl.where(o_e[None, :] == b_pe[:, None], b_base[None, :], 0), axis=1)  # [BP]
            tl.store(p_pairs + (b_seg + b_off + b_pr).to(tl.int64), o_p.to(tl.int32), mask=m_p)
        tl.atomic_xchg(p_ticket, 0)


def route(router_logits: torch.Tensor, route_buf: torch.Tensor, top_k: int, renormalize: bool, backend: str, cfg: MoELaunchConfig):
    """Routes the T tokens of ``router_logits`` [T, E] into ``route_buf`` (int32, ``route_numel`` long,
    blocks of ``cfg.bm`` rows) with one of the two routing kernels, as ``cfg.route_chunks(T)`` chooses.
    Returns probs [T, E] fp32, topi [T, k] int64, gates [T, k] fp32 and counts [E] int64."""
    T, E = router_logits.shape
    dev = router_logits.device
    nb, pairs, blk_expert, seg_blk = split_route(route_buf, T, top_k, E, cfg.bm)
    probs = empty((T, E), dtype=torch.float32, device=dev)
    topi = empty((T, top_k), dtype=torch.int64, device=dev)
    gates = empty((T, top_k), dtype=torch.float32, device=dev)
    counts = empty((E,), dtype=torch.int64, device=dev)
    if cfg.route_chunks(T):
        n_chunks, be = cdiv(T, cfg.bt), pow2(E, 2)
        chunk_table = empty((n_chunks * be,), dtype=torch.int32, device=dev)
        pair_rank = empty((T * top_k,), dtype=torch.int32, device=dev)
        _moe_route_chunks_kernel.launch(
            backend, (n_chunks,),
            router_logits, probs, topi, gates, counts, pairs, blk_expert, seg_blk,
            chunk_table, pair_rank, ticket(dev),
            T, E, nb, n_chunks, router_logits.stride(0), router_logits.stride(1),
            K=top_k, RENORM=renormalize, BM=cfg.bm, BT=cfg.bt, BE=be, BK=pow2(top_k, 2),
            BC=cfg.bc, BP=cfg.bp, num_warps=cfg.num_warps,
        )  # fmt: skip
    else:
        _moe_route_kernel.launch(
            backend, (1,),
            router_logits, probs, topi, gates, counts, pairs, blk_expert, seg_blk,
            T, E, nb, router_logits.stride(0), router_logits.stride(1),
            K=top_k, RENORM=renormalize, BM=cfg.bm, BT=cfg.bt,
            BE=pow2(E, 2), BK=pow2(top_k, 2), num_warps=cfg.num_warps,
        )  # fmt: skip
    return probs, topi, gates, counts
