"""The README's promise: on the CPU, two runs with the same seed, data, flags and thread count give
bitwise equal weights, also with several threads (deterministic algorithms; without them the
accumulating gather in the backward pass races between threads)."""

import pytest
import torch

from aam.cli.main import main
from aam.data.simulate import write_simulation
from aam.runtime.checkpoint import load_checkpoint

# Wide enough that the gather's backward ([16 samples x 48 ASVs, 64]) is split between threads.
FLAGS = ["--metadata-column", "ph", "--embedding-dim", "64", "--attention-heads", "2", "--asv-layers", "1",
         "--sample-layers", "1", "--max-bp", "16", "--token-limit", "48", "--batch-size", "16", "--lr", "3e-3",
         "--epochs", "2", "--patience", "0", "--seed", "3", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim")
    write_simulation(folder, n_samples=64, seed=2, n_features=48)
    return ["--table", str(folder / "table.biom"), "--metadata", str(folder / "metadata.tsv")]


def weights(data, out):
    assert main(["train", *data, *FLAGS, "--output-dir", str(out)]) == 0
    return load_checkpoint(out / "last.pt")["model_state"]


def test_two_thread_cpu_runs_are_bitwise_equal(data, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        a, b = weights(data, tmp_path / "a"), weights(data, tmp_path / "b")
    finally:
        torch.set_num_threads(threads)
    assert not torch.are_deterministic_algorithms_enabled()  # the run's setting does not leak
    for key in a:
        assert torch.equal(a[key], b[key]), key
