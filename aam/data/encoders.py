"""Transforms fitted on the training samples only, and saved as plain dicts in checkpoints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class CategoryEncoder:
    """Codes for categorical columns: per column, index 0 = unknown/missing, 1.. = levels seen in training."""

    columns: tuple[str, ...]
    levels: dict[str, list[str]]  # column -> sorted training levels; level i has code i + 1

    @classmethod
    def fit(cls, columns: Sequence[str], values: np.ndarray) -> "CategoryEncoder":
        """`values`: object [n, C] raw strings (None = missing), columns in the order of `columns`."""
        columns = tuple(columns)
        assert values.shape[1:] == (len(columns),), (values.shape, columns)
        levels = {c: sorted({str(v) for v in values[:, i] if v is not None}) for i, c in enumerate(columns)}
        return cls(columns, levels)

    def transform(self, values: np.ndarray) -> np.ndarray:
        """object [n, C] -> int64 [n, C]; unseen or missing values -> 0."""
        assert values.shape[1:] == (len(self.columns),), (values.shape, self.columns)
        out = np.zeros(values.shape, dtype=np.int64)
        for i, column in enumerate(self.columns):
            lookup = {level: code for code, level in enumerate(self.levels[column], start=1)}
            out[:, i] = [lookup.get(str(v), 0) if v is not None else 0 for v in values[:, i]]
        return out

    @property
    def cardinalities(self) -> list[int]:
        """Embedding-table size per column (levels + the unknown slot)."""
        return [len(self.levels[c]) + 1 for c in self.columns]

    def to_dict(self) -> dict:
        return {"columns": list(self.columns), "levels": {c: list(v) for c, v in self.levels.items()}}

    @classmethod
    def from_dict(cls, state: dict) -> "CategoryEncoder":
        return cls(tuple(state["columns"]), {c: list(v) for c, v in state["levels"].items()})


@dataclass
class TargetScaler:
    """Per-target mean and standard deviation over the training samples (NaN ignored), for normalizing losses."""

    columns: tuple[str, ...]
    mean: list[float]
    std: list[float]  # 1.0 where a column is constant or has < 2 values

    @classmethod
    def fit(cls, columns: Sequence[str], targets: np.ndarray) -> "TargetScaler":
        columns = tuple(columns)
        mean, std = [], []
        for i in range(len(columns)):
            col = targets[:, i][~np.isnan(targets[:, i])]
            m = float(col.mean()) if col.size else 0.0
            s = float(col.std()) if col.size > 1 else 0.0
            mean.append(m)
            std.append(s if s > 0 else 1.0)
        return cls(columns, mean, std)

    def transform(self, targets: np.ndarray) -> np.ndarray:
        return (targets - np.asarray(self.mean)) / np.asarray(self.std)

    def inverse(self, scaled: np.ndarray) -> np.ndarray:
        return scaled * np.asarray(self.std) + np.asarray(self.mean)

    def to_dict(self) -> dict:
        return {"columns": list(self.columns), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, state: dict) -> "TargetScaler":
        return cls(tuple(state["columns"]), list(state["mean"]), list(state["std"]))
