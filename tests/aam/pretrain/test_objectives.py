"""Each pretraining loss against a plain re-statement of its definition on a hand-made batch, written
with Python loops over samples, slots and pairs."""

import math

import pytest
import torch
import torch.nn.functional as F

from aam.config import ModelConfig
from aam.pretrain.model import PretrainModel
from aam.pretrain.objectives import StepInputs, pair_distance_loss, presence_loss, presence_targets, step_losses

# 3 samples over 5 distinct ASVs; sample 2 has one ASV only (nothing can be hidden from it)
INDEX = torch.tensor([[0, 1, 2, 0], [3, 1, 4, 2], [4, 0, 0, 0]])
MASK = torch.tensor([[True, True, True, False], [True, True, True, True], [True, False, False, False]])
HIDDEN = torch.tensor([[False, True, False, False], [True, False, False, True], [False, False, False, False]])


def test_presence_targets_are_the_hidden_asvs_and_the_batch_asvs_a_sample_lacks():
    positives, negatives = presence_targets(INDEX, MASK, HIDDEN, 5)
    assert positives.tolist() == [[False, True, False, False, False], [False, False, True, True, False],
                                  [False] * 5]
    assert negatives.tolist() == [[False, False, False, True, True], [True, False, False, False, False],
                                  [True, True, True, True, False]]


def test_presence_loss_matches_a_loop_over_samples_and_asvs():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, dtype=torch.float64)
    positives, negatives = presence_targets(INDEX, MASK, HIDDEN, 5)
    expected, scored = 0.0, 0
    for b in range(3):
        pos = [u for u in range(5) if positives[b, u]]
        neg = [u for u in range(5) if negatives[b, u]]
        if not pos:
            continue
        scored += 1
        p = sum(-math.log(1 / (1 + math.exp(-logits[b, u].item()))) for u in pos) / len(pos)
        n = sum(-math.log(1 - 1 / (1 + math.exp(-logits[b, u].item()))) for u in neg) / len(neg)
        expected += 0.5 * p + 0.5 * n
    got = presence_loss(logits, positives, negatives, n_scored=2)
    assert scored == 2
    assert abs(got.item() - expected / 2) < 1e-12


def test_pair_distance_loss_matches_a_loop_over_ordered_pairs_and_splits_into_row_pieces():
    torch.manual_seed(1)
    points = torch.randn(4, 3, dtype=torch.float64)
    targets = torch.rand(4, 4, dtype=torch.float64)
    expected = sum((torch.dist(points[i], points[j]).item() - targets[i, j].item()) ** 2
                   for i in range(4) for j in range(4) if i != j) / 12
    whole = pair_distance_loss(points, points, slice(0, 4), targets)
    assert abs(whole.item() - expected) < 1e-12
    pieces = pair_distance_loss(points[:1], points, slice(0, 1), targets) + \
        pair_distance_loss(points[1:], points, slice(1, 4), targets)
    assert abs(pieces.item() - expected) < 1e-12


def small_inputs(asv_layers: int):
    torch.manual_seed(2)
    config = ModelConfig(embedding_dim=8, attention_heads=2, asv_layers=asv_layers, sample_layers=1, max_bp=6)
    model = PretrainModel(config)  # float32: the CPU attention kernel runs in float32
    tokens = torch.randint(1, 5, (5, 6), dtype=torch.uint8)
    tokens[4, 4:] = 0  # a shorter ASV
    abundance = torch.rand(3, 4) * 5 * MASK
    nucleotide_targets = torch.full((5, 6), -100)
    nucleotide_targets[0, 2], nucleotide_targets[3, 0], nucleotide_targets[4, 1] = 1, 3, 0
    inputs = StepInputs(tokens, INDEX, MASK, abundance, HIDDEN, torch.rand(3, 3),
                        nucleotide_targets if asv_layers else None)
    return model, inputs


def test_step_losses_match_the_definitions_written_with_loops():
    model, inputs = small_inputs(asv_layers=1)
    model.eval()  # running statistics in the BatchNorm: the ASV vectors do not depend on the batch
    losses = step_losses(model, inputs, slice(0, 3), lambda x: x, world=1)
    vectors = model.asv_encoder(inputs.asv_tokens)
    visible = MASK & ~HIDDEN
    samples = model.sample_encoder(vectors[INDEX], visible, inputs.abundance)
    # abundance: mean over the 3 hidden slots of the squared error
    errors = []
    for b in range(3):
        for a in range(4):
            if HIDDEN[b, a]:
                pair = torch.cat([samples[b], vectors[INDEX[b, a]]])
                errors.append((model.abundance(pair).item() - inputs.abundance[b, a].item()) ** 2)
    assert len(errors) == 3
    assert losses["abundance"].item() == pytest.approx(sum(errors) / 3, rel=1e-5)
    # distance between projected sample vectors
    projected = model.projection(samples)
    expected = sum((torch.dist(projected[i], projected[j]).item() - inputs.distances[i, j].item()) ** 2
                   for i in range(3) for j in range(3) if i != j) / 6
    assert losses["distance"].item() == pytest.approx(expected, rel=1e-5)
    # masked nucleotides: mean cross-entropy over the three scored positions
    states = model.asv_encoder.token_states(inputs.asv_tokens)
    scored = [(0, 2, 1), (3, 0, 3), (4, 1, 0)]
    ce = [F.cross_entropy(model.nucleotide(states[u, i])[None], torch.tensor([t])).item() for u, i, t in scored]
    assert losses["nucleotide"].item() == pytest.approx(sum(ce) / 3, rel=1e-5)
    # presence with the model's logits
    logits = model.query(samples) @ model.key(vectors).T / math.sqrt(8) + model.presence_bias
    positives, negatives = presence_targets(INDEX, MASK, HIDDEN, 5)
    assert losses["presence"].item() == pytest.approx(presence_loss(logits, positives, negatives, 2).item(), rel=1e-5)


def test_row_pieces_add_up_to_the_whole_batch_loss():
    model, inputs = small_inputs(asv_layers=1)
    total = sum(step_losses(model, inputs, slice(0, 3), lambda x: x, world=1).values())
    # two "processes": rows [0, 1) and [1, 3); each joins the other's projected vectors, as the all-gather does
    with torch.no_grad():
        everyone = model.projection(model.sample_encoder(model.asv_encoder(inputs.asv_tokens)[INDEX],
                                                         MASK & ~HIDDEN, inputs.abundance))
    pieces = []
    for rows in (slice(0, 1), slice(1, 3)):
        held = everyone.clone().requires_grad_(True)

        def gather(local, rows=rows, held=held):
            return torch.cat([held[: rows.start], local, held[rows.stop:]])

        part = step_losses(model, inputs, rows, gather, world=2)
        pieces.append(sum(part.values()))
    assert sum(p.item() for p in pieces) == pytest.approx(total.item(), rel=1e-5)
