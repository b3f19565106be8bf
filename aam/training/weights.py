"""Per-sample loss weights from categorical levels (`--categorical-loss-weights auto|JSON`).

"auto": for each categorical column, level weight = n / (k * n_level) over the training samples
(k = levels seen), so every level carries the same total weight; with several columns the weights
multiply. JSON `{"location": {"site_A": 2.0}}`: levels not named weigh 1. Unknown code 0 weighs 1.
The result is a lookup table per column: row weight = prod_c table_c[code_c].
"""

from __future__ import annotations

import numpy as np
import torch

from aam.data.encoders import CategoryEncoder
from aam.errors import UserError
from aam.loss_spec import CategoryWeights, parse_category_weights


def category_weight_tables(spec: str | CategoryWeights | None, encoder: CategoryEncoder | None,
                           train_codes: np.ndarray) -> list[torch.Tensor] | None:
    """float32 [levels + 1] per categorical column, or None when no weighting is asked for.

    `spec` is `LossConfig.categorical_loss_weights` (parsed when the config was built; the text form is
    parsed here the same way); what needs the data (columns and levels that exist) is checked here."""
    spec = parse_category_weights(spec)
    if spec is None:
        return None
    if encoder is None:
        raise UserError("--categorical-loss-weights needs --categorical-columns")
    if spec == "auto":
        tables = []
        for c, column in enumerate(encoder.columns):
            counts = np.bincount(train_codes[:, c], minlength=len(encoder.levels[column]) + 1).astype(np.float64)
            seen = counts[1:] > 0
            table = np.ones_like(counts)
            table[1:][seen] = counts[1:][seen].sum() / (seen.sum() * counts[1:][seen])
            tables.append(torch.tensor(table, dtype=torch.float32))
        return tables
    tables = [torch.ones(len(encoder.levels[c]) + 1) for c in encoder.columns]
    for column, levels in spec.items():
        if column not in encoder.columns:
            raise UserError(f"--categorical-loss-weights names '{column}', not one of --categorical-columns "
                            f"({', '.join(encoder.columns)})")
        c = encoder.columns.index(column)
        for level, weight in levels.items():
            if level not in encoder.levels[column]:
                raise UserError(f"--categorical-loss-weights: level '{level}' of '{column}' is not in the training "
                                f"samples ({', '.join(encoder.levels[column])})")
            tables[c][encoder.levels[column].index(level) + 1] = weight
    return tables


def row_weights(tables: list[torch.Tensor] | None, categories: torch.Tensor) -> torch.Tensor | None:
    """categories int64 [B, C] -> float32 [B] (product over columns), or None without tables."""
    if tables is None:
        return None
    weight = torch.ones(categories.shape[0], device=categories.device)
    for c, table in enumerate(tables):
        weight = weight * table.to(categories.device)[categories[:, c]]
    return weight
