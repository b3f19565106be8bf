"""Warnings for data a run accepts but whose results would mean little: a constant target, or too
few validation samples for the validation metrics (and the best-epoch choice) to be more than noise."""

from __future__ import annotations

import logging

import numpy as np

from aam.data.study import Study

log = logging.getLogger("aam.data")

MIN_VALIDATION = 5  # fewer validation values than this: MAE/R^2 and the best epoch are noise


def warn_caveats(study: Study, train_idx: np.ndarray, val_idx: np.ndarray) -> list[str]:
    """Log one warning line per problem and return the lines."""
    lines = []
    if len(val_idx) < MIN_VALIDATION:
        lines.append(f"warning: the validation part has only {len(val_idx)} sample(s) (fewer than "
                     f"{MIN_VALIDATION}): validation metrics and the best-epoch choice will be noise, R^2 and "
                     "Pearson may be NaN; raise --test-size or add samples")
    targets = study.target_values()  # a classification target's levels as indices
    for t, name in enumerate(study.target_columns):
        values = targets[np.concatenate([train_idx, val_idx]), t]
        known = values[~np.isnan(values)]
        val_known = targets[val_idx, t][~np.isnan(targets[val_idx, t])]
        if known.size and np.all(known == known[0]):
            lines.append(f"warning: target '{name}' is constant ({known[0]:g} in every sample): there is nothing "
                         "to learn; R^2 and Pearson will be NaN")
        elif len(val_idx) >= MIN_VALIDATION and val_known.size < MIN_VALIDATION:
            lines.append(f"warning: target '{name}' has only {val_known.size} validation value(s): its validation "
                         "metrics will be noise")
        elif val_known.size and np.all(val_known == val_known[0]):
            undefined = "ROC AUC and balanced accuracy" if name in study.class_columns else "R^2 and Pearson"
            lines.append(f"warning: target '{name}' has the same value in every validation sample: its {undefined} "
                         "will be NaN")
    for line in lines:
        log.warning(line)
    return lines
