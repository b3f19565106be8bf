"""No value is read from the device to the host inside a training step (on a GPU such a read waits for
every queued kernel), in one process and in a two-process gloo data-parallel run; the stop flags are read
only every `stop_read_every` steps and once at the end of the epoch, and still stop every rank after the
same step. The reads are counted by a spy on the Tensor methods that produce Python values. The
two-process epoch's means match one process's (the run reads relative abundances, which each rank's
forward must feed the model as one process does)."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from host_reads import HostReads
from run_configs import moe_run_config

from aam.data.simulate import write_simulation
from aam.training import build_run

WORKER = Path(__file__).with_name("data_parallel_worker.py")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim")
    write_simulation(folder, n_samples=60, seed=1, n_features=16)
    return folder


def test_a_single_process_step_reads_nothing_from_the_device(study):
    run = build_run(moe_run_config(study), "cpu")
    reads = HostReads()
    with reads.watching(run.trainer, "train_step"), reads.watching(run.trainer.reduction, "epoch_means"):
        run.data.train_set.set_epoch(1)
        run.trainer.train_epoch(run.train_loader, 1)
    assert reads.calls["train_step"] == len(run.train_loader) > 1
    assert reads.counts["train_step"] == 0, reads.where
    assert reads.counts["epoch_means"] == 1, reads.where  # the epoch's sums, read once


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_read_nothing_per_step_and_stop_after_the_same_step(study, tmp_path):
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port)}
    workers = [subprocess.Popen([sys.executable, str(WORKER), str(study), str(tmp_path / f"rank{r}.json")],
                                env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    results = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], results[0][1][-3000:] + results[1][1][-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for seen in ranks:
        steps, every = seen["steps_per_epoch"], seen["stop_read_every"]
        assert steps >= 3 * every and seen["calls"]["train_step"] == seen["calls"]["after_step"] == steps
        assert seen["reads"].get("train_step", 0) == 0, seen["where"]
        # one read at each `stop_read_every`-th step but the first, one for the epoch's sums
        assert seen["reads"].get("after_step", 0) <= steps // every - 1, seen["where"]
        assert seen["reads"]["epoch_means"] == 1
    assert ranks[0]["epoch_2"] == ranks[1]["epoch_2"]  # all-reduced: the same numbers on both ranks
    # The global batches are the single-process batches: epoch 1's means match one process's.
    run = build_run(moe_run_config(study), "cpu")
    run.data.train_set.set_epoch(1)
    loss, columns, router = run.trainer.train_epoch(run.train_loader, 1)
    assert ranks[0]["epoch_1"] == pytest.approx([loss, *columns, *router.values()], rel=1e-5, abs=1e-6)
    # Rank 1 flags SIGTERM after its 3rd step; the flag rides the 4th step's all-reduce, whose values are
    # copied at the next read step and read one read period later: both ranks stop after that same step.
    assert [seen["stopped_by"] for seen in ranks] == [signal.SIGTERM] * 2
    assert ranks[0]["stopped_after"] == ranks[1]["stopped_after"]
    assert 4 <= ranks[0]["stopped_after"] <= 4 + 2 * ranks[0]["stop_read_every"] < ranks[0]["steps_per_epoch"]
