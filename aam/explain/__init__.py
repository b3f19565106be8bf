"""Which ASVs and taxa drive a model's predictions (`aam explain`).

Modules (the package imports nothing itself, so the CLI parser stays light):
- config.py: `ExplainConfig`, what `aam explain` is asked to do.
- run.py: `run_explain(ExplainConfig, overwrite=False) -> Explanation`: load, explain, write tables and plots.
- explanation.py: `explain_study(models, study, device, config) -> Explanation`: per-sample attributions of
  a study by either method, for one model or the mean of several.
- cohort.py: `cohort_shapley(values, abundance, players, categories, ...)`: cohort Shapley values of the
  predictions (the default method).
- attribution.py: `attribute_batch(model, batch, scaler, quantiles, steps, reference)`: integrated
  gradients for one batch, and the quadrature; `output_values`, the outputs both methods explain.
- importance.py: `asv_table`, `taxon_table` (their abundance columns: `aam.evaluation.abundance`).
- taxonomy.py: `read_taxonomy(path, feature_ids) -> Taxonomy` (QIIME 2 .qza or TSV).
- plots.py: bar charts, heatmap, waterfall.
"""
