"""Fixtures shared by the end-to-end CLI tests: simulated studies, model flag lists, the error check.

Test modules take these as fixture arguments and never import each other or this file; the flag list
and the error check behind the fixtures live in `cli_helpers.py`, which module-level code may import.
"""

from pathlib import Path

import pytest

from cli_helpers import TINY, one_error_line

from aam.data.simulate import write_simulation

# A model that learns the simulator's strong signal in about 10 epochs on one CPU core (no --epochs here).
SMALL_MODEL = ["--embedding-dim", "32", "--attention-heads", "2", "--asv-layers", "1", "--sample-layers", "1",
               "--dropout", "0", "--max-bp", "64", "--token-limit", "64", "--batch-size", "16", "--lr", "3e-3",
               "--patience", "0", "--seed", "1", "--device", "cpu", "--no-progress"]


def table_args(folder: Path) -> list[str]:
    return ["--table", str(folder / "table.biom"), "--metadata", str(folder / "metadata.tsv")]


def simulated(tmp_path_factory, name: str, **options) -> Path:
    folder = tmp_path_factory.mktemp(name)
    write_simulation(folder, **options)
    return folder


@pytest.fixture(scope="session")
def small_study(tmp_path_factory) -> Path:
    """A simulated study of 160 samples x 64 features (seed 3): small enough to train on in seconds."""
    return simulated(tmp_path_factory, "small_study", n_samples=160, seed=3, n_features=64)


@pytest.fixture(scope="session")
def small_study_args(small_study) -> list[str]:
    """--table and --metadata of `small_study`."""
    return table_args(small_study)


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> Path:
    """A simulated study of 40 samples x 16 features (seed 1), for error paths."""
    return simulated(tmp_path_factory, "tiny_study", n_samples=40, seed=1, n_features=16)


@pytest.fixture(scope="session")
def tiny_study_args(tiny_study) -> list[str]:
    """--table and --metadata of `tiny_study`."""
    return table_args(tiny_study)


@pytest.fixture(scope="session")
def tiny_model() -> list[str]:
    return list(TINY)


@pytest.fixture(scope="session")
def small_model() -> list[str]:
    return list(SMALL_MODEL)


@pytest.fixture
def user_error(capsys):
    """`user_error(argv, *fragments)`: runs `aam argv`, checks exit status 2 and one stderr line without a
    traceback that contains every fragment; returns that line."""
    return lambda argv, *fragments: one_error_line(capsys, argv, *fragments)
