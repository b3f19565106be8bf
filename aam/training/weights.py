"""Per-sample loss weights from categorical levels (`--categorical-loss-weights auto|JSON`).

"auto": for each categorical column, level weight = n / (k * n_level) over the training samples
(k = levels seen), so every level carries the same total weight; with several columns the weights
multiply. JSON `{"location": {"site_A": 2.0}}`: levels not named weigh 1. Unknown code 0 weighs 1.
The result is a lookup table per column: row weight = prod_c table_c[code_c].
"""

from __future__ import annotations

import json

import numpy as np
import torch

from aam.data.encoders import CategoryEncoder
from aam.errors import UserError


def category_weight_tables(spec: str | None, encoder: CategoryEncoder | None,
                           train_codes: np.ndarray) -> list[torch.Tensor] | None:
    """float32 [levels + 1] per categorical column, or None when no weighting is asked for."""
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
    try:
        given = json.loads(spec)
    except json.JSONDecodeError as exc:
        raise UserError(f"--categorical-loss-weights is neither 'auto' nor JSON ({exc.msg})") from None
    if not isinstance(given, dict):
        raise UserError('--categorical-loss-weights JSON must map column -> {level: weight}')
    tables = [torch.ones(len(encoder.levels[c]) + 1) for c in encoder.columns]
    for column, levels in given.items():
        if column not in encoder.columns:
            raise UserError(f"--categorical-loss-weights names '{column}', not one of --categorical-columns "
                            f"({', '.join(encoder.columns)})")
        if not isinstance(levels, dict):
            raise UserError(f"--categorical-loss-weights: '{column}' must map level -> weight")
        c = encoder.columns.index(column)
        for level, weight in levels.items():
            if level not in encoder.levels[column]:
                raise UserError(f"--categorical-loss-weights: level '{level}' of '{column}' is not in the training "
                                f"samples ({', '.join(encoder.levels[column])})")
            if not isinstance(weight, (int, float)) or not weight >= 0:
                raise UserError(f"--categorical-loss-weights: weight of {column}={level} must be a number >= 0")
            tables[c][encoder.levels[column].index(level) + 1] = float(weight)
    return tables


def row_weights(tables: list[torch.Tensor] | None, categories: torch.Tensor) -> torch.Tensor | None:
    """categories int64 [B, C] -> float32 [B] (product over columns), or None without tables."""
    if tables is None:
        return None
    weight = torch.ones(categories.shape[0], device=categories.device)
    for c, table in enumerate(tables):
        weight = weight * table.to(categories.device)[categories[:, c]]
    return weight
