"""Pieces shared by the moe_mlp kernel files: the launchers' host helpers and the kernels' device
functions (an interpreted kernel calls them interpreted)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from aam_kernels.backend import cdiv, next_pow2

ACT_CODE = {"gelu": 0, "relu": 1, "silu": 2}  # the kernels' ACT argument


def pow2(n: int, floor: int = 16) -> int:
    return max(floor, next_pow2(max(n, 1)))


def split_route(route: torch.Tensor, T: int, k: int, E: int, bm: int):
    """(NB, pairs, blk_expert, seg_blk) of a route buffer (the layout in ``aam_kernels/moe/triton.py``)."""
    nb = cdiv(T * k, bm) + E
    return nb, route[: nb * bm], route[nb * bm : nb * bm + nb], route[nb * bm + nb :]


@triton.jit
def first_layer(
    p_x, p_w1, p_b1, o_tok, m_m, i_e, o_h, m_h, D, H, s_xt, s_xd,
    BM: tl.constexpr, BD: tl.constexpr, BH: tl.constexpr,
):  # fmt: skip
    """a = x[o_tok] @ w1[i_e][:, o_h] + b1[i_e][o_h] in fp32, [BM, BH]; rows where m_m is False read
    x as 0, columns where m_h is False are 0."""
    b_a = tl.zeros([BM, BH], dtype=tl.float32)
    for d0 in range(0, D, BD):
        o_d = d0 + tl.arange(0, BD)
        m_d = o_d < D
        b_x = tl.load(p_x + o_tok[:, None] * s_xt + o_d[None, :] * s_xd, mask=m_m[:, None] & m_d[None, :], other=0.0)
        b_w1 = tl.load(p_w1 + i_e * D * H + o_d[:, None] * H + o_h[None, :], mask=m_d[:, None] & m_h[None, :], other=0.0)
        b_a = tl.dot(b_x, b_w1, b_a, input_precision="ieee")  # [BM, BH]
    return b_a + tl.load(p_b1 + i_e * H + o_h, mask=m_h, other=0.0).to(tl.float32)[None, :]


@triton.jit
def sorted_rows(p_pairs, i_b, BM: tl.constexpr):
    """Block i_b (int64) of BM expert-sorted rows: row offsets o_m [BM], m_m [BM] for the rows that
    hold a pair, and their pair ids [BM] int64 (0 where m_m is False)."""
    o_m = i_b * BM + tl.arange(0, BM)
    b_pair = tl.load(p_pairs + o_m)
    m_m = b_pair >= 0
    return o_m, m_m, tl.where(m_m, b_pair, 0).to(tl.int64)


@triton.jit
def block_rows(p_pairs, p_blk_expert, i_b, E, BM: tl.constexpr):
    """Block i_b (int64) of BM expert-sorted rows: its expert (int64; any valid one for an unused
    block, whose rows are all masked), the row offsets o_m [BM], m_m [BM] for the rows that hold a
    pair, and their pair ids [BM] int64 (0 where m_m is False)."""
    i_e = tl.load(p_blk_expert + i_b)
    b_live = (tl.zeros([BM], dtype=tl.int32) + i_e) < E  # [BM]; a tensor, not a scalar, for the interpreter
    i_e = tl.minimum(i_e, E - 1).to(tl.int64)
    o_m, m_m, b_pair = sorted_rows(p_pairs, i_b, BM)
    m_m = m_m & b_live
    return i_e, o_m, m_m, tl.where(m_m, b_pair, 0)


@triton.jit
def row_grad_out(p_gates, p_gy, b_pair, m_m, o_o, m_o, O, K: tl.constexpr):
    """d loss / d out of each sorted row: its pair's gate times dy of its token, fp32 [BM, BO]; 0 in
    rows where m_m is False."""
    b_gate = tl.load(p_gates + b_pair, mask=m_m, other=0.0)
    b_gy = tl.load(p_gy + (b_pair // K)[:, None] * O + o_o[None, :], mask=m_m[:, None] & m_o[None, :], other=0.0)
    return b_gy.to(tl.float32) * b_gate[:, None]
