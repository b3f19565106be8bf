"""Backward kernels of moe_mlp (the layout they read is described in ``aam_kernels/moe/triton.py``):
router gradient, per-row first-layer recompute with d a, the fixed-order weight-gradient reductions
and the input gradient per pair, and their launcher ``backward``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from aam_kernels.backend import cdiv, empty, triton_kernel
from aam_kernels.moe.launch import MoELaunchConfig, launch_config
from aam_kernels.moe.state import MoEInputs, MoESaved
from aam_kernels.moe.triton_parts import ACT_CODE, block_rows, first_layer, pow2, row_grad_out, sorted_rows, split_route


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
    i_e, o_m, m_m, b_pair = block_rows(p_pairs, p_blk_expert, tl.program_id(0).to(tl.int64), E, BM)
    o_tok = b_pair // K
    o_o = tl.arange(0, BO)
    m_o = o_o < O
    # d loss / d out for each row: gate * dy[token]; zero in padding rows.
    b_gout = row_grad_out(p_gates, p_gy, b_pair, m_m, o_o, m_o, O, K)  # [BM, BO]
    for h0 in range(0, H, BH):
        o_h = h0 + tl.arange(0, BH)
        m_h = o_h < H
        b_a = first_layer(p_x, p_w1, p_b1, o_tok, m_m, i_e, o_h, m_h, D, H, s_xt, s_xd, BM, BD, BH)
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


@triton.jit
def _store_expert_tile(p_gw, p_gb, b_gw, b_gb, i_e, o_r, m_r, o_c, m_c, R, C, first):
    """Expert i_e's [R, C] weight gradient tile at rows o_r, columns o_c, and with the first row tile
    (first) its [C] bias gradient, in the outputs' dtypes."""
    tl.store(p_gw + i_e * R * C + o_r[:, None] * C + o_c[None, :], b_gw.to(p_gw.dtype.element_ty), mask=m_r[:, None] & m_c[None, :])
    if first:
        tl.store(p_gb + i_e * C + o_c, b_gb.to(p_gb.dtype.element_ty), mask=m_c)


@triton_kernel
def _moe_bwd_weights_kernel(
    p_x,  # [T, D] any strides
    p_gy,  # [T, O] contiguous
    p_gates,  # fp32 [T * K]
    p_pairs,  # int32 [NB * BM]
    p_seg_blk,  # int32 [E + 1]
    p_ga,  # fp32 [NB * BM, H] (HAS_W1)
    p_h,  # fp32 [NB * BM, H] (HAS_W1)
    p_gw1,  # [E, D, H] out (HAS_W1)
    p_gb1,  # [E, H] out (HAS_W1)
    p_gw2,  # [E, HH, O] out
    p_gb2,  # [E, O] out
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
    # n_w programs per expert: one per [BD, BH] tile of w1 (MLP experts), then one per [BH, BO] tile of
    # w2 with its rows in tiles of HH. Each loops over its expert's blocks in order: fixed-order sums.
    HH = H if HAS_W1 else D
    n_ht = tl.cdiv(HH, BH)
    n_w1 = tl.cdiv(D, BD) * n_ht if HAS_W1 else 0
    n_w = n_w1 + n_ht
    pid = tl.program_id(0).to(tl.int64)
    i_e = pid // n_w
    i_r = pid % n_w
    o_o = tl.arange(0, BO)
    m_o = o_o < O
    # Segments are contiguous and seg_blk[E] is the number of used blocks, so expert e owns
    # [seg_blk[e], seg_blk[e + 1]).
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
            o_m, m_m, b_pair = sorted_rows(p_pairs, blk, BM)
            o_tok = b_pair // K
            b_x = tl.load(p_x + o_tok[:, None] * s_xt + o_d[None, :] * s_xd, mask=m_m[:, None] & m_d[None, :], other=0.0)
            b_ga = tl.load(p_ga + o_m[:, None] * H + o_h[None, :], mask=m_m[:, None] & m_h[None, :], other=0.0)
            b_gw1 = tl.dot(tl.trans(b_x), b_ga.to(b_x.dtype), b_gw1, input_precision="ieee")  # [BD, BH]
            b_gb1 += tl.sum(b_ga, axis=0)
        _store_expert_tile(p_gw1, p_gb1, b_gw1, b_gb1, i_e, o_d, m_d, o_h, m_h, D, H, i_d == 0)
    else:
        i_h = i_r - n_w1
        o_h = i_h * BH + tl.arange(0, BH)  # tile of HH
        m_h = o_h < HH
        b_gw2 = tl.zeros([BH, BO], dtype=tl.float32)
        b_gb2 = tl.zeros([BO], dtype=tl.float32)
        for blk in range(blk_lo, blk_hi):
            o_m, m_m, b_pair = sorted_rows(p_pairs, blk, BM)
            o_tok = b_pair // K
            m_mh = m_m[:, None] & m_h[None, :]
            if HAS_W1:
                b_hid = tl.load(p_h + o_m[:, None] * H + o_h[None, :], mask=m_mh, other=0.0)
            else:
                b_hid = tl.load(p_x + o_tok[:, None] * s_xt + o_h[None, :] * s_xd, mask=m_mh, other=0.0)
            b_gout = row_grad_out(p_gates, p_gy, b_pair, m_m, o_o, m_o, O, K)  # [BM, BO]
            b_gw2 = tl.dot(tl.trans(b_hid.to(tl.float32)), b_gout, b_gw2, input_precision="ieee")  # [BH, BO]
            b_gb2 += tl.sum(b_gout, axis=0)
        _store_expert_tile(p_gw2, p_gb2, b_gw2, b_gb2, i_e, o_h, m_h, o_o, m_o, HH, O, i_h == 0)


@triton_kernel
def _moe_bwd_input_kernel(
    p_gy,  # [T, O] contiguous
    p_gates,  # fp32 [T * K]
    p_w1,  # [E, D, H] contiguous (HAS_W1)
    p_w2,  # [E, D, O] contiguous (unless HAS_W1)
    p_pairs,  # int32 [NB * BM]
    p_blk_expert,  # int32 [NB]
    p_ga,  # fp32 [NB * BM, H] (HAS_W1)
    p_gxp,  # fp32 [T * K, D] out: d loss / d x per pair
    E,
    D,
    H,
    O,
    K: tl.constexpr,
    HAS_W1: tl.constexpr,
    BM: tl.constexpr,
    BD: tl.constexpr,
    BH: tl.constexpr,
    BO: tl.constexpr,
):
    # d x per pair for one (block of sorted rows, tile of D): all rows share the block's expert.
    n_dt = tl.cdiv(D, BD)
    pid = tl.program_id(0).to(tl.int64)
    i_d = pid % n_dt
    i_e, o_m, m_m, b_pair = block_rows(p_pairs, p_blk_expert, pid // n_dt, E, BM)
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
        o_o = tl.arange(0, BO)
        m_o = o_o < O
        b_gout = row_grad_out(p_gates, p_gy, b_pair, m_m, o_o, m_o, O, K)  # [BM, BO]
        b_w2 = tl.load(p_w2 + i_e * D * O + o_d[:, None] * O + o_o[None, :], mask=m_d[:, None] & m_o[None, :], other=0.0)
        b_gx = tl.dot(b_gout, tl.trans(b_w2.to(tl.float32)), input_precision="ieee")  # [BM, BD]
    tl.store(p_gxp + b_pair[:, None] * D + o_d[None, :], b_gx, mask=m_m[:, None] & m_d[None, :])


def backward(
    gy, gprobs, inputs: MoEInputs, saved: MoESaved, top_k: int, activation: str, renormalize: bool,
    backend: str, launch: MoELaunchConfig | None = None,
):  # fmt: skip
    """Same contract as ``cpu.backward``; ``backend`` and ``launch`` as for ``triton.forward`` (the same launch:
    the route buffer's blocks are ``launch.bm`` rows)."""
    x, router_logits, w1, b1, w2, b2 = inputs
    cfg = launch or launch_config(backend, x.dtype)
    T, D = x.shape
    E = router_logits.shape[1]
    O = w2.shape[2]
    has_w1 = w1 is not None
    H = w1.shape[2] if has_w1 else 0
    HH = H if has_w1 else D
    dev = x.device
    nb, pairs, blk_expert, seg_blk = split_route(saved.route, T, top_k, E, cfg.bm)
    w1c = w1.contiguous() if has_w1 else x
    b1c = b1.contiguous() if has_w1 else x
    w2c = w2.contiguous()
    gy = gy.contiguous()
    bd = min(cfg.bd, pow2(D))
    bh = min(cfg.bh, pow2(HH))
    bo = pow2(O)

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
    ga = empty((nb * cfg.bm, H), dtype=torch.float32, device=dev) if has_w1 else saved.o_tk
    hs = empty((nb * cfg.bm, H), dtype=torch.float32, device=dev) if has_w1 else saved.o_tk
    gxp = empty((T, top_k, D), dtype=torch.float32, device=dev)

    _moe_router_bwd_kernel.launch(
        backend, (cdiv(T, cfg.bt),),
        gy, gprobs.contiguous() if gprobs is not None else saved.probs, saved.probs, saved.topi, saved.gates,
        saved.o_tk, g_logits,
        T, E, O,
        K=top_k, RENORM=renormalize, HAS_GPROBS=gprobs is not None,
        BT=cfg.bt, BE=pow2(E, 2), BO=bo, num_warps=cfg.num_warps,
    )  # fmt: skip
    if has_w1:
        _moe_bwd_rows_kernel.launch(
            backend, (nb,),
            x, w1c, b1c, w2c, gy, saved.gates, pairs, blk_expert, ga, hs,
            E, D, H, O, x.stride(0), x.stride(1),
            K=top_k, ACT=ACT_CODE[activation], BM=cfg.bm, BD=bd, BH=bh, BO=bo, num_warps=cfg.num_warps,
        )  # fmt: skip
    n_dt = cdiv(D, bd)
    n_ht = cdiv(HH, bh)
    n_w = (n_dt * n_ht if has_w1 else 0) + n_ht
    _moe_bwd_weights_kernel.launch(
        backend, (E * n_w,),
        x, gy, saved.gates, pairs, seg_blk, ga, hs,
        gw1 if has_w1 else gw2, gb1 if has_w1 else gb2, gw2, gb2,
        D, H, O, x.stride(0), x.stride(1),
        K=top_k, HAS_W1=has_w1, BM=cfg.bm, BD=bd, BH=bh, BO=bo, num_warps=cfg.num_warps,
    )  # fmt: skip
    _moe_bwd_input_kernel.launch(
        backend, (nb * n_dt,),
        gy, saved.gates, w1c, w2c, pairs, blk_expert, ga, gxp,
        E, D, H, O,
        K=top_k, HAS_W1=has_w1, BM=cfg.bm, BD=bd, BH=bh, BO=bo, num_warps=cfg.num_warps,
    )  # fmt: skip
    gx = gxp.sum(1).to(x.dtype)  # fixed-order sum over the k slots, as for y
    return gx, g_logits, gw1, gb1, gw2, gb2
