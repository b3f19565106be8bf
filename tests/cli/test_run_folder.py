"""The output folder's guarantees, with real processes: one command at a time per folder (an OS lock
that dies with its holder, kill -9 included), a run stopped before its first checkpoint leaves a
folder a plain rerun accepts, files readable under the user's umask, absolute paths in config.json,
and --resume refusing flags it would ignore."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from cli_helpers import one_error_line as in_process_error

from aam.cli.main import main
from aam.data.simulate import write_simulation
from aam.run_lock import LOCK_FILE
from aam.runtime.checkpoint import load_checkpoint

TINY = ["--metadata-column", "ph", "--embedding-dim", "8", "--attention-heads", "2", "--asv-layers", "1",
        "--sample-layers", "1", "--max-bp", "16", "--token-limit", "16", "--batch-size", "16", "--patience", "0",
        "--device", "cpu", "--no-progress"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

HOLD_LOCK = """
import sys, time
from aam.run_lock import folder_lock
with folder_lock(sys.argv[1], "test holder"):
    print("held", flush=True)
    time.sleep(600)
"""


def aam(*args, cwd=None, umask=None):
    return subprocess.run([sys.executable, "-m", "aam", *map(str, args)], env=ENV, capture_output=True, text=True,
                          cwd=cwd, preexec_fn=None if umask is None else (lambda: os.umask(umask)), timeout=300)


def start(*args):
    return subprocess.Popen([sys.executable, "-m", "aam", *map(str, args)], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(path, proc, timeout=120, step=0.01):
    deadline = time.time() + timeout
    while not path.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(step)
    assert path.exists(), proc.communicate()


def one_error_line(result, *fragments):
    assert result.returncode == 2, result.stderr
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim")
    write_simulation(folder, n_samples=64, seed=2, n_features=32)
    return ["--table", folder / "table.biom", "--metadata", folder / "metadata.tsv"]


def test_two_runs_started_together_on_one_new_folder(data, tmp_path):
    """The race on one new folder: exactly one run wins, the other is refused, nothing is overwritten."""
    out = tmp_path / "run"
    procs = {seed: start("train", *data, *TINY, "--epochs", "3", "--seed", seed, "--output-dir", out)
             for seed in (1, 2)}
    results = {seed: (p.wait(timeout=300), *p.communicate()) for seed, p in procs.items()}
    codes = sorted(code for code, _, _ in results.values())
    assert codes == [0, 2], results
    winner = next(seed for seed, (code, _, _) in results.items() if code == 0)
    loser_err = next(err for code, _, err in results.values() if code == 2).strip()
    assert len(loser_err.splitlines()) == 1, loser_err
    assert "in use by process" in loser_err or "not empty" in loser_err, loser_err
    assert load_checkpoint(out / "model.pt")["config"]["train"]["seed"] == winner
    assert json.loads((out / "config.json").read_text())["train"]["seed"] == winner
    assert not (out / LOCK_FILE).exists()


def test_a_held_lock_names_its_pid_and_dies_with_kill_9(data, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        one_error_line(aam("train", *data, *TINY, "--epochs", "1", "--output-dir", out),
                       f"process {holder.pid}", "in use")
        one_error_line(aam("baseline", *data, "--metadata-column", "ph", "--trees", "5", "--output-dir", out),
                       f"process {holder.pid}")
        assert os.listdir(out) == [LOCK_FILE]  # the refused commands wrote nothing
    finally:
        holder.kill()  # SIGKILL: no cleanup code runs, the lock file stays behind
        holder.wait()
    assert (out / LOCK_FILE).exists()
    done = aam("train", *data, *TINY, "--epochs", "1", "--output-dir", out)
    assert done.returncode == 0, done.stderr


def test_resume_while_the_run_is_still_going_is_refused(data, tmp_path):
    out = tmp_path / "run"
    proc = start("train", *data, *TINY, "--epochs", "500", "--output-dir", out)
    try:
        wait_for(out / "last.pt", proc)
        one_error_line(aam("train", "--output-dir", out, "--resume", "--no-progress"), f"process {proc.pid}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_stopped_in_epoch_1_then_a_plain_rerun(tmp_path, sig):
    """Stopped before the first checkpoint: nothing to resume, and the same command runs again."""
    write_simulation(tmp_path / "sim", n_samples=800, seed=2, n_features=32)
    data = ["--table", tmp_path / "sim" / "table.biom", "--metadata", tmp_path / "sim" / "metadata.tsv"]
    out = tmp_path / "run"
    slow = [*TINY, "--batch-size", "1", "--epochs", "1"]  # 640 steps: the signal lands inside epoch 1
    proc = start("train", *data, *slow, "--output-dir", out)
    wait_for(out / "val_samples.txt", proc, step=0.002)  # written just before epoch 1 starts
    proc.send_signal(sig)
    said = "".join(proc.communicate(timeout=120))
    assert not (out / "last.pt").exists()
    if sig == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM, said
        assert "before the first epoch ended" in said and "run the same command again" in said, said
        assert "--resume" not in said
        assert not out.exists()  # the run created the folder and nothing was saved: it is gone again
    else:
        assert proc.returncode == -signal.SIGKILL
        resumed = aam("train", "--output-dir", out, "--resume")
        one_error_line(resumed, "no last.pt", "without --resume")
    rerun = aam("train", *data, *slow, "--output-dir", out)
    assert rerun.returncode == 0, rerun.stderr
    assert load_checkpoint(out / "last.pt")["epoch"] == 1


def test_outputs_follow_the_umask_and_config_holds_absolute_paths(tmp_path):
    write_simulation(tmp_path / "sim", n_samples=48, seed=4, n_features=16)
    relative = ["--table", "sim/table.biom", "--metadata", "sim/metadata.tsv"]
    done = aam("train", *relative, *TINY, "--epochs", "2", "--output-dir", "run", cwd=tmp_path, umask=0o022)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "run"
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"model.pt", "last.pt", "config.json", "metrics.json", "history.tsv",
                                       "val_predictions.tsv", "train_samples.txt"}
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o644, path
    assert "model: run/model.pt" in done.stdout  # messages show paths as given
    data = json.loads((out / "config.json").read_text())["data"]
    assert data["table"] == str(tmp_path / "sim" / "table.biom")
    assert data["metadata"] == str(tmp_path / "sim" / "metadata.tsv")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    more = aam("train", "--output-dir", out, "--resume", "--epochs", "3", "--no-progress", cwd=elsewhere, umask=0o077)
    assert more.returncode == 0, more.stderr
    assert "2 of 3 epochs done, continuing with epoch 3" in more.stdout + more.stderr
    assert (out / "model.pt").stat().st_mode & 0o777 == 0o600  # the umask of this command
    baseline = aam("baseline", "--train-dir", out, "--trees", "5", "--output-dir", "rf", cwd=elsewhere)
    assert baseline.returncode == 0, baseline.stderr


def test_resume_refuses_flags_it_cannot_honour(data, tmp_path, capsys):
    out = tmp_path / "run"
    data = list(map(str, data))
    assert main(["train", *data, *TINY, "--epochs", "2", "--output-dir", str(out)]) == 0
    before = (out / "last.pt").read_bytes()
    resume = ["train", "--output-dir", str(out), "--resume"]
    in_process_error(capsys, [*resume, "--lr", "0.5"], "lr", "0.5", "may change only --epochs")
    in_process_error(capsys, [*resume, "--dropout", "0.3"], "dropout")
    in_process_error(capsys, [*resume, "--epochs", "1"], "--epochs 1", "2 epochs already run")
    in_process_error(capsys, ["train", *data, *TINY, "--epochs", "2", "--output-dir", str(out), "--resume",
                              "--seed", "7"], "seed")
    assert (out / "last.pt").read_bytes() == before
