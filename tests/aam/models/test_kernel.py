"""The kernel regressions on abundances: the forward pass by hand, and the choice and fit against
scikit-learn's `KernelRidge` and `Ridge`."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.spatial.distance import cdist
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import Ridge, RidgeCV

from aam.data.encoders import TargetScaler
from aam.data.tokenizer import tokenize
from aam.models.identity import vocabulary
from aam.models.kernel import KINDS, ASVKernel, dense_distances, sparse_distances
from aam.models.layout import OutputLayout
from aam.models.linear import ASVLinear
from aam.training.linear_init import (ALPHAS, KERNEL_ALPHAS, KERNEL_GAMMAS, choose_kernel, fit_start, group_folds,
                                     linear_features)


def test_forward_is_the_dual_weighted_sum_of_rbf_and_laplacian_kernels():
    rng = np.random.default_rng(0)
    kernel = ASVKernel(6, 4, 3)
    landmarks, dual = rng.random((6, 4)), rng.normal(size=(6, 3))
    kernel.set_landmarks(torch.from_numpy(landmarks))
    for column, (kind, gamma) in enumerate([(0, 0.0), (1, 0.7), (2, 0.3)]):  # linear (adds nothing), RBF, Laplacian
        kernel.set_column(column, kind, gamma, torch.from_numpy(dual[:, column]))
    loaded = ASVKernel(6, 4, 3)
    loaded.load_state_dict(kernel.state_dict())  # the kinds come back with the buffers
    assert loaded.kinds == [0, 1, 2]
    u = rng.random((5, 4))
    out = loaded(torch.from_numpy(u).float()).double().numpy()
    expected = np.zeros((5, 3))
    for b in range(5):
        for j in range(6):
            expected[b, 1] += dual[j, 1] * np.exp(-0.7 * np.sum((u[b] - landmarks[j]) ** 2))
            expected[b, 2] += dual[j, 2] * np.exp(-0.3 * np.sum(np.abs(u[b] - landmarks[j])))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def _sparse_batch(rng, samples: int, vocabulary: int, landmarks: np.ndarray) -> np.ndarray:
    """[samples, vocabulary] features, a fifth of them nonzero; row 0 empty, row 1 equal to landmark 2."""
    u = rng.random((samples, vocabulary)) * (rng.random((samples, vocabulary)) < 0.2)
    u[0] = 0
    u[1] = landmarks[2]
    return u


@pytest.mark.parametrize("kind, metric", [(1, "sqeuclidean"), (2, "cityblock")])
def test_sparse_distances_match_scipy_and_the_dense_form_with_their_gradients(kind, metric):
    rng = np.random.default_rng(7)
    landmarks = rng.random((9, 30)) * (rng.random((9, 30)) < 0.3)
    u = _sparse_batch(rng, 6, 30, landmarks)
    expected = cdist(u, landmarks, metric)  # float64
    features = torch.tensor(u, dtype=torch.float32, requires_grad=True)
    sparse = sparse_distances(features, torch.tensor(landmarks, dtype=torch.float32), [kind])[kind]
    dense_features = features.detach().clone().requires_grad_(True)
    dense = dense_distances(dense_features, torch.tensor(landmarks, dtype=torch.float32), [kind])[kind]
    np.testing.assert_allclose(sparse.detach().numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dense.detach().numpy(), expected, rtol=1e-5, atol=1e-5)
    assert sparse[1, 2] >= 0 and sparse[1, 2] < 1e-5  # a sample that is a landmark: zero, never below
    weights = torch.from_numpy(rng.normal(size=(6, 9))).float()
    (grad_sparse,) = torch.autograd.grad((sparse * weights).sum(), features)
    (grad_dense,) = torch.autograd.grad((dense * weights).sum(), dense_features)
    present = u != 0  # at an absent feature the sparse form has no gradient; every path the explanations
    # integrate keeps an absent feature at 0, where that gradient is multiplied by 0
    np.testing.assert_allclose(grad_sparse.numpy()[present], grad_dense.numpy()[present], rtol=1e-4, atol=1e-5)


def test_a_samples_kernel_outputs_do_not_depend_on_the_rest_of_its_batch():
    rng = np.random.default_rng(8)
    landmarks = rng.random((40, 50)) * (rng.random((40, 50)) < 0.3)
    kernel = ASVKernel(40, 50, 2)
    kernel.set_landmarks(torch.from_numpy(landmarks))
    kernel.set_column(0, 1, 0.2, torch.from_numpy(rng.normal(size=40)))
    kernel.set_column(1, 2, 0.1, torch.from_numpy(rng.normal(size=40)))
    u = torch.from_numpy(_sparse_batch(rng, 8, 50, landmarks)).float()
    whole = kernel(u)
    assert torch.equal(torch.cat([kernel(u[:3]), kernel(u[3:])]), whole)
    assert all(torch.equal(kernel(u[b:b + 1])[0], whole[b]) for b in range(8))


def test_group_folds_keep_each_group_whole_and_need_two_groups():
    groups = np.repeat(np.arange(9), [1, 2, 3, 1, 4, 2, 2, 1, 3])
    folds = group_folds(groups, seed=3)
    assert len(np.unique(folds)) == 5
    for g in np.unique(groups):
        assert len(np.unique(folds[groups == g])) == 1
    assert group_folds(np.zeros(4, dtype=int), seed=3) is None


def _niche_study(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(counts [n, 12], y [n]): ASVs whose abundances peak at a latent value; y is that value, so it responds to
    the abundances along curves."""
    y = rng.uniform(-2, 2, n)
    optima = np.linspace(-2.5, 2.5, 12)
    rate = 200 * np.exp(-((y[:, None] - optima[None]) ** 2) / 0.5)
    counts = rng.poisson(rate + 0.5)
    counts[:, 0] += 1
    return counts, y


def _reference_choice(x, z, folds, ridge_alpha):
    """(error, kind, gamma, alpha) of scikit-learn's fits on `folds`, the lowest; kind 0: the ridge regression."""
    def error(model, x_):
        prediction = np.empty(len(z))
        for k in np.unique(folds):
            test = folds == k
            prediction[test] = model.fit(x_[~test], z[~test]).predict(x_[test])
        return np.abs(prediction - z).mean()

    best = (error(Ridge(alpha=ridge_alpha), x), 0, 0.0, 0.0)
    for kind, metric in ((1, "sqeuclidean"), (2, "cityblock")):
        d = cdist(x, x, metric)
        scale = np.median(d[np.triu_indices(len(z), 1)])
        for gamma in KERNEL_GAMMAS / scale:
            for alpha in KERNEL_ALPHAS:
                e = error(KernelRidge(alpha=alpha, kernel=KINDS[kind], gamma=gamma), x)
                if e < best[0] - 1e-9:
                    best = (e, kind, gamma, alpha)
    return best


@pytest.mark.parametrize("curved", [True, False])
def test_the_choice_is_the_lowest_grouped_error_of_scikit_learns_fits(curved):
    rng = np.random.default_rng(1)
    counts, y = _niche_study(60, rng)
    if not curved:  # a target linear in the features: the ridge regression may win
        x0 = linear_features(sp.csr_matrix(counts), np.arange(12), 12).toarray()
        y = x0 @ rng.normal(size=12) + rng.normal(0, 0.05, 60)
    x = linear_features(sp.csr_matrix(counts), np.arange(12), 12).toarray()
    z = (y - y.mean()) / y.std()
    groups = np.arange(60) // 3
    distances = {1: cdist(x, x, "sqeuclidean"), 2: cdist(x, x, "cityblock")}
    choice = choose_kernel(x, z, groups, distances, 0.5, seed=2)
    _, kind, gamma, alpha = _reference_choice(x, z, group_folds(groups, 2), 0.5)
    if kind == 0:
        assert choice is None
    else:
        assert choice[0] == kind
        np.testing.assert_allclose(choice[1:], (gamma, alpha), rtol=1e-9)
    if curved:
        assert kind != 0  # the curved response is the case the kernels are for


def test_fit_start_holds_scikit_learns_kernel_ridge_for_a_curved_target_and_ridge_for_a_class():
    rng = np.random.default_rng(4)
    counts, y = _niche_study(80, rng)
    tokens = tokenize(["".join(rng.choice(list("ACGT"), 20)) for _ in range(12)], 20)
    vocab = vocabulary(counts, tokens, 2)
    linear = ASVLinear(vocab.numel(), 1 + 2, kernel_samples=80)
    linear.set_vocabulary(vocab)
    level = (y > 0).astype(float)
    scaler = TargetScaler(("y", "level"), [y.mean(), np.nan], [y.std(), np.nan])
    groups = np.arange(80) // 4
    fit_start(linear, sp.csr_matrix(counts), tokens, np.stack([y, level], 1), OutputLayout((0, 2)), scaler,
              seed=5, groups=groups)
    kernel = linear.kernel
    kind, gamma = int(kernel.kind[0]), float(kernel.gamma[0])
    assert kind in (1, 2) and kernel.kind[1:].tolist() == [0, 0]  # the class logits stay linear
    assert torch.all(linear.weight[:, 0] == 0) and linear.bias[0] == 0
    rows = linear.rows(torch.from_numpy(tokens)).numpy()
    x = linear_features(sp.csr_matrix(counts), rows, vocab.numel()).toarray()
    np.testing.assert_allclose(kernel.landmarks.numpy(), x, rtol=1e-6, atol=1e-7)
    z = (y - y.mean()) / y.std()
    _, kind_ref, gamma_ref, alpha_ref = _reference_choice(x, z, group_folds(groups, 5), _ridge_alpha(x, z))
    assert kind == kind_ref
    np.testing.assert_allclose(gamma, gamma_ref, rtol=1e-6)
    reference = KernelRidge(alpha=alpha_ref, kernel=KINDS[kind], gamma=gamma_ref).fit(x, z)
    new_counts, _ = _niche_study(10, rng)
    x_new = linear_features(sp.csr_matrix(new_counts), rows, vocab.numel()).toarray()
    with torch.no_grad():
        out = kernel(torch.from_numpy(x_new).float())[:, 0].numpy()
    np.testing.assert_allclose(out, reference.predict(x_new), rtol=1e-3, atol=1e-3)


def _ridge_alpha(x, z):
    return RidgeCV(alphas=ALPHAS).fit(x, z).alpha_
