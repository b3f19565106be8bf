"""`Batch`: what the data layer hands the model, one mini-batch of samples.

The ASV sequences of a batch are stored once per distinct ASV (`asv_tokens`), and each
(sample, slot) points at its row through `asv_index`, so the model can encode every distinct
ASV once and gather the vectors back: `asv_vectors[asv_index]` -> [B, A, D].
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class ShardInfo:
    """This process's share of a global batch in a data-parallel run (`aam.data.sharding`)."""

    asv_owned: torch.Tensor  # bool [U]: the rank counting this distinct ASV in the batch statistics is this one
    global_distinct: int  # distinct ASVs of the whole global batch
    global_samples: int  # samples of the whole global batch
    padding: bool = False  # this rank got no sample of the global batch: one placeholder that counts for nothing


@dataclass
class Batch:
    sample_ids: list[str]  # B sample IDs
    asv_tokens: torch.Tensor  # uint8 [U, L]: tokenized distinct ASVs of this batch (0 = pad), L = max_bp (+1 if start token)
    asv_index: torch.Tensor  # int64 [B, A]: row of asv_tokens for each (sample, slot); 0 where asv_mask is False
    asv_mask: torch.Tensor  # bool [B, A]: True for a real ASV; A = the batch's own max ASV count (<= token_limit)
    log_counts: torch.Tensor  # float32 [B, A]: log1p(read count), 0 at padding
    rel_abundance: torch.Tensor  # float32 [B, A]: count / sample's total reads (all its ASVs), 0 at padding
    targets: torch.Tensor  # float32 [B, T]: raw target values (original units), NaN where missing; T may be 0
    categories: torch.Tensor  # int64 [B, C]: categorical codes, 0 = unknown/missing; C may be 0
    shard: ShardInfo | None = None  # data-parallel runs only: how this batch relates to the global batch

    def __len__(self) -> int:
        return len(self.sample_ids)

    def _map(self, fn) -> "Batch":
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            values[f.name] = fn(value) if isinstance(value, torch.Tensor) else value
        return Batch(**values)

    def to(self, device, non_blocking: bool = False) -> "Batch":
        """Every tensor moved to `device` (`non_blocking` pays off from pinned memory)."""
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> "Batch":
        """Every tensor in page-locked memory; DataLoader(pin_memory=True) calls this."""
        return self._map(lambda t: t.pin_memory())
