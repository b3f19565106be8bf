"""AAMDataset / collate against a per-sample, per-ASV Python reference."""

import numpy as np
import pytest
import torch

from aam.data import AAMDataset, Batch, CategoryEncoder, Study, TargetScaler, make_loader, tokenize
from studies import random_study


def reference_sample(study: Study, row: int, token_limit: int):
    """(features, counts) of the top `token_limit` ASVs: count descending, ties by feature index."""
    dense = study.counts[row].toarray().ravel()
    nz = [j for j in range(len(dense)) if dense[j] > 0]
    nz.sort(key=lambda j: (-dense[j], j))
    top = nz[:token_limit]
    return top, [dense[j] for j in top], dense.sum()


@pytest.mark.parametrize("scale", [1.0, 1 / 3], ids=["integer-counts", "fractional-counts"])
@pytest.mark.parametrize("token_limit", [1, 4, 1024])
def test_collate_matches_reference(token_limit, scale):
    study = random_study(scale=scale)
    indices = np.array([7, 3, 0, 12, 25])
    ds = AAMDataset(study, indices, max_bp=12, token_limit=token_limit, train=True)
    batch = ds.collate([ds[i] for i in range(len(indices))])
    assert isinstance(batch, Batch)
    assert batch.sample_ids == [f"s{i}" for i in indices]
    tokens = tokenize(study.sequences, 12)
    width = max(len(reference_sample(study, r, token_limit)[0]) for r in indices)
    assert batch.asv_mask.shape == (5, width)
    assert batch.asv_tokens.dtype == torch.uint8 and batch.asv_index.dtype == torch.int64
    assert batch.log_counts.dtype == torch.float32 and batch.asv_mask.dtype == torch.bool
    distinct = set()
    for b, row in enumerate(indices):
        feats, counts, total = reference_sample(study, row, token_limit)
        distinct |= set(feats)
        n = len(feats)
        assert batch.asv_mask[b].tolist() == [True] * n + [False] * (width - n)
        got_tokens = batch.asv_tokens[batch.asv_index[b, :n]].numpy()
        np.testing.assert_array_equal(got_tokens, tokens[feats])
        np.testing.assert_allclose(batch.log_counts[b, :n].numpy(), np.log1p(counts), rtol=1e-6)
        np.testing.assert_allclose(batch.rel_abundance[b, :n].numpy(), np.array(counts) / total, rtol=1e-6)
        assert (batch.log_counts[b, n:] == 0).all() and (batch.rel_abundance[b, n:] == 0).all()
        assert (batch.asv_index[b, n:] == 0).all()
    assert batch.asv_tokens.shape == (len(distinct), 12)  # each distinct ASV exactly once
    np.testing.assert_array_equal(batch.targets.numpy(), study.targets[indices].astype(np.float32))
    encoder = CategoryEncoder.fit(("c1", "c2"), study.categories[indices])
    np.testing.assert_array_equal(batch.categories.numpy(), encoder.transform(study.categories[indices]))


def test_random_sampling_per_epoch_and_deterministic_evaluation():
    study = random_study(n=10, n_features=200)
    train = AAMDataset(study, max_bp=8, token_limit=5, asv_sampling="random", train=True, seed=1)
    full = AAMDataset(study, max_bp=8, token_limit=10_000, train=False, encoders=train.encoder)
    first = [set(train[i].features.tolist()) for i in range(10)]
    assert first == [set(train[i].features.tolist()) for i in range(10)]  # same epoch: same draw
    for i in range(10):
        assert first[i] <= set(full[i].features.tolist()) and len(first[i]) == min(5, len(full[i].features))
    train.set_epoch(1)
    assert first != [set(train[i].features.tolist()) for i in range(10)]
    evaluation = AAMDataset(study, max_bp=8, token_limit=5, asv_sampling="random", train=False, encoders=train.encoder)
    top = [full[i].features[:5].tolist() for i in range(10)]
    for epoch in (0, 3):
        evaluation.set_epoch(epoch)
        assert [evaluation[i].features.tolist() for i in range(10)] == top


def plain_augmented_evaluation(study: Study, **augmentation):
    """Every ASV of every sample, seed 3: a plain training dataset, one with `augmentation`, and an evaluation
    dataset given the same `augmentation` (which it must ignore)."""
    options = dict(max_bp=8, token_limit=10_000)
    full = AAMDataset(study, train=True, seed=3, **options)
    augmented = AAMDataset(study, train=True, seed=3, **options, **augmentation)
    evaluation = AAMDataset(study, train=False, encoders=full.encoder, **options, **augmentation)
    return full, augmented, evaluation


def test_rarefy_thins_reads_anew_each_epoch_in_training_only():
    study = random_study(n=12, n_features=80)
    full, thinned, evaluation = plain_augmented_evaluation(study, rarefy=0.2)
    fractions = []
    for epoch in range(200):
        thinned.set_epoch(epoch)
        for i in range(len(study.sample_ids)):
            original = dict(zip(full[i].features.tolist(), full[i].counts))
            item = thinned[i]
            assert item.counts.min() >= 1 and (np.diff(item.counts) <= 0).all()  # no empty ASV, most abundant first
            assert all(original[f] >= c for f, c in zip(item.features.tolist(), item.counts))  # reads only removed
            assert item.total == item.counts.sum()  # every ASV kept: the total is theirs
            fractions.append(item.total / full[i].total)
    assert item.features.tolist() == thinned[i].features.tolist()  # same epoch: same draw
    # f ~ U[0.2, 1] per sample and epoch, then binomial thinning: E[kept share] = 0.6
    assert np.mean(fractions) == pytest.approx(0.6, abs=0.02)
    assert min(fractions) > 0.1 and max(fractions) <= 1.0
    for i in range(len(study.sample_ids)):
        np.testing.assert_array_equal(evaluation[i].counts, full[i].counts)
    whole = AAMDataset(study, max_bp=8, token_limit=10_000, train=True, seed=3, rarefy=1.0)
    for i in range(len(study.sample_ids)):
        np.testing.assert_array_equal(whole[i].counts, full[i].counts)


def test_asv_dropout_drops_asvs_anew_each_epoch_in_training_only():
    study = random_study(n=12, n_features=80)
    full, dropped, evaluation = plain_augmented_evaluation(study, asv_dropout=0.7)
    kept, offered, draws = 0, 0, []
    for epoch in range(100):
        dropped.set_epoch(epoch)
        for i in range(len(study.sample_ids)):
            original = dict(zip(full[i].features.tolist(), full[i].counts))
            item = dropped[i]
            assert len(item.features) >= 1 and set(item.features.tolist()) <= set(original)
            assert [original[f] for f in item.features.tolist()] == item.counts.tolist()  # reads as they were
            assert (np.diff(item.counts) <= 0).all()  # still most abundant first
            assert item.total == full[i].total  # dropped ASVs' reads stay in the relative-abundance total
            if len(original) > 1:
                kept += len(item.features)
                offered += len(original)
            draws.append(tuple(item.features.tolist()))
    assert item.features.tolist() == dropped[i].features.tolist()  # same epoch: same draw
    # each ASV kept with probability 0.3 (a sample left empty keeps its top ASV: rare at these sizes)
    assert kept / offered == pytest.approx(0.3, abs=0.02)
    assert len(set(draws)) > 0.9 * len(draws)  # a new draw per sample and epoch
    for i in range(len(study.sample_ids)):
        np.testing.assert_array_equal(evaluation[i].features, full[i].features)


def test_asv_dropout_keeps_the_top_asv_when_every_asv_is_drawn_out():
    study = random_study(n=30, n_features=8)
    full = AAMDataset(study, max_bp=8, token_limit=10_000, train=True, seed=0)
    dropped = AAMDataset(study, max_bp=8, token_limit=10_000, train=True, seed=0, asv_dropout=0.99)
    lone = 0
    for i in range(len(study.sample_ids)):
        item = dropped[i]
        assert len(item.features) >= 1
        if len(full[i].features) > 1 and len(item.features) == 1 and item.features[0] == full[i].features[0]:
            lone += 1
    assert lone > 0


def test_loader_shuffle_reproducible_per_epoch():
    study = random_study()
    ds = AAMDataset(study, max_bp=8, token_limit=16, train=True)

    def order(seed, epoch):
        ds.set_epoch(epoch)
        return [s for b in make_loader(ds, 8, shuffle=True, seed=seed) for s in b.sample_ids]

    assert order(0, 0) == order(0, 0)
    assert order(0, 0) != order(0, 1)
    assert sorted(order(0, 2)) == sorted(ds.sample_ids)
    plain = [s for b in make_loader(ds, 8, shuffle=False) for s in b.sample_ids]
    assert plain == ds.sample_ids


def test_start_token_and_batch_to():
    ds = AAMDataset(random_study(), max_bp=6, token_limit=8, train=True, start_token=True)
    batch = next(iter(make_loader(ds, 4, shuffle=False)))
    assert batch.asv_tokens.shape[1] == 7 and (batch.asv_tokens[:, 0] == 6).all()
    moved = batch.to("cpu")
    assert moved.sample_ids == batch.sample_ids and torch.equal(moved.asv_index, batch.asv_index)


def test_evaluation_dataset_needs_the_training_encoder():
    with pytest.raises(ValueError, match="CategoryEncoder fitted on the training samples"):
        AAMDataset(random_study(), train=False)


def test_encoders_round_trip_and_unknown_levels():
    values = np.array([["a", "x"], ["b", None], [None, "y"]], dtype=object)
    encoder = CategoryEncoder.fit(("c1", "c2"), values)
    assert encoder.cardinalities == [3, 3]
    again = CategoryEncoder.from_dict(encoder.to_dict())
    new = np.array([["b", "y"], ["zzz", None]], dtype=object)
    assert again.transform(new).tolist() == [[2, 2], [0, 0]]
    scaler = TargetScaler.fit(("t",), np.array([[1.0], [3.0], [np.nan]]))
    assert scaler.mean == [2.0] and scaler.std == [1.0]
    restored = TargetScaler.from_dict(scaler.to_dict())
    np.testing.assert_allclose(restored.inverse(restored.transform(np.array([[5.0]]))), [[5.0]])


def test_worker_processes_give_the_same_batches():
    study = random_study(n=24, n_features=80)
    ds = AAMDataset(study, max_bp=8, token_limit=6, asv_sampling="random", train=True, seed=2)
    ds.set_epoch(3)

    def batches(workers):
        return [(b.sample_ids, b.asv_tokens[b.asv_index].tolist())
                for b in make_loader(ds, 5, shuffle=True, seed=9, num_workers=workers)]

    assert batches(0) == batches(2)
