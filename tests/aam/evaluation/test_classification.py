"""Classification metrics against scikit-learn, the expected calibration error of a hand-computed case,
softmax against PyTorch in fp64, and the temperature fit against a grid of NLLs from PyTorch's cross entropy."""

import json
import math
import warnings

import numpy as np
import pytest
import torch
from sklearn import metrics as sk
from sklearn.preprocessing import label_binarize

from aam.evaluation.classification import (
    TEMPERATURE_BOUNDS, classification_metrics, expected_calibration_error, fit_temperature, reliability_curve,
    softmax_probabilities,
)


def _sample(n: int, k: int, seed: int, missing: float = 0.2):
    """Probabilities [n, k] with tied rows (logits rounded to 0.5) and observed levels, a share of them -1."""
    rng = np.random.default_rng(seed)
    logits = np.round(rng.normal(size=(n, k)) * 2) / 2
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    observed = rng.integers(0, k, n)
    observed[rng.random(n) < missing] = -1
    return probabilities, observed


def _sklearn_ranking(probabilities, y, k):
    if k == 2:
        return sk.roc_auc_score(y, probabilities[:, 1]), sk.average_precision_score(y, probabilities[:, 1])
    return (sk.roc_auc_score(y, probabilities, multi_class="ovr", average="macro", labels=range(k)),
            sk.average_precision_score(label_binarize(y, classes=range(k)), probabilities, average="macro"))


@pytest.mark.parametrize("n, k", [(7, 2), (200, 2), (150, 3), (301, 5)], ids=lambda v: str(v))
def test_metrics_match_scikit_learn_on_the_observed_rows(n, k):
    probabilities, observed = _sample(n, k, seed=n + k)
    observed[:k] = range(k)  # every level observed
    keep = observed >= 0
    p, y = probabilities[keep], observed[keep]
    predicted = p.argmax(axis=1)
    got = classification_metrics(probabilities, observed, [f"level {i}" for i in range(k)])
    auc, ap = _sklearn_ranking(p, y, k)
    brier = (sk.brier_score_loss(y, p[:, 1]) if k == 2 else sk.brier_score_loss(y, p, labels=range(k)))
    assert got["n"] == keep.sum() and got["levels"] == [f"level {i}" for i in range(k)]
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(y, predicted), abs=1e-12)
    assert got["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, predicted), abs=1e-12)
    assert got["roc_auc"] == pytest.approx(auc, abs=1e-12)
    assert got["average_precision"] == pytest.approx(ap, abs=1e-12)
    assert got["log_loss"] == pytest.approx(sk.log_loss(y, p, labels=range(k)), abs=1e-12)
    assert got["brier"] == pytest.approx(brier, abs=1e-12)
    assert got["confusion_matrix"] == sk.confusion_matrix(y, predicted, labels=range(k)).tolist()


def test_binary_brier_is_half_the_two_column_sum_and_multiclass_is_not_halved():
    p = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    y = np.array([0, 0, 1])
    # (0.2^2 + 0.7^2 + 0.6^2) / 3 per positive-class probability
    assert classification_metrics(p, y, ["a", "b"])["brier"] == pytest.approx((0.04 + 0.49 + 0.36) / 3)
    p3 = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1]])
    # (0.04 + 0.01 + 0.01 + 0.04 + 0.09 + 0.01) / 2, as scikit-learn's multiclass default
    assert classification_metrics(p3, np.array([0, 1]), ["a", "b", "c"])["brier"] == pytest.approx(0.1)


def test_a_level_never_observed_is_left_out_of_the_one_vs_rest_means():
    probabilities, observed = _sample(120, 4, seed=3, missing=0.1)
    observed[observed == 2] = 0
    keep = observed >= 0
    p, y = probabilities[keep], observed[keep]
    got = classification_metrics(probabilities, observed, list("abcd"))
    present = [0, 1, 3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns that level 2 is predicted but never observed
        balanced = sk.balanced_accuracy_score(y, p.argmax(axis=1))
    assert got["balanced_accuracy"] == pytest.approx(balanced, abs=1e-12)
    assert got["roc_auc"] == pytest.approx(np.mean([sk.roc_auc_score(y == c, p[:, c]) for c in present]), abs=1e-12)
    assert got["average_precision"] == pytest.approx(
        np.mean([sk.average_precision_score(y == c, p[:, c]) for c in present]), abs=1e-12)
    assert got["log_loss"] == pytest.approx(sk.log_loss(y, p, labels=range(4)), abs=1e-12)
    assert got["brier"] == pytest.approx(sk.brier_score_loss(y, p, labels=range(4)), abs=1e-12)


def test_log_loss_clips_a_zero_probability_like_scikit_learn():
    p = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]])
    y = np.array([1, 1, 0])
    got = classification_metrics(p, y, ["a", "b", "c"])["log_loss"]
    assert math.isfinite(got)
    assert got == pytest.approx(sk.log_loss(y, p, labels=range(3)), rel=1e-12)
    assert got == pytest.approx((-math.log(np.finfo(np.float64).eps) + math.log(2)) / 3, rel=1e-9)


# confidence, correct: 0.9 yes and 0.85 no share bin (0.8, 0.9]; 0.7 yes in (0.6, 0.7]; 0.5 (a tie, argmax is
# the first level) yes in (0.4, 0.5]; 0.6 no in (0.5, 0.6]; the last row is missing
ECE_PROBABILITIES = np.array([[0.9, 0.1], [0.15, 0.85], [0.3, 0.7], [0.5, 0.5], [0.4, 0.6], [0.2, 0.8]])
ECE_OBSERVED = np.array([0, 0, 1, 0, 0, -1])
ECE = 2 / 5 * abs(0.5 - 0.875) + 1 / 5 * abs(1 - 0.7) + 1 / 5 * abs(1 - 0.5) + 1 / 5 * abs(0 - 0.6)  # 0.43


def test_expected_calibration_error_of_a_hand_computed_case():
    assert classification_metrics(ECE_PROBABILITIES, ECE_OBSERVED, ["a", "b"])["ece"] == pytest.approx(ECE)
    assert expected_calibration_error(ECE_PROBABILITIES, ECE_OBSERVED) == pytest.approx(0.43)
    confidence, accuracy, count = reliability_curve(ECE_PROBABILITIES, ECE_OBSERVED)
    assert count.tolist() == [0, 0, 0, 0, 1, 1, 1, 0, 2, 0]
    np.testing.assert_allclose(confidence[[4, 5, 6, 8]], [0.5, 0.6, 0.7, 0.875])
    np.testing.assert_allclose(accuracy[[4, 5, 6, 8]], [1.0, 0.0, 1.0, 0.5])
    assert np.isnan(confidence[[0, 1, 2, 3, 7, 9]]).all() and np.isnan(accuracy[[0, 1, 2, 3, 7, 9]]).all()


def test_reliability_bins_close_on_the_right_and_other_bin_counts():
    p = np.array([[1.0, 0.0, 0.0], [0.2, 0.2, 0.6], [0.34, 0.33, 0.33]])
    confidence, accuracy, count = reliability_curve(p, np.array([0, 2, 1]), bins=5)
    assert count.tolist() == [0, 1, 1, 0, 1]  # 0.34 in (0.2, 0.4], 0.6 in (0.4, 0.6], 1.0 in (0.8, 1.0]
    np.testing.assert_allclose(accuracy[[1, 2, 4]], [0.0, 1.0, 1.0])


@pytest.mark.parametrize("k", [2, 3])
def test_one_observed_level_leaves_ranking_scores_undefined(k):
    probabilities, _ = _sample(20, k, seed=k, missing=0)
    observed = np.full(20, k - 1)
    observed[:3] = -1
    got = classification_metrics(probabilities, observed, [str(i) for i in range(k)])
    assert math.isnan(got["roc_auc"]) and math.isnan(got["average_precision"])
    p, y = probabilities[3:], observed[3:]
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(y, p.argmax(axis=1)))
    assert got["log_loss"] == pytest.approx(sk.log_loss(y, p, labels=range(k)), abs=1e-12)
    assert all(math.isfinite(got[m]) for m in ("balanced_accuracy", "brier", "ece"))


def test_no_observed_rows_gives_nan_metrics_and_json_ready_values():
    got = classification_metrics(np.full((4, 3), 1 / 3), np.full(4, -1), ("x", "y", "z"))
    assert got["n"] == 0 and got["confusion_matrix"] == [[0] * 3] * 3
    for name in ("accuracy", "balanced_accuracy", "roc_auc", "average_precision", "log_loss", "brier", "ece"):
        assert math.isnan(got[name])
    empty = classification_metrics(np.zeros((0, 2)), np.zeros(0, dtype=np.int64), ["a", "b"])
    assert empty["n"] == 0 and math.isnan(empty["accuracy"])
    probabilities, observed = _sample(30, 3, seed=5)
    full = classification_metrics(probabilities, observed, ["x", "y", "z"])
    assert json.loads(json.dumps(full, allow_nan=False)) == full  # plain ints, floats, strings and lists
    assert all(type(v) is int for row in full["confusion_matrix"] for v in row)


@pytest.mark.parametrize("probabilities, observed, levels, message", [
    (np.full((3, 2), 0.5), np.array([0, 1, 0]), ["a", "b", "c"], "3 levels"),
    (np.full((3, 2), 0.5), np.array([0, 2, 0]), ["a", "b"], "level indices"),
    (np.full((3, 2), 0.5), np.array([0, -2, 0]), ["a", "b"], "level indices"),
    (np.full((3, 2), 0.5), np.array([0.0, 1.0, 0.0]), ["a", "b"], "integer"),
    (np.full((3, 2), 0.5), np.array([0, 1]), ["a", "b"], "integer"),
    (np.full(3, 0.5), np.array([0, 1, 0]), ["a", "b"], "shape"),
])
def test_caller_mistakes_name_the_argument(probabilities, observed, levels, message):
    with pytest.raises(ValueError, match=message):
        classification_metrics(probabilities, observed, levels)


def test_softmax_matches_pytorch_in_fp64_for_large_logits():
    logits = np.array([[1000.0, 999.0, -1000.0], [-800.0, -801.0, -802.0], [0.0, 0.0, 0.0]])
    for temperature in (1.0, 0.3, 4.0):
        want = torch.softmax(torch.tensor(logits, dtype=torch.float64) / temperature, dim=1).numpy()
        got = softmax_probabilities(logits, temperature)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-300)
        np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-15)
    np.testing.assert_array_equal(softmax_probabilities(torch.tensor(logits, dtype=torch.float32)),
                                  softmax_probabilities(logits.astype(np.float32)))
    with pytest.raises(ValueError, match="temperature"):
        softmax_probabilities(logits, 0.0)


def _nll(logits, observed, temperature):
    keep = observed >= 0
    z = torch.tensor(logits[keep], dtype=torch.float64) / temperature
    return torch.nn.functional.cross_entropy(z, torch.tensor(observed[keep])).item()


def _draw(true_logits, rng):
    """One level per row drawn from softmax(true_logits)."""
    p = torch.softmax(torch.tensor(true_logits), dim=1).numpy()
    drawn = (rng.random((len(p), 1)) > np.cumsum(p, axis=1)).sum(axis=1)
    return np.minimum(drawn, p.shape[1] - 1).astype(np.int64)  # a cumulative sum rounded below 1


def test_fitted_temperature_is_no_worse_than_any_temperature_on_a_grid():
    rng = np.random.default_rng(11)
    logits = rng.normal(size=(400, 4)) * 2
    observed = _draw(logits * 0.7, rng)
    observed[::9] = -1
    t = fit_temperature(logits, observed)
    assert TEMPERATURE_BOUNDS[0] <= t <= TEMPERATURE_BOUNDS[1]
    best = _nll(logits, observed, t)
    grid = np.geomspace(*TEMPERATURE_BOUNDS, 801)
    assert best <= min(_nll(logits, observed, g) for g in grid) + 1e-9
    assert fit_temperature(torch.tensor(logits, dtype=torch.float32), observed) == pytest.approx(t, rel=1e-5)


def test_temperature_of_over_confident_logits_is_recovered():
    rng = np.random.default_rng(7)
    true_logits = rng.normal(size=(4000, 4)) * 1.5
    observed = _draw(true_logits, rng)
    assert fit_temperature(true_logits * 3, observed) == pytest.approx(3.0, rel=0.1)
    assert fit_temperature(true_logits, observed) == pytest.approx(1.0, rel=0.1)


def test_separable_rows_take_the_lowest_temperature():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, -1.0]])
    assert fit_temperature(logits, np.array([0, 1, 0])) == pytest.approx(TEMPERATURE_BOUNDS[0], rel=1e-12)


@pytest.mark.parametrize("observed", [[0, -1, -1], [-1, -1, -1], [1, 1, 1], [2, -1, 2]], ids=str)
def test_degenerate_temperature_fits_return_one(observed):
    logits = np.array([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0], [0.5, 0.5, 3.0]])
    assert fit_temperature(logits, np.array(observed)) == 1.0
