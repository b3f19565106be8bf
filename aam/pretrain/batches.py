"""Pretraining batches: the `Batch` of `aam.data` plus the distances between its samples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from aam.data.batch import Batch
from aam.data.dataset import AAMDataset, SampleItem
from aam.pretrain.distances import BatchDistances


@dataclass
class PretrainBatch:
    batch: Batch
    distances: torch.Tensor | None  # float32 [B, B] over each sample's full profile; None when not an objective


class PretrainCollate:
    """collate_fn of a pretraining loader (a class, so loader worker processes can pickle it)."""

    def __init__(self, dataset: AAMDataset, counts: sp.csr_matrix, distances: BatchDistances | None):
        self.dataset, self.counts, self.distances = dataset, counts, distances

    def __call__(self, items: Sequence[SampleItem]) -> PretrainBatch:
        batch = self.dataset.collate(items)
        if self.distances is None:
            return PretrainBatch(batch, None)
        rows = self.dataset.indices[np.fromiter((it.position for it in items), dtype=np.int64, count=len(items))]
        return PretrainBatch(batch, torch.from_numpy(self.distances(self.counts[rows])))
