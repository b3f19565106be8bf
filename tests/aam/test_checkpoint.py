"""`Checkpoint`: files keep the keys earlier versions wrote (the fixtures' model.pt and last.pt read back and
written again unchanged), and a file without the fields of a checkpoint is refused on one line."""

from pathlib import Path

import numpy as np
import pytest
import torch

from aam.errors import UserError
from aam.runtime.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pre_change"
HEADER = ["format", "format_version", "aam_version"]


def assert_same(a, b, where="checkpoint"):
    """Equal structure and values, tensors bit for bit."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, where


@pytest.mark.parametrize("name", ["quantile/model.pt", "quantile/last.pt", "moe/model.pt"])
def test_a_saved_checkpoint_reads_and_writes_back_unchanged(name, tmp_path):
    original = load_checkpoint(FIXTURES / name)
    Checkpoint.load(FIXTURES / name).save(tmp_path / "again.pt")
    again = load_checkpoint(tmp_path / "again.pt")
    assert list(again) == list(original)
    for key in original:
        if key != "aam_version":  # the version that wrote the file
            assert_same(again[key], original[key], key)


def test_model_and_last_files_hold_their_fields_under_these_keys(tmp_path):
    common = dict(config={"data": {}}, target_scaler={"mean": [1.0]}, category_encoder=None,
                  model_state={"w": torch.arange(3.0)})
    Checkpoint(**common, epoch=2, metrics={"ph": {"mae": 0.5}}).save(tmp_path / "model.pt")
    best = load_checkpoint(tmp_path / "model.pt")
    assert list(best) == HEADER + ["config", "target_scaler", "category_encoder", "model_state", "epoch", "metrics"]
    assert best["category_encoder"] is None and best["epoch"] == 2 and best["metrics"] == {"ph": {"mae": 0.5}}
    last = Checkpoint(**common, epoch=2, trainer={"step": 7}, progress={"epoch": 2}, rng={"python": [1]},
                      split=(["a"], ["b"]))
    last.save(tmp_path / "last.pt")
    assert list(load_checkpoint(tmp_path / "last.pt")) == HEADER + [
        "config", "target_scaler", "category_encoder", "model_state", "epoch", "trainer", "progress", "rng", "split"]
    loaded = Checkpoint.load(tmp_path / "last.pt")
    assert loaded.split == (["a"], ["b"]) and loaded.trainer == {"step": 7} and loaded.metrics is None
    assert torch.equal(loaded.model_state["w"], torch.arange(3.0))


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    save_checkpoint(tmp_path / "partial.pt", {"epoch": 1})
    with pytest.raises(UserError, match=r"partial.pt is not an AAM model checkpoint \(it has no 'config'\)"):
        Checkpoint.load(tmp_path / "partial.pt")
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    with pytest.raises(UserError, match="notes.pt is not an AAM model checkpoint"):
        Checkpoint.load(tmp_path / "notes.pt")
    with pytest.raises(UserError, match="checkpoint not found"):
        Checkpoint.load(tmp_path / "missing.pt")
