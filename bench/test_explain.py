"""`aam explain --method cohort` benchmarks (CPU): cohort Shapley values of a synthetic study of 1,000
samples, and their inner step, each sample's first differing player along every sampled order, by the
shipped search (the first 16 positions for every sample at once) and by the plain search over every
position, side by side.

Run on one core: `taskset -c 0 python -m pytest bench/test_explain.py --benchmark-only`.
"""

from __future__ import annotations

import numpy as np
import pytest

try:
    import scipy.sparse as sp

    from aam.explain.cohort import cohort_shapley, first_failures, orders, similar
except ImportError as exc:
    pytest.skip(f"explain benchmarks need the aam package and its dependencies ({exc})", allow_module_level=True)

N_SAMPLES, N_FEATURES, PER_SAMPLE, PERMUTATIONS, RATIO = 1_000, 400, 120, 128, 2.0


@pytest.fixture(scope="module")
def study():
    """Relative abundances [1,000, 400], 120 ASVs per sample, each ASV's log abundance around its own mean
    (SD 0.7), so that two samples holding an ASV are within 2x of each other about half the time; one
    prediction per sample."""
    rng = np.random.default_rng(0)
    players = [np.sort(rng.choice(N_FEATURES, PER_SAMPLE, replace=False)) for _ in range(N_SAMPLES)]
    rows = np.repeat(np.arange(N_SAMPLES), PER_SAMPLE)
    cols = np.concatenate(players)
    level = rng.normal(0.0, 2.0, N_FEATURES)
    counts = sp.csr_matrix((np.exp(level[cols] + rng.normal(0.0, 0.7, cols.size)), (rows, cols)),
                           shape=(N_SAMPLES, N_FEATURES))
    abundance = sp.csr_matrix(sp.diags(1.0 / np.asarray(counts.sum(axis=1)).ravel()) @ counts)
    return rng.normal(size=(N_SAMPLES, 1)), abundance, players


def plain_first_failures(differs: np.ndarray, position: np.ndarray) -> np.ndarray:
    """[P, N]: the minimum position over every player a sample differs on (M if none)."""
    return np.where(differs[None], position[:, None, :], differs.shape[1]).min(axis=-1)


@pytest.mark.parametrize("search", ["shipped", "plain"])
def test_first_failures_one_sample(benchmark, study, search):
    _, abundance, players = study
    differs = ~similar(sp.csc_matrix(abundance), 0, players[0], np.log(RATIO))  # [1,000, 120]
    order = orders(PER_SAMPLE, PERMUTATIONS, np.random.default_rng(1))
    position = np.argsort(order, axis=1)
    if search == "shipped":
        got = benchmark(first_failures, differs, order, position)
    else:
        got = benchmark(plain_first_failures, differs, position)
    np.testing.assert_array_equal(got, plain_first_failures(differs, position))
    benchmark.extra_info["mean_first_failure"] = float(got.mean())


def test_cohort_shapley_1000_samples(benchmark, study):
    values, abundance, players = study
    result = benchmark.pedantic(
        lambda: cohort_shapley(values, abundance, players, np.empty((N_SAMPLES, 0), dtype=object), RATIO,
                               PERMUTATIONS), rounds=1, iterations=1)
    total = result.mean[0] + np.asarray(result.attributions[0].sum(axis=1)).ravel()
    np.testing.assert_allclose(total, values[:, 0], atol=1e-9)
