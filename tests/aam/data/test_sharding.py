"""Global batches split across ranks (no process group needed: each rank's collate is plain code).

Against the single-process loader: the same global batches in the same order; the ranks' shares
partition each batch; the ASVs each rank counts in the BatchNorm statistics partition the batch's
distinct ASVs (so all-reduced sums run over exactly those); an empty share is one placeholder that
counts for nothing.
"""

import numpy as np
import pytest
import torch

from aam.data import AAMDataset, make_loader
from aam.data.sharding import make_sharded_loader
from studies import random_study


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("batch_size", [4, 7])
def test_shares_partition_the_single_process_batches(world, batch_size):
    dataset = AAMDataset(random_study(n=22), max_bp=12, token_limit=5, asv_sampling="random", train=True, seed=3)
    dataset.set_epoch(2)
    single = list(make_loader(dataset, batch_size, shuffle=True, seed=9))
    shards = [list(make_sharded_loader(dataset, batch_size, True, rank, world, seed=9)) for rank in range(world)]
    assert all(len(s) == len(single) for s in shards)
    for step, whole in enumerate(single):
        parts = [s[step] for s in shards]
        real = [p for p in parts if not p.shard.padding]
        assert [i for p in real for i in p.sample_ids] == whole.sample_ids  # contiguous shares, in order
        for p in parts:
            assert p.shard.global_samples == len(whole) and p.shard.global_distinct == whole.asv_tokens.shape[0]
        # Each distinct ASV of the whole batch is counted by exactly one rank: compare by its token row,
        # read through each share's own (sample, slot) -> row map against the whole batch's.
        counted = []
        for p in real:
            owned_rows = torch.nonzero(p.shard.asv_owned).ravel()
            counted += [tuple(p.asv_tokens[r].tolist()) for r in owned_rows]
            whole_rows = {tuple(r) for r in whole.asv_tokens.tolist()}
            assert {tuple(r) for r in p.asv_tokens.tolist()} <= whole_rows
        assert sorted(counted) == sorted(tuple(r) for r in whole.asv_tokens.tolist())
        np.testing.assert_array_equal(torch.cat([p.targets for p in real]).numpy(), whole.targets.numpy())


def test_an_empty_share_is_a_placeholder_that_counts_for_nothing():
    dataset = AAMDataset(random_study(n=9), max_bp=12, token_limit=5, train=True)
    last = list(make_sharded_loader(dataset, 4, False, rank=2, world_size=3))[-1]  # global batch of 1 sample
    assert last.shard.padding and len(last) == 1
    assert not last.shard.asv_owned.any() and torch.isnan(last.targets).all()
    assert last.shard.global_samples == 1
