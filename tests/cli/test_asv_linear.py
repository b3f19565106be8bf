"""--asv-linear end to end: the vocabulary and weights travel in the checkpoint to aam predict and explain."""

import numpy as np
import pandas as pd
import pytest
import torch

from aam.cli.main import main
from aam.runtime.checkpoint import load_checkpoint


@pytest.mark.parametrize("kernel", ["auto", "linear"])
def test_linear_term_travels_to_predict_and_explain(small_study_args, tiny_model, tmp_path, kernel, capsys):
    run = tmp_path / "run"
    flags = [*small_study_args, "--metadata-column", "ph,ph_class", *tiny_model, "--asv-linear", "2",
             "--asv-kernel", kernel, "--epochs", "2", "--patience", "0", "--output-dir", str(run)]
    assert main(["train", *flags]) == 0
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("model on abundances")]
    saved = load_checkpoint(run / "model.pt")
    state = saved["model_state"]
    hashes = state["linear.hashes"]
    assert saved["config"]["model"]["linear_vocabulary"] == hashes.numel() > 0
    assert torch.equal(hashes, hashes.sort().values)
    assert state["linear.weight"].shape == (hashes.numel(), 1 + 3)  # ph, then 3 ph_class logits
    samples = saved["config"]["model"]["kernel_samples"]
    if kernel == "auto":  # ph responds along Gaussian niches: a kernel regression holds its column
        assert samples > 0 and state["linear.kernel.landmarks"].shape == (samples, hashes.numel())
        assert state["linear.kernel.kind"][0] > 0 and state["linear.kernel.kind"][1:].tolist() == [0, 0, 0]
        kind = ["RBF", "Laplacian"][int(state["linear.kernel.kind"][0]) - 1]
        # the class keeps its logistic regression: only the regression target is named
        assert said == [f"model on abundances: ph by {kind} kernel ridge regression"]
    else:
        assert samples == 0 and "linear.kernel.dual" not in state and said == []
    out = tmp_path / "p.tsv"
    assert main(["predict", "--model", str(run / "model.pt"), "--table", small_study_args[1], "--output",
                 str(out)]) == 0
    predicted = pd.read_csv(out, sep="\t").set_index("sample_id")
    validation = pd.read_csv(run / "val_predictions.tsv", sep="\t").set_index("sample_id")
    np.testing.assert_allclose(predicted.loc[validation.index, "ph"], validation["ph"], rtol=1e-5)
    explained = tmp_path / "explained"
    assert main(["explain", "--model", str(run / "model.pt"), "--table", small_study_args[1], "--method",
                 "integrated-gradients", "--output-dir", str(explained), "--no-progress"]) == 0
    samples = pd.read_csv(explained / "samples.tsv", sep="\t").set_index("sample_id")
    np.testing.assert_allclose(samples.loc[validation.index, "ph"], validation["ph"], rtol=1e-4)
    spread = np.ptp(samples["ph"])
    assert np.abs(samples["ph_gap"]).max() < 0.01 * spread  # attributions, linear term included, sum up


def test_a_negative_vocabulary_threshold_is_one_line(small_study_args, user_error, tmp_path):
    user_error(["train", *small_study_args, "--metadata-column", "ph", "--asv-linear", "-1", "--output-dir",
                str(tmp_path / "r")], "--asv-linear", ">= 0")


def test_an_unknown_kernel_choice_is_one_line(small_study_args, user_error, tmp_path):
    user_error(["train", *small_study_args, "--metadata-column", "ph", "--asv-kernel", "poly", "--output-dir",
                str(tmp_path / "r")], "--asv-kernel", "auto, linear")
