"""Which ASVs and nucleotides a pretraining step hides."""

import torch

from aam.pretrain.masking import hidden_asvs, masked_nucleotides, step_generator


def test_masking_hides_the_rounded_fraction_and_never_every_asv_of_a_sample():
    lengths = torch.tensor([0, 1, 2, 3, 8, 40, 200])
    mask = torch.arange(200)[None, :] < lengths[:, None]
    for step in range(20):
        hidden = hidden_asvs(mask, 0.25, step_generator(7, 1, step))
        assert not (hidden & ~mask).any()
        counts = hidden.sum(1).tolist()
        # n = 0 and 1 hide nothing; 2 and 3 hide one (at least one, at least one left); then round(n / 4)
        assert counts == [0, 0, 1, 1, 2, 10, 50]
        assert ((mask & ~hidden).sum(1)[1:] >= 1).all()
    assert (hidden_asvs(mask, 0.999, step_generator(7, 1, 0)).sum(1) == (lengths - 1).clamp_min(0)).all()


def test_the_draw_depends_on_the_step_and_repeats_for_the_same_step():
    mask = torch.ones(4, 50, dtype=torch.bool)
    a = hidden_asvs(mask, 0.3, step_generator(1, 2, 3))
    assert torch.equal(a, hidden_asvs(mask, 0.3, step_generator(1, 2, 3)))
    assert not torch.equal(a, hidden_asvs(mask, 0.3, step_generator(1, 2, 4)))
    # every slot of a row is equally likely to be hidden: over many draws each is hidden ~30% of the time
    rate = torch.stack([hidden_asvs(mask, 0.3, step_generator(1, 2, s)) for s in range(400)]).float().mean((0, 1))
    assert rate.min() > 0.22 and rate.max() < 0.38


def test_masked_nucleotides_become_n_and_only_acgt_positions_are_scored():
    tokens = torch.tensor([[1, 2, 3, 4, 5, 0], [4, 4, 4, 0, 0, 0]], dtype=torch.uint8)
    masked, targets = masked_nucleotides(tokens, 0.999, step_generator(0, 0, 0))
    assert masked.tolist() == [[5, 5, 5, 5, 5, 0], [5, 5, 5, 0, 0, 0]]
    assert targets.tolist() == [[0, 1, 2, 3, -100, -100], [3, 3, 3, -100, -100, -100]]
    kept, none = masked_nucleotides(tokens, 1e-9, step_generator(0, 0, 0))
    assert torch.equal(kept, tokens.long()) and (none == -100).all()
