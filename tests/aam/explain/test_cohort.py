"""Cohort Shapley values against a brute-force Shapley sum over subsets, written from the definition with
plain Python; completeness, absent ASVs, the similarity boundary, and `explain_study`'s use of them."""

import itertools
from math import factorial

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from aam.explain.attribution import attribute_batch
from aam.explain.cohort import HEAD, cohort_shapley, first_failures, orders
from aam.explain.config import ExplainConfig
from aam.explain.explanation import explain_study
from aam.data.dataset import AAMDataset, make_loader

from explain_fixtures import MAX_BP, TOKEN_LIMIT, tiny_model

CPU = torch.device("cpu")
RATIO = 2.0


def brute_force(values, abundance, categories, s, columns):
    """Exact Shapley values of sample s's players (its ASV `columns`, then each categorical column); the
    value of a set is the mean over the samples similar on all of it, except that all players together
    are worth the sample's own value."""
    players = [("asv", c) for c in columns] + [("category", c) for c in range(categories.shape[1])]

    def similar(j, player):
        kind, c = player
        if kind == "category":
            return categories[j, c] == categories[s, c]
        a, b = abundance[j, c], abundance[s, c]
        return a > 0 and max(a, b) / min(a, b) <= RATIO

    def value(subset):
        if len(subset) == len(players):
            return values[s]
        members = [j for j in range(len(values)) if all(similar(j, p) for p in subset)]
        return values[members].mean(axis=0)

    m = len(players)
    phi = []
    for i, player in enumerate(players):
        others = players[:i] + players[i + 1:]
        total = 0.0
        for size in range(m):
            weight = factorial(size) * factorial(m - size - 1) / factorial(m)
            for subset in itertools.combinations(others, size):
                total = total + weight * (value(subset + (player,)) - value(subset))
        phi.append(total)
    return np.array(phi)  # [M, K]


def small_case(n_features=4, seed=0):
    rng = np.random.default_rng(seed)
    n = 9
    # abundances on a grid of factors 1.5 apart, so no pair sits on the 2x boundary
    abundance = 1.5 ** rng.integers(0, 6, size=(n, n_features)) * (rng.random((n, n_features)) < 0.75)
    abundance[np.arange(n), rng.integers(0, n_features, n)] = 1.0  # every sample holds an ASV
    abundance /= abundance.sum(axis=1, keepdims=True)
    categories = np.array(["a", "b", None, "a", "b", "a", None, "b", "a"], dtype=object)[:, None]
    values = rng.normal(size=(n, 2))
    return abundance, categories, values


def test_matches_the_shapley_sum_over_subsets_when_every_order_is_used():
    abundance, categories, values = small_case()
    players = [np.flatnonzero(row > 0) for row in abundance]
    result = cohort_shapley(values, sp.csr_matrix(abundance), players, categories, RATIO, permutations=120)
    for s in range(len(values)):
        want = brute_force(values, abundance, categories, s, players[s])
        got_asvs = np.stack([a.toarray()[s, players[s]] for a in result.attributions], axis=1)
        np.testing.assert_allclose(got_asvs, want[:len(players[s])], atol=1e-12)
        np.testing.assert_allclose(result.categorical[s], want[len(players[s]):], atol=1e-12)
    np.testing.assert_allclose(result.mean, values.mean(axis=0), atol=1e-15)


def test_sampled_orders_approach_the_exact_values():
    abundance, categories, values = small_case(n_features=7, seed=1)
    players = [np.flatnonzero(row > 0) for row in abundance]
    s = int(np.argmax([len(p) for p in players]))
    assert factorial(len(players[s]) + 1) > 2000  # sampled, not enumerated
    want = brute_force(values, abundance, categories, s, players[s])[:len(players[s]), 0]
    errors = []
    for permutations in (20, 2000):
        result = cohort_shapley(values, sp.csr_matrix(abundance), players, categories, RATIO, permutations, seed=3)
        errors.append(np.abs(result.attributions[0].toarray()[s, players[s]] - want).max())
    assert errors[1] < 0.05 * np.ptp(values[:, 0])
    assert errors[1] < errors[0]


def test_attributions_and_baseline_add_up_to_the_prediction():
    abundance, categories, values = small_case(n_features=6, seed=2)
    players = [np.flatnonzero(row > 0) for row in abundance]
    result = cohort_shapley(values, sp.csr_matrix(abundance), players, categories, RATIO, permutations=16)
    for k, a in enumerate(result.attributions):
        total = result.mean[k] + result.categorical[:, :, k].sum(axis=1) + np.asarray(a.sum(axis=1)).ravel()
        np.testing.assert_allclose(total, values[:, k], atol=1e-12)
        assert np.ptp(values[:, k]) > 1.0  # the predictions differ, so this is not met trivially


def test_samples_alike_on_every_player_still_add_up_to_their_own_predictions():
    """Samples 0 and 1 share every ASV abundance and category but not their predictions (as two samples
    whose abundances differ by less than the similarity ratio can): each one's attributions still add up
    to its own prediction, and match the exact values with all players worth the sample's own value."""
    abundance, categories, values = small_case(seed=4)
    abundance[1], categories[1] = abundance[0], categories[0]
    players = [np.flatnonzero(row > 0) for row in abundance]
    result = cohort_shapley(values, sp.csr_matrix(abundance), players, categories, RATIO, permutations=120)
    for s in (0, 1):
        total = result.mean + result.categorical[s].sum(axis=0) + [a[s].sum() for a in result.attributions]
        np.testing.assert_allclose(total, values[s], atol=1e-12)
        want = brute_force(values, abundance, categories, s, players[s])
        np.testing.assert_allclose([a.toarray()[s, players[s]] for a in result.attributions],
                                   want[:len(players[s])].T, atol=1e-12)
    assert np.abs(values[0] - values[1]).max() > 0.5


def test_absent_asvs_and_asvs_that_are_not_players_get_zero():
    abundance, categories, values = small_case(n_features=6, seed=5)
    players = [np.flatnonzero(row > 0)[:-1] for row in abundance]  # the last present ASV: beyond a token limit
    result = cohort_shapley(values, sp.csr_matrix(abundance), players, categories, RATIO, permutations=16)
    for a in result.attributions:
        dense = a.toarray()
        for s, row in enumerate(abundance):
            outside = np.setdiff1d(np.arange(len(row)), players[s])
            assert np.all(dense[s, outside] == 0)
        assert np.any(dense != 0)


def test_similarity_is_a_ratio_of_relative_abundances():
    """Sample 0 holds the ASV at 0.1; sample 1 at 0.19 (within 2x) and sample 2 at 0.21 (beyond): knowing
    the ASV leaves samples 0 and 1 in the cohort (mean 2) where sample 2's own cohort is itself; with two
    players (the ASV and a constant category) the exact Shapley values show both."""
    abundance = np.array([[0.1, 0.9], [0.19, 0.81], [0.21, 0.79]])
    values = np.array([[3.0], [1.0], [-4.0]])
    same = np.array([["x"]] * 3, dtype=object)  # a category that narrows nothing
    result = cohort_shapley(values, sp.csr_matrix(abundance), [np.array([0])] * 3, same, RATIO, permutations=2)
    # sample 0: the ASV alone brings v from 0 to 2, the pair is worth 3; the category alone adds nothing
    # phi_asv = (2 - 0 + 3 - 0) / 2, phi_category = (0 - 0 + 3 - 2) / 2
    assert result.attributions[0][0, 0] == pytest.approx(2.5)
    assert result.categorical[0, 0, 0] == pytest.approx(0.5)
    # sample 2 (0.21): 0.21 / 0.19 is within 2x, 0.21 / 0.1 is not: the ASV leaves samples 1 and 2 (mean -1.5)
    assert result.attributions[0][2, 0] == pytest.approx((-1.5 - 0 + -4 - 0) / 2)


def test_orders_are_all_orders_or_antithetic_pairs():
    rng = np.random.default_rng(0)
    every = orders(3, 6, rng)
    assert sorted(map(tuple, every)) == sorted(itertools.permutations(range(3)))
    sampled = orders(6, 9, rng)
    assert sampled.shape == (10, 6)
    for first, second in zip(sampled[::2], sampled[1::2]):
        np.testing.assert_array_equal(second, first[::-1])
        assert sorted(first) == list(range(6))


@pytest.mark.parametrize("players", [5, HEAD, 3 * HEAD + 1])
def test_first_failures_match_a_plain_search_along_each_order(players):
    """Many samples alike on the first HEAD positions of an order, so the search past them runs too."""
    rng = np.random.default_rng(players)
    differs = rng.random((60, players)) < 0.03
    differs[0] = False  # the sample itself
    order = orders(players, 40, rng)
    position = np.argsort(order, axis=1)
    want = np.array([[next((k for k in range(players) if differs[j, order[q, k]]), players) for j in range(60)]
                     for q in range(len(order))])
    assert (want >= min(players, HEAD)).sum() > 60  # the search past the head is exercised
    np.testing.assert_array_equal(first_failures(differs, order, position), want)


def _model_outputs(loaded, study):
    """The model's outputs in target units through the integrated-gradients code (checked against `aam
    predict` in the CLI tests): an independent path to the predictions that cohort attributions explain."""
    dataset = AAMDataset(study, max_bp=MAX_BP, token_limit=TOKEN_LIMIT, encoders=loaded.encoder)
    batch = next(iter(make_loader(dataset, study.n_samples, shuffle=False)))
    result = attribute_batch(loaded.model, batch, loaded.scaler, loaded.config.loss.quantiles, 2, "counts",
                             loaded.calibration)
    return result.prediction.numpy(), dataset


def test_explain_study_attributes_the_models_predictions_over_its_slots(study):
    quantiles = (0.1, 0.5, 0.9)
    loaded = tiny_model(study, quantiles)
    e = explain_study([loaded], study, CPU, ExplainConfig(batch_size=7, permutations=32, progress=False))
    expected, dataset = _model_outputs(loaded, study)
    np.testing.assert_allclose(e.prediction, expected, atol=1e-5)
    assert e.prediction.shape[1] == 2  # the median and the interval width
    np.testing.assert_allclose(e.gap, 0, atol=1e-9)
    counts = study.counts.toarray()
    beyond = [np.setdiff1d(np.flatnonzero(counts[i]), dataset[i].features) for i in range(study.n_samples)]
    assert sum(map(len, beyond)) > 0
    for k in range(2):
        dense = e.attributions[k].toarray()
        assert np.all(dense[counts == 0] == 0)
        for i in range(study.n_samples):
            assert np.all(dense[i, beyond[i]] == 0)  # the model never saw them


def test_averaged_models_are_explained_through_their_mean_prediction(study):
    first, second = tiny_model(study, seed=0), tiny_model(study, seed=1)
    config = ExplainConfig(permutations=16, progress=False)
    both = explain_study([first, second], study, CPU, config)
    each = [explain_study([m], study, CPU, config) for m in (first, second)]
    np.testing.assert_allclose(both.prediction, (each[0].prediction + each[1].prediction) / 2, atol=1e-12)
    # the same orders and cohorts: Shapley values are linear in the predictions
    np.testing.assert_allclose(both.attributions[0].toarray(),
                               (each[0].attributions[0].toarray() + each[1].attributions[0].toarray()) / 2,
                               atol=1e-12)
    assert both.n_models == 2
