"""The tiny-model flags and the one-line-error check, shared by the CLI tests (through the conftest's
`tiny_model` and `user_error` fixtures, or imported where a module-level list needs them)."""

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from aam.cli.main import main
from aam.data.table import read_table

# The smallest model: for flag checks, file formats and error paths; it learns nothing in 1 epoch.
TINY = ["--embedding-dim", "8", "--attention-heads", "2", "--asv-layers", "1", "--sample-layers", "1",
        "--max-bp", "16", "--token-limit", "16", "--epochs", "1", "--device", "cpu", "--no-progress"]


def one_error_line(capsys, argv, *fragments) -> str:
    """`aam argv` exits 2 with exactly one stderr line, no traceback, holding every fragment."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def assert_weights_close(state_a, state_b, gauge) -> None:
    """Two runs' weights agree to float rounding, except the parameters named by a suffix in `gauge` (a bias
    whose gradient is zero by construction moves by rounding noise in either run) and the key third of
    each attention qkv bias (a softmax removes a shift that is the same for every position)."""
    for name, value in state_a.items():
        other = state_b[name]
        if name.endswith("attn.qkv.bias"):
            d = value.numel() // 3
            value, other = torch.cat([value[:d], value[2 * d:]]), torch.cat([other[:d], other[2 * d:]])
        if not any(name.endswith(g) for g in gauge):
            torch.testing.assert_close(other, value, rtol=1e-4, atol=2e-4, msg=name)


def relative_abundances(table_path):
    """(relative abundances [samples, features] computed here by hand, {sample ID: row}) of a table: what the
    random forest of `aam cv` is fitted on, for tests that fit it again independently."""
    table = read_table(table_path)
    counts = sp.csr_matrix(table.counts)
    x = sp.diags(1.0 / np.asarray(counts.sum(axis=1)).ravel()) @ counts
    return x, {s: i for i, s in enumerate(table.sample_ids)}


def cv_fold_parts(cv_run, table_path, folds: int):
    """For each fold of the `aam cv` folder `cv_run`: (cv_predictions indexed by sample ID, the fold's test
    IDs, its training IDs in the table's order (the order the forest sees), their relative abundances and the
    test samples'), for tests that refit the reference methods fold by fold."""
    preds = pd.read_csv(cv_run / "cv_predictions.tsv", sep="\t", index_col="sample_id")
    x, rows = relative_abundances(table_path)
    for fold in range(1, folds + 1):
        test = preds.index[preds["fold"] == fold]
        train = sorted(preds.index[preds["fold"] != fold], key=rows.get)
        yield preds, test, train, x[[rows[s] for s in train]], x[[rows[s] for s in test]]
