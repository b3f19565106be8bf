"""Data-parallel runs under `torchrun`: the process group, rank helpers and the collectives AAM uses.

`torchrun` starts one process per device and sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT. `session(device)` joins the process group from them (NCCL with one GPU per process,
LOCAL_RANK choosing it, for CUDA; gloo for the CPU) and leaves it at the end; without those variables
(or with one process) it does nothing, and every helper here answers as for a single process.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from aam.errors import UserError

T = TypeVar("T")


class ReportedElsewhere(UserError):
    """A user error this process shares with rank 0, which reports it; this process exits quietly."""


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int


_stats_group = None  # a second process group for the statistics all-reduces inside backward (see stats_group)


def launched_world() -> World | None:
    """The world torchrun describes in the environment, or None outside torchrun (or with one process)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return None
    return World(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group; RANK from torchrun before and after it exists)."""
    return dist.get_rank() if active() else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main_process() -> bool:
    """Rank 0 writes the files and prints; every process is rank 0 in a single-process run."""
    return rank() == 0


def rank_device(device: torch.device) -> torch.device:
    """CUDA in a data-parallel run: the GPU of this process (LOCAL_RANK); anything else as given."""
    if device.type == "cuda" and active():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


@contextlib.contextmanager
def session(device_name: str, timeout_minutes: float = 30.0):
    """Join the process group torchrun describes for the length of the block (nothing outside torchrun).

    Yields the World (or None). Other ranks' log warnings are silenced: rank 0 has the same ones.
    """
    global _stats_group
    world = launched_world()
    if world is None or active():
        yield None if world is None else World(rank(), world_size(), world.local_rank)
        return
    use_cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA GPU is available to this PyTorch (use --device cpu or auto)")
        if world.local_rank >= torch.cuda.device_count():
            raise UserError(f"LOCAL_RANK {world.local_rank} but only {torch.cuda.device_count()} GPU(s) here: "
                            "give torchrun --nproc-per-node at most the number of GPUs")
        torch.cuda.set_device(world.local_rank)
    # With CUDA, CPU tensors (flags, pickled objects) still go through gloo; GPU tensors through NCCL.
    dist.init_process_group("cpu:gloo,cuda:nccl" if use_cuda else "gloo", rank=world.rank,
                            world_size=world.size, timeout=datetime.timedelta(minutes=timeout_minutes))
    _stats_group = dist.new_group()
    quiet = logging.getLogger("aam")
    level = quiet.level
    if world.rank != 0:
        quiet.setLevel(logging.ERROR)
    try:
        yield world
    finally:
        quiet.setLevel(level)
        _stats_group = None
        dist.destroy_process_group()


def stats_group():
    """The process group for all-reduces that run inside autograd (the ASV BatchNorm's statistics), apart
    from the default group that DDP's gradient buckets use, so the two streams never interleave."""
    return _stats_group


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """In place: the sum over ranks (nothing in a single process). Returns `tensor`."""
    if active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(value: Any) -> list[Any]:
    """[value of rank 0, value of rank 1, ...] (pickled; for small or once-per-epoch data)."""
    if not active():
        return [value]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, value)
    return out


def broadcast_from_main(value: Any) -> Any:
    """Rank 0's `value` on every rank."""
    if not active():
        return value
    box = [value if is_main_process() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_every_rank(fn: Callable[[], T]) -> T:
    """Run `fn` on every rank and agree on failure: when a UserError stops any rank, every rank stops.

    Rank 0 raises the error of the lowest failing rank (naming that rank when it is not 0), the others
    raise ReportedElsewhere, so the user reads one line, not one per process.
    """
    result: T | None = None
    error = None
    try:
        result = fn()
    except UserError as exc:
        error = str(exc)
    errors = all_gather_objects(error)
    failed = [(r, e) for r, e in enumerate(errors) if e is not None]
    if failed:
        first_rank, message = failed[0]
        if not is_main_process():
            raise ReportedElsewhere(message)
        raise UserError(message if first_rank == 0 else f"rank {first_rank}: {message}")
    return result


def on_main_rank(fn: Callable[[], T]) -> T:
    """Run `fn` on rank 0 only and hand its result to every rank; its UserError stops every rank."""
    return broadcast_from_main(on_every_rank(lambda: fn() if is_main_process() else None))


def barrier() -> None:
    if active():
        dist.barrier()
