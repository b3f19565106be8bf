"""The pretraining objectives of one step, as this process's pieces of the batch's losses.

Every process of a data-parallel run holds the whole batch (its ASVs, masks and distances) and encodes
every distinct ASV of it, but encodes only its own rows' samples (`rows`). Each loss is a sum over the
batch divided by a count of the whole batch, so the pieces of all processes add up to the single-process
loss, and so do their gradients (`aam.pretrain.parallel`).

- masked ASVs, presence: for each sample with hidden ASVs, binary cross-entropy of the presence logits
  of its hidden ASVs (1) and of the batch's ASVs it does not hold (0), each group averaged and the two
  weighted equally; its visible ASVs are not scored. Mean over the samples with hidden ASVs.
- masked ASVs, abundance: squared error of the predicted abundance input (log1p of reads, or of reads per
  10,000) of each hidden ASV; mean over the hidden slots.
- distances: squared error between the Euclidean distance of two samples' projected vectors and their
  distance in the table; mean over ordered pairs of different samples.
- masked nucleotides: cross-entropy of the hidden nucleotides; mean over them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

OBJECTIVES = ("presence", "abundance", "distance", "nucleotide")


@dataclass
class StepInputs:
    """One batch with its draws; every tensor covers the whole batch."""

    asv_tokens: torch.Tensor  # uint8 [U, L] (hidden nucleotides already set to N when that objective is on)
    asv_index: torch.Tensor  # int64 [B, A]
    asv_mask: torch.Tensor  # bool [B, A]
    abundance: torch.Tensor  # float32 [B, A]: the model's abundance input per slot
    hidden: torch.Tensor  # bool [B, A]: slots hidden from the sample encoder
    distances: torch.Tensor | None  # float32 [B, B], None when the distance objective is off
    nucleotide_targets: torch.Tensor | None  # int64 [U, L], -100 = not scored; None when off


def presence_targets(asv_index: torch.Tensor, asv_mask: torch.Tensor, hidden: torch.Tensor, n_asvs: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(positives, negatives) bool [B, U]: the hidden ASVs of each sample, and the batch's ASVs it lacks."""
    rows = torch.arange(asv_index.shape[0], device=asv_index.device)[:, None].expand_as(asv_index)
    present = torch.zeros(asv_index.shape[0], n_asvs, dtype=torch.bool, device=asv_index.device)
    present[rows[asv_mask], asv_index[asv_mask]] = True
    positives = torch.zeros_like(present)
    positives[rows[hidden], asv_index[hidden]] = True
    return positives, ~present


def presence_loss(logits: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor, n_scored: int
                  ) -> torch.Tensor:
    """logits [b, U] of these rows; `n_scored`: samples of the whole batch with a hidden ASV."""
    bce = F.binary_cross_entropy_with_logits(logits, positives.to(logits.dtype), reduction="none")
    n_pos, n_neg = positives.sum(1), negatives.sum(1)
    per_sample = (0.5 * (bce * positives).sum(1) / n_pos.clamp_min(1)
                  + 0.5 * (bce * negatives).sum(1) / n_neg.clamp_min(1))
    return (per_sample * (n_pos > 0)).sum() / max(n_scored, 1)


def pair_distance_loss(local: torch.Tensor, everyone: torch.Tensor, rows: slice, targets: torch.Tensor
                       ) -> torch.Tensor:
    """local [b, D] projected vectors of these rows, everyone [B, D] of the whole batch, targets [B, B]."""
    n = everyone.shape[0]
    squared = (local[:, None, :] - everyone[None, :, :]).pow(2).sum(-1)  # [b, B]
    predicted = squared.clamp_min(1e-12).sqrt()  # clamped: the zero distance to itself has no gradient
    other = torch.ones_like(predicted, dtype=torch.bool)
    other[torch.arange(predicted.shape[0]), torch.arange(rows.start, rows.stop)] = False
    return ((predicted - targets[rows]).pow(2) * other).sum() / max(n * (n - 1), 1)


def step_losses(model, inputs: StepInputs, rows: slice, gather, world: int, masked_asvs: bool = True
                ) -> dict[str, torch.Tensor]:
    """This process's piece of each objective's loss (see the module doc); `gather(local [b, D]) -> [B, D]`
    joins every process's rows (the identity in one process). The distance and nucleotide objectives are
    on when their inputs are given, the two masked-ASV ones when `masked_asvs`."""
    nucleotides = inputs.nucleotide_targets is not None
    vectors, states = model.asv_vectors(inputs.asv_tokens, with_states=nucleotides)  # [U, D]
    index, mask, hidden = inputs.asv_index, inputs.asv_mask, inputs.hidden
    visible = (mask & ~hidden)[rows]
    local_index = index[rows]
    samples = model.sample_encoder(vectors[local_index], visible, inputs.abundance[rows])  # [b, D]
    d = vectors.shape[-1]
    losses: dict[str, torch.Tensor] = {}

    if masked_asvs:
        positives, negatives = presence_targets(index, mask, hidden, vectors.shape[0])
        n_scored = int(hidden.any(1).sum())
        logits = model.query(samples) @ model.key(vectors).T / math.sqrt(d) + model.presence_bias  # [b, U]
        losses["presence"] = presence_loss(logits.float(), positives[rows], negatives[rows], n_scored)
        which = hidden[rows].nonzero(as_tuple=True)  # (row, slot) of each hidden ASV of these rows
        pairs = torch.cat([samples[which[0]], vectors[local_index[which]]], dim=-1)  # [h, 2D]
        predicted = model.abundance(pairs).squeeze(-1).float()
        target = inputs.abundance[rows][which]
        losses["abundance"] = (predicted - target).pow(2).sum() / max(int(hidden.sum()), 1)

    if inputs.distances is not None:
        projected = model.projection(samples).float()
        losses["distance"] = pair_distance_loss(projected, gather(projected), rows, inputs.distances)
    if nucleotides:
        targets = inputs.nucleotide_targets
        scored = targets >= 0
        logits = model.nucleotide(states[scored]).float()  # [m, 4]
        total = F.cross_entropy(logits, targets[scored], reduction="sum")
        # every process holds the same ASVs: each takes 1/world of this loss
        losses["nucleotide"] = total / max(int(scored.sum()), 1) / world
    return losses
