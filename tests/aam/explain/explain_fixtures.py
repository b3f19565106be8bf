"""Helpers for the explain tests: a small simulated study and untrained tiny models (attributions must sum
to the prediction of any model, trained or not, so no training is needed here)."""

import dataclasses
from pathlib import Path

import pytest
import torch

from aam.config import DataConfig, LossConfig, ModelConfig, RunConfig, TrainConfig
from aam.data.encoders import CategoryEncoder, TargetScaler
from aam.data.dataset import AAMDataset, make_loader
from aam.data.simulate import write_simulation
from aam.data.study import load_study
from aam.models import AAMRegressor
from aam.models.identity import vocabulary
from aam.models.kernel import KINDS
from aam.evaluation.inference import LoadedModel

MAX_BP = 48
TOKEN_LIMIT = 24  # below the ASVs per sample of the study, so some present ASVs are beyond the limit


@pytest.fixture(scope="session")
def sim_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("explain_sim")
    write_simulation(folder, n_samples=20, seed=5, n_features=32)
    return folder


@pytest.fixture(scope="session")
def study(sim_folder):
    return load_study(sim_folder / "table.biom", None, sim_folder / "metadata.tsv", target_columns=("ph",),
                      categorical_columns=("location",), require_targets=False)


def tiny_model(study, quantiles=(), categorical=True, seed=0, moe_experts=0, abundance="reads",
               linear: bool = False, kernel: str = "linear") -> LoadedModel:
    """An untrained model with non-trivial BatchNorm statistics (set from the study's ASVs); `linear`: with
    the linear term on abundances over the ASVs of at least 2 samples, its weights drawn at random; `kernel`
    "rbf" or "laplacian": with that kernel regression on 12 of the study's samples, its dual coefficients
    drawn at random."""
    torch.manual_seed(seed)
    columns = ("location",) if categorical else ()
    encoder = CategoryEncoder.fit(columns, study.categories[:, :len(columns)]) if categorical else None
    model_config = ModelConfig(embedding_dim=16, attention_heads=2, asv_layers=1, sample_layers=1, dropout=0.0,
                               max_bp=MAX_BP, n_targets=1, n_quantiles=max(1, len(quantiles)),
                               category_cardinalities=tuple(encoder.cardinalities) if encoder else (),
                               moe_experts=moe_experts, abundance=abundance)
    dataset = AAMDataset(study, max_bp=MAX_BP, token_limit=TOKEN_LIMIT, encoders=encoder)
    hashes = vocabulary(study.counts, dataset.tokens, 2) if linear else None
    if linear:
        model_config = dataclasses.replace(model_config, linear_vocabulary=hashes.numel(),
                                           kernel_samples=12 if kernel != "linear" else 0)
    config = RunConfig(data=DataConfig(target_columns=("ph",), categorical_columns=columns, max_bp=MAX_BP,
                                       token_limit=TOKEN_LIMIT), model=model_config,
                       loss=LossConfig("quantile", quantiles=tuple(quantiles)) if quantiles else LossConfig(),
                       train=TrainConfig(batch_size=6))
    model = AAMRegressor(model_config)
    if linear:
        model.linear.set_vocabulary(hashes)
        torch.nn.init.normal_(model.linear.weight, std=0.3)
    batch = next(iter(make_loader(dataset, len(dataset), shuffle=False)))
    if kernel != "linear":
        with torch.no_grad():
            features = model.linear.features(*model.linear.slot_values(
                batch.asv_tokens, batch.asv_index, batch.asv_mask, batch.rel_abundance))
            kernel_part = model.linear.kernel
            kernel_part.set_landmarks(features[:12])
            distance = torch.cdist(features, features, p=2 if kernel == "rbf" else 1) ** (2 if kernel == "rbf" else 1)
            kernel_part.set_column(0, KINDS.index(kernel), 1.0 / distance.median().item(), torch.randn(12))
    with torch.no_grad():
        pooled = model.asv_encoder.pooled(batch.asv_tokens)
        model.asv_encoder.norm.set_statistics([pooled.mean(0)], [pooled.var(0)])
        for p in model.parameters():  # larger weights than the init, so outputs vary between samples
            p.mul_(1.5)
    return LoadedModel(model.eval(), config, TargetScaler(("ph",), [6.5], [1.4]), encoder, {})
