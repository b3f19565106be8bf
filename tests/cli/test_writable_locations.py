"""Places that cannot be written and numbers out of range are found before any work: one line, exit 2,
nothing written. Permission bits do not stop root (CI runs tests as root), so there `read_only` makes a
folder unwritable with a read-only bind mount instead, and skips where mounting is not allowed."""

import contextlib
import os
import subprocess

import pytest

from cli_helpers import TINY as TINY_MODEL
from cli_helpers import one_error_line

from aam.cli.main import main
from aam.run_lock import LOCK_FILE, folder_lock

TINY = ["--metadata-column", "ph", *TINY_MODEL]


@contextlib.contextmanager
def read_only(folder):
    """`folder` unwritable for this process inside the block: mode 0555 for a normal user; a read-only
    bind mount of it onto itself for root."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    mount = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
    if mount.returncode != 0:
        pytest.skip(f"root writes through permission bits and cannot bind-mount here: {mount.stderr.strip()}")
    try:
        remount = subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True)
        if remount.returncode != 0:
            pytest.skip(f"root writes through permission bits and cannot remount read-only: {remount.stderr.strip()}")
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture
def data(tiny_study):
    return tiny_study


@pytest.fixture(scope="module")
def trained(tiny_study, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["train", *inputs(tiny_study), *TINY, "--output-dir", str(out)]) == 0
    return out


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("a regular file")
    return path


def inputs(data):
    return ["--table", str(data / "table.biom"), "--metadata", str(data / "metadata.tsv")]


def snapshot(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_train_output_dir_under_a_regular_file(data, a_file, capsys):
    one_error_line(capsys, ["train", *inputs(data), *TINY, "--output-dir", str(a_file / "run")],
                   "--output-dir", "is a file, not a folder")
    assert a_file.read_text() == "a regular file"


def test_train_output_dir_that_is_a_file(data, a_file, capsys):
    one_error_line(capsys, ["train", *inputs(data), *TINY, "--output-dir", str(a_file)], "not a folder")


def test_baseline_output_dir_under_a_regular_file(data, a_file, capsys):
    one_error_line(capsys, ["baseline", *inputs(data), "--metadata-column", "ph", "--output-dir",
                            str(a_file / "rf")], "--output-dir", "is a file")


@pytest.mark.parametrize("mode", ["--overwrite", "--resume"])
def test_unwritable_run_folder(data, trained, capsys, mode):
    before = snapshot(trained)
    with read_only(trained):
        one_error_line(capsys, ["train", *inputs(data), *TINY, "--output-dir", str(trained), mode],
                       "--output-dir", "cannot write")
    assert snapshot(trained) == before


def test_unwritable_parent_of_a_new_run(data, tmp_path, capsys):
    parent = tmp_path / "locked"
    parent.mkdir()
    with read_only(parent):
        one_error_line(capsys, ["train", *inputs(data), *TINY, "--output-dir", str(parent / "run")], "cannot write")
    assert list(parent.iterdir()) == []


def predict_args(data, trained, output):
    return ["predict", "--model", str(trained / "model.pt"), "--table", str(data / "table.biom"),
            "--output", str(output)]


def test_predict_output_whose_parent_is_a_file(data, trained, a_file, capsys):
    one_error_line(capsys, predict_args(data, trained, a_file / "p.tsv"), "--output", "is a file, not a folder")
    assert a_file.read_text() == "a regular file"


def test_predict_output_that_is_a_folder(data, trained, tmp_path, capsys):
    folder = tmp_path / "existing"
    folder.mkdir()
    one_error_line(capsys, predict_args(data, trained, folder), "--output", "is a folder")
    one_error_line(capsys, [*predict_args(data, trained, folder), "--overwrite"], "is a folder")
    assert list(folder.iterdir()) == []


def test_predict_output_in_an_unwritable_folder(data, trained, tmp_path, capsys):
    parent = tmp_path / "locked"
    parent.mkdir()
    with read_only(parent):
        one_error_line(capsys, predict_args(data, trained, parent / "p.tsv"), "--output", "cannot write")
    assert list(parent.iterdir()) == []


def test_predict_output_in_a_new_folder_is_made(data, trained, tmp_path, capsys):
    output = tmp_path / "new" / "deeper" / "p.tsv"
    assert main([*predict_args(data, trained, output), "--metadata", str(data / "metadata.tsv")]) == 0
    assert output.is_file()


@pytest.mark.parametrize("flag,value,fragment", [
    ("--num-workers", "-1", "--num-workers must be >= 0"),
    ("--precision", "fp16", "--precision must be one of auto, fp32, bf16; got 'fp16'"),
    ("--lr", "nan", "--lr must be a finite number"),
    ("--dropout", "inf", "--dropout must be a finite number"),
    ("--max-grad-norm", "-1", "--max-grad-norm must be >= 0"),
    ("--weight-decay", "-0.1", "--weight-decay must be >= 0"),
    ("--huber-delta", "nan", "--huber-delta must be a finite number"),
    ("--quantiles", "0.1,nan", "--quantiles must lie strictly between 0 and 1; got 0.1,nan"),
    ("--rarefy", "0", "--rarefy must be in (0, 1]; got 0.0"),
    ("--rarefy", "1.5", "--rarefy must be in (0, 1]; got 1.5"),
    ("--asv-dropout", "1", "--asv-dropout must be in [0, 1); got 1.0"),
    ("--asv-dropout", "-0.1", "--asv-dropout must be in [0, 1); got -0.1"),
    ("--ema-decay", "1", "--ema-decay must be in [0, 1); got 1.0"),
    ("--ema-decay", "-0.5", "--ema-decay must be in [0, 1); got -0.5"),
])
def test_train_numbers_out_of_range(data, tmp_path, capsys, flag, value, fragment):
    out = tmp_path / "run"
    loss = ["--loss-type", "quantile"] if flag == "--quantiles" else []
    one_error_line(capsys, ["train", *inputs(data), *TINY, *loss, flag, value, "--output-dir", str(out)], fragment)
    assert not out.exists()


@pytest.mark.parametrize("flag,value,fragment", [
    ("--n-jobs", "0", "--n-jobs must be >= 1, or -1"),
    ("--n-jobs", "-5", "--n-jobs must be >= 1, or -1"),
    ("--trees", "0", "--trees must be >= 1"),
])
def test_baseline_numbers_out_of_range(data, tmp_path, capsys, flag, value, fragment):
    out = tmp_path / "rf"
    one_error_line(capsys, ["baseline", *inputs(data), "--metadata-column", "ph", flag, value, "--output-dir",
                            str(out)], fragment)
    assert not out.exists()


def explain_args(data, trained, out):
    return ["explain", "--model", str(trained / "model.pt"), *inputs(data), "--steps", "2", "--output-dir", str(out)]


def test_explain_output_dir_under_a_regular_file(data, trained, a_file, capsys):
    one_error_line(capsys, explain_args(data, trained, a_file / "out"), "--output-dir", "is a file, not a folder")
    assert a_file.read_text() == "a regular file"


def test_explain_refuses_a_folder_in_use(data, trained, tmp_path, capsys):
    out = tmp_path / "explain"
    with folder_lock(out, "test holder"):  # flock conflicts between two opens, even in one process
        one_error_line(capsys, explain_args(data, trained, out), f"process {os.getpid()}", "in use")
        assert os.listdir(out) == [LOCK_FILE]
    assert not out.exists()  # the holder made the folder and removed it again
    assert main(explain_args(data, trained, out)) == 0
    assert (out / "asv_importance.tsv").is_file() and not (out / LOCK_FILE).exists()


def test_cv_checks_and_locks_its_output_dir(data, a_file, tmp_path, capsys):
    cv = ["cv", *inputs(data), *TINY, "--folds", "2", "--ensemble", "1"]
    one_error_line(capsys, [*cv, "--output-dir", str(a_file / "cv")], "--output-dir", "is a file, not a folder")
    out = tmp_path / "cv"
    with folder_lock(out, "test holder"):
        one_error_line(capsys, [*cv, "--output-dir", str(out)], f"process {os.getpid()}", "in use")
        assert os.listdir(out) == [LOCK_FILE]
    assert not out.exists()
