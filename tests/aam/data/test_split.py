import numpy as np
import pytest

from aam.data import read_sample_list, split_samples, write_split
from aam.data.split import decide_split, positions_of
from aam.errors import UserError
from studies import make_study


def test_plain_split_sizes_disjoint_and_seeded():
    study = make_study(100)
    train, val = split_samples(study, 0.2, seed=3)
    assert len(val) == 20 and len(train) == 80
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(range(100))
    again = split_samples(study, 0.2, seed=3)
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])
    assert not np.array_equal(val, split_samples(study, 0.2, seed=4)[1])
    assert len(split_samples(study, 7, seed=0)[1]) == 7


@pytest.mark.parametrize("seed", range(5))
def test_grouped_split_puts_each_group_on_one_side(seed):
    rng = np.random.default_rng(seed)
    groups = [f"p{g}" for g in rng.integers(0, 30, 200)]
    groups[5] = None  # a sample without a group value is its own group
    study = make_study(200, groups)
    train, val = split_samples(study, 0.25, seed=seed, group_column="subject")
    assert set(train).isdisjoint(val) and len(train) + len(val) == 200
    train_groups = {groups[i] for i in train if groups[i] is not None}
    val_groups = {groups[i] for i in val if groups[i] is not None}
    assert train_groups.isdisjoint(val_groups)
    assert 0.1 < len(val) / 200 < 0.45


def test_split_errors():
    study = make_study(10, ["a"] * 10)
    with pytest.raises(UserError, match="single group"):
        split_samples(study, 0.3, seed=0, group_column="subject")
    with pytest.raises(UserError, match="group column 'site' is not in the metadata"):
        split_samples(study, 0.3, seed=0, group_column="site")
    for bad in (0, -0.1, 1.5, 10):
        with pytest.raises(UserError, match="--test-size"):
            split_samples(study, bad, seed=0)


def test_written_lists_round_trip(tmp_path):
    study = make_study(12)
    train, val = split_samples(study, 0.25, seed=1)
    write_split(tmp_path / "run", study, train, val)
    assert read_sample_list(tmp_path / "run" / "train_samples.txt") == [study.sample_ids[i] for i in train]
    val_ids = read_sample_list(tmp_path / "run" / "val_samples.txt")
    np.testing.assert_array_equal(positions_of(study, val_ids), val)
    with pytest.raises(UserError, match="sample 'zz' is not in the study"):
        positions_of(study, ["s1", "zz"])


def test_decide_split_seeded_is_the_plain_split_and_logs_its_caveats(caplog):
    study = make_study(20)
    with caplog.at_level("WARNING", logger="aam.data"):
        train, val = decide_split(study, 0.1, 5)
    expected = split_samples(study, 0.1, seed=5)
    np.testing.assert_array_equal(train, expected[0])
    np.testing.assert_array_equal(val, expected[1])
    assert len(val) == 2 and "validation" in caplog.text  # two validation samples: too few to choose an epoch


def test_decide_split_given_ids_keeps_their_order_and_names_the_source():
    study = make_study(10)
    train, val = decide_split(study, 0.2, 0, given=(["s9", "s0", "s4"], ["s2"]))
    assert train.tolist() == [9, 0, 4] and val.tolist() == [2]
    with pytest.raises(UserError, match="val_samples.txt: sample 'zz'"):
        decide_split(study, 0.2, 0, given=(["s1"], ["zz"]), sources=("train_samples.txt", "val_samples.txt"))


def test_decide_split_within_a_fold_stays_inside_it_and_keeps_groups_whole():
    labels = [f"p{i // 3}" for i in range(60)]
    study = make_study(60, labels)
    within = np.arange(0, 45)
    train, val = decide_split(study, 0.2, (1, 0, 2), "subject", within=within)
    assert set(train) | set(val) == set(within.tolist()) and set(train).isdisjoint(val)
    assert {labels[i] for i in train}.isdisjoint({labels[i] for i in val})
    assert 6 <= len(val) <= 12  # about 0.2 of 45, in whole groups of 3


def classes_of_groups(groups: list, n_classes: int, seed: int) -> np.ndarray:
    """int64 [n]: one class (-1: unlabelled) per group value; a sample without a group value gets its own."""
    rng = np.random.default_rng(seed)
    keys = sorted({g for g in groups if g is not None})
    label = dict(zip(keys, rng.integers(-1, n_classes, len(keys))))
    return np.array([label[g] if g is not None else rng.integers(-1, n_classes) for g in groups], dtype=np.int64)


def sides_of_classes(strata: np.ndarray, groups: list, train, val):
    """For each class with at least two groups (a missing group value counts as one): (on train, on val)."""
    keys = [g if g is not None else f"own{i}" for i, g in enumerate(groups)]
    out = {}
    for c in np.unique(strata[strata >= 0]):
        if len({keys[i] for i in np.flatnonzero(strata == c)}) >= 2:
            out[int(c)] = (bool(np.any(strata[train] == c)), bool(np.any(strata[val] == c)))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_stratified_split_keeps_groups_whole_and_puts_each_class_on_both_sides(seed):
    rng = np.random.default_rng(seed)
    groups = [f"p{g}" for g in rng.integers(0, 40, 200)]
    groups[5] = groups[9] = None
    strata = classes_of_groups(groups, 6, seed)  # about 6 groups a class: some reach few of the 5 folds
    study = make_study(200, groups)
    train, val = split_samples(study, 0.2, seed, "subject", strata)
    assert set(train).isdisjoint(val) and sorted([*train, *val]) == list(range(200))
    assert {groups[i] for i in train if groups[i]}.isdisjoint({groups[i] for i in val if groups[i]})
    sides = sides_of_classes(strata, groups, train, val)
    assert sides and all(on_train and on_val for on_train, on_val in sides.values()), sides
    assert 0.1 < len(val) / 200 < 0.45
    again = split_samples(study, 0.2, seed, "subject", strata)
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])
    assert not np.array_equal(val, split_samples(study, 0.2, seed + 10, "subject", strata)[1])


def test_stratified_split_without_groups_holds_out_each_class_in_proportion():
    strata = np.array([0] * 60 + [1] * 30 + [2] * 8 + [3] * 2 + [-1] * 20)
    rng = np.random.default_rng(0)
    strata = strata[rng.permutation(120)]
    for seed in range(4):
        train, val = split_samples(make_study(120), 0.25, seed, strata=strata)
        assert set(train).isdisjoint(val) and len(train) + len(val) == 120
        counts = np.bincount(strata[val] + 1, minlength=5)  # [missing, 0, 1, 2, 3]
        # a quarter of each class (rounded either way); class 3's two samples fall in two of the four folds
        assert counts[0] == 5 and counts[1] == 15 and counts[2] in (7, 8) and counts[3] == 2 and counts[4] == 1


@pytest.mark.parametrize("seed", range(5))
def test_a_class_of_two_groups_reaches_a_small_validation_side(seed):
    # One validation fold in ten: the two groups of class 1 go to two folds, rarely the first one.
    groups = [f"p{i // 4}" for i in range(120)]
    strata = np.array([1 if i < 8 else 0 for i in range(120)])
    train, val = split_samples(make_study(120, groups), 0.1, seed, "subject", strata)
    assert np.count_nonzero(strata[val] == 1) == 4 and np.count_nonzero(strata[train] == 1) == 4
    assert {groups[i] for i in train}.isdisjoint({groups[i] for i in val})


def test_a_class_of_one_group_stays_on_one_side_and_unlabelled_samples_split():
    groups = [f"p{i // 5}" for i in range(100)]
    strata = np.array([2] * 5 + [-1] * 45 + [0] * 50)
    train, val = split_samples(make_study(100, groups), 0.3, 1, "subject", strata)
    assert set(range(5)) <= set(train) or set(range(5)) <= set(val)  # class 2: the group p0
    assert np.any(strata[val] == -1) and np.any(strata[train] == -1)
    assert np.any(strata[val] == 0) and np.any(strata[train] == 0)
    train, val = split_samples(make_study(100, groups), 0.3, 1, "subject", np.full(100, -1))
    assert {groups[i] for i in train}.isdisjoint({groups[i] for i in val}) and 15 <= len(val) <= 45


@pytest.mark.parametrize("seed", range(4))
def test_stratified_inner_split_stays_in_the_fold_and_balances_its_classes(seed):
    from aam.data.folds import assign_folds, inner_split, sample_groups

    rng = np.random.default_rng(seed)
    labels = [f"p{g}" for g in rng.integers(0, 50, 250)]
    study = make_study(250, labels)
    groups = sample_groups(study, "subject")
    strata = classes_of_groups(labels, 4, seed)
    fold_of = assign_folds(groups, 5, 1, seed, "subject", strata)[0]
    for f in range(5):
        train_part = np.flatnonzero(fold_of != f)
        train, val = inner_split(groups, train_part, 0.2, (seed, 0, f), strata)
        assert set(train).isdisjoint(val) and sorted([*train, *val]) == train_part.tolist()
        assert set(groups[train]).isdisjoint(groups[val])
        in_part = np.isin(np.arange(250), train_part)
        sides = sides_of_classes(np.where(in_part, strata, -1), labels, train, val)  # classes as in the part
        assert all(on_train and on_val for on_train, on_val in sides.values()), sides
        assert 0.1 * len(train_part) < len(val) < 0.45 * len(train_part)
        via = decide_split(study, 0.2, (seed, 0, f), "subject", within=train_part, strata=strata)
        assert np.array_equal(via[0], train) and np.array_equal(via[1], val)


def test_decide_split_passes_strata_to_the_seeded_split_and_ignores_them_for_given_ids():
    groups = [f"p{i // 2}" for i in range(40)]
    strata = np.arange(40) // 2 % 3
    study = make_study(40, groups)
    train, val = decide_split(study, 0.25, 3, "subject", strata=strata)
    assert all(np.any(strata[val] == c) and np.any(strata[train] == c) for c in range(3))
    expected = split_samples(study, 0.25, 3, "subject", strata)
    assert np.array_equal(train, expected[0]) and np.array_equal(val, expected[1])
    train, val = decide_split(study, 0.25, 3, given=(["s1", "s0"], ["s2"]), strata=strata)
    assert train.tolist() == [1, 0] and val.tolist() == [2]


def test_without_strata_the_split_is_the_documented_shuffle_bit_for_bit():
    groups = [f"p{i % 9}" for i in range(45)]
    study = make_study(45, groups)
    for seed in (0, 3):
        order = np.random.default_rng(seed).permutation(45)
        train, val = split_samples(study, 0.2, seed, strata=None)
        assert val.tolist() == sorted(order[:9]) and train.tolist() == sorted(order[9:])
        # grouped: shuffled groups (sorted keys p0..p8, five samples each) taken until 9 samples are reached
        order = np.random.default_rng(seed).permutation(9)
        train, val = split_samples(study, 0.2, seed, "subject")
        assert sorted({groups[i] for i in val}) == sorted(f"p{g}" for g in order[:2])


def test_a_group_moves_across_only_if_its_other_classes_keep_the_side_it_leaves():
    from aam.data.split import classes_on_both_sides

    # groups A..E: A holds classes 0 and 1, B class 0, C class 1, D and E class 2
    has = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]], dtype=bool)
    sizes = np.array([1, 5, 3, 2, 4])
    val = np.array([False, False, True, True, True])  # class 0 lacks validation, class 2 training
    classes_on_both_sides(val, has, sizes)
    # class 0: A is smaller but is class 1's only training group, so B moves; class 2: D, the smaller, moves
    assert val.tolist() == [False, True, True, False, True]
    # A cycle no two sides satisfy (0 on A, B; 1 on B, C; 2 on A, C): nothing can move without stripping a side.
    has = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 1]], dtype=bool)
    val = np.array([False, False, True])
    classes_on_both_sides(val, has, np.ones(3, dtype=np.int64))
    assert val.tolist() == [False, False, True]


def test_classes_too_small_to_stratify_still_reach_both_sides():
    # Five classes of two samples: no class fills the five folds of a 0.2 holdout, so the shuffled split is
    # taken, then each class gets one sample on each side.
    strata = np.arange(10) // 2
    for seed in range(3):
        train, val = split_samples(make_study(10), 0.2, seed, strata=strata)
        assert sorted(strata[val]) == [0, 1, 2, 3, 4] and sorted(strata[train]) == [0, 1, 2, 3, 4]
