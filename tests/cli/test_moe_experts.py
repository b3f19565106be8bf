"""End to end: mixture of expert heads routed by location, dense and fused; the metrics.json
"moe" block; predict on an MoE checkpoint; a soft quantile mixture with learned routing; each MoE flag
mistake as a one-line error; configurations and checkpoints from before MoE still load."""

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from aam.cli.main import main
from aam.config import DataConfig, ModelConfig, RunConfig
from aam.data.encoders import TargetScaler
from aam.errors import UserError
from aam.evaluation import load_model, predict
from aam.models import AAMRegressor
from aam.runtime.checkpoint import save_checkpoint

# Four experts routed by location, two per sample.
MOE = ["--metadata-column", "ph", "--categorical-columns", "location", "--moe-experts", "4", "--moe-top-k", "2",
       "--moe-routing", "location"]


@pytest.fixture(scope="module")
def runs(small_study_args, small_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name, extra in (("dense", []), ("fused", ["--fused-kernels"])):
        assert main(["train", *small_study_args, *MOE, *small_model, "--epochs", "10", *extra,
                     "--output-dir", str(root / name)]) == 0
    return root


def read(run, name):
    return pd.read_csv(run / name, sep="\t", index_col="sample_id" if "pred" in name else None)


def test_fused_and_dense_moe_runs_agree(runs):
    """Both paths differ by fp32 rounding only (tests/aam/models/test_moe_head.py: forward and every
    gradient to 1e-5). Measured on this run: every logged loss agrees to 1.1e-4 relative at every epoch
    and the final predictions to 7e-5 pH; the bounds leave ~10x room for other CPUs' rounding."""
    a, b = read(runs / "dense", "history.tsv"), read(runs / "fused", "history.tsv")
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"), rtol=1e-3, atol=1e-6)
    pa, pb = read(runs / "dense", "val_predictions.tsv"), read(runs / "fused", "val_predictions.tsv")
    np.testing.assert_allclose(pa.to_numpy(), pb.to_numpy(), atol=1e-3)  # pH units
    ua = json.loads((runs / "dense" / "metrics.json").read_text())["moe"]["utilization"]
    ub = json.loads((runs / "fused" / "metrics.json").read_text())["moe"]["utilization"]
    np.testing.assert_allclose(ua, ub, atol=2 / 64)  # 32 samples x 2 slots: at most 2 pairs move


@pytest.mark.parametrize("name", ["dense", "fused"])
def test_metrics_json_reports_expert_utilization(runs, small_study, name):
    run = runs / name
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"ph", "moe"}
    moe = metrics["moe"]
    utilization = np.asarray(moe["utilization"])
    assert utilization.shape == (4,) and (utilization >= 0).all()
    assert utilization.sum() == pytest.approx(1.0, abs=1e-12)
    assert 0.0 < moe["entropy"] <= math.log(4)
    # Levels from the metadata and the split files, independently of aam; all four sites are in training.
    meta = pd.read_csv(small_study / "metadata.tsv", sep="\t", index_col=0)
    val_levels = meta.loc[(run / "val_samples.txt").read_text().split(), "location"]
    assert set(moe["by_category"]) == set(val_levels)
    # Per-level shares come from the logits, utilization from the op's counts: their mix must agree.
    mixed = sum(np.asarray(moe["by_category"][level]) * n for level, n in val_levels.value_counts().items())
    np.testing.assert_allclose(mixed / len(val_levels), utilization, atol=1e-12)
    for shares in moe["by_category"].values():
        assert sum(shares) == pytest.approx(1.0, abs=1e-12)
    history = read(run, "history.tsv")
    assert np.isfinite(history["train_balance_loss"]).all() and "train_z_loss" not in history
    assert (run / "plots" / "moe_utilization.png").is_file()


@pytest.mark.parametrize("name", ["dense", "fused"])
def test_predict_on_the_moe_model_equals_val_predictions(runs, small_study, tmp_path, name):
    out = tmp_path / "pred.tsv"
    assert main(["predict", "--model", str(runs / name / "model.pt"), "--table", str(small_study / "table.biom"),
                 "--metadata", str(small_study / "metadata.tsv"), "--device", "cpu", "--batch-size", "7",
                 "--output", str(out)]) == 0
    predicted = pd.read_csv(out, sep="\t", index_col="sample_id")
    val = read(runs / name, "val_predictions.tsv")
    np.testing.assert_allclose(predicted.loc[val.index, "ph"], val["ph"], rtol=1e-5, atol=1e-5)


def test_predict_routes_samples_of_a_location_never_seen(runs, small_study, tmp_path):
    meta = pd.read_csv(small_study / "metadata.tsv", sep="\t", index_col=0, dtype=str)
    meta["location"] = "site_new"
    meta.to_csv(tmp_path / "new.tsv", sep="\t")
    out = tmp_path / "pred.tsv"
    assert main(["predict", "--model", str(runs / "dense" / "model.pt"), "--table", str(small_study / "table.biom"),
                 "--metadata", str(tmp_path / "new.tsv"), "--device", "cpu", "--output", str(out)]) == 0
    predicted = pd.read_csv(out, sep="\t", index_col="sample_id")
    assert len(predicted) == 160 and np.isfinite(predicted["ph"]).all()


def test_soft_quantile_mixture_with_learned_routing(small_study_args, small_model, tmp_path):
    """k = E: every sample uses every expert, so utilization is exactly 1/E everywhere; learned routing
    reports by_category for the first categorical column; the z-loss is logged when on."""
    out = tmp_path / "soft"
    assert main(["train", *small_study_args, "--metadata-column", "ph", "--categorical-columns", "location",
                 "--moe-experts", "3", "--moe-top-k", "3", "--moe-router-z-weight", "1e-3", "--loss-type",
                 "quantile", "--regressor-hidden-dims", "16", "--residual-regression-head", "--fused-kernels",
                 *small_model, "--epochs", "3", "--output-dir", str(out)]) == 0
    moe = json.loads((out / "metrics.json").read_text())["moe"]
    assert moe["utilization"] == pytest.approx([1 / 3] * 3)
    assert moe["by_category"] and all(s == pytest.approx([1 / 3] * 3) for s in moe["by_category"].values())
    history = read(out, "history.tsv")
    assert (history["train_z_loss"] > 0).all() and np.isfinite(history["train_balance_loss"]).all()
    val = read(out, "val_predictions.tsv")
    assert (np.diff(val[["ph_q0.1", "ph_q0.5", "ph_q0.9"]].to_numpy(), axis=1) >= 0).all()


COLUMNS = ["--metadata-column", "ph", "--categorical-columns", "location"]


@pytest.mark.parametrize("flags, fragments", [
    (["--moe-experts", "4", "--moe-top-k", "0"], ["--moe-top-k", "between 1 and --moe-experts (4)"]),
    (["--moe-experts", "4", "--moe-top-k", "5"], ["--moe-top-k", "got 5"]),
    (["--moe-experts", "1"], ["--moe-experts must be 0 (one head) or >= 2", "got 1"]),
    (["--moe-experts", "-2"], ["--moe-experts must be 0 (one head) or >= 2", "got -2"]),
    (["--moe-experts", "4", "--moe-routing", "depth"], ["--moe-routing 'depth'", "add it to --categorical-columns"]),
    (["--moe-top-k", "3"], ["--moe-top-k needs --moe-experts"]),
    (["--moe-routing", "location"], ["--moe-routing needs --moe-experts"]),
    (["--moe-balance-weight", "0.1"], ["--moe-balance-weight needs --moe-experts"]),
    (["--moe-router-z-weight", "0.1"], ["--moe-router-z-weight needs --moe-experts"]),
    (["--moe-experts", "2", "--moe-balance-weight", "-1"], ["--moe-balance-weight must be >= 0"]),
    (["--moe-experts", "2", "--fused-kernels", "--regressor-hidden-dims", "8,4"],
     ["--fused-kernels", "--regressor-hidden-dims 8,4"]),
    (["--moe-experts", "2", "--fused-kernels", "--regressor-hidden-dims", "8", "--regressor-dropout", "0.1"],
     ["--fused-kernels", "--regressor-dropout 0.1"]),
], ids=["top-k-zero", "top-k-above-experts", "one-expert", "negative-experts", "routing-not-categorical",
        "top-k-without-experts", "routing-without-experts", "balance-without-experts", "z-without-experts",
        "negative-balance", "fused-two-hidden-layers", "fused-dropout"])
def test_moe_flag_errors(small_study_args, tiny_model, tmp_path, user_error, flags, fragments):
    user_error(["train", *small_study_args, *COLUMNS, *tiny_model, *flags, "--output-dir", str(tmp_path / "o")],
               *fragments)
    assert not (tmp_path / "o").exists()


def test_a_target_named_moe_is_refused_with_moe_heads():
    config = RunConfig(DataConfig(target_columns=("moe",)), ModelConfig(moe_experts=2))
    with pytest.raises(UserError, match="'moe'"):
        config.validate()
    dataclasses.replace(config, model=ModelConfig()).validate()  # fine without MoE


def test_config_and_checkpoint_from_before_moe_still_load(small_study, tmp_path):
    """A config.json / checkpoint written before the MoE fields existed: the dataclass defaults apply."""
    config = RunConfig(DataConfig(target_columns=("ph",), max_bp=16, token_limit=16),
                       ModelConfig(embedding_dim=8, attention_heads=2, asv_layers=1, sample_layers=1, max_bp=16))
    old = config.to_dict()
    for part, names in (("model", ("moe_experts", "moe_top_k", "moe_routing", "moe_routing_index")),
                        ("loss", ("moe_balance_weight", "moe_router_z_weight"))):
        for name in names:
            del old[part][name]
    assert RunConfig.from_dict(old) == config
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "old.pt", {"config": old, "model_state": AAMRegressor(config.model).state_dict(),
                                          "target_scaler": TargetScaler(("ph",), [7.0], [1.0]).to_dict(),
                                          "category_encoder": None})
    assert load_model(tmp_path / "old.pt").config.model.moe_experts == 0
    frame = predict(tmp_path / "old.pt", small_study / "table.biom", device="cpu")
    assert len(frame) == 160 and np.isfinite(frame["ph"]).all()
