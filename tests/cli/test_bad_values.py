"""Values that would train to garbage or to meaningless numbers: non-finite targets and categories
(one line, exit 2; `aam inspect` flags them), a non-finite training loss (stops, keeps the last good
checkpoint), a classification target with one level or a level of one sample, and the warnings for a
constant target or a validation part of fewer than 5 samples."""

import json

import numpy as np
import pandas as pd
import pytest

from cli_helpers import TINY, one_error_line

from aam.cli.main import main
from aam.data.simulate import write_simulation
from aam.runtime.checkpoint import load_checkpoint
from aam.training.trainer import Trainer


@pytest.fixture
def study(tiny_study):
    return tiny_study


def with_metadata(study, tmp_path, change, types_row=None) -> list[str]:
    """The study's table with a changed copy of its metadata: `change(frame)` edits the string cells."""
    frame = pd.read_csv(study / "metadata.tsv", sep="\t", dtype=str, keep_default_na=False)
    change(frame)
    text = frame.to_csv(sep="\t", index=False)
    if types_row is not None:
        header, rest = text.split("\n", 1)
        text = header + "\n" + types_row + "\n" + rest
    path = tmp_path / "metadata.tsv"
    path.write_text(text)
    return ["--table", str(study / "table.biom"), "--metadata", str(path)]


def set_cells(column, rows, value):
    def change(frame):
        frame.loc[rows, column] = value
    return change


@pytest.mark.parametrize("value", ["inf", "-Infinity", "1e999"])
def test_non_finite_target_is_refused_and_flagged_by_inspect(study, tmp_path, capsys, value):
    frame = pd.read_csv(study / "metadata.tsv", sep="\t", dtype=str)
    ids = list(frame.iloc[[3, 7, 8, 20], 0])
    inputs = with_metadata(study, tmp_path, set_cells("ph", [3, 7, 8, 20], value))
    out = tmp_path / "run"
    err = one_error_line(capsys, ["train", *inputs, "--metadata-column", "ph", "--output-dir", str(out), *TINY],
                         "'ph'", "non-finite", *(f"'{s}'" for s in ids[:3]), "1 more")
    assert ids[3] not in err
    assert not out.exists()

    assert main(["inspect", *inputs, "--metadata-column", "ph", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["columns"]["ph"]
    assert info["non_finite"] == 4 and info["non_finite_examples"] == ids
    assert np.isfinite(info["max"]) and np.isfinite(info["min"])  # the range is over the finite values
    assert main(["inspect", *inputs, "--metadata-column", "ph"]) == 0
    assert "NON-FINITE in 4 sample(s)" in capsys.readouterr().out


def test_nan_cells_are_missing_values_not_errors(study, tmp_path, capsys):
    inputs = with_metadata(study, tmp_path, set_cells("ph", [1, 2], "NaN"))
    assert main(["inspect", *inputs, "--metadata-column", "ph", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["columns"]["ph"]
    assert (info["missing"], info["non_finite"]) == (2, 0)


def test_non_finite_categorical_value_is_refused(study, tmp_path, capsys):
    inputs = with_metadata(study, tmp_path, set_cells("location", [5], "inf"))
    one_error_line(capsys, ["train", *inputs, "--metadata-column", "ph", "--categorical-columns", "location",
                            "--output-dir", str(tmp_path / "run"), *TINY], "categorical column 'location'",
                   "non-finite")


def test_target_typed_categorical_in_q2_types_is_classified(study, tmp_path, capsys):
    """Typed categorical, the numbers of 'ph' are levels: every one of them held by a single sample."""
    columns = pd.read_csv(study / "metadata.tsv", sep="\t", nrows=0).columns[1:]
    row = "\t".join(["#q2:types"] + ["categorical" if c == "ph" else "numeric" if c == "temperature"
                                     else "categorical" for c in columns])
    inputs = with_metadata(study, tmp_path, lambda frame: None, types_row=row)
    one_error_line(capsys, ["train", *inputs, "--metadata-column", "ph", "--output-dir", str(tmp_path / "run"),
                            *TINY], "level '", "classification target 'ph'", "single sample")


def test_classification_target_with_one_level_is_refused(study, tmp_path, capsys):
    inputs = with_metadata(study, tmp_path, set_cells("location", slice(None), "site_A"))
    one_error_line(capsys, ["train", *inputs, "--metadata-column", "location", "--output-dir", str(tmp_path / "run"),
                            *TINY], "classification target 'location'", "only the level 'site_A'")


def test_classification_level_with_one_sample_is_refused(study, tmp_path, capsys):
    inputs = with_metadata(study, tmp_path, set_cells("location", [3], "site_Z"))
    one_error_line(capsys, ["cv", *inputs, "--metadata-column", "location", "--output-dir", str(tmp_path / "run"),
                            *TINY], "level 'site_Z'", "classification target 'location'", "single sample")


def test_constant_target_and_tiny_validation_part_warn(tmp_path, caplog):
    write_simulation(tmp_path / "sim", n_samples=14, seed=2, n_features=16)
    inputs = with_metadata(tmp_path / "sim", tmp_path, set_cells("ph", slice(None), "7.0"))
    assert main(["train", *inputs, "--metadata-column", "ph", "--output-dir", str(tmp_path / "run"), *TINY]) == 0
    err = "\n".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert "target 'ph' is constant (7 in every sample)" in err and "R^2 and Pearson will be NaN" in err, err
    assert "validation part has only 3 sample(s)" in err, err


def test_non_finite_loss_in_epoch_1_stops_and_a_plain_rerun_works(study, capsys, tmp_path):
    inputs = ["--table", str(study / "table.biom"), "--metadata", str(study / "metadata.tsv")]
    out = tmp_path / "run"
    args = ["train", *inputs, "--metadata-column", "ph", "--output-dir", str(out), *TINY]
    one_error_line(capsys, [*args, "--lr", "1e30", "--max-grad-norm", "0"], "training loss became", "epoch 1, step",
                   "--lr", "nothing was saved")
    assert not out.exists()
    assert main(args) == 0


def test_non_finite_loss_later_keeps_the_last_good_checkpoint(study, capsys, tmp_path, monkeypatch):
    """Epoch 2 turns a weight into NaN: the run stops naming epoch 2, model.pt/last.pt hold epoch 1."""
    original = Trainer.run_epoch

    def run_epoch(self, train_loader, val_loader, epoch):
        if epoch == 2:
            next(self.model.parameters()).data.fill_(float("nan"))
        return original(self, train_loader, val_loader, epoch)

    monkeypatch.setattr(Trainer, "run_epoch", run_epoch)
    inputs = ["--table", str(study / "table.biom"), "--metadata", str(study / "metadata.tsv")]
    out = tmp_path / "run"
    one_error_line(capsys, ["train", *inputs, "--metadata-column", "ph", "--output-dir", str(out), *TINY,
                            "--epochs", "3", "--patience", "0"], "nan at epoch 2, step 1 of", "keep epochs 1 and 1")
    for name in ("model.pt", "last.pt"):
        state = load_checkpoint(out / name)
        assert state["epoch"] == 1
        assert all(v.isfinite().all() for v in state["model_state"].values() if v.is_floating_point())
    assert pd.read_csv(out / "history.tsv", sep="\t")["epoch"].tolist() == [1]
