"""The linear model on abundances: its forward pass by hand, and its ridge start against scikit-learn."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.linear_model import LogisticRegressionCV, RidgeCV
from sklearn.model_selection import StratifiedKFold

from aam.config import DataConfig, LossConfig, ModelConfig, RunConfig, TrainConfig
from aam.data.simulate import write_simulation
from aam.data.tokenizer import tokenize
from aam.models.identity import sequence_hashes, vocabulary
from aam.models.linear import ASVLinear
from aam.training import build_run
from aam.data.encoders import TargetScaler
from aam.models.layout import OutputLayout
from aam.training.linear_init import ALPHAS, CS, fit_start

SEQUENCES = ["ACGTAC", "ACGTAG", "TTTT", "ACGTACN", "GGA"]
# scikit-learn 1.8+ announces new defaults for LogisticRegressionCV that leave an L2 fit unchanged
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _feature(r: float) -> float:
    return math.log(1 + r / 1e-5) / math.log(1 + 1e5)


def _hand_features(counts: np.ndarray, tokens: np.ndarray, min_samples: int) -> np.ndarray:
    """[n, V]: the reference features, one column per distinct sequence held by >= min_samples samples, in
    hash order: the sum of f(relative abundance) over the features with that sequence."""
    rel = counts / counts.sum(1, keepdims=True)
    feature = np.vectorize(_feature)(rel)
    hashes = sequence_hashes(torch.from_numpy(tokens)).numpy()
    kept = sorted({h for h in hashes if (counts[:, hashes == h].sum(1) > 0).sum() >= min_samples})
    return np.stack([feature[:, hashes == h].sum(1) for h in kept], axis=1)


def test_forward_sums_the_log_feature_of_the_known_asvs_times_their_weights():
    tokens = torch.from_numpy(tokenize(SEQUENCES, 8))
    hashes = sequence_hashes(tokens)
    vocab = torch.sort(hashes[[0, 2, 3]]).values  # ASVs 1 and 4 are unknown
    linear = ASVLinear(3, 2)
    linear.set_vocabulary(vocab)
    torch.manual_seed(0)
    with torch.no_grad():
        linear.weight.normal_()
        linear.bias.normal_()
    index = torch.tensor([[0, 1, 2, 4], [3, 2, 0, 0]])
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    rel = torch.tensor([[0.5, 0.2, 0.25, 0.05], [0.001, 0.3, 0.7, 0.0]])
    out = linear(tokens, index, mask, rel).double()
    row = {h: i for i, h in enumerate(vocab.tolist())}
    w, b = linear.weight.detach().double(), linear.bias.detach().double()
    for s in range(2):
        expected = b.clone()
        for a in range(4):
            h = hashes[index[s, a]].item()
            if mask[s, a] and h in row:
                expected += _feature(rel[s, a].item()) * w[row[h]]
        torch.testing.assert_close(out[s], expected, rtol=1e-5, atol=1e-6)


def test_the_start_is_scikit_learns_ridge_and_logistic_fits_and_the_forward_pass_reproduces_them():
    rng = np.random.default_rng(3)
    sequences = ["".join(rng.choice(list("ACGT"), 20)) for _ in range(11)]
    sequences.append(sequences[4])  # two features with the same kept nucleotides share one weight
    tokens = tokenize(sequences, 20)
    n, f = 40, len(sequences)
    counts = rng.poisson(3.0, (n, f)) * (rng.random((n, f)) < 0.6)
    counts[:, 7] = 0
    counts[0, 7] = 5  # held by one sample: outside a vocabulary of ASVs held by at least 2
    counts[:, 0] += 1  # no empty sample
    rel = counts / counts.sum(1, keepdims=True)
    feature = np.vectorize(_feature)(rel)
    targets = np.stack([feature[:, 1] * 3 - feature[:, 5] + rng.normal(0, 0.1, n),
                        feature[:, 2] + rng.normal(0, 0.1, n)], axis=1)
    targets[[3, 9], 1] = np.nan  # a missing value leaves that sample out of that target's fit
    levels = (feature[:, 3] > np.median(feature[:, 3])).astype(float) + (feature[:, 6] > 0)  # 3 levels
    levels[5] = np.nan
    mean, std = np.nanmean(targets, 0), np.nanstd(targets, 0)
    z = (targets - mean) / std
    scaler = TargetScaler(("a", "level", "b"), [mean[0], np.nan, mean[1]], [std[0], np.nan, std[1]])

    vocab = vocabulary(counts, tokens, 2)
    linear = ASVLinear(vocab.numel(), 2 + 3)  # two regression columns, then the three class logits
    linear.set_vocabulary(vocab)
    layout = OutputLayout((0, 3, 0))  # targets a, level (classified), b
    fit_start(linear, sp.csr_matrix(counts), tokens, np.stack([targets[:, 0], levels, targets[:, 1]], 1), layout,
              scaler, balanced=True, seed=4)

    x = _hand_features(counts, tokens, 2)
    assert x.shape[1] == vocab.numel() == 10  # 12 features: one duplicate, one held by one sample
    for t in range(2):
        known = ~np.isnan(z[:, t])
        ridge = RidgeCV(alphas=ALPHAS).fit(x[known], z[known, t])
        np.testing.assert_allclose(linear.weight[:, t].detach().numpy(), ridge.coef_, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(linear.bias[t].item(), ridge.intercept_, rtol=1e-4, atol=1e-6)
    known = ~np.isnan(levels)
    cv = StratifiedKFold(5, shuffle=True, random_state=4)
    logistic = LogisticRegressionCV(Cs=CS, cv=cv, scoring="neg_log_loss", class_weight="balanced",
                                    max_iter=2000).fit(x[known], levels[known].astype(int))
    np.testing.assert_allclose(linear.weight[:, 2:].detach().numpy(), logistic.coef_.T, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(linear.bias[2:].detach().numpy(), logistic.intercept_, rtol=1e-3, atol=1e-5)

    # the forward pass on the samples' own slots gives the ridge predictions
    slots = [np.flatnonzero(counts[i]) for i in range(n)]
    width = max(len(s) for s in slots)
    index = torch.zeros(n, width, dtype=torch.int64)
    mask = torch.zeros(n, width, dtype=torch.bool)
    rel_slots = torch.zeros(n, width)
    for i, s in enumerate(slots):
        index[i, :len(s)], mask[i, :len(s)] = torch.from_numpy(s), True
        rel_slots[i, :len(s)] = torch.from_numpy(rel[i, s]).float()
    with torch.no_grad():
        out = linear(torch.from_numpy(tokens), index, mask, rel_slots)
    ridge = RidgeCV(alphas=ALPHAS).fit(x, z[:, 0])
    np.testing.assert_allclose(out[:, 0].numpy(), ridge.predict(x), rtol=1e-4, atol=1e-4)


def test_a_run_starts_its_linear_term_from_its_training_samples_only(tmp_path):
    write_simulation(tmp_path, n_samples=30, seed=1, n_features=16)
    config = RunConfig(
        DataConfig(table=str(tmp_path / "table.biom"), metadata=str(tmp_path / "metadata.tsv"),
                   target_columns=("ph", "ph_class", "temperature"), max_bp=20, token_limit=16),
        ModelConfig(embedding_dim=8, attention_heads=2, asv_layers=0, sample_layers=1, asv_linear=3,
                    asv_kernel="linear"),
        LossConfig(loss_type="quantile", quantiles=(0.1, 0.5, 0.9)),
        TrainConfig(epochs=1, batch_size=8, device="cpu", progress=False))
    ids = [f"sample_{i:02d}" for i in range(30)]
    run = build_run(config, "cpu", split=(ids[8:], ids[:8]))
    study, train = run.data.study, run.data.train_idx
    counts = study.counts[train].toarray()
    x = _hand_features(counts, run.data.train_set.tokens, 3)
    assert run.config.model.linear_vocabulary == x.shape[1]
    linear = run.model.linear
    for column, name in enumerate(("ph", "temperature")):  # the regression targets, then the class logits
        y = study.targets[train, study.target_columns.index(name)]
        ridge = RidgeCV(alphas=ALPHAS).fit(x, (y - y.mean()) / y.std())
        np.testing.assert_allclose(linear.weight[:, column].detach().numpy(), ridge.coef_, rtol=1e-4, atol=1e-6)
    # ph_class's three logits: a multinomial logistic regression on the level indices
    y = run.data.train_set.targets[:, 1]
    logistic = LogisticRegressionCV(Cs=CS, cv=StratifiedKFold(5, shuffle=True, random_state=42),
                                    scoring="neg_log_loss", max_iter=2000).fit(x, y.astype(int))
    np.testing.assert_allclose(linear.weight[:, 2:].detach().numpy(), logistic.coef_.T, rtol=1e-3, atol=1e-5)
