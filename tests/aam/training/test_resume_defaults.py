"""A resumed run given its flags again keeps the checkpoint's settings for every flag not given, so a default
changed since it started does not change the run."""

from aam.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from aam.training.resume import keep_saved_defaults


def test_settings_not_given_come_from_the_saved_run():
    saved = RunConfig(DataConfig(table="t.biom", target_columns=("ph",)), ModelConfig(asv_linear=0, asv_vocabulary=3),
                      train=TrainConfig(epochs=10, lr=1e-3, device="cpu"))
    flags = RunConfig(DataConfig(table="t.biom", target_columns=("ph",)), ModelConfig(dropout=0.2),
                      train=TrainConfig(epochs=20, device="auto"))
    given = {"data": {"table": "t.biom", "target_columns": ("ph",)}, "model": {"dropout": 0.2},
             "train": {"epochs": 20}}
    kept = keep_saved_defaults(flags, saved, given)
    assert kept.model.asv_linear == 0  # not given: the saved run's, though today's default is 2
    assert kept.train.lr == 1e-3
    assert kept.model.dropout == 0.2  # given: this command's (the resume check then refuses the change)
    assert kept.train.epochs == 20 and kept.train.device == "auto"  # resumable: this command's
    assert kept.model.asv_vocabulary == 0  # data-dependent: filled when the run is built
