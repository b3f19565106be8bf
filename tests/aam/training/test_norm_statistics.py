"""The ASV BatchNorm statistics recomputed after an epoch: per-batch moments from the current weights."""

from types import SimpleNamespace

import torch

from aam.config import ModelConfig
from aam.models import AAMRegressor
from aam.training.norm_statistics import recompute_norm_statistics

L = 10


def token_batches(generator, sizes):
    return [SimpleNamespace(asv_tokens=torch.randint(1, 6, (u, L), generator=generator, dtype=torch.uint8))
            for u in sizes]


def test_statistics_are_batch_moments_in_eval_mode():
    torch.manual_seed(0)
    model = AAMRegressor(ModelConfig(embedding_dim=16, attention_heads=2, asv_layers=1, sample_layers=1,
                                     dropout=0.3, max_bp=L)).train()
    batches = token_batches(torch.Generator().manual_seed(1), [7, 1, 5, 9])
    recompute_norm_statistics(model, batches, torch.device("cpu"), max_batches=3)
    assert model.training  # the mode it was called in

    # Independently: the pre-norm vectors with dropout off, of the first three batches; the one-ASV batch
    # has no variance and is skipped; the fourth is past max_batches.
    encoder = model.asv_encoder.eval()
    with torch.no_grad():
        vectors = [encoder.pool(encoder.stack(encoder.nucleotides(b.asv_tokens.long())
                                              + encoder.positions(torch.arange(L)), b.asv_tokens != 0),
                                b.asv_tokens != 0) for b in (batches[0], batches[2])]
    mean = (vectors[0].mean(0) + vectors[1].mean(0)) / 2
    var = (vectors[0].var(0, unbiased=True) + vectors[1].var(0, unbiased=True)) / 2
    torch.testing.assert_close(encoder.norm.running_mean, mean)
    torch.testing.assert_close(encoder.norm.running_var, var)


def test_zero_batches_keeps_the_running_averages():
    torch.manual_seed(0)
    model = AAMRegressor(ModelConfig(embedding_dim=16, attention_heads=2, asv_layers=1, sample_layers=1, max_bp=L))
    before = model.asv_encoder.norm.running_var.clone()
    recompute_norm_statistics(model, token_batches(torch.Generator().manual_seed(1), [6]), torch.device("cpu"), 0)
    assert torch.equal(model.asv_encoder.norm.running_var, before)
