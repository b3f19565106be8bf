"""Record the launches of one kernel in a test."""

from __future__ import annotations


def record_grids(monkeypatch, kernel) -> list:
    """Wraps ``kernel.launch`` (an ``aam_kernels.backend.TritonKernel``) for the test's duration; the
    returned list gets the grid of every launch."""
    grids = []
    launch = kernel.launch

    def recording_launch(backend, grid, *args, **kwargs):
        grids.append(grid)
        return launch(backend, grid, *args, **kwargs)

    monkeypatch.setattr(kernel, "launch", recording_launch)
    return grids
