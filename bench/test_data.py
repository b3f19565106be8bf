"""Data-layer benchmarks (CPU): building the dataset for the udca study, and collating one batch.

Run on one core: `taskset -c 0 python -m pytest bench/test_data.py --benchmark-only`.
Goal (docs/performance.md): collate 64 samples x 1,024 ASVs x 150 bp in <= 20 ms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

try:
    import scipy.sparse as sp

    from aam.data import AAMDataset, Study, load_study
except ImportError as exc:
    pytest.skip(f"data-layer benchmarks need the aam package and its dependencies ({exc})", allow_module_level=True)

UDCA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "udca_gut"
N_SAMPLES, N_FEATURES, DRAWS, BATCH, TOKENS, MAX_BP = 5_000, 20_000, 1_400, 64, 1_024, 150


@pytest.fixture(scope="module")
def synthetic_study() -> Study:
    """5,000 samples x 20,000 features, ~1,350 ASVs per sample (so every sample fills 1,024 slots)."""
    rng = np.random.default_rng(0)
    rows = np.repeat(np.arange(N_SAMPLES), DRAWS)
    cols = rng.integers(0, N_FEATURES, N_SAMPLES * DRAWS)
    counts = sp.csr_matrix((rng.integers(1, 1_000, rows.size).astype(np.float64), (rows, cols)),
                           shape=(N_SAMPLES, N_FEATURES))
    counts.sum_duplicates()
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, (N_FEATURES, MAX_BP))]
    sequences = [row.tobytes().decode() for row in letters]
    return Study(counts=counts, sample_ids=[f"s{i}" for i in range(N_SAMPLES)], feature_ids=sequences,
                 sequences=sequences, target_columns=("y",), targets=rng.normal(size=(N_SAMPLES, 1)),
                 categorical_columns=(), categories=np.empty((N_SAMPLES, 0), dtype=object), metadata=None)


@pytest.mark.parametrize("sampling", ["abundance", "random"])
def test_collate_64x1024x150(benchmark, synthetic_study, sampling):
    ds = AAMDataset(synthetic_study, max_bp=MAX_BP, token_limit=TOKENS, asv_sampling=sampling, train=True)
    positions = np.random.default_rng(1).choice(len(ds), BATCH, replace=False)
    # Timed: the per-sample selection (__getitem__) and the collate, i.e. what a DataLoader does per batch.
    batch = benchmark(lambda: ds.collate([ds[int(p)] for p in positions]))
    assert batch.asv_mask.shape == (BATCH, TOKENS) and bool(batch.asv_mask.all())
    assert batch.asv_tokens.shape[1] == MAX_BP
    benchmark.extra_info["distinct_asvs"] = int(batch.asv_tokens.shape[0])


def test_build_dataset_synthetic(benchmark, synthetic_study):
    benchmark.pedantic(lambda: AAMDataset(synthetic_study, max_bp=MAX_BP, token_limit=TOKENS, train=True),
                       rounds=3, iterations=1)


def _udca():
    if not UDCA.exists():
        pytest.skip(f"real data not available: {UDCA}")
    return dict(table=UDCA / "table.qza", sequences=UDCA / "rep-seqs.qza", metadata=UDCA / "sra-submission-sheet.tsv",
                target_columns=["host_age"], categorical_columns=["host_sex"], group_column="host_subject_id")


def test_load_study_udca(benchmark):
    kwargs = _udca()
    study = benchmark.pedantic(lambda: load_study(**kwargs), rounds=5, iterations=1)
    assert study.n_samples == 802


def test_build_dataset_udca(benchmark):
    study = load_study(**_udca())
    ds = benchmark(lambda: AAMDataset(study, max_bp=MAX_BP, token_limit=TOKENS, train=True))
    assert len(ds) == 802
