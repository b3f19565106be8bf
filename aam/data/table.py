"""Feature-table reader: BIOM (HDF5 or JSON) or a QIIME 2 FeatureTable .qza -> samples x features CSR."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from aam.data.qza import is_qza, read_payload
from aam.errors import UserError

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@dataclass
class FeatureTable:
    counts: sp.csr_matrix  # float64 [n_samples, n_features], read counts
    sample_ids: list[str]
    feature_ids: list[str]
    path: Path


def read_table(path: str | Path) -> FeatureTable:
    """Read a BIOM table (HDF5 or JSON, `.biom`) or a QIIME 2 `.qza` holding `feature-table.biom`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"table file not found: {path}")
    if is_qza(path):
        raw = read_payload(path, "feature-table.biom", "feature table")
    else:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read table file {path}: {exc.strerror}") from None
    table = _parse_biom(raw, path)
    if table.shape[1] == 0:
        raise UserError(f"table {path} has no samples")
    counts = sp.csr_matrix(table.matrix_data.T, dtype=np.float64)
    counts.sum_duplicates()
    counts.sort_indices()
    if counts.nnz and counts.data.min() < 0:
        raise UserError(f"table {path} holds negative counts; expected read counts")
    sample_ids = [str(s) for s in table.ids(axis="sample")]
    feature_ids = [str(f) for f in table.ids(axis="observation")]
    return FeatureTable(counts, sample_ids, feature_ids, path)


def _parse_biom(raw: bytes, path: Path):
    # Imported here so that the package imports on machines without biom-format (e.g. a bare GPU box).
    import biom
    import h5py
    from biom.parse import parse_biom_table

    try:
        if raw.startswith(_HDF5_SIGNATURE):
            with h5py.File(io.BytesIO(raw), "r") as handle:
                return biom.Table.from_hdf5(handle)
        text = raw.decode("utf-8")
        if not text.lstrip().startswith("{"):
            raise ValueError("expected BIOM HDF5 or BIOM JSON" if text.strip() else "the file is empty")
        return parse_biom_table(io.StringIO(text))
    except Exception as exc:  # biom raises many types for malformed input; all mean "not a BIOM table"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"cannot read BIOM table {path}: {reason}") from None
