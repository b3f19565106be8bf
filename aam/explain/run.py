"""`run_explain`: checkpoint(s) + a table -> attributions, importance tables and plots in one folder.

Files written to `output_dir`:
- `samples.tsv`: per sample and output, the prediction, the baseline and the completeness gap;
- `attributions.tsv`: per sample, output and ASV the model saw, its attribution (target units);
- `asv_importance.tsv`, and `taxon_importance.tsv` with a taxonomy (see `aam.explain.importance`);
- `explain.json`: the method and its settings, models, the largest completeness gap and, for a quantile
  model, per model whether its widths include conformal offsets (`width_conformal`);
- `plots/`: top ASVs (and taxa) per output, an abundance heatmap per target, one sample's waterfall.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from aam.data.study import Study, load_study
from aam.errors import UserError
from aam.explain import plots
from aam.explain.attribution import REFERENCES
from aam.explain.config import ExplainConfig
from aam.explain.explanation import METHODS, Explanation, explain_study
from aam.explain.importance import asv_table, taxon_table
from aam.explain.taxonomy import Taxonomy, read_taxonomy
from aam.evaluation.abundance import relative_abundance
from aam.evaluation.inference import load_model
from aam.evaluation.models import model_paths
from aam.evaluation.outputs import safe_name, write_json, write_tsv
from aam.run_folder import run_folder
from aam.runtime.device import resolve_device

log = logging.getLogger("aam.explain")
TOP = 20  # rows in the bar charts and the heatmap
WATERFALL = 15  # largest attributions drawn one by one in the waterfall
GAP_WARNING = 0.01  # warn when a completeness gap exceeds this fraction of the predictions' spread
# cohort: below this many samples, cohorts are too coarse for attributions to mean much
COHORT_FEW_SAMPLES = 30
METHOD_TEXT = {
    "cohort": "cohort Shapley values: the mean prediction of the samples similar to the sample on a set of its "
              "ASVs (relative abundance within similarity_ratio) and categorical values",
    "integrated-gradients": "integrated gradients over each ASV's input vector (sequence + log-count embedding)",
}


def check_config(config: ExplainConfig) -> None:
    if not config.models:
        raise UserError("give a model checkpoint (--model)")
    if not config.table:
        raise UserError("give the feature table (--table)")
    if not config.output_dir:
        raise UserError("give an output folder (--output-dir)")
    if config.batch_size is not None and config.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1; got {config.batch_size}")
    if config.method not in METHODS:
        raise UserError(f"--method must be one of {', '.join(METHODS)}; got {config.method!r}")
    if config.permutations < 2:
        raise UserError(f"--permutations must be >= 2; got {config.permutations}")
    if not config.similarity_ratio > 1:
        raise UserError(f"--similarity-ratio must be > 1; got {config.similarity_ratio}")
    if config.reference not in REFERENCES:
        raise UserError(f"--reference must be one of {', '.join(REFERENCES)}; got {config.reference!r}")
    if config.steps < 2:
        raise UserError(f"--steps must be >= 2; got {config.steps}")


def run_explain(config: ExplainConfig, overwrite: bool = False) -> Explanation:
    """Explain the study with the model(s) and write the files, holding the output folder's lock (as
    `aam train` does)."""
    check_config(config)
    # the checkpoints to average: each --model as given, or an `aam cv` folder's finished fold models
    config = dataclasses.replace(config, models=tuple(str(p) for m in config.models for p in model_paths(m)))
    with run_folder(config.output_dir, "aam explain", overwrite=overwrite) as out:
        return explain_into(out, config)


def explain_into(out: Path, config: ExplainConfig) -> Explanation:
    device = resolve_device(config.device)
    models = [load_model(path, device) for path in config.models]
    run = models[0].config
    categorical = run.data.categorical_columns
    if categorical and config.metadata is None:
        raise UserError(f"this model uses categorical column(s) {', '.join(categorical)}: pass --metadata with them")
    study = load_study(config.table, config.sequences, config.metadata, target_columns=run.data.target_columns,
                       categorical_columns=categorical, require_targets=False,
                       classification_columns=run.data.classification_columns)
    taxonomy = read_taxonomy(config.taxonomy, study.feature_ids) if config.taxonomy else None
    if config.sample is not None and config.sample not in study.sample_ids:
        raise UserError(f"--sample {config.sample} is not a sample of {config.table} with reads")
    if config.method == "cohort" and study.n_samples < COHORT_FEW_SAMPLES:
        log.warning("cohort attributions compare the %d samples of %s with each other: explain a whole study "
                    "(or use --method integrated-gradients for a few samples)", study.n_samples, config.table)
    explanation = explain_study(models, study, device, config)
    calibrated = [m.calibration is not None for m in models] if len(run.loss.quantiles) > 1 else None
    write_outputs(out, config, study, explanation, taxonomy, calibrated)
    return explanation


def write_outputs(out: Path, config: ExplainConfig, study: Study, e: Explanation, taxonomy: Taxonomy | None,
                  width_calibrated: list[bool] | None = None) -> None:
    """`width_calibrated`: for a quantile model, per model whether its widths include conformal offsets."""
    gap = e.gap
    spread = np.ptp(e.prediction, axis=0) if len(e.prediction) > 1 else np.ones(len(e.outputs))
    worst = np.abs(gap).max(axis=0)
    for name, g, s in zip(e.outputs, worst, spread):
        if g > GAP_WARNING * max(s, 1e-12):
            log.warning("output %s: attributions miss the prediction by up to %.3g (predictions span %.3g); "
                        "raise --steps", name, g, s)
    samples = {"sample_id": e.sample_ids}
    for k, name in enumerate(e.outputs):
        samples[name] = e.prediction[:, k]
        samples[f"{name}_baseline"] = e.baseline[:, k]
        samples[f"{name}_gap"] = gap[:, k]
    write_tsv(out / "samples.tsv", pd.DataFrame(samples))
    write_tsv(out / "attributions.tsv", long_attributions(e, study.feature_ids))
    abundance = relative_abundance(study.counts)
    asvs = asv_table(study.feature_ids, study.sequences, abundance, study.targets, study.target_columns,
                     e.attributions, e.outputs, taxonomy)
    write_tsv(out / "asv_importance.tsv", asvs)
    taxa = None
    if taxonomy is not None:
        taxa = taxon_table(study.feature_ids, abundance, study.targets, study.target_columns, e.attributions,
                           e.outputs, taxonomy)
        write_tsv(out / "taxon_importance.tsv", taxa)
    settings = {"permutations": config.permutations, "similarity_ratio": config.similarity_ratio,
                "seed": config.seed} if config.method == "cohort" else \
        {"reference": config.reference, "steps": config.steps}
    write_json(out / "explain.json", {
        "method": config.method, "method_description": METHOD_TEXT[config.method], **settings,
        "models": list(config.models),
        "outputs": e.outputs, "samples": len(e.sample_ids),
        **({"width_conformal": width_calibrated} if width_calibrated is not None else {}),
        "max_abs_gap": {name: float(g) for name, g in zip(e.outputs, worst)}})
    write_plots(out / "plots", config, study, e, asvs, taxa, abundance)


def long_attributions(e: Explanation, feature_ids: list[str]) -> pd.DataFrame:
    """sample_id, output, feature_id, attribution: one row per stored (non-zero) entry."""
    parts = []
    for name, a in zip(e.outputs, e.attributions):
        coo = a.tocoo()
        order = np.lexsort((-np.abs(coo.data), coo.row))  # per sample, largest |attribution| first
        parts.append(pd.DataFrame({"sample_id": np.asarray(e.sample_ids, dtype=object)[coo.row[order]],
                                   "output": name,
                                   "feature_id": np.asarray(feature_ids, dtype=object)[coo.col[order]],
                                   "attribution": coo.data[order]}))
    return pd.concat(parts, ignore_index=True)


def write_plots(folder: Path, config: ExplainConfig, study: Study, e: Explanation, asvs: pd.DataFrame,
                taxa: pd.DataFrame | None, abundance: sp.csr_matrix) -> list[Path]:
    lineage = dict(zip(asvs["feature_id"], asvs["taxonomy"])) if "taxonomy" in asvs else {}
    # "#k": the ASV's row in asv_importance.tsv (amplicon IDs that are sequences all start alike)
    label = {f: f"#{k} {plots.short_label(f, lineage.get(f))}" for k, f in enumerate(asvs["feature_id"], start=1)}
    paths = []
    for k, name in enumerate(e.outputs):
        top = plots.top_rows(asvs, name, TOP)
        paths.append(plots.plot_top_bars(
            folder / f"top_asvs_{safe_name(name)}.png", [label[f] for f in top["feature_id"]],
            top[f"mean_attribution_{name}"].to_numpy(), top[f"mean_abs_attribution_{name}"].to_numpy(), name, "ASVs"))
        if taxa is not None:
            rank = "genus" if "genus" in set(taxa["rank"]) else taxa["rank"].iloc[-1]
            top_taxa = plots.top_rows(taxa[taxa["rank"] == rank], name, TOP)
            paths.append(plots.plot_top_bars(
                folder / f"top_taxa_{safe_name(name)}.png", [t.split("; ")[-1] for t in top_taxa["taxon"]],
                top_taxa[f"mean_attribution_{name}"].to_numpy(), top_taxa[f"mean_abs_attribution_{name}"].to_numpy(),
                name, f"taxa ({rank})"))
    column = {f: j for j, f in enumerate(study.feature_ids)}
    targets = study.target_values()  # a classification target's observed levels as indices, in sorted order
    for t, target in enumerate(study.target_columns):
        k = next(k for k, name in enumerate(e.outputs) if name == target or name.startswith(f"{target}="))
        top = plots.top_rows(asvs, e.outputs[k], TOP)
        observed = targets[:, t]
        known = ~np.isnan(observed)
        order_values, order_name = (observed, f"observed {target}") if known.any() else \
            (e.prediction[:, k], f"predicted {e.outputs[k]}")
        rows = known if known.any() else np.ones(len(observed), dtype=bool)
        cols = [column[f] for f in top["feature_id"]]
        paths.append(plots.plot_heatmap(folder / f"heatmap_{safe_name(target)}.png",
                                        abundance[rows][:, cols].toarray(), [label[f] for f in top["feature_id"]],
                                        order_values[rows], order_name))
    i = e.sample_ids.index(config.sample) if config.sample is not None else 0
    if config.method == "cohort":
        start = "mean prediction + categories" if study.categorical_columns else "mean prediction"
    else:
        start = "no reads" if config.reference == "empty" else "zero counts"
    for k, name in enumerate(e.outputs):
        row = e.attributions[k].getrow(i)
        order = np.argsort(-np.abs(row.data), kind="stable")
        shown = order[:WATERFALL]
        rest = row.data[order[WATERFALL:]]
        paths.append(plots.plot_waterfall(
            folder / f"waterfall_{safe_name(e.sample_ids[i])}_{safe_name(name)}.png", e.sample_ids[i],
            name, float(e.baseline[i, k]), float(e.prediction[i, k]),
            [label[study.feature_ids[j]] for j in row.indices[shown]], row.data[shown], float(rest.sum()), len(rest),
            f"baseline ({start})"))
    return paths
