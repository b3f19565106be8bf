"""Each user mistake: exit status 2 and exactly one line on stderr, no traceback."""

import pytest
import torch

from aam.cli.main import main
from aam.data.simulate import write_simulation

TINY = ["--embedding-dim", "8", "--attention-heads", "2", "--asv-layers", "1", "--sample-layers", "1",
        "--max-bp", "16", "--token-limit", "16", "--epochs", "1", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim")
    write_simulation(folder, n_samples=40, seed=1, n_features=16)
    return folder


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["train", *inputs(data), "--metadata-column", "ph", "--categorical-columns", "location",
                 "--output-dir", str(out), *TINY]) == 0
    return out


def inputs(data):
    return ["--table", str(data / "table.biom"), "--metadata", str(data / "metadata.tsv")]


def assert_user_error(argv, capsys, *fragments):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def test_target_not_numeric(data, tmp_path, capsys):
    assert_user_error(["train", *inputs(data), "--metadata-column", "location", "--output-dir", str(tmp_path / "o"),
                       *TINY], capsys, "location", "not numeric")


def test_unknown_categorical_column(data, tmp_path, capsys):
    assert_user_error(["train", *inputs(data), "--metadata-column", "ph", "--categorical-columns", "soil",
                       "--output-dir", str(tmp_path / "o"), *TINY], capsys, "soil")


def test_batch_size_below_one(data, tmp_path, capsys):
    assert_user_error(["train", *inputs(data), "--metadata-column", "ph", "--batch-size", "0",
                       "--output-dir", str(tmp_path / "o"), *TINY], capsys, "--batch-size")


def test_resume_without_checkpoint(data, tmp_path, capsys):
    assert_user_error(["train", *inputs(data), "--metadata-column", "ph", "--output-dir", str(tmp_path / "o"),
                       "--resume", *TINY], capsys, "--resume", "last.pt")


def test_resume_with_a_different_config(data, trained, capsys):
    assert_user_error(["train", *inputs(data), "--metadata-column", "ph", "--categorical-columns", "location",
                       "--output-dir", str(trained), "--resume", *TINY, "--embedding-dim", "16"],
                      capsys, "embedding_dim")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda(data, tmp_path, capsys):
    assert_user_error(["train", *inputs(data), "--metadata-column", "ph", "--output-dir", str(tmp_path / "o"),
                       *TINY, "--device", "cuda"], capsys, "cuda")


def test_previous_run_is_not_overwritten(data, trained, capsys):
    before = (trained / "model.pt").read_bytes()
    assert_user_error(["train", *inputs(data), "--metadata-column", "ph", "--output-dir", str(trained), *TINY],
                      capsys, "not empty", "--overwrite")
    assert (trained / "model.pt").read_bytes() == before


def test_unknown_best_metric(data, tmp_path, capsys):
    assert_user_error(["train", *inputs(data), "--metadata-column", "ph", "--best-metric", "temperature:mae",
                       "--output-dir", str(tmp_path / "o"), *TINY], capsys, "--best-metric")


def test_loss_weights_for_unknown_column(data, tmp_path, capsys):
    assert_user_error(["train", *inputs(data), "--metadata-column", "ph", "--categorical-columns", "location",
                       "--categorical-loss-weights", '{"soil": {"a": 2}}', "--output-dir", str(tmp_path / "o"),
                       *TINY], capsys, "soil")


def test_predict_with_a_file_that_is_not_a_checkpoint(data, tmp_path, capsys):
    fake = tmp_path / "model.pt"
    fake.write_text("not a model")
    assert_user_error(["predict", "--model", str(fake), "--table", str(data / "table.biom"),
                       "--output", str(tmp_path / "p.tsv")], capsys, "not an AAM model")


def test_predict_with_a_checkpoint_of_another_format_version(data, tmp_path, capsys):
    old = tmp_path / "old.pt"
    torch.save({"format": "aam-checkpoint", "format_version": 99, "aam_version": "9.9"}, old)
    assert_user_error(["predict", "--model", str(old), "--table", str(data / "table.biom"),
                       "--output", str(tmp_path / "p.tsv")], capsys, "9.9")


def test_predict_a_categorical_model_without_metadata(data, trained, tmp_path, capsys):
    assert_user_error(["predict", "--model", str(trained / "model.pt"), "--table", str(data / "table.biom"),
                       "--output", str(tmp_path / "p.tsv")], capsys, "location", "--metadata")


def test_predict_does_not_overwrite_output(data, trained, tmp_path, capsys):
    existing = tmp_path / "p.tsv"
    existing.write_text("keep me")
    assert_user_error(["predict", "--model", str(trained / "model.pt"), "--table", str(data / "table.biom"),
                       "--metadata", str(data / "metadata.tsv"), "--output", str(existing)], capsys, "exists")
    assert existing.read_text() == "keep me"
