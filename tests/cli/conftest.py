"""Fixtures shared by the end-to-end CLI tests."""

from pathlib import Path

import pytest

from aam.data.simulate import write_simulation


@pytest.fixture(scope="session")
def small_study(tmp_path_factory) -> Path:
    """A simulated study of 160 samples x 64 features (seed 3): small enough to train on in seconds."""
    folder = tmp_path_factory.mktemp("small_study")
    write_simulation(folder, n_samples=160, seed=3, n_features=64)
    return folder


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> Path:
    """A simulated study of 40 samples x 16 features (seed 1), for runs of the tiny model."""
    folder = tmp_path_factory.mktemp("tiny_study")
    write_simulation(folder, n_samples=40, seed=1, n_features=16)
    return folder
