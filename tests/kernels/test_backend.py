"""Backend plumbing: an interpreted launch leaves triton.language as it found it."""

from __future__ import annotations

import pytest
import torch

from aam_kernels import regression_loss, use_backend
from aam_kernels.backend import triton_import_error

pytestmark = pytest.mark.skipif(triton_import_error() is not None, reason="no triton")


def test_interpreted_launch_restores_triton_language():
    """The interpreter swaps tl builtins (and a kernel calling tl.sum swaps them without swapping back);
    a compiled kernel built afterwards in the same process needs the originals."""
    import triton.language as tl

    owners = (tl, tl.core, tl.math, tl.core.tensor)
    before = [dict(vars(owner)) for owner in owners]
    with use_backend("interpret"):
        regression_loss(torch.randn(5, 3), torch.randn(5, 3), under=0.5, over=0.5)  # the kernel calls tl.sum
    for owner, saved in zip(owners, before):
        now = vars(owner)
        assert now.keys() == saved.keys(), owner
        changed = [name for name in saved if now[name] is not saved[name]]
        assert not changed, f"{owner}: {changed[:5]}"
