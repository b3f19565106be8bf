"""Suite-wide hook: the terminal summary says which device ran and what was skipped, and why.

Imports torch only, like bench/common.py, so the kernel benchmarks run where ``aam`` cannot be imported.
"""

from __future__ import annotations

from collections import Counter

from bench.common import GPU_SKIP, HAS_CUDA, device_name


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_terminal_summary(terminalreporter):
    reasons = Counter(_skip_reason(r) for r in terminalreporter.stats.get("skipped", []))
    write = terminalreporter.write_line
    terminalreporter.section("bench: devices and skips")
    write(f"CPU providers ran on: {device_name('cpu')}")
    if HAS_CUDA:
        write(f"GPU providers ran on: {device_name('cuda')}")
    gpu_skipped = reasons.pop(GPU_SKIP, 0)
    if gpu_skipped:
        write(f"{gpu_skipped} GPU provider benchmark(s) skipped: no CUDA device is visible, so this run has "
              "CPU figures only (bench/gpu_check.sh runs the GPU providers on a CUDA machine)")
    for reason, count in sorted(reasons.items()):
        write(f"{count} skipped: {reason}")
