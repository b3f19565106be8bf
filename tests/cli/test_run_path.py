"""The path from the command line to a finished folder: the configuration is resolved once (`aam train`,
`train()`, `aam cv`), `aam cv` and an ensemble prediction read the study once, and every command that
writes a folder takes its lock before it looks at what the folder holds."""

import dataclasses
import os

import pytest

import aam.config
import aam.data.study
from aam.cli.main import main
from aam.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from aam.errors import UserError
from aam.run_lock import folder_lock
from aam.training import train


@pytest.fixture
def resolutions(monkeypatch):
    """Every configuration `aam.config.resolve_run` checks and resolves, in call order."""
    calls = []
    real = aam.config.resolve_run

    def spy(config):
        calls.append(config)
        return real(config)

    monkeypatch.setattr(aam.config, "resolve_run", spy)
    return calls


@pytest.fixture
def reads(monkeypatch):
    """{"table": [paths], "metadata": [paths]}: every file `load_study` reads."""
    seen = {"table": [], "metadata": []}
    for name, reader in (("table", "read_table"), ("metadata", "read_metadata")):
        real = getattr(aam.data.study, reader)

        def spy(path, real=real, name=name):
            seen[name].append(path)
            return real(path)

        monkeypatch.setattr(aam.data.study, reader, spy)
    return seen


def test_aam_train_resolves_its_config_once(tiny_study_args, tiny_model, tmp_path, resolutions):
    assert main(["train", *tiny_study_args, "--metadata-column", "ph", *tiny_model, "--output-dir",
                 str(tmp_path / "run")]) == 0
    assert len(resolutions) == 1
    assert (tmp_path / "run" / "model.pt").is_file()


def test_train_resolves_a_config_given_unresolved_once(tiny_study, tmp_path, resolutions):
    config = RunConfig(DataConfig(table=str(tiny_study / "table.biom"), metadata=str(tiny_study / "metadata.tsv"),
                                  target_columns=("ph",), max_bp=16, token_limit=16),
                       ModelConfig(embedding_dim=8, attention_heads=2, asv_layers=1, sample_layers=1),
                       train=TrainConfig(output_dir=str(tmp_path / "run"), epochs=1, device="cpu", progress=False))
    assert not config.is_resolved
    result = train(config)
    assert len(resolutions) == 1 and resolutions[0] is config
    assert result.epochs_run == 1


def test_a_resolved_config_is_frozen_and_a_changed_copy_is_resolved_again():
    config = RunConfig(DataConfig(target_columns=("ph",))).resolve()
    assert config.is_resolved and config.resolve() is config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.epochs = 3
    changed = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=0))
    assert not changed.is_resolved
    with pytest.raises(UserError, match="--epochs"):
        changed.resolve()
    assert config.with_output_dir("elsewhere").is_resolved


def test_cv_and_its_ensemble_read_the_study_once(small_study_args, tiny_model, tmp_path, reads, resolutions):
    out = tmp_path / "cv"
    assert main(["cv", *small_study_args, "--metadata-column", "ph", *tiny_model, "--folds", "3", "--trees", "5",
                 "--output-dir", str(out)]) == 0  # five models per fold: still one read
    assert len(reads["table"]) == 1 and len(reads["metadata"]) == 1
    assert len(resolutions) == 1  # at the command line; the folds trust it
    assert len(list((out / "folds").glob("repeat1_fold*/test_predictions.tsv"))) == 3
    reads["table"].clear()
    assert main(["predict", "--model", str(out), small_study_args[0], small_study_args[1], "--device", "cpu",
                 "--output", str(tmp_path / "ensemble.tsv")]) == 0
    assert len(reads["table"]) == 1


def command_args(name, study_args, tiny_model, trained, out):
    targets = ["--metadata-column", "ph"]
    return {
        "train": ["train", *study_args, *targets, *tiny_model, "--output-dir", out],
        "cv": ["cv", *study_args, *targets, *tiny_model, "--folds", "2", "--ensemble", "1", "--output-dir", out],
        "baseline": ["baseline", *study_args, *targets, "--trees", "2", "--output-dir", out],
        "explain": ["explain", "--model", str(trained / "model.pt"), study_args[0], study_args[1], "--steps", "2",
                    "--output-dir", out],
        "demo": ["demo", "--epochs", "1", "--no-progress", "--output-dir", out],
    }[name]


@pytest.fixture(scope="module")
def trained(tiny_study, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", "--table", str(tiny_study / "table.biom"), "--metadata", str(tiny_study / "metadata.tsv"),
                 "--metadata-column", "ph", "--embedding-dim", "8", "--attention-heads", "2", "--max-bp", "16",
                 "--token-limit", "16", "--epochs", "1", "--device", "cpu", "--no-progress", "--output-dir",
                 str(out)]) == 0
    return out


@pytest.mark.parametrize("command", ["train", "cv", "baseline", "explain", "demo"])
def test_the_lock_is_taken_before_the_folder_is_judged(command, tiny_study_args, tiny_model, trained, tmp_path,
                                                        user_error):
    """A non-empty folder another process holds: the command names the holder, whatever the folder holds."""
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("someone else's")
    with folder_lock(out, "test holder"):  # flock conflicts between two opens, even in one process
        user_error(command_args(command, tiny_study_args, tiny_model, trained, str(out)), "in use",
                   f"process {os.getpid()}")
    assert sorted(os.listdir(out)) == ["notes.txt"]
