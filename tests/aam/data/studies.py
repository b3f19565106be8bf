"""Small in-memory studies shared by the data tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from aam.data.study import Study


def random_study(n: int = 40, n_features: int = 60, seed: int = 0, scale: float = 1.0) -> Study:
    rng = np.random.default_rng(seed)
    dense = rng.integers(0, 50, (n, n_features)) * (rng.random((n, n_features)) < 0.3)
    dense[:, 0] += 1  # every sample has reads
    dense[3, :] = 0
    dense[3, 5] = 9  # a sample with a single ASV
    seqs = ["".join(rng.choice(list("ACGTN"), rng.integers(5, 20))) for _ in range(n_features)]
    targets = rng.normal(size=(n, 2))
    targets[1, 0] = np.nan
    cats = rng.choice(np.array(["x", "y", "z", None], dtype=object), (n, 2))
    return Study(counts=sp.csr_matrix(dense * scale), sample_ids=[f"s{i}" for i in range(n)],
                 feature_ids=seqs, sequences=seqs, target_columns=("a", "b"), targets=targets,
                 categorical_columns=("c1", "c2"), categories=cats, metadata=None)



def make_study(n: int, groups: list | None = None) -> Study:
    ids = [f"s{i}" for i in range(n)]
    meta = pd.DataFrame({"subject": groups if groups is not None else [None] * n}, index=ids, dtype=object)
    return Study(counts=sp.csr_matrix(np.ones((n, 1))), sample_ids=ids, feature_ids=["ACGT"], sequences=["ACGT"],
                 target_columns=(), targets=np.zeros((n, 0)), categorical_columns=(),
                 categories=np.empty((n, 0), dtype=object), metadata=meta)
