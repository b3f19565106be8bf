"""Integrated gradients per ASV slot: how much each ASV moves a sample's prediction, in target units.

The model reads each (sample, slot) as one input vector, x_i = asv_vector_i + count_embedding(abundance_i)
(abundance_i = log(1 + reads), or log(1 + reads per 10,000) for `--abundance relative`; see
`AAMRegressor.abundance_input`), and, with `--asv-linear`, a second one, the linear model's (and its
kernels') input v_i = f(relative abundance_i) (`aam.models.linear`). It sees nothing else of the ASV.
Integrated gradients along the straight line from a reference x_i^0 to x_i (and from v_i^0 = 0, no reads,
in either reference, to v_i) gives, for every output y (a target's point prediction, or a quantile model's
interval width, calibrated as `aam predict` reports it),

    attribution_i = sum_d (x_i - x_i^0)_d * integral_0^1 dy/dx_i,d (x^0 + a (x - x^0), a v) da
                    + v_i * integral_0^1 dy/dv_i (x^0 + a (x - x^0), a v) da,

and the attributions of a sample sum to y(x) - y(x^0) (completeness), up to the quadrature error that
`BatchAttribution.gap` reports. References (`REFERENCES`):

- "empty": x^0 = 0 for every slot. Padding slots hold zeros, so y(x^0) is the model's prediction for a
  sample with no reads (with the sample's categorical values): the same number for every sample.
- "counts": x^0 = asv_vector_i + count_embedding(0): every ASV keeps its sequence, reads start at zero,
  so attributions measure what the abundances add to a per-sample baseline.

The model runs in eval mode (ASVBatchNorm uses running statistics, no dropout), so each sample's
outputs depend on that sample alone: gradients of the batch sum are per-sample gradients, and a
sample's attributions do not depend on its batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from aam.data.batch import Batch
from aam.data.encoders import TargetScaler
from aam.models import AAMRegressor
from aam.evaluation.conformal import IntervalCalibration
from aam.evaluation.classes import ClassLevels
from aam.evaluation.inference import point_predictions

REFERENCES = ("empty", "counts")
# "empty": the nodes below EMPTY_KNEE share EMPTY_SHARE_BELOW of the steps (linear there); the rest are
# log-spaced above it. Near a = 0 every LayerNorm input is a * x, and LayerNorm(a x) only moves while
# a * std(x) is near sqrt(eps) (~3e-3): the output changes fastest at small a, which log spacing resolves.
EMPTY_KNEE = 1e-5
EMPTY_SHARE_BELOW = 0.125


def quadrature(steps: int, reference: str) -> tuple[np.ndarray, np.ndarray]:
    """Nodes a_k in (0, 1) and weights w_k with sum_k w_k g(a_k) ~ integral_0^1 g(a) da (float64 [steps])."""
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}; got {reference!r}")
    if reference == "counts":
        return _gauss_legendre(steps, 0.0, 1.0)
    below = max(1, int(round(steps * EMPTY_SHARE_BELOW)))
    above = steps - below
    assert above >= 1, "the 'empty' reference needs at least 2 steps"
    a_lo, w_lo = _gauss_legendre(below, 0.0, EMPTY_KNEE)
    u, w_u = _gauss_legendre(above, np.log(EMPTY_KNEE), 0.0)
    a_hi = np.exp(u)
    return np.concatenate([a_lo, a_hi]), np.concatenate([w_lo, w_u * a_hi])  # da = a du


def _gauss_legendre(n: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.legendre.leggauss(n)
    half = (hi - lo) / 2
    return lo + half * (x + 1), w * half


def output_names(target_columns, quantiles: tuple[float, ...], classes: ClassLevels | None = None) -> list[str]:
    """One output per regression target (`<t>`: point prediction), plus `<t>_width` (highest - lowest
    quantile, after the model's conformal calibration when it has one: see `output_values`); then per
    classification target `<t>=<level>`, the log-odds of a level (of the second level only for two)."""
    regression = [t for t in target_columns if classes is None or t not in classes.levels]
    names = list(regression)
    if len(quantiles) > 1:
        names += [f"{t}_width" for t in regression]
    for t in classes.positions if classes is not None else ():
        names += [f"{target_columns[t]}={level}" for level in explained_levels(classes, t)]
    return names


def explained_levels(classes: ClassLevels, target: int) -> list[str]:
    """The levels whose log-odds are explained: the second of two (the first's are their negatives), else all."""
    levels = classes.levels[classes.target_columns[target]]
    return levels[1:] if len(levels) == 2 else levels


def log_odds(logits: torch.Tensor) -> torch.Tensor:
    """[B, K] logits -> [B, K]: log(p_k / (1 - p_k)) = z_k - logsumexp_{j != k} z_j, p = softmax(z)."""
    k = logits.shape[1]
    others = logits[:, None, :].expand(-1, k, -1).masked_fill(torch.eye(k, dtype=torch.bool, device=logits.device),
                                                              float("-inf"))
    return logits - torch.logsumexp(others, dim=-1)


def output_values(pred_z: torch.Tensor, scaler: TargetScaler, quantiles: tuple[float, ...],
                  calibration: IntervalCalibration | None = None, classes: ClassLevels | None = None) -> torch.Tensor:
    """[B, T, S] model outputs -> [B, K] outputs in target units (see `output_names`); a classification
    target's log-odds use its calibrated probabilities, softmax(logits / temperature).

    With a `calibration`, the width is the one `aam predict` reports: the highest minus the lowest level
    after each pair is moved apart by its offset and the levels sorted, max_q(v_q + s_q) - min_q(v_q + s_q)
    (v: the model's levels, s: `IntervalCalibration.shifts`). While the outermost levels stay the extremes
    this is the model's own width plus twice the outermost offset, a constant that the baseline takes up;
    where the shifts reorder the levels it is still the exact width, piecewise linear in v: completeness
    holds, but the quadrature resolves a kink (two levels trading places along the path) less well, which
    `BatchAttribution.gap` shows.
    """
    class_outputs, regression = [], list(range(pred_z.shape[1]))
    if classes is not None:
        for t in classes.positions:
            z = classes.layout(max(1, len(quantiles))).logits(pred_z, t)
            z = z / classes.temperatures.get(classes.target_columns[t], 1.0)
            explained = [classes.levels[classes.target_columns[t]].index(v) for v in explained_levels(classes, t)]
            class_outputs.append(log_odds(z)[:, explained])
        regression = classes.layout(max(1, len(quantiles))).regression_targets
        pred_z = pred_z[:, regression, :max(1, len(quantiles))]
        scaler = TargetScaler(scaler.columns, [scaler.mean[t] for t in regression], [scaler.std[t] for t in regression])
    regression_outputs = _regression_outputs(pred_z, scaler, quantiles, calibration, regression)
    return torch.cat([regression_outputs, *class_outputs], dim=1) if class_outputs else regression_outputs


def _regression_outputs(pred_z: torch.Tensor, scaler: TargetScaler, quantiles: tuple[float, ...],
                        calibration: IntervalCalibration | None, targets: list[int]) -> torch.Tensor:
    """[B, R, Q] z-scored predictions of the regression targets `targets` (indices into the model's) ->
    [B, R (+ R widths)] in target units."""
    std = torch.as_tensor(scaler.std, dtype=pred_z.dtype, device=pred_z.device)  # [T]
    mean = torch.as_tensor(scaler.mean, dtype=pred_z.dtype, device=pred_z.device)
    # point_predictions is linear in pred_z (the median between levels is interpolated), so exact to differentiate
    point = point_predictions(pred_z, quantiles) * std + mean
    if len(quantiles) > 1 and calibration is not None:
        shifts = torch.as_tensor(calibration.shifts(len(quantiles))[targets], dtype=pred_z.dtype,
                                 device=pred_z.device)
        levels = pred_z * std[:, None] + shifts  # [B, T, Q] in target units, less the mean
        return torch.cat([point, levels.amax(-1) - levels.amin(-1)], dim=1)
    if len(quantiles) > 1:
        return torch.cat([point, (pred_z[..., -1] - pred_z[..., 0]) * std], dim=1)
    return point


@dataclass
class BatchAttribution:
    prediction: torch.Tensor  # float64 [B, K]: outputs at the sample's real input
    baseline: torch.Tensor  # float64 [B, K]: outputs at the reference input
    attribution: torch.Tensor  # float64 [B, A, K]: per slot; 0 at padding

    @property
    def gap(self) -> torch.Tensor:
        """[B, K]: baseline + sum of attributions - prediction (0 for exact integration)."""
        return self.baseline + self.attribution.sum(1) - self.prediction


class SlotInputs:
    """Runs `model` with chosen slot input vectors x [B, A, D] (and the batch's categories), through the
    model's own forward: the ASV encoder's output is replaced by the flattened x - count_embedding(0) and
    every abundance by 0, so the sample encoder's sum asv_vector + count_embedding(abundance) equals x;
    a model with the linear model on abundances (`model.linear`) takes its slot values v [B, A] too."""

    def __init__(self, model: AAMRegressor, batch: Batch):
        self.model, self.batch = model, batch
        self.abundance = model.abundance_input(batch)  # [B, A]
        b, a = batch.asv_mask.shape
        self.index = torch.arange(b * a, device=batch.asv_mask.device).view(b, a)
        self.zeros = torch.zeros(b, a, device=batch.asv_mask.device)
        self.dummy_tokens = torch.zeros(1, 1, dtype=torch.uint8, device=batch.asv_mask.device)
        with torch.no_grad():
            self.count_bias = self.count_embedding(torch.zeros(1, 1, device=batch.asv_mask.device))[0, 0]  # [D]
            # the linear model's (row, value) per slot (`ASVLinear.slot_values`), looked up once; None without it
            self.linear_slots = None if model.linear is None else model.linear.slot_values(
                batch.asv_tokens, batch.asv_index, batch.asv_mask, batch.rel_abundance)

    def count_embedding(self, abundance: torch.Tensor) -> torch.Tensor:
        """[B, A] -> [B, A, D]: what the sample encoder adds to each ASV vector."""
        return self.model.sample_encoder.counts(abundance.unsqueeze(-1))

    @torch.no_grad()
    def real(self) -> torch.Tensor:
        """[B, A, D]: the slot inputs of the batch as the model sees them (padding rows included)."""
        vectors = self.model.asv_encoder(self.batch.asv_tokens)[self.batch.asv_index]
        return vectors + self.count_embedding(self.abundance)

    def linear_real(self) -> torch.Tensor | None:
        """[B, A]: the linear model's slot values f(rel) of the batch; None for a model without it."""
        return None if self.linear_slots is None else self.linear_slots[1]

    def __call__(self, x: torch.Tensor, linear: torch.Tensor | None = None, with_kernel: bool = True) -> torch.Tensor:
        """x [B, A, D] (and the linear model's slot values [B, A]) -> predictions [B, T, Q] (z-scored);
        `with_kernel=False`: without the linear model's kernel regressions."""
        flat = (x - self.count_bias).reshape(-1, x.shape[-1])
        handles = [self.model.asv_encoder.register_forward_hook(lambda module, args, output: flat)]
        if linear is not None:  # the linear model runs on the batch's own ASVs, then its output is replaced by
            b = self.batch      # its output for these slot values
            real = (b.asv_tokens, b.asv_index, b.asv_mask, b.rel_abundance)
            row = self.linear_slots[0]
            handles += [self.model.linear.register_forward_pre_hook(lambda module, args: real),
                        self.model.linear.register_forward_hook(
                            lambda module, args, output: module.from_values(row, linear, with_kernel))]
        try:
            return self.model(self.dummy_tokens, self.index, self.batch.asv_mask, self.zeros, self.batch.categories,
                              rel_abundance=self.zeros)
        finally:
            for handle in handles:
                handle.remove()


KERNEL_STEPS = 8  # the kernel regressions' share of the integral takes this many times the steps: the Laplacian
# kernel bends where a feature passes a training sample's, and these steps cost no transformer pass


def attribute_batch(model: AAMRegressor, batch: Batch, scaler: TargetScaler, quantiles: tuple[float, ...],
                    steps: int, reference: str = "empty", calibration: IntervalCalibration | None = None,
                    classes: ClassLevels | None = None) -> BatchAttribution:
    """Integrated gradients of every output for every sample and slot of `batch` (already on the model's
    device); `steps` forward + backward passes of the sample encoder and head, fp32. `calibration`: the
    model's conformal offsets, which the width output includes; `classes`: its classification targets'
    levels and temperatures (`output_values`)."""
    assert not model.training, "explain in eval mode: batch statistics would couple the samples"
    nodes, weights = quadrature(steps, reference)
    run = SlotInputs(model, batch)
    x1 = run.real()
    if reference == "empty":
        x0 = torch.zeros_like(x1)
    else:
        with torch.no_grad():
            x0 = x1 - run.count_embedding(run.abundance) + run.count_embedding(torch.zeros_like(run.abundance))
    delta = x1 - x0  # [B, A, D]
    l1 = run.linear_real()  # [B, A] or None; its reference is 0
    mask = batch.asv_mask.unsqueeze(-1)
    with torch.no_grad():
        pred = run(x1, l1)  # [B, T, S]
        prediction = output_values(pred, scaler, quantiles, calibration, classes).double()
        baseline = output_values(run(x0, None if l1 is None else torch.zeros_like(l1)), scaler, quantiles,
                                 calibration, classes).double()
    k = prediction.shape[1]
    total = torch.zeros(*x1.shape[:2], k, dtype=torch.float64, device=x1.device)  # [B, A, K]
    kernel = l1 is not None and model.linear.kernel is not None and any(model.linear.kernel.kinds)
    for a, w in zip(nodes.tolist(), weights.tolist()):
        x = (x0 + a * delta).requires_grad_(True)
        inputs = (x,) if l1 is None else (x, (a * l1).requires_grad_(True))
        y = output_values(run(*inputs, with_kernel=not kernel), scaler, quantiles, calibration, classes)  # [B, K]
        for j in range(k):
            grads = torch.autograd.grad(y[:, j].sum(), inputs, retain_graph=j + 1 < k)
            step = (grads[0] * delta * mask).sum(-1)
            if l1 is not None:
                step = step + grads[1] * l1 * batch.asv_mask
            total[..., j] += w * step.double()
    if kernel:
        total += _kernel_attribution(model, run.linear_slots[0], l1, batch.asv_mask, pred,
                                     quadrature(steps * KERNEL_STEPS, reference),
                                     lambda p: output_values(p, scaler, quantiles, calibration, classes))
    return BatchAttribution(prediction, baseline, total)


def _kernel_attribution(model: AAMRegressor, row: torch.Tensor, v1: torch.Tensor, mask: torch.Tensor,
                        pred: torch.Tensor, quadrature_rule, outputs) -> torch.Tensor:
    """[B, A, K] float64: integrated gradients of the outputs' kernel part along v = a v1 (row, v1, mask
    [B, A]), on the finer `quadrature_rule`; the rest of the model is left out of these steps. It adds to
    the rest's attributions because every output moves by a fixed multiple of a regression target's common
    shift (`output_values` is affine in it; class logits have no kernel part): outputs(pred + shift) -
    outputs(pred) is the kernel part's contribution whatever `pred` [B, T, S] is."""
    linear, layout = model.linear, model.layout
    r = len(layout.regression_targets)
    with torch.no_grad():
        anchor = outputs(pred)
    nodes, weights = quadrature_rule
    total = None
    for a, w in zip(nodes.tolist(), weights.tolist()):
        v = (a * v1).requires_grad_(True)
        shift = linear.kernel(linear.features(row, v))  # [B, O]: the regression columns, then zeros
        regression = shift[:, :r, None].expand(-1, -1, layout.n_quantiles) if r else None
        logits = shift[:, r:] if layout.class_targets else None
        y = outputs(pred + layout.assemble(regression, logits)) - anchor
        if total is None:
            total = torch.zeros(*v1.shape, y.shape[1], dtype=torch.float64, device=v1.device)
        for j in range(y.shape[1]):
            (grad,) = torch.autograd.grad(y[:, j].sum(), v, retain_graph=j + 1 < y.shape[1])
            total[..., j] += w * (grad * v1 * mask).double()
    return total
