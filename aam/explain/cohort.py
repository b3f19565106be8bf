"""Cohort Shapley values: each sample's prediction, less the mean prediction of the explained samples,
shared among its ASVs (and categorical values) by how much knowing each one narrows down the prediction.

For a sample s and a set S of its players (the ASVs the model saw in s, then the categorical columns),
the cohort C(S) is the explained samples that are similar to s on every player in S: an ASV is similar
when the other sample holds it at a relative abundance within a factor `ratio` of s's, a categorical
column when the values are equal. The value of S is the mean prediction over the cohort,

    v(S) = mean_{j in C(S)} f(x_j),    v({}) = mean over all explained samples,

and player i's attribution is its Shapley value phi_i = E_order[v(before_i + {i}) - v(before_i)] over
orders of the players (Mase, Owen and Seiler, "Explaining black box decisions by Shapley cohort
refinement", 2019). Knowing every player identifies the sample: v(all players) = f(x_s). (Where other
samples match s on every player, their cohort's mean differs from f(x_s) by what finer abundance
differences tell the model; setting v(all players) so shares that difference equally among s's players.)
The values telescope, so sum_i phi_i = f(x_s) - v({}) exactly: the attributions plus the baseline add
up to the prediction. An ASV absent from s is not a player, so its attribution is 0.

This credits an ASV for what its abundance tells about the prediction among the samples explained
("true to the data"), where integrated gradients credit what the network computes from it ("true to the
model"): ASVs that carry the same information share the credit, whichever of them a network happens to
read, so the ranking does not depend on the training seed. Exact (every order) for a sample with so few
players that their orders number no more than `permutations`; otherwise estimated from `permutations`
sampled orders in antithetic pairs (an order, then its reverse).
"""

from __future__ import annotations

import itertools
import math
import sys
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

# Positions of an order checked for every sample at once; a sample alike on all of them (rare: the cohort
# has usually shrunk to the sample itself by then) is checked on the rest of the order separately.
HEAD = 16
# Orders checked together: a chunk holds [chunk, HEAD, samples] booleans.
CHUNK_ELEMENTS = 1 << 24


@dataclass
class CohortAttribution:
    attributions: list[sp.csr_matrix]  # K x float64 [N, F]: per output, ASV attributions (0 where not a player)
    categorical: np.ndarray  # float64 [N, C, K]: attributions of the categorical columns
    mean: np.ndarray  # float64 [K]: v({}), the mean prediction over the explained samples


def similar(abundance: sp.csc_matrix, s: int, columns: np.ndarray, log_ratio: float) -> np.ndarray:
    """bool [N, len(columns)]: which samples hold each of s's ASVs `columns` at a relative abundance within a
    factor exp(log_ratio) of s's (s itself is always similar). `abundance` by columns: each sample reads
    only its own ASVs' columns."""
    block = abundance[:, columns].toarray()  # [N, m]
    own = block[s]
    with np.errstate(divide="ignore"):
        gap = np.abs(np.log(block) - np.log(own))  # inf where the other sample lacks the ASV
    return gap <= log_ratio


def orders(n_players: int, permutations: int, rng: np.random.Generator) -> np.ndarray:
    """int64 [P, n]: every order of the players when there are at most `permutations` of them; otherwise
    random orders in antithetic pairs (an order, then its reverse), P = `permutations` rounded up to even."""
    if math.factorial(n_players) <= permutations:
        return np.array(list(itertools.permutations(range(n_players))), dtype=np.int64).reshape(-1, n_players)
    half = [rng.permutation(n_players) for _ in range(-(-permutations // 2))]
    return np.stack([o for first in half for o in (first, first[::-1])])


def first_failures(differs: np.ndarray, order: np.ndarray, position: np.ndarray) -> np.ndarray:
    """int64 [P, N]: per order, the position of the first player each sample differs on (M if none).

    differs [N, M] bool; order, position [P, M] (position[p, order[p, k]] = k)."""
    n, m = differs.shape
    p = order.shape[0]
    head = min(m, HEAD)
    by_player = np.ascontiguousarray(differs.T)  # [M, N]
    first_fail = np.empty((p, n), dtype=np.int64)
    chunk = max(1, CHUNK_ELEMENTS // max(1, n * head))
    for start in range(0, p, chunk):
        block = by_player[order[start:start + chunk, :head]]  # [c, head, N]: differs on the k-th player?
        first = block.argmax(axis=1)  # [c, N]: the first True, or 0 where there is none
        hit = np.take_along_axis(block, first[:, None, :], axis=1)[:, 0]
        first_fail[start:start + chunk] = np.where(hit, first, m)
        if head < m:
            q, j = np.nonzero(~hit)  # alike on the whole head: look along the rest of the order
            q = q + start
            first_fail[q, j] = np.where(differs[j], position[q], m).min(axis=-1)
    return first_fail


def sample_shapley(sim: np.ndarray, values: np.ndarray, own: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Shapley values of one sample's players averaged over the given orders.

    sim [N, M] bool: which samples are similar on each player (the sample itself on all); values [N, K];
    own [K]: the sample's prediction, v(all players); order [P, M]. Returns phi [M, K].

    A sample j stays in the cohort after the first k players of an order iff it is similar on all of them,
    i.e. iff k <= first_fail_j, the order position of the first player it differs on (M if none). So
    v after k players is the mean of values over {j : first_fail_j >= k}: suffix sums of a histogram of
    first_fail weighted by values.
    """
    n, m = sim.shape
    k = values.shape[1]
    p = order.shape[0]
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.arange(m)[None, :], axis=1)  # [P, M]: where each player comes
    first_fail = first_failures(~sim, order, position)  # [P, N]
    flat = (first_fail + np.arange(p)[:, None] * (m + 1)).ravel()
    counts = np.bincount(flat, minlength=p * (m + 1)).reshape(p, m + 1)
    # suffix sums over k: members after k players = samples with first_fail >= k
    members = counts[:, ::-1].cumsum(axis=1)[:, ::-1]  # [P, M+1], >= 1 (the sample itself)
    phi = np.zeros((m, k))
    for out in range(k):
        sums = np.bincount(flat, weights=np.tile(values[:, out], p), minlength=p * (m + 1)).reshape(p, m + 1)
        v = sums[:, ::-1].cumsum(axis=1)[:, ::-1] / members  # [P, M+1]: v after k players
        step = np.diff(v, axis=1)  # [P, M]: the gain of the player at each position
        phi[:, out] = np.take_along_axis(step, position, axis=1).mean(axis=0)
        # v(all players) := own adds (own - cohort mean) to the last player's gain in every order, which
        # is each player in 1/M of all orders: exactly (own - cohort mean) / M each
        phi[:, out] += (own[out] - v[0, m]) / m
    return phi


def cohort_shapley(values: np.ndarray, abundance: sp.csr_matrix, players: list[np.ndarray],
                   categories: np.ndarray, ratio: float = 2.0, permutations: int = 128,
                   seed: int = 0, progress: bool = False) -> CohortAttribution:
    """values [N, K]: the predictions; abundance [N, F]: relative abundances; players[s]: the feature
    columns of s that the model saw (each with abundance > 0); categories [N, C]: the categorical values
    (object; None is a value of its own). `permutations` orders are sampled per sample, seeded by `seed`;
    `progress`: a bar over the samples."""
    values = np.asarray(values, dtype=np.float64)
    n, k = values.shape
    n_cat = categories.shape[1]
    abundance = sp.csc_matrix(abundance, dtype=np.float64)
    codes = np.stack([np.unique(categories[:, c].astype(str), return_inverse=True)[1].ravel()
                      for c in range(n_cat)], axis=1) if n_cat else np.zeros((n, 0), dtype=np.int64)
    log_ratio = float(np.log(ratio))
    rng = np.random.default_rng(seed)
    rows, cols, data = [], [], []
    categorical = np.zeros((n, n_cat, k))
    for s in tqdm(range(n), desc="cohort", unit="sample", file=sys.stderr, disable=not progress):
        columns = np.asarray(players[s], dtype=np.int64)
        assert len(columns) > 0, "every sample explained has reads, so the model saw at least one ASV"
        sim = np.concatenate([similar(abundance, s, columns, log_ratio), codes == codes[s]], axis=1)
        phi = sample_shapley(sim, values, values[s], orders(sim.shape[1], permutations, rng))
        rows.append(np.full(len(columns), s))
        cols.append(columns)
        data.append(phi[:len(columns)])
        categorical[s] = phi[len(columns):]
    f = abundance.shape[1]
    row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    col = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    value = np.concatenate(data) if data else np.zeros((0, k))
    attributions = [sp.csr_matrix((value[:, j], (row, col)), shape=(n, f)) for j in range(k)]
    return CohortAttribution(attributions, categorical, values.mean(axis=0))
