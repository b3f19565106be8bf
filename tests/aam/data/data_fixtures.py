"""Helpers for the data-layer tests: tiny hand-made tables and the real studies (skipped when absent)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

# The real studies live next to the repository, never inside it.
DATA_DIR = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
UDCA = DATA_DIR / "udca_gut"
MOUSE = DATA_DIR / "sleep_apnea_mouse"

SEQS = {
    "f1": "ACGTACGTAC",
    "f2": "acgtnnRYAC",
    "f3": "GGGGCCCCAAAATTTT",
}
# features x samples, as BIOM stores it. s3 has zero reads.
COUNTS = np.array([
    [10, 0, 0, 1],
    [5, 3, 0, 0],
    [0, 7, 0, 2],
], dtype=float)
SAMPLES = ["s1", "s2", "s3", "s4"]


def write_biom(path: Path, counts: np.ndarray, feature_ids: list[str], sample_ids: list[str], fmt: str) -> Path:
    import biom
    import h5py

    table = biom.Table(counts, observation_ids=feature_ids, sample_ids=sample_ids)
    if fmt == "hdf5":
        with h5py.File(path, "w") as handle:
            table.to_hdf5(handle, generated_by="aam tests")
    else:
        path.write_text(table.to_json(generated_by="aam tests"))
    return path


def write_qza(path: Path, payload_name: str, payload: bytes) -> Path:
    """A minimal QIIME 2 artifact: a zip with <uuid>/metadata.yaml and <uuid>/data/<payload>."""
    uuid = "0d4bb3a7-0000-4000-8000-000000000000"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{uuid}/metadata.yaml", "uuid: x\ntype: FeatureTable[Frequency]\nformat: null\n")
        archive.writestr(f"{uuid}/VERSION", "QIIME 2\narchive: 5\n")
        archive.writestr(f"{uuid}/data/{payload_name}", payload)
    return path


def write_fasta(path: Path, records: dict[str, str], width: int = 0) -> Path:
    lines = []
    for name, seq in records.items():
        lines.append(f">{name} some description")
        chunks = [seq[i:i + width] for i in range(0, len(seq), width)] if width else [seq]
        lines += chunks
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def hashed_study(tmp_path: Path) -> dict[str, Path]:
    """Table with hashed-style IDs, a FASTA of their sequences, and metadata with holes."""
    table = write_biom(tmp_path / "table.biom", COUNTS, list(SEQS), SAMPLES, "hdf5")
    fasta = write_fasta(tmp_path / "seqs.fasta", SEQS, width=4)
    metadata = tmp_path / "meta.tsv"
    metadata.write_text(
        "sample-id\tph\ttemp\tsite\tsubject\tnote\n"
        "#q2:types\tnumeric\tnumeric\tcategorical\tcategorical\tcategorical\n"
        "s1\t6.5\t20\tA\tp1\thello\n"
        "s2\tNA\t22\tB\tp1\tMissing: Not provided\n"
        "s3\t7.0\t21\tA\tp2\tx\n"
        "s4\tnot collected\tmissing\t\tp3\ty\n"
        "s9\t5.0\t10\tC\tp4\tz\n"
    )
    return {"table": table, "sequences": fasta, "metadata": metadata, "dir": tmp_path}


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not available: {path}")
    return path
