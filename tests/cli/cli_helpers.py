"""The tiny-model flags and the one-line-error check, shared by the CLI tests (through the conftest's
`tiny_model` and `user_error` fixtures, or imported where a module-level list needs them)."""

from aam.cli.main import main

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
