"""A spy on the Tensor methods that read a tensor's values into Python (on a GPU each waits for the device
to finish all queued work), counting the calls made while chosen functions run.

Used by test_host_syncs.py and the data-parallel worker it starts (a helper module, not a test module).
"""

from __future__ import annotations

import contextlib
import functools
import traceback
from collections import Counter

import torch

READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__")


class HostReads:
    """`with HostReads().watching(obj, "method", ...)` (methods of an instance, patched on the instance):
    `counts[method]` is the number of tensor reads made inside calls of `obj.method`, `calls[method]` the
    number of those calls, `where` the first few places read."""

    def __init__(self):
        self.counts: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.where: list[str] = []
        self.inside: list[str] = []
        self.reading = False

    def record(self, read: str) -> None:
        if self.inside:
            self.counts[self.inside[-1]] += 1
            if len(self.where) < 5:
                frame = traceback.extract_stack(limit=3)[0]
                self.where.append(f"Tensor.{read} in {self.inside[-1]} at {frame.filename}:{frame.lineno}")

    @contextlib.contextmanager
    def watching(self, owner, *methods: str):
        originals = {name: getattr(torch.Tensor, name) for name in READS}
        watched = {name: getattr(owner, name) for name in methods}

        def spy(name, fn):
            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                if self.reading:  # one read that calls another counts once
                    return fn(*args, **kwargs)
                self.record(name)
                self.reading = True
                try:
                    return fn(*args, **kwargs)
                finally:
                    self.reading = False
            return wrapper

        def inside(name, fn):
            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                self.calls[name] += 1
                self.inside.append(name)
                try:
                    return fn(*args, **kwargs)
                finally:
                    self.inside.pop()
            return wrapper

        try:
            for name, fn in originals.items():
                setattr(torch.Tensor, name, spy(name, fn))
            for name, fn in watched.items():
                setattr(owner, name, inside(name, fn))
            yield self
        finally:
            for name, fn in originals.items():
                setattr(torch.Tensor, name, fn)
            for name in watched:
                delattr(owner, name)  # the class's method shows through again
