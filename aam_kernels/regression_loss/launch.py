"""How the regression-loss Triton kernel is launched: a frozen value chosen from the shape by
``launch_config`` and passed to ``triton.forward``; tests and sweeps pass their own. Importing this
module does not import Triton."""

from __future__ import annotations

from dataclasses import dataclass

FLAT_MAX_K = 8  # widest K of the flat kernel: it reduces each column of a block separately
MAX_BLOCK_K = 64  # widest column tile of the tiled kernel


@dataclass(frozen=True)
class LossLaunchConfig:
    """Block sizes of one launch. The defaults are the shipped ones: 2048 elements and 4 warps per
    program (16 elements per thread) was the fastest block at every shape the GPU sweep timed
    (``bench/gpu_sweep.py``; figures in docs/performance.md)."""

    block: int = 2048  # elements per program: BLOCK flat elements, or [block // BLOCK_K rows, BLOCK_K] tiles
    num_warps: int = 4
    # Flat layout (K <= FLAT_MAX_K): each program owns a run of BLOCK flat elements e = n * K + k with K
    # a compile-time constant, and only the last program masks, so contiguous inputs load whole 16-byte
    # vectors; the tiled kernel's [rows, next_pow2(K)] tiles are K apart and masked, so they never do.
    flat_layout: bool = True
    finish_tile: int = 1024  # partial sums per step of the last program's reduction ([rows, columns] tile)

    def __post_init__(self):
        for name in ("block", "finish_tile"):
            value = getattr(self, name)
            if value < 1 or value & (value - 1):
                raise ValueError(f"LossLaunchConfig.{name} must be a power of 2, got {value}")


def launch_config(k: int) -> LossLaunchConfig:
    """The shipped configuration for K columns: the flat layout up to ``FLAT_MAX_K`` columns (as fast as
    the tiled one at K = 1, faster from K = 2), the tiled one beyond."""
    return LossLaunchConfig(flat_layout=k <= FLAT_MAX_K)
