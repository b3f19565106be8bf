"""Classification plots: every file is written as a PNG, also with missing rows, one observed level or none;
the macro one-vs-rest ROC curve encloses scikit-learn's macro AUC."""

import numpy as np
import pytest
from sklearn import metrics as sk

from aam.evaluation.class_plots import plot_classifier, plot_roc_methods
from aam.evaluation.classification import macro_roc_curve

PNG = b"\x89PNG\r\n\x1a\n"


def _sample(n: int, k: int, seed: int):
    rng = np.random.default_rng(seed)
    logits = np.round(rng.normal(size=(n, k)), 1)
    observed = rng.integers(0, k, n)
    observed[rng.random(n) < 0.2] = -1
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), observed


def _assert_pngs(paths, names):
    assert [p.name for p in paths] == names
    for path in paths:
        assert path.read_bytes()[:8] == PNG


@pytest.mark.parametrize("k", [2, 4])
def test_classifier_plots_are_written(tmp_path, k):
    probabilities, observed = _sample(60, k, seed=k)
    paths = plot_classifier(tmp_path / "plots", "body site/habitat", probabilities, observed,
                            [f"level {i}" for i in range(k)])
    _assert_pngs(paths, [f"{kind}_body_site_habitat.png" for kind in ("roc", "precision_recall", "confusion",
                                                                     "reliability")])


@pytest.mark.parametrize("observed", [[1, 1, -1, 1, 1], [-1] * 5], ids=["one-level", "none-observed"])
def test_classifier_plots_survive_undefined_curves(tmp_path, observed):
    probabilities, _ = _sample(5, 3, seed=1)
    paths = plot_classifier(tmp_path, "diet", probabilities, np.array(observed), ["a", "b", "c"])
    _assert_pngs(paths, ["roc_diet.png", "precision_recall_diet.png", "confusion_diet.png", "reliability_diet.png"])


@pytest.mark.parametrize("k", [2, 3])
def test_methods_share_one_roc_plot(tmp_path, k):
    probabilities, observed = _sample(80, k, seed=10 + k)
    prior = np.tile(np.bincount(observed[observed >= 0], minlength=k) / np.sum(observed >= 0), (80, 1))
    curves = {"aam": probabilities, "forest": probabilities[::-1].copy(), "prior": prior}
    path = plot_roc_methods(tmp_path, "diet", curves, observed, [str(i) for i in range(k)],
                            {"aam": "AAM", "forest": "random forest"})
    _assert_pngs([path], ["cv_roc_diet.png"])
    one_level = np.where(observed >= 0, 0, -1)
    _assert_pngs([plot_roc_methods(tmp_path, "one", curves, one_level, [str(i) for i in range(k)], {})],
                 ["cv_roc_one.png"])


@pytest.mark.parametrize("k", [2, 3, 5])
def test_macro_roc_curve_encloses_the_macro_auc(k):
    probabilities, observed = _sample(150, k, seed=20 + k)
    keep = observed >= 0
    p, y = probabilities[keep], observed[keep]
    fpr, tpr = macro_roc_curve(probabilities, observed, k)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    want = (sk.roc_auc_score(y, p[:, 1]) if k == 2
            else sk.roc_auc_score(y, p, multi_class="ovr", average="macro", labels=range(k)))
    assert np.trapezoid(tpr, fpr) == pytest.approx(want, abs=1e-12)
    assert len(macro_roc_curve(probabilities, np.where(keep, 1, -1), k)[0]) == 0
