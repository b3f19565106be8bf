"""Interruption and resume: a run killed with SIGKILL after its k-th epoch and restarted with
--resume ends with the same weights, history and predictions as the run that was never stopped;
SIGTERM stops a run cleanly with exit status 143 and a loadable last.pt."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from aam.data.simulate import write_simulation
from aam.runtime.checkpoint import load_checkpoint

FLAGS = ["--metadata-column", "ph,temperature", "--categorical-columns", "location", "--embedding-dim", "16",
         "--attention-heads", "2", "--asv-layers", "1", "--sample-layers", "1", "--dropout", "0.1",
         "--max-bp", "32", "--token-limit", "32", "--batch-size", "16", "--lr", "3e-3", "--epochs", "4",
         "--patience", "0", "--seed", "5", "--device", "cpu", "--no-progress", "--asv-sampling", "random"]
# Same thread count in every process, so the float results can be compared bit for bit.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# Runs `aam train` in this process and SIGKILLs itself right after epoch KILL_AFTER's checkpoint.
KILLER = """
import os, signal, sys
import aam.training.run as run
from aam.cli.main import main
kill_after = int(sys.argv[1])
original = run.train
def train(config, **kw):
    def on_epoch_end(epoch, row):
        if epoch == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
    return original(config, on_epoch_end=on_epoch_end, **kw)
import aam.training
aam.training.train = train
sys.exit(main(sys.argv[2:]))
"""


def aam(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "aam", *args], env=ENV, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim")
    write_simulation(folder, n_samples=64, seed=2, n_features=32)
    return ["--table", str(folder / "table.biom"), "--metadata", str(folder / "metadata.tsv")]


@pytest.mark.parametrize("extra", [[], ["--ema-decay", "0.7", "--rarefy", "0.3"],
                                   ["--metadata-column", "ph_class,ph", "--class-weights", "auto",
                                    "--label-smoothing", "0.1"],
                                   ["--metadata-column", "ph_class,ph", "--asv-linear", "2"]],
                         ids=["default", "ema-rarefy", "classifier", "asv-linear"])
def test_sigkill_after_epoch_then_resume_equals_uninterrupted_run(data, tmp_path, extra):
    full, cut = tmp_path / "full", tmp_path / "cut"
    flags = [*FLAGS, *extra]
    assert aam("train", *data, *flags, "--output-dir", str(full)).returncode == 0
    killed = subprocess.run([sys.executable, "-c", KILLER, "2", "train", *data, *flags, "--output-dir", str(cut)],
                            env=ENV, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL
    assert load_checkpoint(cut / "last.pt")["epoch"] == 2
    assert not (cut / "metrics.json").exists()
    resumed = aam("train", *data, *flags, "--output-dir", str(cut), "--resume")
    assert resumed.returncode == 0, resumed.stderr

    for name in ("model.pt", "last.pt"):
        a, b = load_checkpoint(full / name)["model_state"], load_checkpoint(cut / name)["model_state"]
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), (name, key)
    if "--ema-decay" in extra:  # the weight average travels in last.pt
        a, b = (load_checkpoint(run / "last.pt")["trainer"]["weight_average"] for run in (full, cut))
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    h_full = pd.read_csv(full / "history.tsv", sep="\t").drop(columns="seconds")
    h_cut = pd.read_csv(cut / "history.tsv", sep="\t").drop(columns="seconds")
    pd.testing.assert_frame_equal(h_full, h_cut)
    assert (full / "val_predictions.tsv").read_text() == (cut / "val_predictions.tsv").read_text()


def test_resume_with_only_the_output_dir(data, tmp_path):
    out = tmp_path / "run"
    flags = [f if f != "4" else "2" for f in FLAGS]  # 2 epochs
    assert aam("train", *data, *flags, "--output-dir", str(out)).returncode == 0
    done = aam("train", "--output-dir", str(out), "--resume", "--no-progress")
    assert done.returncode == 0, done.stderr  # nothing left to do: reports are rewritten, weights unchanged


def test_sigterm_stops_cleanly_and_leaves_a_usable_last_checkpoint(data, tmp_path):
    out = tmp_path / "run"
    flags = [f if f != "4" else "500" for f in FLAGS]
    proc = subprocess.Popen([sys.executable, "-m", "aam", "train", *data, *flags, "--output-dir", str(out)],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "history.tsv").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    state = load_checkpoint(out / "last.pt")
    assert state["epoch"] >= 1
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
