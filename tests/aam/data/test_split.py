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
