"""Each reader against an independent reference: biom-format / hand-written values."""

import numpy as np
import pytest
from data_fixtures import COUNTS, SAMPLES, SEQS, write_biom, write_fasta, write_qza

from aam.data.fasta import read_sequences
from aam.data.metadata import read_metadata
from aam.data.table import read_table
from aam.errors import UserError


@pytest.mark.parametrize("fmt", ["hdf5", "json"])
def test_biom_table_matches_biom_format(tmp_path, fmt):
    path = write_biom(tmp_path / "t.biom", COUNTS, list(SEQS), SAMPLES, fmt)
    table = read_table(path)
    assert table.sample_ids == SAMPLES
    assert table.feature_ids == list(SEQS)
    np.testing.assert_array_equal(table.counts.toarray(), COUNTS.T)


def test_qza_table(tmp_path):
    biom_path = write_biom(tmp_path / "t.biom", COUNTS, list(SEQS), SAMPLES, "hdf5")
    qza = write_qza(tmp_path / "table.qza", "feature-table.biom", biom_path.read_bytes())
    np.testing.assert_array_equal(read_table(qza).counts.toarray(), COUNTS.T)


def test_qza_without_a_table_names_what_it_holds(tmp_path):
    qza = write_qza(tmp_path / "rep-seqs.qza", "dna-sequences.fasta", b">a\nACGT\n")
    with pytest.raises(UserError, match=r"rep-seqs.qza.*holds no feature table.*dna-sequences.fasta"):
        read_table(qza)


def test_table_errors(tmp_path):
    with pytest.raises(UserError, match="table file not found: .*nope.biom"):
        read_table(tmp_path / "nope.biom")
    bad = tmp_path / "bad.biom"
    bad.write_text("this is not a biom table")
    with pytest.raises(UserError, match="cannot read BIOM table .*bad.biom"):
        read_table(bad)
    empty = tmp_path / "empty.biom"
    empty.write_text("")
    with pytest.raises(UserError, match="cannot read BIOM table .*empty.biom"):
        read_table(empty)
    notzip = tmp_path / "broken.qza"
    notzip.write_text("nope")
    with pytest.raises(UserError, match="broken.qza: not a readable QIIME 2 artifact"):
        read_table(notzip)


def test_fasta_multiline_and_headers_with_descriptions(tmp_path):
    path = write_fasta(tmp_path / "s.fasta", SEQS, width=3)
    assert read_sequences(path) == SEQS


def test_rep_seqs_qza(tmp_path):
    payload = write_fasta(tmp_path / "s.fasta", SEQS).read_bytes()
    qza = write_qza(tmp_path / "rep-seqs.qza", "dna-sequences.fasta", payload)
    assert read_sequences(qza) == SEQS


@pytest.mark.parametrize("text,message", [
    ("", "holds no FASTA records"),
    ("ACGT\n>a\nACGT\n", "is not FASTA"),
    (">a\nACGT\n>a\nACGT\n", "'a' appears twice"),
    (">a\nAC1GT\n", "record 'a' is not a DNA sequence"),
])
def test_fasta_errors(tmp_path, text, message):
    path = tmp_path / "s.fasta"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        read_sequences(path)


def test_fasta_missing_and_qza_without_sequences(tmp_path):
    with pytest.raises(UserError, match="sequences file not found"):
        read_sequences(tmp_path / "none.fasta")
    qza = write_qza(tmp_path / "table.qza", "feature-table.biom", b"x")
    with pytest.raises(UserError, match="holds no sequences"):
        read_sequences(qza)


@pytest.mark.parametrize("id_header", ["sample_id", "sample-id", "#SampleID", "sample_name", "feature-id", "id"])
def test_metadata_id_header_types_and_missing_markers(tmp_path, id_header):
    path = tmp_path / "m.tsv"
    path.write_text(
        f"{id_header}\tph\tsite\n"
        "#q2:types\tnumeric\tcategorical\n"
        "# a comment row\n"
        "a\t6.5\tX\n"
        "b\tNA\t\n"
        "c\tMissing: Not provided\tnot applicable\n"
        "\n"
        "d\t7\tY\n"
    )
    meta = read_metadata(path)
    assert list(meta.frame.index) == ["a", "b", "c", "d"]
    assert meta.types == {"ph": "numeric", "site": "categorical"}
    np.testing.assert_array_equal(meta.numeric("ph"), [6.5, np.nan, np.nan, 7.0])
    assert meta.frame["site"].isna().tolist() == [False, True, True, False]


def test_metadata_type_inference_without_types_row(tmp_path):
    path = tmp_path / "m.tsv"
    path.write_text("sample_id\tx\ty\tz\na\t1\tfoo\t\nb\t2.5\t3\t\n")
    meta = read_metadata(path)
    assert meta.is_numeric("x") and not meta.is_numeric("y") and not meta.is_numeric("z")


@pytest.mark.parametrize("text,message", [
    ("", "is empty"),
    ("sample_id,ph\na,1\n", "comma-separated"),
    ("sample_id\tph\na\t1\t2\n", "more cells than the header"),
    ("sample_id\tph\nb\t1\nb\t2\n", "lists sample 'b' twice"),
    ("sample_id\tph\tph\nb\t1\t2\n", "column 'ph' twice"),
])
def test_metadata_errors(tmp_path, text, message):
    path = tmp_path / "m.tsv"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        read_metadata(path)


def test_metadata_missing_file_and_non_numeric_target(tmp_path):
    with pytest.raises(UserError, match="metadata file not found"):
        read_metadata(tmp_path / "none.tsv")
    path = tmp_path / "m.tsv"
    path.write_text("sample_id\tph\na\t6\nb\tacidic\n")
    with pytest.raises(UserError, match=r"column 'ph' in metadata .*m.tsv is not numeric \(sample 'b' has 'acidic'\)"):
        read_metadata(path).numeric("ph")
    with pytest.raises(UserError, match="target column 'temp' is not in metadata .*columns: ph"):
        read_metadata(path).numeric("temp")


def test_package_imports_without_loading_biom_format():
    """A GPU box without biom-format must still import aam.data: biom is imported inside the readers."""
    import subprocess
    import sys

    code = "import sys, aam.data; assert 'biom' not in sys.modules and 'h5py' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_metadata_with_windows_line_endings_and_bom(tmp_path):
    path = tmp_path / "m.tsv"
    path.write_bytes("\ufeffsample_id\tph\r\na\t6.5\r\nb\t\r\n".encode("utf-8"))
    meta = read_metadata(path)
    assert list(meta.frame.columns) == ["ph"] and list(meta.frame.index) == ["a", "b"]
    np.testing.assert_array_equal(meta.numeric("ph"), [6.5, np.nan])
