"""How the cross-entropy Triton kernel is launched: a frozen value chosen from the shape by ``launch_config``
and passed to ``triton.forward``; tests pass their own. Importing this module does not import Triton."""

from __future__ import annotations

from dataclasses import dataclass

MAX_CLASSES = 4096  # widest C the kernel takes: each program holds whole rows, [rows, next_pow2(C)]


@dataclass(frozen=True)
class CrossEntropyLaunchConfig:
    """Block sizes of one launch. A program owns ``block // next_pow2(C)`` whole rows (at least one), so
    the softmax of a row never leaves the program; 2048 elements and 4 warps per program is the
    regression-loss kernel's shipped block, the same memory-bound shape of work."""

    block: int = 2048  # elements per program: [block // BLOCK_C rows, BLOCK_C columns]
    num_warps: int = 4
    finish_tile: int = 1024  # partial sums per step of the last program's reduction

    def __post_init__(self):
        for name in ("block", "finish_tile"):
            value = getattr(self, name)
            if value < 1 or value & (value - 1):
                raise ValueError(f"CrossEntropyLaunchConfig.{name} must be a power of 2, got {value}")


def launch_config(c: int) -> CrossEntropyLaunchConfig:
    """The shipped configuration for C classes (the same at every C up to ``MAX_CLASSES``)."""
    return CrossEntropyLaunchConfig()
