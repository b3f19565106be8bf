"""Checkpoints written by an earlier version of aam still load, predict the same numbers, and resume.

`tests/fixtures/pre_change/` holds a 40-sample simulated study and two tiny runs trained on it, made
from that folder with:

    aam simulate --output-dir data --samples 40 --features 16 --seed 5
    COMMON="--table data/table.biom --metadata data/metadata.tsv --embedding-dim 16 --asv-layers 1
            --sample-layers 1 --attention-heads 2 --token-limit 32 --max-bp 60 --epochs 2 --batch-size 8
            --no-progress --device cpu"
    aam train $COMMON --metadata-column ph,temperature --categorical-columns location --loss-type quantile
        --quantiles 0.9,0.1,0.5 --loss-config '{"temperature": "expectile"}' --categorical-loss-weights auto
        --output-dir quantile
    aam train $COMMON --metadata-column ph --categorical-columns location --loss-type expectile
        --quantiles 0.25,0.75 --moe-experts 2 --moe-routing location --regressor-hidden-dims 8 --fused-kernels
        --output-dir moe
    aam predict --model RUN/model.pt --table table.biom --metadata metadata.tsv --device cpu
        --output RUN/predictions.tsv

Each run folder keeps model.pt, config.json and the predictions file `aam predict` wrote then; the
quantile run also keeps last.pt. The predictions must match to fp32 rounding.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aam.cli.main import main
from aam.config import RunConfig

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pre_change"
COMMON = ["--table", "data/table.biom", "--metadata", "data/metadata.tsv", "--embedding-dim", "16",
          "--asv-layers", "1", "--sample-layers", "1", "--attention-heads", "2", "--token-limit", "32",
          "--max-bp", "60", "--epochs", "2", "--batch-size", "8", "--no-progress", "--device", "cpu",
          # the runs took these from the defaults of the version that wrote them; a resume must repeat them
          "--dropout", "0.1", "--lr", "1e-4", "--patience", "10", "--no-conformal"]
QUANTILE_FLAGS = ["--metadata-column", "ph,temperature", "--categorical-columns", "location", "--loss-type",
                  "quantile", "--quantiles", "0.9,0.1,0.5", "--loss-config", '{"temperature": "expectile"}',
                  "--categorical-loss-weights", "auto", "--output-dir", "quantile"]


@pytest.mark.parametrize("run", ["quantile", "moe"])
def test_saved_checkpoint_predicts_what_it_predicted_when_saved(run, tmp_path):
    output = tmp_path / "predictions.tsv"
    assert main(["predict", "--model", str(FIXTURES / run / "model.pt"), "--table", str(FIXTURES / "table.biom"),
                 "--metadata", str(FIXTURES / "metadata.tsv"), "--device", "cpu", "--output", str(output)]) == 0
    saved = pd.read_csv(FIXTURES / run / "predictions.tsv", sep="\t")
    now = pd.read_csv(output, sep="\t")
    assert list(now.columns) == list(saved.columns)
    assert list(now["sample_id"]) == list(saved["sample_id"])
    values = [c for c in saved.columns if c != "sample_id"]
    np.testing.assert_allclose(now[values].to_numpy(), saved[values].to_numpy(), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("run", ["quantile", "moe"])
def test_saved_config_json_loads_and_round_trips(run):
    saved = json.loads((FIXTURES / run / "config.json").read_text())
    config = RunConfig.from_dict(saved)
    assert RunConfig.from_dict(config.to_dict()) == config


def test_saved_last_checkpoint_resumes_with_the_same_flags(tmp_path, monkeypatch, capsys):
    shutil.copytree(FIXTURES, tmp_path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("moe"))
    (tmp_path / "data").mkdir()
    for name in ("table.biom", "metadata.tsv"):
        (tmp_path / name).rename(tmp_path / "data" / name)
    (tmp_path / "quantile" / "predictions.tsv").unlink()
    monkeypatch.chdir(tmp_path)
    assert main(["train", *COMMON, *QUANTILE_FLAGS, "--resume"]) == 0
    assert "best epoch 2 of 2" in capsys.readouterr().out
    assert main(["train", *COMMON, *QUANTILE_FLAGS[:-2], "--output-dir", "quantile", "--resume", "--lr", "0.5"]) == 2
    assert "train.lr" in capsys.readouterr().err
