"""Global batches split across the processes of a data-parallel run.

`--batch-size` is the global batch: every rank draws the same sequence of global batches (the
single-process order: a permutation from (seed, epoch), cut into batches) and keeps its contiguous
share of each (`numpy.array_split` sizes), so N processes take the same optimizer steps on the
same samples as one process. Every rank sees every global batch's sample positions, so the collate
also works out, without communication, which rank counts each distinct ASV in the BatchNorm
statistics (the lowest rank holding it) and the global batch's sizes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from aam.data.batch import Batch, ShardInfo
from aam.data.dataset import AAMDataset, SampleItem, collate


class GlobalBatchSampler(Sampler[list[int]]):
    """Positions of each global batch: in order, or a permutation from (seed, dataset.epoch), cut into
    `batch_size` pieces (the last one smaller) -- the batches a single-process loader makes."""

    def __init__(self, dataset: AAMDataset, batch_size: int, shuffle: bool, seed: int) -> None:
        self.dataset, self.batch_size, self.shuffle, self.seed = dataset, batch_size, shuffle, seed

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        n = len(self.dataset)
        order = np.random.default_rng((self.seed, self.dataset.epoch)).permutation(n) if self.shuffle \
            else np.arange(n)
        for start in range(0, n, self.batch_size):
            yield order[start:start + self.batch_size].tolist()


class ShardCollate:
    """Collate for one rank: its contiguous share of the global batch's items, with a `ShardInfo`.

    A rank whose share is empty (a last global batch with fewer samples than ranks) gets the first
    sample as a placeholder with missing targets and no ASV it counts, so it still runs every
    collective of the step while adding nothing to the loss, the statistics or the routing counts.
    """

    def __init__(self, dataset: AAMDataset, rank: int, world_size: int) -> None:
        self.dataset, self.rank, self.world_size = dataset, rank, world_size

    def __call__(self, items: Sequence[SampleItem]) -> Batch:
        sizes = [len(part) for part in np.array_split(np.arange(len(items)), self.world_size)]
        start = sum(sizes[:self.rank])
        local = list(items[start:start + sizes[self.rank]])
        n_features = self.dataset.tokens.shape[0]
        seen_before = np.zeros(n_features, dtype=bool)  # features held by a lower rank
        for item in items[:start]:
            seen_before[item.features] = True
        present = seen_before.copy()
        for item in items[start:]:
            present[item.features] = True
        padding = not local
        batch = collate(local or list(items[:1]), self.dataset)
        # The collate's distinct features, in its (ascending) order.
        distinct = np.unique(np.concatenate([it.features for it in (local or items[:1])]))
        owned = np.zeros(len(distinct), dtype=bool) if padding else ~seen_before[distinct]
        if padding:
            batch.targets = torch.full_like(batch.targets, float("nan"))
        batch.shard = ShardInfo(torch.from_numpy(owned), int(present.sum()), len(items), padding)
        return batch


def make_sharded_loader(dataset: AAMDataset, batch_size: int, shuffle: bool, rank: int, world_size: int,
                        seed: int = 0, num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """DataLoader yielding this rank's `Batch` of each global batch of `batch_size` samples."""
    return DataLoader(dataset, batch_sampler=GlobalBatchSampler(dataset, batch_size, shuffle, seed),
                      collate_fn=ShardCollate(dataset, rank, world_size), num_workers=num_workers,
                      pin_memory=pin_memory)
