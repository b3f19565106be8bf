"""ASV identity vectors: the vocabulary, the hash that recognizes an ASV, and unknown ASVs."""

import numpy as np
import torch

from aam.data.tokenizer import tokenize
from aam.models.identity import ASVIdentity, sequence_hashes, vocabulary

SEQUENCES = ["ACGTAC", "ACGTAG", "TTTT", "ACGTACN", "GGA"]


def test_the_hash_ignores_padding_and_separates_sequences():
    short, long = tokenize(SEQUENCES, 8), tokenize(SEQUENCES, 12)
    assert torch.equal(sequence_hashes(torch.from_numpy(short)), sequence_hashes(torch.from_numpy(long)))
    hashes = sequence_hashes(torch.from_numpy(short))
    assert len(set(hashes.tolist())) == len(SEQUENCES)
    # against the definition: sum of token x base^position modulo each prime, joined as first x 2^31 + second
    tokens = short[0].astype(object)
    first = sum(int(t) * pow(1000003, i, 2147483629) for i, t in enumerate(tokens)) % 2147483629
    second = sum(int(t) * pow(999983, i, 2147483587) for i, t in enumerate(tokens)) % 2147483587
    assert hashes[0].item() == first * 2**31 + second


def test_the_vocabulary_holds_the_asvs_of_enough_samples_and_others_share_row_zero():
    tokens = tokenize(SEQUENCES, 8)
    # samples x ASVs: ASV 0 held by 3 samples, 1 by 1, 2 by 2, 3 by 5, 4 by none
    counts = np.array([[1, 4, 2, 1, 0], [5, 0, 1, 2, 0], [2, 0, 0, 3, 0], [0, 0, 0, 1, 0], [0, 0, 0, 7, 0]])
    hashes = vocabulary(counts, tokens, 2)  # ASVs 0, 2, 3
    assert hashes.tolist() == sorted(sequence_hashes(torch.from_numpy(tokens[[0, 2, 3]])).tolist())
    identity = ASVIdentity(3, 4)
    identity.set_vocabulary(hashes)
    out = identity(torch.from_numpy(tokens))
    rows = {h: i + 1 for i, h in enumerate(hashes.tolist())}
    for k, h in enumerate(sequence_hashes(torch.from_numpy(tokens)).tolist()):
        assert torch.equal(out[k], identity.embedding.weight[rows.get(h, 0)])
    assert torch.equal(out[1], out[4])  # both unknown


def test_take_vectors_copies_the_rows_of_the_same_asvs_and_the_unknown_row():
    tokens = torch.from_numpy(tokenize(SEQUENCES, 8))
    hashes = sequence_hashes(tokens)
    other = ASVIdentity(3, 4)
    other.set_vocabulary(torch.sort(hashes[[0, 1, 2]]).values)
    mine = ASVIdentity(3, 4)
    mine.set_vocabulary(torch.sort(hashes[[1, 2, 4]]).values)
    before = mine.embedding.weight.detach().clone()
    mine.take_vectors(other.hashes, other.embedding.weight.detach())
    with torch.no_grad():
        ours, theirs = mine(tokens), other(tokens)
    assert torch.equal(ours[1], theirs[1]) and torch.equal(ours[2], theirs[2])  # shared ASVs
    assert torch.equal(ours[3], theirs[3])  # unknown to both: row 0, taken over
    row = mine.hashes.tolist().index(hashes[4].item()) + 1
    assert torch.equal(ours[4], before[row])  # only mine: kept
