"""`build_run`: the run `train()` trains, reusable with an explicit split (cross-validation folds)."""

import pytest
import torch

from aam.config import DataConfig, LossConfig, ModelConfig, RunConfig, TrainConfig
from aam.data.simulate import write_simulation
from aam.errors import UserError
from aam.training import build_run


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> RunConfig:
    folder = tmp_path_factory.mktemp("sim")
    write_simulation(folder, n_samples=30, seed=1, n_features=16)
    return RunConfig(
        DataConfig(table=str(folder / "table.biom"), metadata=str(folder / "metadata.tsv"),
                   target_columns=("ph", "temperature"), categorical_columns=("location",), max_bp=20,
                   token_limit=16),
        ModelConfig(embedding_dim=8, attention_heads=2, asv_layers=1, sample_layers=1),
        LossConfig(loss_type="quantile", quantiles=(0.9, 0.1)),
        TrainConfig(epochs=1, batch_size=8, device="cpu", progress=False))


def test_explicit_split_is_used_as_given(config):
    ids = [f"sample_{i:02d}" for i in range(30)]
    train_ids, val_ids = ids[5:], ids[:5]
    run = build_run(config, "cpu", split=(train_ids, val_ids))
    assert run.data.train_ids == train_ids and run.data.val_ids == val_ids
    assert len(run.train_loader.dataset) == 25 and len(run.val_loader.dataset) == 5
    assert run.progress.epoch == 0 and run.router_loss is None


def test_data_dependent_model_fields_are_filled(config):
    run = build_run(config, torch.device("cpu"))
    m = run.config.model
    assert (m.max_bp, m.n_targets, m.n_quantiles) == (20, 2, 2)
    assert m.category_cardinalities == (len(run.data.encoder.levels["location"]),)
    assert run.model.config == m and next(run.model.parameters()).device.type == "cpu"


def test_split_naming_an_unknown_sample_is_a_user_error(config):
    with pytest.raises(UserError, match="nope"):
        build_run(config, "cpu", split=(["nope"], ["sample_00"]))


def test_prepared_data_and_a_split_together_are_refused(config):
    run = build_run(config, "cpu")
    with pytest.raises(ValueError, match="not both"):
        build_run(config, "cpu", split=(run.data.train_ids, run.data.val_ids), data=run.data)
