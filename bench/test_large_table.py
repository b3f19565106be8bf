"""Large tables: preparing a simulated 100,000 samples x 200,000 features study (~500 ASVs per sample,
50 million nonzeros) the way `aam train` does, in a fresh process: time and peak resident memory.

    python -m pytest bench/test_large_table.py --benchmark-only

Goal: <= 4 GB peak and <= 60 s. Writing the table takes about a minute and 1.2 GB of disk (a
temporary folder; set AAM_BENCH_LARGE_TABLE=folder to keep and reuse it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.large_table import run_measurement, write_study

SAMPLES, FEATURES, PER_SAMPLE = 100_000, 200_000, 500


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    path = Path(os.environ.get("AAM_BENCH_LARGE_TABLE") or tmp_path_factory.mktemp("large_table"))
    if not (path / "table.biom").exists():
        write_study(path, SAMPLES, FEATURES, PER_SAMPLE)
    return path


def test_prepare_large_table(benchmark, folder):
    result = benchmark.pedantic(run_measurement, args=(folder,), rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    assert result["samples"] == SAMPLES and result["features"] == FEATURES
