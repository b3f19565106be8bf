"""Conformalized quantile regression (Romano, Patterson and Candes, 2019): after training, move each
predicted interval's ends by a constant found on held-out samples, so the interval covers its nominal share.

An interval is a pair of quantile levels lo < 0.5 < hi (the outermost pair, then inwards); its nominal
coverage is 1 - alpha = hi - lo. Each calibration sample i scores E_i = max(q_lo(x_i) - y_i, y_i - q_hi(x_i))
(negative inside the interval). The offset is the k-th smallest score, k = ceil((1 - alpha) (n + 1)); the
calibrated interval is [q_lo - offset, q_hi + offset] (a negative offset narrows it). When the calibration
samples and a new sample are exchangeable, the new sample falls inside with probability >= 1 - alpha. With
too few samples for that (k > n) the largest score is used, which keeps every calibration sample inside.
Levels outside every pair (the median) are not moved; after moving, the levels of a sample are sorted, so
they still never cross.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from aam.evaluation.labels import level_label


def interval_pairs(quantiles: tuple[float, ...]) -> list[tuple[int, int]]:
    """(lower, upper) positions into the sorted `quantiles`: the i-th lowest with the i-th highest level, as
    long as the lower level is below 0.5 and the upper one above."""
    pairs = []
    for i in range(len(quantiles) // 2):
        j = len(quantiles) - 1 - i
        if not quantiles[i] < 0.5 < quantiles[j]:
            break
        pairs.append((i, j))
    return pairs


def conformal_offset(lower: np.ndarray, upper: np.ndarray, observed: np.ndarray, coverage: float) -> float:
    """The offset of one interval from calibration samples (NaN observed skipped); 0 without any sample."""
    ok = ~np.isnan(observed)
    scores = np.sort(np.maximum(lower[ok] - observed[ok], observed[ok] - upper[ok]))
    n = len(scores)
    if n == 0:
        return 0.0
    # the small tolerance keeps (1 - alpha)(n + 1) = 8.0 from rounding up to 9 when it is 8.000000000000002
    k = min(math.ceil(coverage * (n + 1) - 1e-9), n)
    return float(scores[k - 1])


@dataclass
class IntervalCalibration:
    """The offsets of a trained quantile model, in original target units, and what they were fitted on."""

    pairs: list[tuple[int, int]]  # positions into the model's quantile levels
    offsets: list[list[float]]  # [T][P]: 0 for a target whose loss is not `quantile`
    calibrated: list[bool]  # [T]: whether the target's intervals were calibrated
    n: list[int]  # [T]: calibration samples with an observed value

    @classmethod
    def fit(cls, values: np.ndarray, observed: np.ndarray, quantiles: tuple[float, ...],
            calibrated: list[bool]) -> "IntervalCalibration":
        """values [N, T, Q] predicted quantiles and observed [N, T] of the calibration samples."""
        pairs = interval_pairs(quantiles)
        offsets = [[conformal_offset(values[:, t, i], values[:, t, j], observed[:, t], quantiles[j] - quantiles[i])
                    if calibrated[t] else 0.0 for i, j in pairs] for t in range(values.shape[1])]
        n = [int((~np.isnan(observed[:, t])).sum()) if calibrated[t] else 0 for t in range(values.shape[1])]
        return cls(pairs, offsets, list(calibrated), n)

    def shifts(self, n_levels: int) -> np.ndarray:
        """[T, Q] float64: what calibration adds to each level before sorting (-offset at a pair's lower
        level, +offset at its upper one, 0 elsewhere)."""
        out = np.zeros((len(self.offsets), n_levels))
        for t, target_offsets in enumerate(self.offsets):
            for (i, j), offset in zip(self.pairs, target_offsets):
                out[t, i] -= offset
                out[t, j] += offset
        return out

    def apply(self, values: np.ndarray) -> np.ndarray:
        """[N, T, Q] quantiles -> calibrated copy: each pair moved apart by its offset, then sorted per sample."""
        return np.sort(np.asarray(values, dtype=np.float64) + self.shifts(values.shape[-1]), axis=-1)

    def interval_offsets(self, t: int, quantiles: tuple[float, ...]) -> dict[str, float]:
        """{"<lo>-<hi>": offset} of target t (its metrics.json entry)."""
        return {f"{level_label(quantiles[i])}-{level_label(quantiles[j])}": offset
                for (i, j), offset in zip(self.pairs, self.offsets[t])}

    def to_dict(self) -> dict:
        return {"pairs": [list(p) for p in self.pairs], "offsets": self.offsets, "calibrated": self.calibrated,
                "n": self.n}

    @classmethod
    def from_dict(cls, values: dict) -> "IntervalCalibration":
        return cls([tuple(p) for p in values["pairs"]], [list(o) for o in values["offsets"]],
                   list(values["calibrated"]), list(values["n"]))
