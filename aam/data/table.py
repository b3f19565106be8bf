"""Feature-table reader: BIOM (HDF5 or JSON) or a QIIME 2 FeatureTable .qza -> samples x features CSR.

A BIOM 2.1 HDF5 file stores the table twice, once compressed by sample (`sample/matrix`: CSR of the
samples x features matrix) and once by observation; reading the sample copy directly gives our CSR
without a transposition (biom-format's reader builds the observation-major matrix and converts it,
which took most of the time for a 100,000 x 200,000 table). Other files go through biom-format.
"""

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
    try:
        with path.open("rb") as f:
            plain_hdf5 = f.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE
    except OSError as exc:
        raise UserError(f"cannot read table file {path}: {exc.strerror}") from None
    raw = b""
    if is_qza(path):
        raw = read_payload(path, "feature-table.biom", "feature table")
    direct = None
    if plain_hdf5 or raw.startswith(_HDF5_SIGNATURE):  # a plain file is read in place, not copied into memory
        direct = _read_sample_major(path if plain_hdf5 else io.BytesIO(raw))
    if direct is None:
        if not raw:
            try:
                raw = path.read_bytes()
            except OSError as exc:
                raise UserError(f"cannot read table file {path}: {exc.strerror}") from None
        table = _parse_biom(raw, path)
        counts = sp.csr_matrix(table.matrix_data.T, dtype=np.float64)
        sample_ids = [str(s) for s in table.ids(axis="sample")]
        feature_ids = [str(f) for f in table.ids(axis="observation")]
    else:
        counts, sample_ids, feature_ids = direct
    del raw
    if counts.shape[0] == 0:
        raise UserError(f"table {path} has no samples")
    counts.sum_duplicates()
    counts.sort_indices()
    if counts.nnz and counts.data.min() < 0:
        raise UserError(f"table {path} holds negative counts; expected read counts")
    return FeatureTable(counts, sample_ids, feature_ids, path)


def _read_sample_major(source) -> tuple[sp.csr_matrix, list[str], list[str]] | None:
    """(counts CSR [samples, features], sample IDs, feature IDs) from a BIOM 2.1 HDF5 file's sample
    matrix; None when the file is not laid out that way (biom-format then reads it, or says why not)."""
    import h5py

    try:
        with h5py.File(source, "r") as f:
            if tuple(f.attrs.get("format-version", ()))[:1] != (2,) or "sample/matrix/indptr" not in f:
                return None
            n_features, n_samples = (int(v) for v in f.attrs["shape"])
            matrix = f["sample/matrix"]
            counts = sp.csr_matrix((matrix["data"][:].astype(np.float64, copy=False), matrix["indices"][:],
                                    matrix["indptr"][:]), shape=(n_samples, n_features))
            ids = [[v.decode() if isinstance(v, bytes) else str(v) for v in f[f"{axis}/ids"][:]]
                   for axis in ("sample", "observation")]
    except (OSError, KeyError, ValueError, TypeError):
        return None
    if len(ids[0]) != n_samples or len(ids[1]) != n_features:
        return None
    return counts, ids[0], ids[1]


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
