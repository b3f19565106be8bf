"""Do `aam explain`'s rankings find the microbes that respond to pH? Checked on the simulated study.

    python -m bench.explain_simulated OUT_DIR [--seed 0] [--epochs 25] [--method cohort|integrated-gradients]
                                      [--reference empty|counts] [--model-seed S] [--models N | --cv-folds K]
                                      [--train-flags "..."]

Simulates the demo study (300 samples, 128 ASVs), trains a small model with one nucleotide layer (ph and temperature, or
`--targets`; location as a category), explains it on every sample, fits the random forest on the same
split, then prints the figures below. `--model-seed S` seeds the model (and the split: default 0);
`--models N` trains N such models (seeds S .. S+N-1) and explains their average; `--cv-folds K` runs
`aam cv` with the same model and explains the cross-validation folder (its K fold models averaged). The
forest is always fitted on the first model's split.

- the Spearman correlation over ASVs between AAM's mean |attribution| to pH and |Spearman(relative
  abundance, pH)| of each ASV (computed here with scipy, from the table and metadata alone), and the same
  for the mean |attribution| over the samples that hold the ASV (`mean_abs_attribution_present_ph`);
- the same for the forest's permutation and impurity importances;
- how many of AAM's top 20 ASVs are among the forest's top 20 by permutation importance;
- the mean |Spearman(relative abundance, pH)| of the top 20 ASVs of each ranking, of all ASVs, and of the
  20 ASVs with the largest value (the best any ranking can reach);
- how the response and AAM's ranking relate to prevalence and abundance;
- with `--method cohort`, the same Spearman correlation for cohort Shapley values (same settings) of two
  other sets of predictions: the forest's (fitted on the split's training samples, predicting every sample)
  and the observed pH itself, which show how much of the ranking the study's data alone decides.

Writes OUT_DIR/summary.json. Takes a few minutes on one CPU core.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import pandas as pd
from scipy.stats import spearmanr

from aam.cli.main import main
from aam.explain.config import ExplainConfig

TRAIN_FLAGS = ["--categorical-columns", "location", "--embedding-dim", "32",
               "--attention-heads", "4", "--asv-layers", "1", "--sample-layers", "1", "--dropout", "0",
               "--max-bp", "100", "--token-limit", "128", "--loss-type", "huber", "--batch-size", "16",
               "--lr", "2e-3", "--patience", "0", "--seed", "0", "--device", "cpu", "--no-progress"]
TOP = 20


def abundance_response(folder: Path) -> pd.Series:
    """|Spearman(relative abundance, ph)| per ASV, from table.biom and metadata.tsv."""
    import biom

    table = biom.load_table(str(folder / "table.biom"))
    counts = pd.DataFrame(table.matrix_data.toarray().T, index=table.ids("sample"), columns=table.ids("observation"))
    relative = counts.div(counts.sum(axis=1), axis=0)
    ph = pd.read_csv(folder / "metadata.tsv", sep="\t", index_col=0).loc[relative.index, "ph"]
    return relative.apply(lambda column: abs(spearmanr(column, ph).statistic))


def with_seed(flags: list[str], seed: int) -> list[str]:
    flags = list(flags)
    flags[flags.index("--seed") + 1] = str(seed)
    return flags


def cohort_spearman(folder: Path, train_dir: Path, response: pd.Series) -> dict[str, float]:
    """Spearman(mean |cohort Shapley value| to ph, response) for the forest's predictions and for observed ph."""
    import numpy as np

    from aam.data.study import load_study
    from aam.evaluation.abundance import relative_abundance
    from aam.evaluation.baseline import fit_forests
    from aam.explain.cohort import cohort_shapley

    study = load_study(str(folder / "table.biom"), None, str(folder / "metadata.tsv"), target_columns=["ph"])
    x = relative_abundance(study.counts)
    position = {s: k for k, s in enumerate(study.sample_ids)}
    train = np.array([position[s] for s in (train_dir / "train_samples.txt").read_text().split()])
    _, forest = next(fit_forests(study, x, train, n_estimators=100, seed=0))
    players = [x[s].indices for s in range(study.n_samples)]
    no_categories = np.zeros((study.n_samples, 0), dtype=object)
    defaults = ExplainConfig()
    out = {}
    for name, values in (("forest", forest.predict(x)), ("observed_ph", study.targets[:, 0])):
        result = cohort_shapley(values[:, None], x, players, no_categories, defaults.similarity_ratio,
                                defaults.permutations, defaults.seed)
        importance = pd.Series(np.asarray(abs(result.attributions[0]).mean(axis=0)).ravel(), study.feature_ids)
        out[name] = spearmanr(importance[response.index], response).statistic
    return out


def main_(out: Path, seed: int, epochs: int, targets: str, reference: str, models: int = 1,
          cv_folds: int = 0, model_seed: int = 0, train_flags: str = "", method: str = "cohort") -> dict:
    data, run, explained, forest = out / "data", out / "run", out / "explain", out / "forest"
    table = ["--table", str(data / "table.biom"), "--metadata", str(data / "metadata.tsv")]
    model_flags = ["--epochs", str(epochs), "--metadata-column", targets]
    extra = shlex.split(train_flags)  # after TRAIN_FLAGS, so that a repeated flag overrides its default
    runs = [run] + [out / f"run_seed{k}" for k in range(1, models)]
    steps = [["simulate", "--output-dir", str(data), "--samples", "300", "--features", "128", "--seed", str(seed)]]
    steps += [["train", *table, "--output-dir", str(r), *model_flags, *with_seed(TRAIN_FLAGS, model_seed + k), *extra]
              for k, r in enumerate(runs)]
    explained_models = [str(r / "model.pt") for r in runs]
    if cv_folds:
        steps.append(["cv", *table, "--output-dir", str(out / "cv"), "--folds", str(cv_folds), "--trees", "100",
                      *model_flags, *with_seed(TRAIN_FLAGS, model_seed), *extra])
        explained_models = [str(out / "cv")]
    steps += [["explain", *[a for m in explained_models for a in ("--model", m)], *table,
               "--output-dir", str(explained), "--device", "cpu", "--method", method, "--reference", reference,
               "--no-progress"],
              ["baseline", "--train-dir", str(run), "--output-dir", str(forest)]]
    for argv in steps:
        if main(argv) != 0:
            raise SystemExit(f"aam {argv[0]} failed")
    response = abundance_response(data)
    aam = pd.read_csv(explained / "asv_importance.tsv", sep="\t", index_col="feature_id")
    rf = pd.read_csv(forest / "asv_importance.tsv", sep="\t", index_col="feature_id")
    ids = response.dropna().index
    response = response[ids]
    top_aam = set(aam["mean_abs_attribution_ph"].nlargest(TOP).index)
    top_rf = set(rf["permutation_importance_ph"].nlargest(TOP).index)
    summary = {
        "asvs": len(ids),
        "spearman_aam_vs_response": spearmanr(aam.loc[ids, "mean_abs_attribution_ph"], response[ids]).statistic,
        "spearman_aam_present_vs_response": spearmanr(aam.loc[ids, "mean_abs_attribution_present_ph"],
                                                      response[ids], nan_policy="omit").statistic,
        "method": method,
        "spearman_rf_permutation_vs_response": spearmanr(rf.loc[ids, "permutation_importance_ph"],
                                                         response[ids]).statistic,
        "spearman_rf_impurity_vs_response": spearmanr(rf.loc[ids, "impurity_importance_ph"], response[ids]).statistic,
        "spearman_aam_vs_rf_permutation": spearmanr(aam.loc[ids, "mean_abs_attribution_ph"],
                                                    rf.loc[ids, "permutation_importance_ph"]).statistic,
        f"top{TOP}_overlap_aam_rf_permutation": len(top_aam & top_rf),
        f"mean_response_top{TOP}": {
            "aam": response[list(top_aam)].mean(), "rf_permutation": response[list(top_rf)].mean(),
            "rf_impurity": response[rf["impurity_importance_ph"].nlargest(TOP).index].mean(),
            "all_asvs": response[ids].mean(), "best": response[ids].nlargest(TOP).mean()},
        "spearman_response_vs_prevalence": spearmanr(response[ids], aam.loc[ids, "prevalence"]).statistic,
        "spearman_aam_vs_mean_relative_abundance": spearmanr(aam.loc[ids, "mean_abs_attribution_ph"],
                                                             aam.loc[ids, "mean_relative_abundance"]).statistic,
        "validation_mae_ph": {"aam_first_model": json.loads((run / "metrics.json").read_text())["ph"]["mae"],
                              "random_forest": json.loads((forest / "metrics.json").read_text())["ph"]["mae"]},
    }
    if method == "cohort":
        summary["spearman_cohort_vs_response_of"] = cohort_spearman(data, run, response)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--targets", default="ph,temperature", help="--metadata-column of the model")
    parser.add_argument("--method", default=ExplainConfig().method, help="--method of aam explain")
    parser.add_argument("--reference", default="empty", help="--reference of aam explain (integrated gradients)")
    parser.add_argument("--model-seed", type=int, default=0, help="--seed of the (first) model")
    parser.add_argument("--models", type=int, default=1, help="models trained (seeds S .. S+N-1) and averaged")
    parser.add_argument("--cv-folds", type=int, default=0, help="explain an `aam cv` folder of this many folds")
    parser.add_argument("--train-flags", default="", help="extra `aam train` flags, e.g. \"--token-limit 64\"")
    args = parser.parse_args()
    print(json.dumps(main_(args.out, args.seed, args.epochs, args.targets, args.reference, args.models,
                           args.cv_folds, args.model_seed, args.train_flags, args.method), indent=1))
