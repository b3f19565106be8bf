"""`aam pretrain` end to end on simulated tables, and fine-tuning from its encoder.pt."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from cli_helpers import assert_weights_close, one_error_line

from aam.cli.flags import config_from_args
from aam.cli.main import build_parser, main
from aam.data.simulate import write_simulation
from aam.runtime.checkpoint import load_checkpoint
from aam.training.build import build_run

PRETRAIN = ["--embedding-dim", "8", "--attention-heads", "2", "--asv-layers", "1", "--sample-layers", "1",
            "--max-bp", "24", "--token-limit", "20", "--batch-size", "10", "--epochs", "3", "--patience", "0",
            "--seed", "3", "--device", "cpu", "--no-progress"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# Runs `aam pretrain` in this process and SIGKILLs itself once the given epoch's files are written.
KILLER = """
import os, signal, sys
import aam.evaluation.outputs as outputs
from aam.cli.main import main
kill_after, written = int(sys.argv[1]), []
original = outputs.write_history
def write_history(path, history):
    original(path, history)
    if len(history) == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)
outputs.write_history = write_history
sys.exit(main(sys.argv[2:]))
"""


def aam(*args):
    return subprocess.run([sys.executable, "-m", "aam", *args], env=ENV, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """Two simulated studies: 50 and 40 samples."""
    paths = []
    for seed, n in ((4, 50), (5, 40)):
        folder = tmp_path_factory.mktemp(f"corpus{seed}")
        write_simulation(folder, n_samples=n, seed=seed, n_features=48)
        paths += ["--table", str(folder / "table.biom")]
    return paths


@pytest.fixture(scope="module")
def pretrained(tables, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrained") / "run"
    done = aam("pretrain", *tables, *PRETRAIN, "--output-dir", str(out))
    assert done.returncode == 0, done.stderr
    return out


def test_pretrain_writes_its_folder_and_an_encoder(pretrained):
    names = {p.name for p in pretrained.iterdir()}
    assert {"config.json", "history.tsv", "last.pt", "encoder.pt", "plots"} <= names
    history = pd.read_csv(pretrained / "history.tsv", sep="\t")
    assert list(history["epoch"]) == [1, 2, 3]
    for objective in ("presence", "abundance", "distance", "nucleotide"):
        assert np.isfinite(history[f"val_{objective}"]).all() and np.isfinite(history[f"train_{objective}"]).all()
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    encoder = load_checkpoint(pretrained / "encoder.pt")
    best = int(history["val_loss"].idxmin()) + 1
    assert encoder["epoch"] == best and encoder["model"]["embedding_dim"] == 8 and encoder["corpus"]["samples"] == 90
    assert set(encoder["encoder_state"]) and all(k.startswith(("asv_encoder.", "sample_encoder."))
                                                 for k in encoder["encoder_state"])
    assert (pretrained / "plots" / "loss_curves.png").stat().st_size > 0


def test_sigkill_then_resume_equals_the_uninterrupted_run(tables, pretrained, tmp_path):
    cut = tmp_path / "cut"
    killed = subprocess.run([sys.executable, "-c", KILLER, "2", "pretrain", *tables, *PRETRAIN, "--output-dir",
                             str(cut)], env=ENV, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    assert len(pd.read_csv(cut / "history.tsv", sep="\t")) == 2
    resumed = aam("pretrain", "--resume", "--output-dir", str(cut), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    full_state, cut_state = (load_checkpoint(p / "last.pt")["model_state"] for p in (pretrained, cut))
    for name, value in full_state.items():
        assert torch.equal(value, cut_state[name]), name
    full_encoder, cut_encoder = (load_checkpoint(p / "encoder.pt")["encoder_state"] for p in (pretrained, cut))
    assert all(torch.equal(v, cut_encoder[k]) for k, v in full_encoder.items())
    histories = [pd.read_csv(p / "history.tsv", sep="\t").drop(columns="seconds") for p in (pretrained, cut)]
    pd.testing.assert_frame_equal(*histories)


def test_two_gloo_processes_pretrain_like_one(tables, pretrained, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
                           "127.0.0.1", "--master-port", str(port), "-m", "aam", "pretrain", *tables, *PRETRAIN,
                           "--output-dir", str(out)], env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = (pd.read_csv(p / "history.tsv", sep="\t").drop(columns="seconds") for p in (pretrained, out))
    np.testing.assert_allclose(two.to_numpy(float), one.to_numpy(float), rtol=2e-5, atol=1e-5)
    state_one, state_two = (load_checkpoint(p / "last.pt")["model_state"] for p in (pretrained, out))
    # biases whose gradient is zero by construction move by rounding noise in either run (see test_distributed);
    # here also the projection's bias, which every distance between projected vectors cancels
    gauge = ("asv_encoder.stack.norm.bias", "asv_encoder.norm.running_mean", "pool.score.bias", "projection.bias")
    assert_weights_close(state_one, state_two, gauge)


def fine_tune_args(study, encoder, *extra):
    return ["train", "--table", str(study / "table.biom"), "--metadata", str(study / "metadata.tsv"),
            "--metadata-column", "ph", "--pretrained-encoder", str(encoder), "--batch-size", "16", "--epochs", "2",
            "--device", "cpu", "--no-progress", *extra]


def test_a_fine_tuned_run_starts_from_the_encoder_weights_bitwise(small_study, pretrained, tmp_path):
    args = build_parser().parse_args(fine_tune_args(small_study, pretrained / "encoder.pt", "--output-dir",
                                                    str(tmp_path / "x")))
    config = config_from_args(args)
    assert config.model.embedding_dim == 8 and config.model.asv_layers == 1 and config.data.max_bp == 24
    run = build_run(config)
    encoder = load_checkpoint(pretrained / "encoder.pt")["encoder_state"]
    state = run.model.state_dict()
    for name, value in encoder.items():
        assert torch.equal(state[name], value), name


def test_freeze_encoder_keeps_the_weights_and_predict_needs_no_encoder(small_study, pretrained, tmp_path):
    encoder_copy = tmp_path / "encoder.pt"
    shutil.copy(pretrained / "encoder.pt", encoder_copy)
    out = tmp_path / "frozen"
    assert main(fine_tune_args(small_study, encoder_copy, "--freeze-encoder", "--output-dir", str(out))) == 0
    encoder = load_checkpoint(encoder_copy)["encoder_state"]
    trained = load_checkpoint(out / "model.pt")
    for name, value in encoder.items():
        if "running_" not in name and "num_batches" not in name:  # statistics are recomputed on the study
            assert torch.equal(trained["model_state"][name], value), name
    assert trained["config"]["train"]["pretrained_encoder"] == str(encoder_copy.resolve())
    assert trained["config"]["train"]["freeze_encoder"] is True
    initial = build_run(config_from_args(build_parser().parse_args(fine_tune_args(
        small_study, encoder_copy, "--freeze-encoder", "--output-dir", str(tmp_path / "unused"))))).model.state_dict()
    head = [k for k in initial if k.startswith("head.")]
    assert head and all(not torch.equal(trained["model_state"][k], initial[k]) for k in head)  # the head trained
    encoder_copy.unlink()
    assert main(["predict", "--model", str(out / "model.pt"), "--table", str(small_study / "table.biom"),
                 "--output", str(tmp_path / "p.tsv")]) == 0
    predicted = pd.read_csv(tmp_path / "p.tsv", sep="\t").set_index("sample_id")["ph"]
    validation = pd.read_csv(out / "val_predictions.tsv", sep="\t").set_index("sample_id")["ph"]
    np.testing.assert_allclose(predicted[validation.index], validation, rtol=1e-5)


def test_fine_tuning_errors_are_one_line(capsys, small_study, pretrained, tmp_path):
    encoder = pretrained / "encoder.pt"
    one_error_line(capsys, fine_tune_args(small_study, encoder, "--embedding-dim", "16", "--output-dir",
                                          str(tmp_path / "a")), "--embedding-dim 16 contradicts", "encoder")
    one_error_line(capsys, fine_tune_args(small_study, encoder, "--max-bp", "150", "--output-dir",
                                          str(tmp_path / "b")), "--max-bp 150 contradicts")
    one_error_line(capsys, fine_tune_args(small_study, pretrained / "last.pt", "--output-dir", str(tmp_path / "c")),
                   "is not an encoder written by aam pretrain")
    one_error_line(capsys, fine_tune_args(small_study, tmp_path / "missing.pt", "--output-dir", str(tmp_path / "d")),
                   "not found")
    args = fine_tune_args(small_study, encoder, "--output-dir", str(tmp_path / "e"))
    args.remove("--pretrained-encoder")
    args.remove(str(encoder))
    one_error_line(capsys, args + ["--freeze-encoder"], "--freeze-encoder needs --pretrained-encoder")


def test_pretrain_errors_are_one_line(capsys, tables, tmp_path):
    out = ["--output-dir", str(tmp_path / "x")]
    one_error_line(capsys, ["pretrain", *out], "--table")
    one_error_line(capsys, ["pretrain", *tables, "--sequences", "a.fasta", *out], "--sequences is given 1 times")
    one_error_line(capsys, ["pretrain", *tables, "--distance", "unifrac", *out], "--tree")
    one_error_line(capsys, ["pretrain", *tables, "--mask-fraction", "1.5", *out], "--mask-fraction")
    one_error_line(capsys, ["pretrain", *tables, "--tree", str(tmp_path / "none.nwk"), "--epochs", "1", *out],
                   "tree file not found")


def test_pretrained_identity_vectors_carry_over_to_the_same_asvs(tables, small_study, tmp_path):
    out = tmp_path / "identity"
    flags = list(PRETRAIN)
    flags[flags.index("--epochs") + 1] = "1"
    assert main(["pretrain", "--table", str(small_study / "table.biom"), *tables, *flags, "--asv-identity", "2",
                 "--output-dir", str(out)]) == 0
    args = build_parser().parse_args(fine_tune_args(small_study, out / "encoder.pt", "--output-dir",
                                                    str(tmp_path / "x")))
    config = config_from_args(args)
    assert config.model.asv_identity == 2
    model = build_run(config.resolve()).model
    encoder = load_checkpoint(out / "encoder.pt")["encoder_state"]
    theirs, weight = encoder["asv_encoder.identity.hashes"], encoder["asv_encoder.identity.embedding.weight"]
    mine = model.asv_encoder.identity
    assert set(theirs.tolist()) <= set(mine.hashes.tolist())  # the study's vocabulary holds the encoder's
    for row, h in enumerate(theirs.tolist()):
        assert torch.equal(mine.embedding.weight[mine.hashes.tolist().index(h) + 1], weight[row + 1])
    assert torch.equal(mine.embedding.weight[0], weight[0])


def test_the_builtin_encoder_is_found_and_starts_a_run(small_study, tmp_path):
    args = build_parser().parse_args(fine_tune_args(small_study, "builtin", "--output-dir", str(tmp_path / "x")))
    config = config_from_args(args)
    path = config.train.pretrained_encoder
    assert path.endswith("aam/pretrain/builtin/encoder.pt")
    encoder = load_checkpoint(path)
    assert encoder["corpus"]["tables"] == ["table.qza", "table.biom"] and encoder["corpus"]["samples"] == 2002
    assert config.model.abundance == "relative" and config.model.asv_identity == 2 and config.data.max_bp == 150
    model = build_run(config.resolve()).model
    state = model.state_dict()
    for name, value in encoder["encoder_state"].items():
        if not name.startswith("asv_encoder.identity."):
            assert torch.equal(state[name], value), name
