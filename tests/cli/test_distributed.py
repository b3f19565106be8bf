"""Data-parallel training with two real gloo processes on the CPU (no mocks), compared with one process.

`--batch-size` is the global batch, so two processes take the same optimizer steps on the same samples
as one: the loss curve, the metrics and the predictions agree to float32 rounding, and so do the
weights -- except a few biases whose gradient is zero by construction (a bias that the BatchNorm's
mean subtraction or a softmax removes): AdamW divides their rounding-noise gradients by their own
magnitude and moves them by about lr per step in either run, without changing any output.

The study has 96 training samples and the batch 19, so the last global batch has one sample and the
second rank runs that step on a placeholder (`aam.data.sharding`).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from cli_helpers import assert_weights_close

from aam.data.simulate import write_simulation

from aam.run_lock import LOCK_FILE, folder_lock
from aam.runtime.checkpoint import load_checkpoint

EPOCHS = 3
FLAGS = ["--metadata-column", "ph,temperature,ph_class", "--categorical-columns", "location", "--embedding-dim", "16",
         "--attention-heads", "2", "--asv-layers", "1", "--sample-layers", "1", "--dropout", "0",
         "--max-bp", "32", "--token-limit", "24", "--batch-size", "19", "--lr", "3e-3", "--epochs", str(EPOCHS),
         "--patience", "0", "--seed", "5", "--device", "cpu", "--no-progress", "--asv-sampling", "random",
         "--regressor-hidden-dims", "8", "--moe-experts", "3", "--moe-top-k", "2", "--moe-router-z-weight", "0.01"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# Biases with a zero gradient by construction (see module doc): the LayerNorm bias before the ASV BatchNorm
# (its mean subtraction removes it) with the running mean that follows it, the attention-pooling score bias
# and the key third of each qkv bias (a softmax removes a shift that is the same for every position).
GAUGE = ("asv_encoder.stack.norm.bias", "asv_encoder.norm.running_mean", "pool.score.bias")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def data_flags(folder) -> list[str]:
    return ["--table", str(folder / "table.biom"), "--metadata", str(folder / "metadata.tsv"), *FLAGS]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp_study")
    write_simulation(folder, n_samples=120, seed=3, n_features=64)
    return folder


@pytest.fixture(scope="module")
def single(study, tmp_path_factory):
    """The reference: one process, uninterrupted."""
    out = tmp_path_factory.mktemp("single") / "run"
    done = subprocess.run([sys.executable, "-m", "aam", "train", *data_flags(study), "--output-dir", str(out)],
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out


def assert_same_run(a, b, weights: bool = True) -> None:
    history_a, history_b = (pd.read_csv(p / "history.tsv", sep="\t").drop(columns="seconds") for p in (a, b))
    assert list(history_a.columns) == list(history_b.columns)
    np.testing.assert_allclose(history_a.to_numpy(float), history_b.to_numpy(float), rtol=2e-5, atol=1e-5)
    metrics_a, metrics_b = (json.loads((p / "metrics.json").read_text()) for p in (a, b))
    assert metrics_a.keys() == metrics_b.keys()
    for target in ("ph", "temperature", "ph_class"):
        for name, value in metrics_a[target].items():
            if isinstance(value, list):  # the levels and the confusion matrix
                assert metrics_b[target][name] == value, (target, name)
            else:
                assert metrics_b[target][name] == pytest.approx(value, rel=2e-5, abs=1e-5), (target, name)
    pred_a, pred_b = (pd.read_csv(p / "val_predictions.tsv", sep="\t") for p in (a, b))
    levels = ["sample_id", "ph_class", "ph_class_observed"]  # text columns
    assert pred_a[levels].equals(pred_b[levels])
    np.testing.assert_allclose(pred_a.drop(columns=levels).to_numpy(float),
                               pred_b.drop(columns=levels).to_numpy(float), rtol=2e-5, atol=1e-5)
    if weights:
        state_a, state_b = (load_checkpoint(p / "last.pt")["model_state"] for p in (a, b))
        assert_weights_close(state_a, state_b, GAUGE)


def test_two_gloo_processes_train_like_one(study, single, tmp_path):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
                           "-m", "aam", "train", *data_flags(study), "--output-dir", str(out)],
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("best epoch") == 1  # only rank 0 prints
    assert_same_run(single, out)


def launch(rank: int, port: int, args: list[str]) -> subprocess.Popen:
    """One worker as torchrun starts it: the process group from RANK, WORLD_SIZE, MASTER_ADDR/PORT."""
    env = {**ENV, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port)}
    return subprocess.Popen([sys.executable, "-m", "aam", "train", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_sigterm_to_one_rank_stops_both_and_resume_on_one_process_matches(study, single, tmp_path):
    out = tmp_path / "run"
    port = free_port()
    workers = [launch(rank, port, [*data_flags(study), "--output-dir", str(out)]) for rank in (0, 1)]
    deadline = time.monotonic() + 240
    while not (out / "history.tsv").exists():  # written after epoch 1's checkpoint
        assert time.monotonic() < deadline and all(w.poll() is None for w in workers), workers[0].stderr.read()
        time.sleep(0.02)
    workers[1].send_signal(signal.SIGTERM)
    results = [w.communicate(timeout=240) for w in workers]
    assert [w.returncode for w in workers] == [143, 143], results[0][1][-3000:]
    assert "stopped by SIGTERM" in results[0][0] and results[1][0] == ""  # rank 0 alone prints
    stopped_at = load_checkpoint(out / "last.pt")["epoch"]
    assert 1 <= stopped_at < EPOCHS
    resumed = subprocess.run([sys.executable, "-m", "aam", "train", "--output-dir", str(out), "--resume"],
                             env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(out / "last.pt")["epoch"] == EPOCHS
    assert_same_run(single, out)


@pytest.mark.parametrize("case", ["every rank", "rank 1 only"])
def test_a_user_error_is_one_line_from_rank_0(study, tmp_path, case):
    port = free_port()
    out = ["--output-dir", str(tmp_path / "run")]
    if case == "every rank":
        args = [[*data_flags(study), "--metadata-column", "no_such_column", *out]] * 2
        expected = "no_such_column"
    else:  # only rank 1 lacks its table: rank 0 reports it, naming the rank
        args = [[*data_flags(study), *out],
                [*data_flags(study), *out, "--table", str(tmp_path / "missing.biom")]]
        expected = "rank 1: table file not found"
    workers = [launch(rank, port, args[rank]) for rank in (0, 1)]
    results = [w.communicate(timeout=120) for w in workers]
    assert [w.returncode for w in workers] == [2, 2]
    lines = results[0][1].strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], results[0][1]
    assert results[1][1].strip() == ""


def run_two_ranks(args: list[str]) -> list[tuple[int, str]]:
    port = free_port()
    workers = [launch(rank, port, args) for rank in (0, 1)]
    results = [w.communicate(timeout=240) for w in workers]
    return [(w.returncode, err) for w, (_, err) in zip(workers, results)]


def test_a_non_finite_loss_stops_both_ranks_with_one_line(study, tmp_path):
    out = tmp_path / "run"
    (rank0, err0), (rank1, err1) = run_two_ranks([*data_flags(study), "--lr", "1e30", "--max-grad-norm", "0",
                                                  "--output-dir", str(out)])
    assert (rank0, rank1) == (2, 2), err0[-3000:]
    # Only the error lines count: torch's DDP warns about one of its arguments on every rank.
    lines = [line for line in err0.splitlines() if line.startswith("aam ")]
    assert len(lines) == 1 and "training loss became" in lines[0] and "epoch 1, step" in lines[0], err0
    assert "Traceback" not in err0 + err1 and not [line for line in err1.splitlines() if line.startswith("aam ")]
    assert not out.exists()  # nothing was saved: the folder rank 0 made is gone again


def test_rank_0_alone_takes_the_folder_lock(study, tmp_path):
    out = tmp_path / "run"
    with folder_lock(out, "test holder"):  # flock conflicts between two opens, even in one process
        (rank0, err0), (rank1, err1) = run_two_ranks([*data_flags(study), "--output-dir", str(out)])
        assert (rank0, rank1) == (2, 2), err0[-3000:]
        lines = err0.strip().splitlines()
        assert len(lines) == 1 and f"process {os.getpid()}" in lines[0] and "in use" in lines[0], err0
        assert err1.strip() == "" and os.listdir(out) == [LOCK_FILE]
