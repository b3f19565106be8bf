"""--asv-identity end to end: the vocabulary travels in the checkpoint through --resume and aam predict."""

import numpy as np
import pandas as pd
import torch

from aam.cli.main import main
from aam.runtime.checkpoint import load_checkpoint


def test_identity_vocabulary_survives_resume_and_predict_needs_only_the_model(small_study_args, tiny_model,
                                                                                tmp_path):
    run = tmp_path / "run"
    flags = [*small_study_args, "--metadata-column", "ph", *tiny_model, "--asv-identity", "2", "--patience", "0",
             "--output-dir", str(run)]
    assert main(["train", *flags]) == 0
    first = load_checkpoint(run / "last.pt")
    vocabulary = first["config"]["model"]["asv_vocabulary"]
    hashes = first["model_state"]["asv_encoder.identity.hashes"]
    assert vocabulary > 0 and hashes.numel() == vocabulary and torch.equal(hashes, hashes.sort().values)
    assert main(["train", "--resume", "--output-dir", str(run), "--epochs", "2", "--no-progress"]) == 0
    resumed = load_checkpoint(run / "last.pt")
    assert resumed["epoch"] == 2 and torch.equal(resumed["model_state"]["asv_encoder.identity.hashes"], hashes)
    out = tmp_path / "p.tsv"
    assert main(["predict", "--model", str(run / "model.pt"), "--table", small_study_args[1], "--output",
                 str(out)]) == 0
    predicted = pd.read_csv(out, sep="\t").set_index("sample_id")["ph"]
    validation = pd.read_csv(run / "val_predictions.tsv", sep="\t").set_index("sample_id")["ph"]
    np.testing.assert_allclose(predicted[validation.index], validation, rtol=1e-5)
