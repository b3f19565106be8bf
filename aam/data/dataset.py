"""`AAMDataset` and its collate: per-sample ASV selection, and batches built as gathers.

The table is kept as CSR with each sample's ASVs sorted by count (descending), and the distinct
sequences are tokenized once into uint8 [n_features, L]. A batch is then a few vectorized numpy
gathers: no per-ASV Python work, no dense per-sample columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from aam.data.batch import Batch
from aam.data.encoders import CategoryEncoder
from aam.data.study import Study
from aam.data.tokenizer import tokenize


@dataclass
class SampleItem:
    position: int  # row in the dataset (0..len-1)
    features: np.ndarray  # int64 [n]: feature columns chosen for this sample, most abundant first
    counts: np.ndarray  # float64 [n]: their read counts
    total: float  # the sample's reads over all its ASVs (kept or not), after any thinning


class AAMDataset(Dataset):
    """Samples `indices` of `study` (all when None), ready to batch.

    asv_sampling: "abundance" keeps each sample's top `token_limit` ASVs by count (ties by feature
    order); "random" draws `token_limit` of them uniformly without replacement, anew each epoch,
    from (seed, epoch, sample) -- in training only; evaluation (`train=False`) always uses the top ones.
    rarefy: None, or in (0, 1]: in training only, each epoch every sample's reads are thinned anew (each read
    kept with probability f, f drawn uniformly from [rarefy, 1] per sample and epoch, from (seed, epoch,
    sample)); ASVs left without reads are dropped before the ASVs are chosen. Counts are rounded to whole reads.
    asv_dropout: in training only, each epoch every sample loses each of its ASVs with this probability
    (independently, from (seed, epoch, sample, feature); when none is left, the most abundant one is kept)
    before the ASVs are chosen; the dropped ASVs' reads still count in the sample's total. The model then
    cannot lean on a few ASVs of a group whose abundances move together and learns to use the others too.
    encoders: the CategoryEncoder fitted on the training samples; when None it is fitted here, which
    is only allowed for a training dataset (see `encoder` to reuse it).
    levels: the training levels of the study's classification targets (`aam.data.prepared.fit_levels`); a
    classification target's column of `targets` holds the level's index (0-based), NaN where the level is
    missing or not among them (all NaN without `levels`: prediction and explanation read no targets).
    """

    def __init__(
        self,
        study: Study,
        indices: Sequence[int] | np.ndarray | None = None,
        *,
        max_bp: int = 150,
        token_limit: int = 1024,
        asv_sampling: Literal["abundance", "random"] = "abundance",
        train: bool = False,
        encoders: CategoryEncoder | None = None,
        levels: CategoryEncoder | None = None,
        start_token: bool = False,
        seed: int = 0,
        rarefy: float | None = None,
        asv_dropout: float = 0.0,
    ) -> None:
        if asv_sampling not in ("abundance", "random"):
            raise ValueError(f"asv_sampling must be 'abundance' or 'random', got {asv_sampling!r}")
        if token_limit < 1:
            raise ValueError(f"token_limit must be >= 1, got {token_limit}")
        self.indices = np.arange(study.n_samples) if indices is None else np.asarray(indices, dtype=np.int64)
        self.sample_ids = [study.sample_ids[i] for i in self.indices]
        if rarefy is not None and not 0.0 < rarefy <= 1.0:
            raise ValueError(f"rarefy must be in (0, 1], got {rarefy}")
        self.token_limit, self.asv_sampling, self.train, self.seed = token_limit, asv_sampling, train, seed
        if not 0.0 <= asv_dropout < 1.0:
            raise ValueError(f"asv_dropout must be in [0, 1), got {asv_dropout}")
        self.rarefy, self.asv_dropout = rarefy, asv_dropout
        self.epoch = 0
        counts = study.counts[self.indices].tocsr()
        counts.sort_indices()
        row = np.repeat(np.arange(len(self.indices), dtype=np.int64), np.diff(counts.indptr))
        # Within each sample: count descending, then feature index, so "top k" is a prefix slice.
        order = np.argsort(_row_count_key(row, counts.data), kind="stable")
        self._indptr = counts.indptr.astype(np.int64)
        self._features = counts.indices[order].astype(np.int64)
        self._counts = counts.data[order].astype(np.float64)
        self._totals = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()  # all reads, not only kept ASVs
        self.tokens = tokenize(study.sequences, max_bp, start_token)  # uint8 [n_features, L]
        self.targets = study.targets[self.indices].astype(np.float32)  # [n, T]
        if study.class_columns and levels is None and train:
            raise ValueError("a training dataset with classification targets needs their levels (`levels`)")
        if study.class_columns and levels is not None:
            codes = levels.transform(study.class_labels()[self.indices]).astype(np.float32) - 1  # -1 = unknown
            for i, column in enumerate(study.class_columns):
                self.targets[:, study.target_columns.index(column)] = np.where(codes[:, i] >= 0, codes[:, i], np.nan)
        if study.categorical_columns:
            if encoders is None:
                if not train:
                    raise ValueError("an evaluation dataset needs the CategoryEncoder fitted on the training samples")
                encoders = CategoryEncoder.fit(study.categorical_columns, study.categories[self.indices])
            self.categories = encoders.transform(study.categories[self.indices])  # int64 [n, C]
        else:
            self.categories = np.zeros((len(self.indices), 0), dtype=np.int64)
        self.encoder = encoders
        self.target_columns = study.target_columns

    def __len__(self) -> int:
        return len(self.indices)

    def set_epoch(self, epoch: int) -> None:
        """Changes the random ASV draw (random sampling, training) and the loader's shuffle order."""
        self.epoch = int(epoch)

    def __getitem__(self, position: int) -> SampleItem:
        start, end = self._indptr[position], self._indptr[position + 1]
        features, counts, total = self._features[start:end], self._counts[start:end], self._totals[position]
        if self.rarefy is not None and self.train:
            features, counts, total = self._thinned(position, features, counts)
        if self.asv_dropout and self.train and len(features) > 1:
            # priority / 2^64 is uniform on [0, 1): keep the ASVs whose draw clears the dropout rate.
            keep = self._priority(position, features, 1) >= np.uint64(self.asv_dropout * 2.0**64)
            keep[0] |= not keep.any()
            features, counts = features[keep], counts[keep]
        n = len(features)
        if n <= self.token_limit:
            pick = slice(0, n)
        elif self.asv_sampling == "random" and self.train:
            # A uniform subset without replacement: the k smallest hash priorities. Same draw in any worker
            # or batch order; far cheaper than seeding a Generator per sample.
            priority = self._priority(position, features, 0)
            pick = np.sort(np.argpartition(priority, self.token_limit)[: self.token_limit])
        else:
            pick = slice(0, self.token_limit)
        return SampleItem(position, features[pick], counts[pick], total)

    def _priority(self, position: int, features: np.ndarray, stream: int) -> np.ndarray:
        """uint64 [n]: a hash of (seed, epoch, sample, feature), one independent stream per use."""
        key = np.array([self.seed, self.epoch, int(self.indices[position])], dtype=np.uint64)
        base = _splitmix64(key)
        salt = _splitmix64(base[:1] ^ _splitmix64(base[1:2] ^ base[2:]))  # [1]
        if stream:
            salt = _splitmix64(salt ^ np.uint64(stream))
        return _splitmix64(features.astype(np.uint64) ^ salt)

    def _thinned(self, position: int, features: np.ndarray, counts: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, float]:
        """One sample's ASVs after binomial thinning of its reads (see `rarefy`), most abundant first; the
        most abundant ASV keeps one read when the draw leaves none."""
        rng = np.random.default_rng((self.seed, self.epoch, int(self.indices[position])))
        fraction = rng.uniform(self.rarefy, 1.0)
        kept = rng.binomial(np.rint(counts).astype(np.int64), fraction).astype(np.float64)
        if len(kept) and not kept.any():
            kept[0] = 1.0
        order = np.argsort(-kept, kind="stable")  # ties keep the original (count, feature) order
        order = order[kept[order] > 0]
        return features[order], kept[order], float(kept.sum())

    def collate(self, items: Sequence[SampleItem]) -> Batch:
        return collate(items, self)


def _row_count_key(row: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """int64 key ordering entries by (row, count descending); a stable sort keeps feature order for ties.
    One stable sort on it is several times faster than lexsort on three keys."""
    top = float(counts.max()) if counts.size else 0.0
    if np.array_equal(counts, np.floor(counts)) and (top + 1) * (int(row[-1]) + 1 if row.size else 1) < 2**62:
        return row * np.int64(top + 1) + (np.int64(top) - counts.astype(np.int64))
    # Fractional counts (e.g. rarefied or normalized tables): rank them first.
    levels, rank = np.unique(-counts, return_inverse=True)
    return row * len(levels) + rank.ravel()


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer on uint64 (wrapping arithmetic): a cheap, well-mixed hash."""
    x = np.atleast_1d(np.asarray(x, dtype=np.uint64))  # arrays wrap silently; numpy scalars would warn
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def collate(items: Sequence[SampleItem], dataset: AAMDataset) -> Batch:
    """Batch from items of `dataset`: padded to the batch's own max ASV count, distinct ASVs tokenized once."""
    positions = np.fromiter((it.position for it in items), dtype=np.int64, count=len(items))
    lengths = np.fromiter((len(it.features) for it in items), dtype=np.int64, count=len(items))
    width = int(lengths.max()) if len(items) else 0
    features = np.concatenate([it.features for it in items]) if items else np.zeros(0, dtype=np.int64)
    counts = np.concatenate([it.counts for it in items]) if items else np.zeros(0)
    mask = np.arange(width)[None, :] < lengths[:, None]  # [B, A]; row-major True cells = concatenation order
    # Distinct features via a presence flag over all features: O(n_features), cheaper than sorting.
    present = np.zeros(dataset.tokens.shape[0], dtype=bool)
    present[features] = True
    distinct = np.flatnonzero(present)  # [U]
    remap = np.zeros(dataset.tokens.shape[0], dtype=np.int64)
    remap[distinct] = np.arange(len(distinct))
    asv_index = np.zeros(mask.shape, dtype=np.int64)
    asv_index[mask] = remap[features]
    log_counts = np.zeros(mask.shape, dtype=np.float32)
    log_counts[mask] = np.log1p(counts)
    rel_abundance = np.zeros(mask.shape, dtype=np.float32)
    totals = np.fromiter((it.total for it in items), dtype=np.float64, count=len(items))
    rel_abundance[mask] = counts / np.repeat(totals, lengths)
    return Batch(
        sample_ids=[dataset.sample_ids[p] for p in positions],
        asv_tokens=torch.from_numpy(dataset.tokens[distinct]),
        asv_index=torch.from_numpy(asv_index),
        asv_mask=torch.from_numpy(mask),
        log_counts=torch.from_numpy(log_counts),
        rel_abundance=torch.from_numpy(rel_abundance),
        targets=torch.from_numpy(dataset.targets[positions]),
        categories=torch.from_numpy(dataset.categories[positions]),
    )


class EpochSampler(Sampler[int]):
    """Positions of `dataset` in order, or shuffled from (seed, dataset.epoch): reproducible per epoch."""

    def __init__(self, dataset: AAMDataset, shuffle: bool, seed: int) -> None:
        self.dataset, self.shuffle, self.seed = dataset, shuffle, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self):
        n = len(self.dataset)
        if not self.shuffle:
            return iter(range(n))
        return iter(np.random.default_rng((self.seed, self.dataset.epoch)).permutation(n).tolist())


def make_loader(
    dataset: AAMDataset,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool = False,
    pin_memory: bool = False,
    collate_fn=None,
) -> DataLoader:
    """DataLoader yielding `Batch` (or what `collate_fn`, default `dataset.collate`, makes of a list of
    items); call `dataset.set_epoch(e)` before each epoch to reshuffle and redraw."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochSampler(dataset, shuffle, seed),
        collate_fn=collate_fn or dataset.collate,
        num_workers=num_workers,
        drop_last=drop_last,
        pin_memory=pin_memory,
    )
