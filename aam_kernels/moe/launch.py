"""How the moe_mlp Triton kernels are launched: a frozen value chosen from the backend and dtype by
``launch_config`` and passed to ``triton.forward`` / ``triton.backward``; tests and sweeps pass their
own. Importing this module does not import Triton."""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Routing runs one program per chunk of BT tokens from this many tokens on, one program for all
# tokens below it (same route buffer either way). Chunks are faster where the GPU routes many tokens;
# below, where the call is bound by the host, their extra host work (two buffers, the ticket) costs more
# than they save.
ROUTE_CHUNKS_FROM_TOKENS = 8192


@dataclass(frozen=True)
class MoELaunchConfig:
    bm: int  # BM: expert-sorted rows per program of the expert kernels
    bd: int  # BD: tile of D (clipped to next_pow2(D))
    bh: int  # BH: tile of H (of D for the weight gradient of Linear experts; clipped likewise)
    bt: int  # BT: tokens per step of the routing kernels, per chunk, per router-backward program
    bc: int  # BC: chunks per step of the chunked router's last program
    bp: int  # BP: pairs per step of the chunked router's last program
    num_warps: int
    route_chunks_from: int = ROUTE_CHUNKS_FROM_TOKENS  # T from which routing runs one program per chunk

    def route_chunks(self, tokens: int) -> bool:
        """Whether T = ``tokens`` is routed by the chunked kernel."""
        return tokens >= max(self.route_chunks_from, 1)


def launch_config(backend: str, dtype: torch.dtype) -> MoELaunchConfig:
    """The shipped configuration. Compiled: 64 sorted rows per program, the fastest BM the GPU sweep
    timed. 16-bit inputs take 128-wide D and H tiles with 8 warps (the weight-gradient kernel re-reads x
    once per H tile and d a once per D tile, so wider tiles read less); fp32 tiles stay 64 wide, since
    128-wide fp32 tiles need the shared memory of 256-wide 16-bit ones, more than an H200 has at the
    sweep's large shape. Interpreted: the smallest tiles tl.dot accepts (16), since the interpreter's
    cost grows with tile area."""
    if backend == "triton" and dtype.itemsize == 2:
        return MoELaunchConfig(bm=64, bd=128, bh=128, bt=128, bc=64, bp=1024, num_warps=8)
    if backend == "triton":
        return MoELaunchConfig(bm=64, bd=64, bh=64, bt=128, bc=64, bp=1024, num_warps=4)
    return MoELaunchConfig(bm=16, bd=16, bh=16, bt=16, bc=4, bp=16, num_warps=1)
