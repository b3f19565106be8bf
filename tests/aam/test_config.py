"""RunConfig: text settings parsed when the config is built, quantile levels resolved once, config files of
earlier versions mapped on load, and resume comparing only what the user set."""

import dataclasses
import json
from pathlib import Path

import pytest

from aam.config import DataConfig, LossConfig, ModelConfig, RunConfig, TargetLoss, TrainConfig
from aam.errors import UserError
from aam.training.resume import check_resumable

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pre_change"


def config(**loss) -> RunConfig:
    return RunConfig(DataConfig(target_columns=("ph", "temperature")), ModelConfig(), LossConfig(**loss)).resolve()


def test_loss_config_is_typed_and_keyed_by_target_name():
    c = config(loss_type="mae", loss_config='{"ph": "mse", "1": {"type": "huber", "delta": 0.5}}')
    assert c.loss.loss_config == {"ph": TargetLoss("mse"), "temperature": TargetLoss("huber", delta=0.5)}
    written = c.to_dict()["loss"]["loss_config"]
    assert written == {"ph": {"type": "mse"}, "temperature": {"type": "huber", "delta": 0.5}}
    assert RunConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c


@pytest.mark.parametrize("loss, flag", [
    (dict(loss_config="{ph: mse}"), "--loss-config"),
    (dict(loss_config='{"soil": "mse"}'), "--loss-config"),
    (dict(loss_config='{"ph": "mse", "0": "mae"}'), "--loss-config"),
    (dict(categorical_loss_weights="{not json"), "--categorical-loss-weights"),
    (dict(categorical_loss_weights='{"site": {"a": -1}}'), "--categorical-loss-weights"),
    (dict(loss_type="quantile", quantiles=(0.5, 0.5)), "--quantiles"),
    (dict(loss_type="mse", quantiles=(0.1, 0.9)), "--quantiles"),
])
def test_bad_text_settings_fail_when_the_config_is_built_and_name_the_flag(loss, flag):
    with pytest.raises(UserError, match=flag):
        config(**loss)


def test_category_weights_are_parsed():
    c = config(categorical_loss_weights='{"location": {"site_A": 2}}')
    assert c.loss.categorical_loss_weights == {"location": {"site_A": 2.0}}
    assert config(categorical_loss_weights="auto").loss.categorical_loss_weights == "auto"


def test_quantiles_are_checked_sorted_and_defaulted_once():
    assert config(loss_type="quantile", quantiles=(0.9, 0.1)).loss.quantiles == (0.1, 0.9)
    assert config(loss_type="expectile").loss.quantiles == (0.1, 0.5, 0.9)
    assert config(loss_type="huber").loss.quantiles == ()
    # Every target overridden with a point loss: no quantile outputs even though --loss-type is quantile.
    assert config(loss_type="quantile", loss_config='{"ph": "mse", "temperature": "mae"}').loss.quantiles == ()


def test_a_config_written_before_use_kernels_and_resolved_quantiles_loads():
    moe = RunConfig.from_dict(json.loads((FIXTURES / "moe" / "config.json").read_text()))
    assert moe.model.use_kernels is True and moe.loss.quantiles == (0.25, 0.75)
    old = json.loads((FIXTURES / "quantile" / "config.json").read_text())
    assert old["loss"]["quantiles"] == [0.9, 0.1, 0.5] and old["train"]["fused_kernels"] is False
    quantile = RunConfig.from_dict(old)
    assert quantile.model.use_kernels is False and quantile.loss.quantiles == (0.1, 0.5, 0.9)
    assert quantile.loss.loss_config == {"temperature": TargetLoss("expectile")}
    assert quantile.loss.categorical_loss_weights == "auto"


def test_a_config_written_before_the_kernel_regressions_fits_ridge_regressions():
    saved = config().to_dict()
    saved["model"].pop("asv_kernel")
    saved["model"].pop("kernel_samples")
    loaded = RunConfig.from_dict(json.loads(json.dumps(saved)))
    assert loaded.model.asv_kernel == "linear" and loaded.model.kernel_samples == 0
    assert config().model.asv_kernel == "auto"  # today's default


def test_resume_compares_what_the_user_set_only():
    saved = dataclasses.replace(config(), model=ModelConfig(n_targets=2, max_bp=60, category_cardinalities=(4,)),
                                train=TrainConfig(output_dir="a", device="cpu", num_workers=2))
    check_resumable(saved, config())  # derived model fields and resumable train fields may differ
    with pytest.raises(UserError, match="model.use_kernels"):
        check_resumable(saved, dataclasses.replace(config(), model=ModelConfig(use_kernels=True)))
    with pytest.raises(UserError, match="train.seed"):
        check_resumable(saved, dataclasses.replace(config(), train=TrainConfig(seed=1)))
