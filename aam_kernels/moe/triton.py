"""Triton kernels for moe_mlp: forward in 2 launches, backward in 4 (3 for Linear experts), bitwise
deterministic. Block sizes come from a ``launch.MoELaunchConfig``. This file holds the route layout,
the expert forward kernel and ``forward``; the routing kernels and their launcher ``route`` are in
triton_route.py, the backward kernels and their launcher ``backward`` in triton_backward.py, and the
pieces they share in triton_parts.py.

Layout shared by all kernels ("route", one int32 buffer built by the routing kernel):
  pairs      [NB * BM]  pair ids p = t * k + j sorted by expert, each expert's segment padded to a
                        multiple of BM rows with -1; unused tail blocks are -1 too
  blk_expert [NB]       expert of each block of BM sorted rows, E for unused blocks
  seg_blk    [E + 1]    expert e owns blocks [seg_blk[e], seg_blk[e + 1])
NB = cdiv(T * k, BM) + E is a static bound (each segment wastes < 1 block), so every grid is sized
from shapes alone: no host-device synchronization anywhere.

Forward:  (1) routing (``triton_route.route``): softmax, top-k (ties -> lowest expert index), gates, tokens
          per expert, then a counting sort of the pairs (per-expert block offsets by a cumsum, ranks in
          token order): _moe_route_kernel, one program, below the configuration's
          route_chunks_from tokens; _moe_route_chunks_kernel, one program per chunk of tokens, from
          there on. Same route buffer.
          (2) _moe_fwd_kernel, one program per block of BM sorted rows: gathers the x rows by token
          index, h = act(x @ w1 + b1) chunk by chunk over H, out = h @ w2 + b2, all in fp32
          accumulators, and writes out to o_tk[t, j] (the pair's own row: no collisions).
          y = sum_j g[t, j] * o_tk[t, j] is then a fixed-order sum over the k slots of that
          [T, k, O] buffer (O is small), so no float atomics are needed.
Backward (``triton_backward.backward``):
          (1) _moe_router_bwd_kernel: d logits from d g = <dy, o_tk> and from d probs.
          (2) _moe_bwd_rows_kernel (MLP experts only), one program per block of sorted rows:
          recomputes a = x @ w1 + b1 once and writes dA = (g dy @ w2^T) * act'(a) and h per
          sorted row, for the weight and input gradients.
          (3) _moe_bwd_weights_kernel: programs per (expert, weight tile) loop over that expert's
          blocks in order (fixed-order sums, no atomics).
          (4) _moe_bwd_input_kernel: programs per (block, tile of D) write d x per pair into a
          [T, k, D] buffer; d x = its fixed-order sum over the k slots.
"""

from __future__ import annotations

import torch
import triton.language as tl

from aam_kernels.backend import cdiv, empty, triton_kernel
from aam_kernels.moe.launch import MoELaunchConfig, launch_config
from aam_kernels.moe.state import MoEInputs, MoESaved
from aam_kernels.moe.triton_parts import ACT_CODE, block_rows, first_layer, pow2, split_route
from aam_kernels.moe.triton_route import route


def route_numel(T: int, k: int, E: int, bm: int) -> int:
    """Length of the int32 route buffer for blocks of ``bm`` sorted rows (see the module docstring)."""
    nb = cdiv(T * k, bm) + E
    return nb * bm + nb + E + 1


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
    i_e, o_m, m_m, b_pair = block_rows(p_pairs, p_blk_expert, tl.program_id(0).to(tl.int64), E, BM)
    o_tok = b_pair // K
    o_o = tl.arange(0, BO)
    m_o = o_o < O
    HH = H if HAS_W1 else D
    b_out = tl.zeros([BM, BO], dtype=tl.float32)
    if HAS_W1:
        for h0 in range(0, H, BH):
            o_h = h0 + tl.arange(0, BH)
            m_h = o_h < H
            b_a = first_layer(p_x, p_w1, p_b1, o_tok, m_m, i_e, o_h, m_h, D, H, s_xt, s_xd, BM, BD, BH)
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


# 16-bit inputs: the forward kernel pads the hidden layer to a multiple of this. Compiled with Triton
# 3.6 for an H200, the forward (4 warps, bf16 tensor-core dots) gave wrong outputs or an illegal memory
# access whenever H was not a multiple of 16; fp32 and the backward kernels were right at every H.
H_MULTIPLE_16BIT = 16


def pad_hidden(w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor):
    """Zero-pad the hidden layer of MLP experts to a multiple of ``H_MULTIPLE_16BIT``: the same
    function, since a padded unit has pre-activation 0, act(0) = 0 for gelu, relu and silu, and a
    zero row of w2. Returns (w1 [E, D, Hp], b1 [E, Hp], w2 [E, Hp, O], Hp)."""
    pad = -w1.shape[2] % H_MULTIPLE_16BIT
    w1 = torch.nn.functional.pad(w1, (0, pad))
    b1 = torch.nn.functional.pad(b1, (0, pad))
    w2 = torch.nn.functional.pad(w2, (0, 0, 0, pad))
    return w1, b1, w2, w1.shape[2]


def forward(inputs: MoEInputs, top_k: int, activation: str, renormalize: bool, backend: str, launch: MoELaunchConfig | None = None):
    """Same contract as ``cpu.forward``; the saved batches are empty (backward recomputes the hidden layer).
    ``backend``: "triton" (CUDA) or "interpret" (CPU); ``launch``: default ``launch_config(backend, x.dtype)``."""
    x, router_logits, w1, b1, w2, b2 = inputs
    cfg = launch or launch_config(backend, x.dtype)
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
        w1c, b1c, w2c, H_run = pad_hidden(w1c, b1c, w2c)

    route_buf = empty((route_numel(T, top_k, E, cfg.bm),), dtype=torch.int32, device=dev)
    nb, pairs, blk_expert, _ = split_route(route_buf, T, top_k, E, cfg.bm)
    probs, topi, gates, counts = route(router_logits, route_buf, top_k, renormalize, backend, cfg)
    o_tk = empty((T, top_k, O), dtype=torch.float32, device=dev)
    if T > 0:
        _moe_fwd_kernel.launch(
            backend, (nb,),
            x, w1c, b1c, w2c, b2c, pairs, blk_expert, o_tk,
            E, D, H_run, O, x.stride(0), x.stride(1),
            K=top_k, HAS_W1=w1 is not None, ACT=ACT_CODE[activation],
            BM=cfg.bm, BD=min(cfg.bd, pow2(D)), BH=min(cfg.bh, pow2(H_run)), BO=pow2(O),
            num_warps=cfg.num_warps,
        )  # fmt: skip
    y = (gates[:, :, None] * o_tk).sum(1).to(x.dtype)  # fixed-order sum over the k slots
    xp, a, h = (x.new_empty(E, 0, n, dtype=torch.float32) for n in (D, H, H))  # nothing saved: cap = 0
    return y, counts, MoESaved(probs, topi, gates, o_tk, route_buf, xp, a, h)
