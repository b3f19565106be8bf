"""The distance targets against hand-computed values."""


import math

import numpy as np
import pytest
import scipy.sparse as sp

from aam.errors import UserError
from aam.pretrain.distances import BatchDistances

COUNTS = sp.csr_matrix(np.array([[4.0, 0.0, 6.0, 0.0], [1.0, 3.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0 + 1.0]]))


def test_bray_curtis_by_hand():
    d = BatchDistances("braycurtis")(COUNTS)
    # BC(a, b) = 1 - 2 sum(min) / (sum a + sum b)
    assert d[0, 1] == pytest.approx(1 - 2 * 1 / 14)
    assert d[0, 2] == pytest.approx(1.0) and d[1, 2] == pytest.approx(1.0)
    assert np.allclose(d, d.T) and np.allclose(np.diag(d), 0)


def test_aitchison_by_hand_over_the_asvs_present_in_the_batch():
    two = sp.csr_matrix(np.array([[4.0, 0.0, 6.0, 0.0], [1.0, 3.0, 0.0, 0.0]]))
    d = BatchDistances("aitchison")(two)
    x = np.array([[5.0, 1.0, 7.0], [2.0, 4.0, 1.0]])  # the 3 present ASVs, plus one pseudo-read
    clr = np.log(x) - np.log(x).mean(1, keepdims=True)
    assert d[0, 1] == pytest.approx(float(np.linalg.norm(clr[0] - clr[1])), rel=1e-6)


def test_weighted_unifrac_by_hand(tmp_path):
    # ((A:1,B:1):1,C:2); A and B share the internal branch of length 1
    tree = tmp_path / "tree.nwk"
    tree.write_text("((A:1,B:1)x:1,C:2)root;\n")
    names = [["A"], ["B"], ["C"], ["D"]]
    distances = BatchDistances("unifrac", str(tree), names[:3], ["AC", "GT", "TT"])
    counts = sp.csr_matrix(np.array([[1.0, 0.0, 1.0], [0.0, 2.0, 0.0]]))
    d = distances(counts)
    # proportions: u = (1/2, 0, 1/2), v = (0, 1, 0); per branch |u_i - v_i| x length:
    # A: 1/2, B: 1, x (above A and B): |1/2 - 1| = 1/2, C: 2 x 1/2 = 1 -> 3; normalized by
    # sum over tips of depth x (u + v): A 2 x 1/2 + B 2 x 1 + C 2 x 1/2 = 4
    assert d[0, 1] == pytest.approx(3 / 4)
    with pytest.raises(UserError, match="1 of 4 ASVs .* not tips of the tree"):
        BatchDistances("unifrac", str(tree), names, ["AC", "GT", "TT", "CC"])
    assert math.isclose(d[1, 0], d[0, 1], rel_tol=1e-9)


def test_a_tip_may_be_named_by_the_sequence(tmp_path):
    tree = tmp_path / "tree.nwk"
    tree.write_text("(ACGT:1,GGGG:1)root;\n")
    d = BatchDistances("unifrac", str(tree), [["h1"], ["h2"]], ["ACGT", "GGGG"])(
        sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 1.0]])))
    assert d[0, 1] == pytest.approx(1.0)

