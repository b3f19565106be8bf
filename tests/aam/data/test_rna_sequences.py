"""RNA records (U for T) in a FASTA file or a rep-seqs .qza encode the same ASVs as their DNA form:
same tokens, nothing read as the "other" code, and `aam inspect` counts no unusual codes."""

import json

import numpy as np
from data_fixtures import COUNTS, SAMPLES, write_biom, write_fasta, write_qza

from aam.cli.main import main
from aam.data.fasta import read_sequences
from aam.data.tokenizer import OTHER, tokenize

DNA = {"f1": "ACGTTTGCAT", "f2": "ttgcaNRYtt", "f3": "GGGGCCCCAAAATTTT"}
RNA = {name: seq.replace("T", "U").replace("t", "u") for name, seq in DNA.items()}


def test_fasta_and_qza_read_u_as_t(tmp_path):
    fasta = write_fasta(tmp_path / "rna.fasta", RNA, width=4)
    qza = write_qza(tmp_path / "rna.qza", "dna-sequences.fasta", fasta.read_bytes())
    for path in (fasta, qza):
        records = read_sequences(path)
        assert records == DNA
        tokens = tokenize(list(records.values()), max_bp=16)
        np.testing.assert_array_equal(tokens, tokenize(list(DNA.values()), max_bp=16))
        assert (tokens == OTHER).sum() == 3  # only N, R and Y of f2


def test_inspect_counts_no_unusual_codes_in_rna(tmp_path, capsys):
    table = write_biom(tmp_path / "t.biom", COUNTS, ["f1", "f3", "f1x"], SAMPLES, "json")
    fasta = write_fasta(tmp_path / "rna.fasta", {"f1": RNA["f1"], "f3": RNA["f3"], "f1x": "ACGU"})
    assert main(["inspect", "--table", str(table), "--sequences", str(fasta), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sequences"]["with_non_acgt"] == 0
