"""One rank of a two-process gloo data-parallel run, started by test_host_syncs.py as torchrun would start
it (RANK, WORLD_SIZE, MASTER_ADDR/PORT in the environment): `python data_parallel_worker.py STUDY OUT.json`.

Epoch 1's means are kept for comparison with one process; epoch 2 counts the host reads inside each training step, each `after_step` and the
epoch's `epoch_means`; in epoch 3 rank 1 alone gets SIGTERM's flag after its third step, and each rank
records after how many steps it stopped. Writes what it saw to OUT.json (a helper, not a test module).
"""

import json
import signal
import sys

from host_reads import HostReads
from run_configs import moe_run_config

from aam.runtime import distributed
from aam.training import build_run
from aam.training.trainer import TrainingInterrupted

STOP_READ_EVERY = 2
FLAGGED_AFTER = 3  # rank 1 sets its stop flag after this many steps of epoch 3


def main(study: str, out: str) -> None:
    with distributed.session("cpu"):
        run = build_run(moe_run_config(study))
        trainer, reduction = run.trainer, run.trainer.reduction
        reduction.stop_read_every = STOP_READ_EVERY
        run.data.train_set.set_epoch(1)
        loss, columns, router = trainer.train_epoch(run.train_loader, 1)
        first = [loss, *columns, *router.values()]

        run.data.train_set.set_epoch(2)
        reads = HostReads()
        with reads.watching(trainer, "train_step"), reads.watching(reduction, "after_step", "epoch_means"):
            loss, columns, router = trainer.train_epoch(run.train_loader, 2)
        second = [loss, *columns, *router.values()]

        steps = 0
        original = trainer.train_step

        def train_step(*args):
            nonlocal steps
            result = original(*args)
            steps += 1
            if distributed.rank() == 1 and steps == FLAGGED_AFTER:
                trainer.stop.signum = signal.SIGTERM
            return result

        trainer.train_step = train_step
        run.data.train_set.set_epoch(3)
        stopped_by = None
        try:
            trainer.train_epoch(run.train_loader, 3)
        except TrainingInterrupted as stop:
            stopped_by = stop.signum
        with open(out, "w") as f:
            json.dump({"steps_per_epoch": len(run.train_loader), "stop_read_every": STOP_READ_EVERY,
                       "reads": dict(reads.counts), "calls": dict(reads.calls), "where": reads.where,
                       "epoch_1": first, "epoch_2": second, "stopped_after": steps,
                       "stopped_by": stopped_by}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
