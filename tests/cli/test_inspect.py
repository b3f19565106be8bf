"""`aam inspect` end to end: counts checked against biom-format / pandas, and errors as one line + exit 2."""

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aam.cli.main import main
from aam.data.simulate import write_simulation

DATA_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def run_json(capsys, *args) -> dict:
    assert main(["inspect", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def expect_error(capsys, args, *fragments) -> str:
    assert main(["inspect", *map(str, args)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert captured.out == "" and "\n" not in err and "Traceback" not in err
    assert err.startswith("aam inspect: error: ")
    for fragment in fragments:
        assert fragment in err, err
    return err


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not available: {path}")
    return path


def check_columns(summary: dict, meta: pd.DataFrame, table_ids, numeric: list[str], categorical: list[str]) -> None:
    """Compare per-column counts with pandas on the samples present in both files."""
    rows = meta.loc[meta.index.isin(table_ids)]
    missing = {"", "missing", "Missing: Not provided", "not provided", "NA"}
    for column in numeric:
        info = summary["columns"][column]
        values = pd.to_numeric(rows[column].where(~rows[column].isin(missing)), errors="coerce")
        assert info["type"] == "numeric"
        assert (info["present"], info["missing"]) == (int(values.notna().sum()), int(values.isna().sum()))
        assert (info["min"], info["max"]) == (values.min(), values.max())
    for column in categorical:
        info = summary["columns"][column]
        assert info["type"] == "categorical"
        assert info["levels"] == rows[column].value_counts().to_dict()


def test_simulated_set(tmp_path, capsys):
    import biom

    sim = write_simulation(tmp_path, n_samples=25, seed=3, n_features=50)
    summary = run_json(capsys, "--table", tmp_path / "table.biom", "--metadata", tmp_path / "metadata.tsv")
    table = biom.load_table(str(tmp_path / "table.biom"))
    reads = table.sum(axis="sample")
    assert (summary["samples"], summary["features"]) == (25, 50)
    assert summary["reads_per_sample"] == {"min": reads.min(), "median": np.median(reads), "max": reads.max(),
                                           "total": reads.sum()}
    lengths = [len(s) for s in sim.sequences]
    assert (summary["sequences"]["length_min"], summary["sequences"]["length_max"]) == (min(lengths), max(lengths))
    assert summary["metadata"]["in_both"] == 25 and summary["zero_read_samples"] == 0
    meta = pd.read_csv(tmp_path / "metadata.tsv", sep="\t", dtype=str, keep_default_na=False).set_index("sample_id")
    check_columns(summary, meta, table.ids(), ["ph", "temperature", "depth"], ["location"])
    assert main(["inspect", "--table", str(tmp_path / "table.biom"), "--metadata", str(tmp_path / "metadata.tsv")]) == 0
    text = capsys.readouterr().out
    assert "samples: 25" in text and "location [categorical]" in text


def test_udca(capsys):
    import biom

    udca = require(DATA_DIR / "udca_gut")
    summary = run_json(capsys, "--table", udca / "table.qza", "--sequences", udca / "rep-seqs.qza",
                       "--metadata", udca / "sra-submission-sheet.tsv", "--metadata-column", "host_age",
                       "--metadata-column", "host_body_mass_index", "--metadata-column", "host_sex")
    table = biom.load_table(str(udca / "feature-table.biom"))
    reads = table.sum(axis="sample")
    assert (summary["samples"], summary["features"]) == (952, 4910)
    assert summary["zero_read_samples"] == int((reads == 0).sum()) == 4
    assert summary["reads_per_sample"]["max"] == reads.max()
    assert (summary["sequences"]["length_min"], summary["sequences"]["length_max"]) == (150, 150)
    assert summary["metadata"] | {"table_only_examples": [], "metadata_only_examples": []} == {
        "path": str(udca / "sra-submission-sheet.tsv"), "samples": 802, "columns": 16, "in_both": 802,
        "table_only": 150, "metadata_only": 0, "table_only_examples": [], "metadata_only_examples": []}
    meta = pd.read_csv(udca / "sra-submission-sheet.tsv", sep="\t", dtype=str, keep_default_na=False)
    check_columns(summary, meta.set_index("sample_name"), table.ids(), ["host_age", "host_body_mass_index"],
                  ["host_sex"])
    assert summary["columns"]["host_body_mass_index"]["missing"] == 12
    assert list(summary["columns"]) == ["host_age", "host_body_mass_index", "host_sex"]


def test_mouse(capsys):
    import biom

    mouse = require(DATA_DIR / "sleep_apnea_mouse")
    summary = run_json(capsys, "--table", mouse / "qiita_10422_table.biom",
                       "--metadata", mouse / "qiita_10422_metadata.tsv")
    table = biom.load_table(str(mouse / "qiita_10422_table.biom"))
    reads = table.sum(axis="sample")
    assert (summary["samples"], summary["features"]) == (184, 1298)
    assert summary["reads_per_sample"]["median"] == np.median(reads)
    assert summary["features_per_sample"]["max"] == int((table.matrix_data.T > 0).sum(axis=1).max())
    assert summary["sequences"]["source"] == "feature IDs"
    assert summary["metadata"]["in_both"] == 184 and summary["metadata"]["table_only"] == 0
    meta = pd.read_csv(mouse / "qiita_10422_metadata.tsv", sep="\t", dtype=str, keep_default_na=False)
    check_columns(summary, meta.set_index("feature-id"), table.ids(),
                  ["age", "weight", "weekly_cage_food_consumption"], ["exposure_type", "host_subject_id"])
    assert summary["columns"]["weekly_cage_food_consumption"]["missing"] == 92


def test_hashed_ids_without_sequences(capsys):
    udca = require(DATA_DIR / "udca_gut")
    expect_error(capsys, ["--table", udca / "table.qza"], "are not DNA sequences", "--sequences")


def hashed_table(tmp_path: Path) -> Path:
    import biom
    import h5py

    ids = [hashlib.md5(s.encode()).hexdigest() for s in ("ACGTACGT", "GGGGTTTT")]
    table = biom.Table(np.array([[3, 0], [1, 5]]), observation_ids=ids, sample_ids=["a", "b"])
    with h5py.File(tmp_path / "hashed.biom", "w") as handle:
        table.to_hdf5(handle, generated_by="aam tests")
    return tmp_path / "hashed.biom"


def test_hashed_ids_without_sequences_in_a_subprocess(tmp_path):
    """The real entry point: exit status 2, one line on stderr, no traceback."""
    result = subprocess.run([sys.executable, "-m", "aam", "inspect", "--table", str(hashed_table(tmp_path))],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stdout == "" and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "are not DNA sequences" in result.stderr and "--sequences" in result.stderr


def test_qza_that_holds_no_table(tmp_path, capsys):
    qza = tmp_path / "rep-seqs.qza"
    with zipfile.ZipFile(qza, "w") as archive:
        archive.writestr("abc/metadata.yaml", "type: FeatureData[Sequence]\n")
        archive.writestr("abc/data/dna-sequences.fasta", ">a\nACGT\n")
    expect_error(capsys, ["--table", qza], "holds no feature table", "dna-sequences.fasta")


def test_user_errors(tmp_path, capsys):
    write_simulation(tmp_path, n_samples=5, seed=0, n_features=20)
    table, meta = tmp_path / "table.biom", tmp_path / "metadata.tsv"
    expect_error(capsys, ["--table", tmp_path / "none.biom"], "table file not found", "none.biom")
    unreadable = tmp_path / "garbage.biom"
    unreadable.write_bytes(b"\x00\x01garbage")
    expect_error(capsys, ["--table", unreadable], "cannot read BIOM table", "garbage.biom")
    expect_error(capsys, ["--table", table, "--metadata", tmp_path / "none.tsv"], "metadata file not found")
    expect_error(capsys, ["--table", table, "--metadata", meta, "--metadata-column", "salinity"],
                 "column 'salinity' is not in metadata")
    partial = tmp_path / "partial.fasta"
    partial.write_text(">x\nACGT\n")
    expect_error(capsys, ["--table", table, "--sequences", partial], "20 of 20 features", "no sequence in")


def test_columns_are_comma_separated_as_in_train(tmp_path, capsys):
    write_simulation(tmp_path, n_samples=8, seed=0, n_features=20)
    summary = run_json(capsys, "--table", tmp_path / "table.biom", "--metadata", tmp_path / "metadata.tsv",
                       "--metadata-column", "ph,ph_class", "--metadata-column", "depth")
    assert list(summary["columns"]) == ["ph", "ph_class", "depth"]
    levels = pd.read_csv(tmp_path / "metadata.tsv", sep="\t")["ph_class"].value_counts()
    assert summary["columns"]["ph_class"]["levels"] == levels.to_dict()
