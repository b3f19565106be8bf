"""Model shapes and masking: padding changes nothing, distinct-ASV encoding equals encoding every slot's
sequence on its own, a sample's prediction does not depend on the other samples of its batch."""

import dataclasses

import pytest
import torch

from aam.config import ModelConfig
from aam.models import AAMRegressor

L = 12


def tiny_config(**overrides) -> ModelConfig:
    values = dict(embedding_dim=16, attention_heads=2, asv_layers=1, sample_layers=1, dropout=0.0, max_bp=L,
                  n_targets=2, category_cardinalities=(3,))
    values.update(overrides)
    return ModelConfig(**values)


def make_inputs(generator: torch.Generator, counts=(5, 3, 7), u: int = 9):
    """Random distinct ASVs [U, L] (with a ragged pad tail) and samples pointing into them."""
    tokens = torch.randint(1, 6, (u, L), generator=generator, dtype=torch.uint8)
    for row in range(u):
        tokens[row, L - row % 4:] = 0
    a = max(counts)
    index = torch.zeros(len(counts), a, dtype=torch.int64)
    mask = torch.zeros(len(counts), a, dtype=torch.bool)
    log_counts = torch.zeros(len(counts), a)
    for b, n in enumerate(counts):
        index[b, :n] = torch.randperm(u, generator=generator)[:n]
        mask[b, :n] = True
        log_counts[b, :n] = torch.rand(n, generator=generator) * 5
    categories = torch.randint(0, 4, (len(counts), 1), generator=generator)
    return tokens, index, mask, log_counts, categories


@pytest.fixture
def model():
    torch.manual_seed(0)
    return AAMRegressor(tiny_config()).eval()


def test_output_shape_is_batch_targets_quantiles():
    torch.manual_seed(0)
    m = AAMRegressor(tiny_config(n_targets=3, n_quantiles=2, regressor_hidden_dims=(8, 4))).eval()
    out = m(*make_inputs(torch.Generator().manual_seed(1)))
    assert out.shape == (3, 3, 2)


def test_extra_padding_slots_do_not_change_outputs(model):
    tokens, index, mask, log_counts, categories = make_inputs(torch.Generator().manual_seed(2))
    expected = model(tokens, index, mask, log_counts, categories)
    extra = 5
    # Padding slots point at arbitrary rows with arbitrary counts: the mask alone must exclude them.
    index2 = torch.cat([index, torch.randint(0, tokens.shape[0], (3, extra))], dim=1)
    mask2 = torch.cat([mask, torch.zeros(3, extra, dtype=torch.bool)], dim=1)
    counts2 = torch.cat([log_counts, torch.rand(3, extra) * 9], dim=1)
    got = model(tokens, index2, mask2, counts2, categories)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_nucleotide_padding_does_not_change_asv_vectors(model):
    tokens = torch.randint(1, 5, (4, L), dtype=torch.uint8)
    tokens[:, 8:] = 0
    short = model.asv_encoder(tokens[:, :8])  # the same ASVs without the pad tail
    full = model.asv_encoder(tokens)
    torch.testing.assert_close(full, short, rtol=1e-5, atol=1e-5)


def test_distinct_asv_encoding_equals_per_slot_encoding(model):
    tokens, index, mask, log_counts, categories = make_inputs(torch.Generator().manual_seed(3))
    assert len(set(index[mask].tolist())) < int(mask.sum())  # samples share ASVs: deduplication has work to do
    once = model.encode_asvs(tokens, index)
    for b, s in mask.nonzero().tolist():
        alone = model.asv_encoder(tokens[index[b, s]][None])[0]  # this slot's sequence, encoded by itself
        torch.testing.assert_close(once[b, s], alone, rtol=1e-5, atol=1e-5)
    # the same batch without deduplication (one row of sequences per real slot) predicts the same
    per_slot = torch.zeros_like(index)
    per_slot[mask] = torch.arange(int(mask.sum()))
    torch.testing.assert_close(model(tokens, index, mask, log_counts, categories),
                               model(tokens[index[mask]], per_slot, mask, log_counts, categories),
                               rtol=1e-5, atol=1e-5)


def test_prediction_does_not_depend_on_the_rest_of_the_batch(model):
    tokens, index, mask, log_counts, categories = make_inputs(torch.Generator().manual_seed(4))
    together = model(tokens, index, mask, log_counts, categories)
    for b in range(3):
        n = int(mask[b].sum())
        rows = index[b, :n]
        alone = model(tokens[rows], torch.arange(n)[None], mask[b:b + 1, :n], log_counts[b:b + 1, :n],
                      categories[b:b + 1])
        torch.testing.assert_close(alone[0], together[b], rtol=1e-5, atol=1e-5)


def test_empty_sample_gives_finite_output(model):
    tokens, index, mask, log_counts, categories = make_inputs(torch.Generator().manual_seed(5))
    mask[1] = False
    index[1] = 0
    log_counts[1] = 0
    out = model(tokens, index, mask, log_counts, categories)
    assert torch.isfinite(out).all()


def test_category_changes_prediction_and_unknown_code_zero_is_valid(model):
    tokens, index, mask, log_counts, categories = make_inputs(torch.Generator().manual_seed(6))
    a = model(tokens, index, mask, log_counts, torch.zeros_like(categories))
    b = model(tokens, index, mask, log_counts, torch.full_like(categories, 2))
    assert not torch.allclose(a, b)


def test_gradient_checkpointing_gives_the_same_gradients():
    inputs = make_inputs(torch.Generator().manual_seed(7))
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        m = AAMRegressor(tiny_config(gradient_checkpointing=checkpointing)).train()
        m(*inputs).square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)


def test_config_round_trips_into_the_same_architecture():
    c = tiny_config(regressor_hidden_dims=(8,))
    again = ModelConfig(**dataclasses.asdict(c))
    a, b = AAMRegressor(c), AAMRegressor(again)
    assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()]
