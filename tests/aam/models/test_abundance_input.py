"""The abundance input: "relative" sees reads / the sample's reads, so a sample sequenced twice as deep predicts
the same; "reads" sees log(1 + reads). And the default learning rate follows the model width."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from aam.config import ModelConfig, RunConfig, TrainConfig, default_lr
from aam.data.dataset import AAMDataset, collate
from aam.data.study import Study
from aam.models import AAMRegressor


def study_with_depth(scale: float) -> Study:
    counts = sp.csr_matrix(np.array([[30.0, 10.0, 0.0, 5.0], [0.0, 8.0, 40.0, 2.0]]) * scale)
    return Study(counts=counts, sample_ids=["a", "b"], feature_ids=["f0", "f1", "f2", "f3"],
                 sequences=["ACGTAC", "AACCGG", "TTGACA", "GGGTTT"], target_columns=("y",),
                 targets=np.zeros((2, 1)), categorical_columns=(), categories=np.empty((2, 0), dtype=object),
                 metadata=None)


def predictions(abundance: str, scale: float) -> torch.Tensor:
    torch.manual_seed(0)
    model = AAMRegressor(ModelConfig(embedding_dim=8, attention_heads=2, asv_layers=1, sample_layers=1, max_bp=8,
                                     abundance=abundance)).eval()
    dataset = AAMDataset(study_with_depth(scale), max_bp=8)
    batch = collate([dataset[0], dataset[1]], dataset)
    with torch.no_grad():
        return model.forward_batch(batch)


def test_relative_abundance_ignores_sequencing_depth_and_reads_do_not():
    torch.testing.assert_close(predictions("relative", 1.0), predictions("relative", 7.0), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(predictions("reads", 1.0), predictions("reads", 7.0), atol=1e-3)


def test_relative_input_is_log1p_of_reads_per_ten_thousand():
    dataset = AAMDataset(study_with_depth(1.0), max_bp=8)
    batch = collate([dataset[0]], dataset)
    model = AAMRegressor(ModelConfig(embedding_dim=8, attention_heads=2, max_bp=8, abundance="relative")).eval()
    seen = {}
    model.sample_encoder.register_forward_hook(lambda module, args, out: seen.update(abundance=args[2]))
    with torch.no_grad():
        model.forward_batch(batch)
    expected = torch.tensor([[math.log1p(1e4 * 30 / 45), math.log1p(1e4 * 10 / 45), math.log1p(1e4 * 5 / 45)]])
    torch.testing.assert_close(seen["abundance"], expected)


@pytest.mark.parametrize("width, lr", [(32, 2e-3), (128, 1e-3), (8, 4e-3)])
def test_the_default_learning_rate_follows_the_width(width, lr):
    config = RunConfig(model=ModelConfig(embedding_dim=width, attention_heads=2)).with_defaults()
    assert config.train.lr == pytest.approx(lr) == default_lr(width)
    given = RunConfig(train=TrainConfig(lr=5e-4)).with_defaults()
    assert given.train.lr == 5e-4
