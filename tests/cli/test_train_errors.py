"""Each user mistake: exit status 2 and exactly one line on stderr, no traceback."""

import pytest
import torch

from aam.cli.main import main


@pytest.fixture(scope="module")
def trained(tiny_study_args, tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["train", *tiny_study_args, "--metadata-column", "ph", "--categorical-columns", "location",
                 "--output-dir", str(out), *tiny_model]) == 0
    return out


def test_target_typed_numeric_holding_text(tiny_study, tiny_model, tmp_path, user_error):
    """A column the #q2:types row declares numeric is regressed, so its text levels are an error."""
    lines = (tiny_study / "metadata.tsv").read_text().splitlines()
    types = "\t".join(["#q2:types"] + ["numeric"] * (len(lines[0].split("\t")) - 1))
    (tmp_path / "meta.tsv").write_text("\n".join([lines[0], types, *lines[1:]]) + "\n")
    user_error(["train", "--table", str(tiny_study / "table.biom"), "--metadata", str(tmp_path / "meta.tsv"),
                "--metadata-column", "location", "--output-dir", str(tmp_path / "o"), *tiny_model],
               "location", "not numeric")


def test_classification_column_that_is_not_a_target(tiny_study_args, tiny_model, tmp_path, user_error):
    user_error(["train", *tiny_study_args, "--metadata-column", "ph", "--classification-columns", "location",
                "--output-dir", str(tmp_path / "o"), *tiny_model], "--classification-columns", "'location'",
               "not a target")


def test_unknown_categorical_column(tiny_study_args, tiny_model, tmp_path, user_error):
    user_error(["train", *tiny_study_args, "--metadata-column", "ph", "--categorical-columns", "soil",
               "--output-dir", str(tmp_path / "o"), *tiny_model], "soil")


def test_batch_size_below_one(tiny_study_args, tiny_model, tmp_path, user_error):
    user_error(["train", *tiny_study_args, "--metadata-column", "ph", "--batch-size", "0",
               "--output-dir", str(tmp_path / "o"), *tiny_model], "--batch-size")


def test_resume_without_checkpoint(tiny_study_args, tiny_model, tmp_path, user_error):
    user_error(["train", *tiny_study_args, "--metadata-column", "ph", "--output-dir", str(tmp_path / "o"),
               "--resume", *tiny_model], "--resume", "last.pt")


def test_resume_with_a_different_config(tiny_study_args, tiny_model, trained, user_error):
    user_error(["train", *tiny_study_args, "--metadata-column", "ph", "--categorical-columns", "location",
               "--output-dir", str(trained), "--resume", *tiny_model, "--embedding-dim", "16"],
               "embedding_dim")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda(tiny_study_args, tiny_model, tmp_path, user_error):
    user_error(["train", *tiny_study_args, "--metadata-column", "ph", "--output-dir", str(tmp_path / "o"),
               *tiny_model, "--device", "cuda"], "cuda")


def test_previous_run_is_not_overwritten(tiny_study_args, tiny_model, trained, user_error):
    before = (trained / "model.pt").read_bytes()
    user_error(["train", *tiny_study_args, "--metadata-column", "ph", "--output-dir", str(trained), *tiny_model],
               "not empty", "--overwrite")
    assert (trained / "model.pt").read_bytes() == before


def test_unknown_best_metric(tiny_study_args, tiny_model, tmp_path, user_error):
    user_error(["train", *tiny_study_args, "--metadata-column", "ph", "--best-metric", "temperature:mae",
               "--output-dir", str(tmp_path / "o"), *tiny_model], "--best-metric")


def test_loss_weights_for_unknown_column(tiny_study_args, tiny_model, tmp_path, user_error):
    user_error(["train", *tiny_study_args, "--metadata-column", "ph", "--categorical-columns", "location",
               "--categorical-loss-weights", '{"soil": {"a": 2}}', "--output-dir", str(tmp_path / "o"),
               *tiny_model], "soil")


def test_predict_with_a_file_that_is_not_a_checkpoint(tiny_study, tmp_path, user_error):
    fake = tmp_path / "model.pt"
    fake.write_text("not a model")
    user_error(["predict", "--model", str(fake), "--table", str(tiny_study / "table.biom"),
               "--output", str(tmp_path / "p.tsv")], "not an AAM model")


def test_predict_with_a_checkpoint_of_another_format_version(tiny_study, tmp_path, user_error):
    old = tmp_path / "old.pt"
    torch.save({"format": "aam-checkpoint", "format_version": 99, "aam_version": "9.9"}, old)
    user_error(["predict", "--model", str(old), "--table", str(tiny_study / "table.biom"),
               "--output", str(tmp_path / "p.tsv")], "9.9")


def test_predict_a_categorical_model_without_metadata(tiny_study, trained, tmp_path, user_error):
    user_error(["predict", "--model", str(trained / "model.pt"), "--table", str(tiny_study / "table.biom"),
               "--output", str(tmp_path / "p.tsv")], "location", "--metadata")


def test_predict_does_not_overwrite_output(tiny_study, trained, tmp_path, user_error):
    existing = tmp_path / "p.tsv"
    existing.write_text("keep me")
    user_error(["predict", "--model", str(trained / "model.pt"), "--table", str(tiny_study / "table.biom"),
               "--metadata", str(tiny_study / "metadata.tsv"), "--output", str(existing)], "exists")
    assert existing.read_text() == "keep me"
