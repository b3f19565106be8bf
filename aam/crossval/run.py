"""`cross_validate(config, cv)`: grouped k-fold cross-validation of AAM against the random forest and the
mean predictor on the same folds.

Layout of the output folder: `cv_config.json` (the run and CV settings), `folds.tsv` (every sample's fold
per repeat), `folds/repeat<r>_fold<f>/` (an `aam train` run on the fold's training part: its inner
validation split picks the epoch; plus `test_predictions.tsv` once the fold is finished), then
`cv_predictions.tsv`, `cv_metrics.json`, `cv_summary.tsv` and `plots/`. A finished fold is never redone;
`resume=True` continues the fold in progress from its last.pt.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from aam.config import RunConfig
from aam.crossval.reference import reference_predictions
from aam.crossval.reference import FOREST, PRIOR
from aam.crossval.report import (AAM, CLASS_METHODS, METHOD_NAMES, METHODS, cv_metrics, fold_frame, plot_cv,
                                 summary_frame)
from aam.data.dataset import AAMDataset, make_loader
from aam.data.encoders import CategoryEncoder
from aam.data.folds import assign_folds, sample_groups
from aam.data.prepared import load_training_study, prepare_data
from aam.data.split import decide_split
from aam.data.study import Study
from aam.errors import UserError
from aam.evaluation import outputs
from aam.evaluation.abundance import relative_abundance
from aam.evaluation.forest_classifier import forest_probabilities, prior_probabilities, study_levels
from aam.evaluation.inference import load_model, run_model, to_predictions
from aam.evaluation.models import CONFIG_FILE, FOLDS_DIR, MEMBER_PREFIX, TEST_FILE
from aam.run_folder import FolderRules, run_folder
from aam.runtime.checkpoint import BEST_FILE, LAST_FILE, Checkpoint
from aam.runtime.device import resolve_device
from aam.training import build_run
from aam.training.determinism import repeatable
from aam.training.resume import check_resumable, keep_saved_defaults
from aam.training.run import train_into
from aam.training.trainer import NonFiniteLoss

FOLDS_FILE = "folds.tsv"
# Never mix two cross-validations in one folder (aam.run_folder).
CV_FOLDER = FolderRules(advice="pass --resume to continue it, or choose another folder",
                        what="a previous cross-validation", resume_file=CONFIG_FILE)


@dataclass
class CVConfig:
    folds: int = 5  # outer folds K (groups never split)
    repeats: int = 1  # repetitions of the K-fold split, each with a new shuffle of the groups
    trees: int = 500  # random-forest trees per target
    n_jobs: int = -1  # random-forest parallel jobs; -1 = all cores
    # models trained per fold, each on its own inner split and seed, their predictions averaged (an ensemble):
    # 5 beat 1 on every study of docs/accuracy.md, regression and classification
    ensemble: int = 5


@dataclass
class CVResult:
    output_dir: Path
    metrics: dict  # cv_metrics.json ({} when interrupted)
    folds_run: int  # folds finished in this call
    interrupted_by: int | None = None  # signal number when SIGINT/SIGTERM stopped a fold's training
    plots: list[Path] = dataclasses.field(default_factory=list)


def fold_name(repeat: int, fold: int) -> str:
    """Folder of a fold (0-based arguments, 1-based name)."""
    return f"repeat{repeat + 1}_fold{fold + 1}"


def cross_validate(config: RunConfig, cv: CVConfig, *, resume: bool = False,
                   on_epoch_end: Callable[[str, int, dict], None] | None = None) -> CVResult:
    """Run (or continue) every fold, then write the pooled reports (see module doc).

    `on_epoch_end(fold_name, epoch, history_row)` is called after each training epoch. `config` is resolved
    here unless it is already (`RunConfig.resolve`)."""
    config = config.resolve().with_defaults()
    if not config.train.output_dir:
        raise UserError("give an output folder (--output-dir)")
    out = Path(config.train.output_dir)
    with run_folder(out, "aam cv", rules=CV_FOLDER, resume=resume), repeatable(resolve_device(config.train.device)):
        if resume:
            _check_same_settings(out, config, cv)
        return cross_validate_into(out, config, cv, resume, on_epoch_end)


def cross_validate_into(out: Path, config: RunConfig, cv: CVConfig, resume: bool,
                        on_epoch_end: Callable[[str, int, dict], None] | None) -> CVResult:
    """`cross_validate` once the folder `out` is claimed; the study is read here, once, for every fold."""
    study = load_training_study(config.data)
    groups = sample_groups(study, config.data.group_column)
    levels, strata = study_levels(study), study.strata()
    assignment = assign_folds(groups, cv.folds, cv.repeats, config.train.seed, config.data.group_column, strata=strata)
    if not resume:
        out.mkdir(parents=True, exist_ok=True)
        outputs.write_json(out / CONFIG_FILE, {"run": config.to_dict(), "cv": dataclasses.asdict(cv)})
        frame = pd.DataFrame({"sample_id": study.sample_ids})
        for r in range(cv.repeats):
            frame[f"repeat{r + 1}"] = assignment[r] + 1
        outputs.write_tsv(out / FOLDS_FILE, frame)
    device = resolve_device(config.train.device)
    names = [(r, f) for r in range(cv.repeats) for f in range(cv.folds)]
    done = sum((out / FOLDS_DIR / fold_name(r, f) / TEST_FILE).is_file() for r, f in names)
    bar = tqdm(total=len(names), initial=done, desc="folds", unit="fold", disable=not config.train.progress)
    frames, run_now = [], 0
    for r, f in names:
        folder = out / FOLDS_DIR / fold_name(r, f)
        if not (folder / TEST_FILE).is_file():
            bar.set_description(f"fold {fold_name(r, f)}")
            stopped = _run_fold(config, cv, study, assignment[r], r, f, folder, device, on_epoch_end, levels, strata)
            if stopped is not None:
                bar.close()
                return CVResult(out, {}, run_now, stopped)
            run_now += 1
            bar.update(1)
        frames.append(pd.read_csv(folder / TEST_FILE, sep="\t", dtype={"sample_id": str}))
    bar.close()
    frame = pd.concat(frames, ignore_index=True)
    targets, quantiles = config.data.target_columns, config.loss.quantiles
    names = {c: levels.levels[c] for c in levels.columns} if levels else {}
    metrics = cv_metrics(frame, targets, quantiles, names)
    metrics = {"folds": cv.folds, "repeats": cv.repeats, "group_column": config.data.group_column,
               **({"levels": names} if names else {}), **metrics}
    outputs.write_tsv(out / "cv_predictions.tsv", frame)
    outputs.write_json(out / "cv_metrics.json", metrics)
    outputs.write_tsv(out / "cv_summary.tsv", summary_frame(metrics, targets, names))
    plots = plot_cv(out / "plots", frame, metrics, targets, names)
    return CVResult(out, metrics, run_now, None, plots)


def _run_fold(config: RunConfig, cv: CVConfig, study: Study, fold_of: np.ndarray, repeat: int, fold: int,
              folder: Path, device, on_epoch_end, levels=None, strata: np.ndarray | None = None) -> int | None:
    """Train the fold's `cv.ensemble` models (`train_into`, each continuing from its last.pt when there is one)
    and score their mean prediction; the signal number if training was interrupted, else None. `levels`: the
    study's levels of its classification targets; `strata`: what the inner validation splits are stratified
    by (`Study.strata`)."""
    test_idx = np.flatnonzero(fold_of == fold)
    train_part = np.flatnonzero(fold_of != fold)
    names = {c: levels.levels[c] for c in levels.columns} if levels else {}
    members, best_epochs = [], []
    for member in range(cv.ensemble):
        trained = _train_member(config, study, train_part, repeat, fold, member, folder, device, on_epoch_end, strata)
        if trained.interrupted_by is not None:
            return trained.interrupted_by
        members.append(_member_predictions(trained.output_dir, study, test_idx, config, device, names))
        best_epochs.append(f"{trained.best_epoch} of {trained.epochs_run}")
    point = np.mean([p.point for p in members], axis=0)
    values = np.mean([p.quantile_values for p in members], axis=0) if members[0].quantile_values is not None else None
    seed = config.train.seed
    predicted = reference_predictions(study, train_part, test_idx, cv.trees, seed, cv.n_jobs)
    predicted[AAM] = point
    observed = study.targets[test_idx].copy()
    probabilities = {AAM: {}, FOREST: {}, PRIOR: {}}
    targets = study.target_values() if study.class_columns else None  # levels as indices into `names`
    x = relative_abundance(study.counts) if study.class_columns else None
    for column in study.class_columns:
        t = study.target_columns.index(column)
        known = targets[:, t]
        observed[:, t] = known[test_idx]
        probabilities[AAM][t] = np.mean([p.probabilities[t] for p in members], axis=0)
        probabilities[FOREST][t] = forest_probabilities(x, known, train_part, test_idx, len(names[column]), cv.trees,
                                                        seed, cv.n_jobs)[0]
        probabilities[PRIOR][t] = prior_probabilities(known, train_part, len(test_idx), len(names[column]))
    ids = study.sample_ids
    frame = fold_frame([ids[i] for i in test_idx], repeat + 1, fold + 1, config.data.target_columns,
                       observed, predicted, values, config.loss.quantiles, probabilities, names)
    outputs.write_tsv(folder / TEST_FILE, frame)
    scores = []
    for t in config.data.target_columns:
        if t in names:
            fold_metrics = cv_metrics(frame, [t], levels=names)["pooled"]
            scores += [f"{t} ROC AUC {METHOD_NAMES[m]} {fold_metrics[m][t]['roc_auc']:.3f}" for m in CLASS_METHODS]
        else:
            scores += [f"{t} MAE {METHOD_NAMES[m]} {np.nanmean(np.abs(frame[f'{t}_{m}'] - frame[f'{t}_observed'])):.4g}"
                       for m in METHODS]
    tqdm.write(f"{folder.name} (best epoch {', '.join(best_epochs)}): test {'  '.join(scores)}")
    return None


def member_folder(folder: Path, member: int) -> Path:
    """Where a fold's ensemble member (0-based) trains: the fold folder itself for the first."""
    return folder if member == 0 else folder / f"{MEMBER_PREFIX}{member + 1}"


def _train_member(config: RunConfig, study: Study, train_part: np.ndarray, repeat: int, fold: int, member: int,
                  folder: Path, device, on_epoch_end, strata: np.ndarray | None):
    """Train one model of a fold (`train_into`, continuing from its last.pt): member m > 0 draws its own inner
    validation split and training seed (the cross-validation's seed + m), so the members see different parts
    of the fold's training samples."""
    out = member_folder(folder, member)
    seed = config.train.seed
    if member:
        config = config.with_seed(seed + member)
    last = out / LAST_FILE
    resume_from = Checkpoint.load(last) if last.is_file() else None
    split = decide_split(study, config.data.test_size, (seed, repeat, fold, member) if member else (seed, repeat, fold),
                         config.data.group_column, given=resume_from.split if resume_from is not None else None,
                         within=train_part, strata=strata)
    run = build_run(config.with_output_dir(out), device,
                    data=prepare_data(study, split, config.data, config.train.seed), resume_from=resume_from)
    hook = None
    if on_epoch_end is not None:
        def hook(epoch, row):
            on_epoch_end(folder.name if not member else f"{folder.name}/{out.name}", epoch, row)
    try:
        return train_into(out, run, hook)
    except NonFiniteLoss as bad:
        raise UserError(f"fold {folder.name}: {bad}: stopped; lower --lr or clip gradients (--max-grad-norm) "
                        "and start again in a new folder") from None


def _member_predictions(out: Path, study: Study, test_idx: np.ndarray, config: RunConfig, device,
                        names: dict[str, list[str]]):
    """The test samples' predictions of the model in `out`, a classification target's probabilities over the
    study's levels (`names`)."""
    loaded = load_model(out / BEST_FILE, device)
    levels = None  # the member's training levels of the classification targets
    if loaded.classes is not None:
        levels = CategoryEncoder(tuple(study.class_columns), {c: loaded.classes.levels[c] for c in study.class_columns})
    dataset = AAMDataset(study, test_idx, max_bp=config.data.max_bp, token_limit=config.data.token_limit,
                         train=False, encoders=loaded.encoder, levels=levels)
    p = to_predictions(run_model(loaded.model, make_loader(dataset, config.train.batch_size, shuffle=False), device),
                       loaded.scaler, config.loss.quantiles, loaded.calibration, loaded.classes)
    for column in study.class_columns:
        t = study.target_columns.index(column)
        p.probabilities[t] = aligned_probabilities(p.probabilities[t], loaded.classes.levels[column], names[column])
    return p


def aligned_probabilities(probabilities: np.ndarray, fold_levels: list[str], levels: list[str]) -> np.ndarray:
    """[n, K_fold] probabilities over the levels a fold's model was trained on -> [n, K] over the study's
    levels (0 for a level the fold's training samples lacked)."""
    out = np.zeros((probabilities.shape[0], len(levels)))
    out[:, [levels.index(level) for level in fold_levels]] = probabilities
    return out


def _check_same_settings(out: Path, config: RunConfig, cv: CVConfig) -> None:
    """A resumed cross-validation must use the settings it was started with."""
    saved = json.loads((out / CONFIG_FILE).read_text())
    saved_run = RunConfig.from_dict(saved["run"])
    check_resumable(saved_run, config)
    for key in ("epochs", "patience"):  # finished folds ran with the saved values: every fold must match
        if getattr(config.train, key) != getattr(saved_run.train, key):
            raise UserError(f"--resume: the cross-validation in {out} was run with train.{key} = "
                            f"{getattr(saved_run.train, key)!r}, this command gives {getattr(config.train, key)!r}")
    for key, value in saved_cv_settings(saved).items():
        if key != "n_jobs" and getattr(cv, key) != value:
            raise UserError(f"--resume: the cross-validation in {out} was run with {key} = {value!r}, "
                            f"this command gives {getattr(cv, key)!r}")


def resume_settings(output_dir: str | Path, **train_changes) -> tuple[RunConfig, CVConfig]:
    """The settings of the cross-validation in `output_dir`, with allowed TrainConfig changes (resolved)."""
    path = Path(output_dir) / CONFIG_FILE
    if not path.is_file():
        raise UserError(f"--resume: no {CONFIG_FILE} in {output_dir} to resume from")
    saved = json.loads(path.read_text())
    config = RunConfig.from_dict(saved["run"])
    train_part = dataclasses.replace(config.train, output_dir=str(output_dir), **train_changes)
    return dataclasses.replace(config, train=train_part).resolve(), CVConfig(**saved_cv_settings(saved))


def with_saved_defaults(config: RunConfig, output_dir: str | Path, given: dict[str, dict]) -> RunConfig:
    """`config` (a resumed cross-validation's flags) with every setting the command line did not give (`given`)
    taken from the folder's cv_config.json (`aam.training.resume.keep_saved_defaults`); as it is without one."""
    path = Path(output_dir) / CONFIG_FILE
    if not path.is_file():
        return config
    return keep_saved_defaults(config, RunConfig.from_dict(json.loads(path.read_text())["run"]), given)


def saved_cv_settings(saved: dict) -> dict:
    """The CVConfig fields of a cv_config.json; a folder written before --ensemble existed trained one model
    per fold."""
    return {"ensemble": 1, **saved["cv"]}
