import numpy as np
import pytest

from aam.data import read_sample_list, split_samples, write_split
from aam.data.split import positions_of
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
