"""Conformalized quantile regression: offsets of hand-computed cases, the pairing of levels, moving and
re-sorting the levels, and the coverage guarantee on simulated exchangeable samples."""

import numpy as np
import pytest

from aam.evaluation.conformal import IntervalCalibration, conformal_offset, interval_pairs

# interval [0, 1] for every sample; observed 0.5, 1.5, -0.3, 2.0 score -0.5, 0.5, 0.3, 1.0 (sorted: -0.5, 0.3,
# 0.5, 1.0); the offset is the ceil(coverage * 5)-th smallest, the largest when that passes 4
LOWER, UPPER = np.zeros(4), np.ones(4)
OBSERVED = np.array([0.5, 1.5, -0.3, 2.0])


@pytest.mark.parametrize("coverage, offset", [(0.5, 0.5),  # ceil(2.5) = 3rd
                                              (0.4, 0.3),  # ceil(2.0) = 2nd, not 3rd through rounding
                                              (0.8, 1.0),  # ceil(4.0) = 4th
                                              (0.9, 1.0),  # ceil(4.5) = 5 > 4 samples: the largest
                                              (0.1, -0.5)])  # ceil(0.5) = 1st
def test_offset_is_the_conformal_quantile_of_the_scores(coverage, offset):
    assert conformal_offset(LOWER, UPPER, OBSERVED, coverage) == pytest.approx(offset)


def test_intervals_that_cover_too_much_are_narrowed_and_missing_values_skipped():
    # [0, 10] around 4, 5, 6 (and a missing value): scores -4, -5, -4; ceil(0.5 * 4) = 2nd smallest = -4
    observed = np.array([4.0, 5.0, np.nan, 6.0])
    assert conformal_offset(np.zeros(4), np.full(4, 10.0), observed, 0.5) == pytest.approx(-4.0)
    assert conformal_offset(np.zeros(2), np.ones(2), np.array([np.nan, np.nan]), 0.8) == 0.0


@pytest.mark.parametrize("levels, pairs", [((0.1, 0.5, 0.9), [(0, 2)]),
                                           ((0.05, 0.25, 0.5, 0.75, 0.95), [(0, 4), (1, 3)]),
                                           ((0.1, 0.9), [(0, 1)]),
                                           ((0.1, 0.5), []),
                                           ((0.6, 0.9), []),
                                           ((0.2, 0.3, 0.9), [(0, 2)])])
def test_levels_pair_from_the_outside_in_across_the_median(levels, pairs):
    assert interval_pairs(levels) == pairs


def test_fit_and_apply_move_each_pair_and_keep_levels_sorted():
    levels = (0.1, 0.5, 0.9)
    # target 0: the hand case above (nominal 0.8 -> offset 1.0, widening); target 1 is not calibrated
    values = np.stack([np.stack([LOWER, np.full(4, 0.5), UPPER], axis=1), np.zeros((4, 3))], axis=1)  # [4, 2, 3]
    observed = np.stack([OBSERVED, OBSERVED], axis=1)
    calibration = IntervalCalibration.fit(values, observed, levels, [True, False])
    assert calibration.pairs == [(0, 2)]
    assert calibration.offsets == [[pytest.approx(1.0)], [0.0]]
    assert calibration.n == [4, 0]
    moved = calibration.apply(values)
    np.testing.assert_allclose(moved[:, 0], np.tile([-1.0, 0.5, 2.0], (4, 1)))
    np.testing.assert_array_equal(moved[:, 1], values[:, 1])
    assert calibration.interval_offsets(0, levels) == {"0.1-0.9": pytest.approx(1.0)}
    # narrowing past the median: [0, 10] with median 8 narrowed by 4 -> 4, 6, 8 after sorting
    narrow = IntervalCalibration([(0, 2)], [[-4.0]], [True], [3])
    np.testing.assert_allclose(narrow.apply(np.array([[[0.0, 8.0, 10.0]]])), [[[4.0, 6.0, 8.0]]])
    assert IntervalCalibration.from_dict(calibration.to_dict()) == calibration


@pytest.mark.parametrize("half_width", [0.3, 3.0])  # far too narrow, far too wide
def test_calibrated_intervals_cover_the_nominal_share_of_new_samples(half_width):
    """y = x + N(0, 1) with a fixed-width interval around x: after calibration on 400 samples, about 80% of
    50,000 new samples fall inside whatever the trained width (the guarantee is >= 80% on average over
    calibration sets, and at most 80% + 1/(n + 1) for continuous scores)."""
    rng = np.random.default_rng(0)

    def draw(n):
        x = rng.normal(size=n)
        return np.stack([x - half_width, x, x + half_width], axis=1)[:, None, :], (x + rng.normal(size=n))[:, None]

    values, observed = draw(400)
    calibration = IntervalCalibration.fit(values, observed, (0.1, 0.5, 0.9), [True])
    new_values, new_observed = draw(50_000)
    moved = calibration.apply(new_values)[:, 0]
    inside = ((new_observed[:, 0] >= moved[:, 0]) & (new_observed[:, 0] <= moved[:, 2])).mean()
    assert 0.76 <= inside <= 0.84, inside
    # the ideal half-width for N(0, 1) noise is the 0.9 quantile, 1.2816
    assert half_width + calibration.offsets[0][0] == pytest.approx(1.2816, abs=0.15)
