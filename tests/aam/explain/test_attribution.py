"""Integrated gradients: completeness against the model's own forward, zero for absent ASVs, batch
independence, quantile widths, categorical baselines, averaging models."""

import numpy as np
import pytest
import torch

from aam.data.batch import Batch
from aam.data.dataset import AAMDataset, make_loader
from aam.explain.attribution import attribute_batch, output_names, quadrature
from aam.explain.config import ExplainConfig
from aam.explain.explanation import explain_study
from aam.evaluation.conformal import IntervalCalibration
from aam.evaluation.inference import point_predictions, run_model, to_predictions

from explain_fixtures import MAX_BP, TOKEN_LIMIT, tiny_model

CPU = torch.device("cpu")


def ig(batch_size, steps, reference="empty") -> ExplainConfig:
    return ExplainConfig(method="integrated-gradients", batch_size=batch_size, steps=steps, reference=reference,
                         progress=False)


@pytest.mark.parametrize("reference", ["empty", "counts"])
def test_quadrature_integrates_smooth_functions(reference):
    nodes, weights = quadrature(64, reference)
    assert np.all((nodes > 0) & (nodes < 1))
    assert weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert (weights * nodes**3).sum() == pytest.approx(0.25, abs=1e-9)
    # a step of width 1e-3 near 0, the shape of a LayerNorm waking up: integral = 1 - 1e-3 (log spacing
    # resolves it; only the "empty" reference needs that)
    if reference == "empty":
        step = 1 / (1 + np.exp(-(np.log(nodes) - np.log(1e-3)) * 4))
        exact = 1 - 1e-3 * np.pi / 4 / np.sin(np.pi / 4)  # integral_0^1 of a^4 / (a^4 + c^4), c = 1e-3
        assert (weights * step).sum() == pytest.approx(exact, abs=1e-4)


def _batch(study, model, positions, batch_size):
    dataset = AAMDataset(study, positions, max_bp=MAX_BP, token_limit=TOKEN_LIMIT, encoders=model.encoder)
    return list(make_loader(dataset, batch_size, shuffle=False)), dataset


def _forward_units(loaded, batch):
    """The model's own prediction in target units: the independent reference for completeness."""
    with torch.no_grad():
        pred = loaded.model.forward_batch(batch).double()
    q = loaded.config.loss.quantiles
    point = point_predictions(pred, q) * loaded.scaler.std[0] + loaded.scaler.mean[0]
    return point[:, 0], (pred[:, 0, -1] - pred[:, 0, 0]) * loaded.scaler.std[0]


@pytest.mark.parametrize("reference,steps,tol", [("empty", 96, 2e-3), ("counts", 24, 1e-4)])
def test_attributions_plus_baseline_equal_the_prediction(study, reference, steps, tol):
    loaded = tiny_model(study)
    (batch, *_), _ = _batch(study, loaded, None, 8)
    result = attribute_batch(loaded.model, batch, loaded.scaler, (), steps, reference)
    point, _ = _forward_units(loaded, batch)
    np.testing.assert_allclose(result.prediction[:, 0], point, rtol=1e-5, atol=1e-5)
    spread = float(point.max() - point.min())
    assert spread > 0.05  # the samples' predictions differ, so completeness is not trivially met
    total = result.baseline[:, 0] + result.attribution[..., 0].sum(1)
    np.testing.assert_allclose(total, point, atol=tol * max(1.0, spread))
    assert torch.all(result.attribution[~batch.asv_mask] == 0)


@pytest.mark.parametrize("reference", ["empty", "counts"])
def test_a_relative_abundance_model_is_explained_through_its_own_input(study, reference):
    loaded = tiny_model(study, abundance="relative")
    (batch, *_), _ = _batch(study, loaded, None, 8)
    result = attribute_batch(loaded.model, batch, loaded.scaler, (), 96, reference)
    point, _ = _forward_units(loaded, batch)  # forward_batch reads log(1 + reads per 10,000), not log(1 + reads)
    np.testing.assert_allclose(result.prediction[:, 0], point, rtol=1e-5, atol=1e-5)
    spread = float(point.max() - point.min())
    np.testing.assert_allclose(result.baseline[:, 0] + result.attribution[..., 0].sum(1), point,
                               atol=2e-3 * max(1.0, spread))


@pytest.mark.parametrize("reference", ["empty", "counts"])
def test_the_linear_term_on_abundances_is_attributed_to_its_asvs(study, reference):
    loaded = tiny_model(study, linear=True)
    (batch, *_), _ = _batch(study, loaded, None, 8)
    result = attribute_batch(loaded.model, batch, loaded.scaler, (), 96, reference)
    point, _ = _forward_units(loaded, batch)  # forward_batch adds the linear term from the batch's abundances
    np.testing.assert_allclose(result.prediction[:, 0], point, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        loaded.model.linear.weight.zero_()
    without, _ = _forward_units(loaded, batch)
    spread = float(point.max() - point.min())
    assert (point - without).abs().max().item() > 0.05 * max(1.0, spread)  # the term moves the predictions
    np.testing.assert_allclose(result.baseline[:, 0] + result.attribution[..., 0].sum(1), point,
                               atol=2e-3 * max(1.0, spread))
    assert torch.all(result.attribution[~batch.asv_mask] == 0)


@pytest.mark.parametrize("kernel", ["rbf", "laplacian"])
@pytest.mark.parametrize("reference", ["empty", "counts"])
def test_a_kernel_regression_on_abundances_is_attributed_to_its_asvs(study, reference, kernel):
    steps, tol = 96, 2e-3  # the kernel's share runs on KERNEL_STEPS times as many nodes
    loaded = tiny_model(study, linear=True, kernel=kernel)
    (batch, *_), _ = _batch(study, loaded, None, 8)
    result = attribute_batch(loaded.model, batch, loaded.scaler, (), steps, reference)
    point, _ = _forward_units(loaded, batch)
    np.testing.assert_allclose(result.prediction[:, 0], point, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        loaded.model.linear.kernel.dual.zero_()
    without, _ = _forward_units(loaded, batch)
    spread = float(point.max() - point.min())
    assert (point - without).abs().max().item() > 0.05 * max(1.0, spread)  # the kernel moves the predictions
    np.testing.assert_allclose(result.baseline[:, 0] + result.attribution[..., 0].sum(1), point,
                               atol=tol * max(1.0, spread))
    assert torch.all(result.attribution[~batch.asv_mask] == 0)


def test_empty_reference_baseline_is_the_prediction_for_a_sample_without_reads(study):
    loaded = tiny_model(study)
    (batch, *_), _ = _batch(study, loaded, None, 5)
    result = attribute_batch(loaded.model, batch, loaded.scaler, (), 8, "empty")
    empty = Batch(batch.sample_ids, batch.asv_tokens[:1], torch.zeros_like(batch.asv_index[:, :1]),
                  torch.zeros_like(batch.asv_mask[:, :1]), torch.zeros_like(batch.log_counts[:, :1]),
                  torch.zeros_like(batch.rel_abundance[:, :1]), batch.targets, batch.categories)
    expected, _ = _forward_units(loaded, empty)
    np.testing.assert_allclose(result.baseline[:, 0], expected, rtol=1e-5, atol=1e-5)
    # the baseline differs between locations only through the categorical embedding
    codes = batch.categories[:, 0]
    for code in codes.unique():
        same = result.baseline[codes == code, 0]
        assert torch.allclose(same, same[0].expand_as(same), atol=1e-6)


def test_absent_asvs_get_zero_and_batches_do_not_matter(study):
    loaded = tiny_model(study)
    one = explain_study([loaded], study, CPU, ig(1, 32))
    seven = explain_study([loaded], study, CPU, ig(7, 32))
    a1, a7 = one.attributions[0].toarray(), seven.attributions[0].toarray()
    np.testing.assert_allclose(a1, a7, atol=2e-5)
    np.testing.assert_allclose(one.prediction, seven.prediction, atol=1e-5)
    counts = study.counts.toarray()
    assert np.all(a7[counts == 0] == 0)
    # beyond the token limit the model never sees an ASV: zero too; the seen ones are the top counts
    for i in range(study.n_samples):
        seen = np.flatnonzero(a7[i])
        assert len(seen) <= TOKEN_LIMIT
        assert counts[i, seen].min() >= np.sort(counts[i])[::-1][min(TOKEN_LIMIT, (counts[i] > 0).sum()) - 1]
    assert (counts > 0).sum(axis=1).max() > TOKEN_LIMIT  # the limit was in play


def test_quantile_model_explains_median_and_interval_width(study):
    loaded = tiny_model(study, quantiles=(0.1, 0.5, 0.9))
    assert output_names(("ph",), (0.1, 0.5, 0.9)) == ["ph", "ph_width"]
    (batch, *_), _ = _batch(study, loaded, None, 6)
    result = attribute_batch(loaded.model, batch, loaded.scaler, (0.1, 0.5, 0.9), 24, "counts")
    point, width = _forward_units(loaded, batch)
    np.testing.assert_allclose(result.prediction[:, 0], point, atol=1e-5)
    np.testing.assert_allclose(result.prediction[:, 1], width, atol=1e-5)
    assert torch.all(width > 0)
    np.testing.assert_allclose(result.baseline + result.attribution.sum(1), result.prediction, atol=1e-4)


def _calibrated(pairs, offsets):
    """A one-target calibration with the given offsets (target units) for the given level pairs."""
    return IntervalCalibration(pairs, [list(offsets)], [True], [50])


def _predict_widths(loaded, batch, calibration):
    """Highest minus lowest calibrated quantile through `aam predict`'s own path (run_model, to_predictions)."""
    p = to_predictions(run_model(loaded.model, [batch], CPU), loaded.scaler, loaded.config.loss.quantiles, calibration)
    return p.quantile_values[:, 0, -1] - p.quantile_values[:, 0, 0]


def test_calibrated_width_is_predicts_and_its_offset_goes_into_the_baseline(study):
    quantiles = (0.1, 0.5, 0.9)
    loaded = tiny_model(study, quantiles=quantiles)
    (batch, *_), _ = _batch(study, loaded, None, 8)
    calibration = _calibrated([(0, 2)], [0.7])
    plain = attribute_batch(loaded.model, batch, loaded.scaler, quantiles, 24, "counts")
    result = attribute_batch(loaded.model, batch, loaded.scaler, quantiles, 24, "counts", calibration)
    np.testing.assert_allclose(result.prediction[:, 1], _predict_widths(loaded, batch, calibration), atol=1e-5)
    np.testing.assert_allclose(result.prediction[:, 1], plain.prediction[:, 1] + 1.4, atol=1e-5)
    # the levels keep their order on the whole path, so the offset is a constant: same attributions
    np.testing.assert_allclose(result.baseline[:, 1], plain.baseline[:, 1] + 1.4, atol=1e-5)
    np.testing.assert_allclose(result.attribution, plain.attribution, atol=1e-6)
    np.testing.assert_allclose(result.prediction[:, 0], plain.prediction[:, 0], atol=1e-6)  # the median is not moved
    np.testing.assert_allclose(result.gap, 0, atol=1e-4)


def test_calibrated_width_stays_exact_where_a_negative_offset_reorders_the_levels(study):
    quantiles = (0.1, 0.25, 0.5, 0.75, 0.9)
    loaded = tiny_model(study, quantiles=quantiles)
    (batch, *_), _ = _batch(study, loaded, None, 8)
    # the outer pair moves inwards past the inner pair, which moves apart: the inner levels become the ends
    calibration = _calibrated([(0, 4), (1, 3)], [-3.0, 1.0])
    result = attribute_batch(loaded.model, batch, loaded.scaler, quantiles, 48, "counts", calibration)
    expected = _predict_widths(loaded, batch, calibration)
    np.testing.assert_allclose(result.prediction[:, 1], expected, atol=1e-5)
    plain = attribute_batch(loaded.model, batch, loaded.scaler, quantiles, 2, "counts")
    assert np.abs(expected - (plain.prediction[:, 1].numpy() - 6.0)).min() > 0.1  # not the width plus a constant
    np.testing.assert_allclose(result.baseline[:, 1] + result.attribution[..., 1].sum(1), result.prediction[:, 1],
                               atol=1e-3 * max(1.0, float(np.ptp(expected))))


def test_averaged_models_each_apply_their_own_calibration(study):
    quantiles = (0.1, 0.5, 0.9)
    first, second = tiny_model(study, quantiles, seed=0), tiny_model(study, quantiles, seed=1)
    first.calibration, second.calibration = _calibrated([(0, 2)], [0.5]), _calibrated([(0, 2)], [1.5])
    both = explain_study([first, second], study, CPU, ig(8, 16, "counts"))
    (batch, *_), _ = _batch(study, first, None, study.n_samples)
    expected = (_predict_widths(first, batch, first.calibration) + _predict_widths(second, batch, second.calibration)) / 2
    np.testing.assert_allclose(both.prediction[:, 1], expected, atol=1e-5)
    np.testing.assert_allclose(both.gap, 0, atol=1e-4)


def test_mixture_of_experts_head_is_explained(study):
    loaded = tiny_model(study, moe_experts=3)
    (batch, *_), _ = _batch(study, loaded, None, 6)
    result = attribute_batch(loaded.model, batch, loaded.scaler, (), 32, "counts")
    point, _ = _forward_units(loaded, batch)
    np.testing.assert_allclose(result.prediction[:, 0], point, atol=1e-5)


def test_averaging_models_averages_their_attributions(study):
    first, second = tiny_model(study, seed=0), tiny_model(study, seed=1)
    both = explain_study([first, second], study, CPU, ig(8, 16, "counts"))
    each = [explain_study([m], study, CPU, ig(8, 16, "counts"))
            for m in (first, second)]
    np.testing.assert_allclose(both.attributions[0].toarray(),
                               (each[0].attributions[0].toarray() + each[1].attributions[0].toarray()) / 2, atol=1e-9)
    np.testing.assert_allclose(both.prediction, (each[0].prediction + each[1].prediction) / 2, atol=1e-9)
    assert both.n_models == 2
    np.testing.assert_allclose(both.gap, 0, atol=1e-4)
