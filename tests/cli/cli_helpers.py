"""Shared by the CLI error tests: the tiny-model flags and the one-line-error check."""

from aam.cli.main import main

# A model that trains one epoch on 40 samples in about a second.
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
