"""Sample metadata: QIIME 2 style TSV -> DataFrame of strings (NaN = missing), indexed by sample ID.

The first column is the sample ID (QIIME 2 accepts `id`, `sample-id`, `#SampleID`, `sample_name`,
`feature-id`, ...; any name is taken here, the position decides). An optional `#q2:types` row
declares `numeric` / `categorical` per column; other rows starting with `#` are comments.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from aam.errors import UserError

# Lower-cased cells read as missing: blanks, common NA spellings, and the INSDC / Qiita vocabulary
# ("not provided", "Missing: Not provided", "not applicable: control sample", ...).
_MISSING = {"", "na", "n/a", "nan", "none", "null", "missing", "not applicable", "not collected",
            "not provided", "restricted access", "unknown"}
_MISSING_PREFIXES = ("missing:", "not applicable:", "not collected:", "not provided:", "restricted access:")


def is_missing(value: str) -> bool:
    v = value.strip().lower()
    return v in _MISSING or v.startswith(_MISSING_PREFIXES)


@dataclass
class Metadata:
    frame: pd.DataFrame  # str cells, NaN for missing; index = sample IDs (str), named by the ID header
    types: dict[str, str] = field(default_factory=dict)  # from `#q2:types`: column -> numeric|categorical
    path: Path = Path("<metadata>")

    def numeric(self, column: str) -> np.ndarray:
        """float64 values of `column` (NaN = missing); UserError naming a non-numeric or non-finite cell,
        or a column the `#q2:types` row declares categorical."""
        self.require(column, "target")
        values = self.frame[column]
        parsed = pd.to_numeric(values, errors="coerce")
        bad = parsed.isna() & values.notna()
        if bad.any():
            sample = values.index[bad.to_numpy()][0]
            raise UserError(f"column '{column}' in metadata {self.path} is not numeric "
                            f"(sample '{sample}' has '{values[sample]}')")
        if self.types.get(column) == "categorical":
            raise UserError(f"target column '{column}' is declared categorical in the #q2:types row of metadata "
                            f"{self.path}; a target must be numeric (mark it numeric there)")
        self.check_finite(column, "target")
        return parsed.to_numpy(dtype=np.float64)

    def is_class_target(self, column: str, named: bool = False) -> bool:
        """Whether target `column` is classified: `named` (--classification-columns), declared categorical in
        `#q2:types`, or (undeclared) holding a value that is not a number."""
        self.require(column, "target")
        if named or self.types.get(column) == "categorical":
            return True
        return self.types.get(column) != "numeric" and not self.is_numeric(column)

    def check_finite(self, column: str, role: str) -> None:
        """UserError naming the first samples whose `column` cell is an infinite number ('inf',
        '-Infinity', '1e999'): no scaling, loss or category of one means anything."""
        samples = non_finite_samples(self.frame[column])
        if samples:
            shown = ", ".join(f"'{s}'" for s in samples[:_SHOWN])
            more = f" and {len(samples) - _SHOWN} more" if len(samples) > _SHOWN else ""
            raise UserError(f"{role} column '{column}' in metadata {self.path} has non-finite values in sample(s) "
                            f"{shown}{more}: give a finite value or leave the cell empty (missing)")

    def is_numeric(self, column: str) -> bool:
        """Declared numeric, or (undeclared) every non-missing value parses as a number."""
        if column in self.types:
            return self.types[column] == "numeric"
        values = self.frame[column].dropna()
        return len(values) > 0 and bool(pd.to_numeric(values, errors="coerce").notna().all())

    def require(self, column: str, role: str) -> None:
        if column not in self.frame.columns:
            shown = ", ".join(self.frame.columns[:12]) + (", ..." if len(self.frame.columns) > 12 else "")
            raise UserError(f"{role} column '{column}' is not in metadata {self.path} (columns: {shown})")


_SHOWN = 3  # sample IDs named in a message


def non_finite_samples(values: pd.Series) -> list[str]:
    """Sample IDs (the index) whose cell parses as +-inf; missing cells (NaN) are not counted."""
    parsed = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    return [str(s) for s in values.index[np.isinf(parsed)]]


def read_metadata(path: str | Path) -> Metadata:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"metadata file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise UserError(f"cannot read metadata file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"metadata file {path} is not UTF-8 text") from None
    rows = [r for r in csv.reader(io.StringIO(text), delimiter="\t") if any(c.strip() for c in r)]
    if not rows:
        raise UserError(f"metadata file {path} is empty")
    header = [c.strip() for c in rows[0]]
    if len(header) < 2:
        hint = " (it looks comma-separated; metadata must be tab-separated)" if "," in rows[0][0] else ""
        raise UserError(f"metadata file {path} has no columns besides the sample ID{hint}")
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise UserError(f"metadata file {path} has the column '{duplicated[0]}' twice")
    types: dict[str, str] = {}
    body = []
    for row in rows[1:]:
        first = row[0].strip()
        if first.lower() == "#q2:types":
            types = {name: cell.strip().lower() for name, cell in zip(header[1:], row[1:]) if cell.strip()}
        elif not first.startswith("#"):
            body.append([c.strip() for c in row])
    if any(len(r) > len(header) for r in body):
        raise UserError(f"metadata file {path} has a row with more cells than the header has columns")
    width = len(header)
    cells = [r + [""] * (width - len(r)) for r in body]
    frame = pd.DataFrame(cells, columns=header, dtype=object)
    frame = frame.set_index(header[0])
    ids = frame.index
    if (ids == "").any():
        raise UserError(f"metadata file {path} has a row with an empty sample ID")
    if ids.duplicated().any():
        raise UserError(f"metadata file {path} lists sample '{ids[ids.duplicated()][0]}' twice")
    frame = frame.mask(frame.map(is_missing))
    return Metadata(frame=frame, types=types, path=path)
