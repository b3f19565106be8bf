import numpy as np
import pytest

from aam.data.tokenizer import OTHER, PAD, START, VOCAB_SIZE, is_dna, tokenize


def test_acgt_any_case_map_to_1_to_4():
    out = tokenize(["ACGT", "acgt", "AcGt"], max_bp=4)
    assert out.dtype == np.uint8
    assert out.tolist() == [[1, 2, 3, 4]] * 3


def test_other_iupac_codes_are_5_not_padding():
    out = tokenize(["NRYSWKMBDHVU", "nrysw"], max_bp=12)
    assert out[0].tolist() == [OTHER] * 12
    assert out[1].tolist() == [OTHER] * 5 + [PAD] * 7


def test_truncation_and_padding():
    out = tokenize(["ACGTACGTAA", "AC", ""], max_bp=5)
    assert out.tolist() == [[1, 2, 3, 4, 1], [1, 2, 0, 0, 0], [0, 0, 0, 0, 0]]


def test_start_token_prefixes_every_row():
    out = tokenize(["GT", "ACGTT"], max_bp=3, start_token=True)
    assert out.shape == (2, 4)
    assert out.tolist() == [[START, 3, 4, 0], [START, 1, 2, 3]]
    assert START < VOCAB_SIZE


def test_matches_a_per_character_reference():
    rng = np.random.default_rng(0)
    alphabet = list("ACGTacgtNRY")
    seqs = ["".join(rng.choice(alphabet, rng.integers(0, 40))) for _ in range(200)]
    ref = {"A": 1, "C": 2, "G": 3, "T": 4}
    expected = np.zeros((200, 30), dtype=np.uint8)
    for i, s in enumerate(seqs):
        for j, ch in enumerate(s[:30]):
            expected[i, j] = ref.get(ch.upper(), 5)
    np.testing.assert_array_equal(tokenize(seqs, max_bp=30), expected)


def test_empty_input_and_bad_max_bp():
    assert tokenize([], max_bp=7).shape == (0, 7)
    with pytest.raises(ValueError, match="max_bp"):
        tokenize(["A"], max_bp=0)


@pytest.mark.parametrize("text,expected", [("ACGT", True), ("acgtn", True), ("RYKM", True),
                                           ("8937656c16c20701c107e715bad86732", False), ("", False), ("ACG-T", False)])
def test_is_dna(text, expected):
    assert is_dna(text) is expected
