"""Training benchmarks (CPU): samples/second of the demo configuration, and what encoding each
distinct ASV once per batch saves over encoding every (sample, slot) on the real udca study.

Run on one core: `taskset -c 1 python -m pytest bench/test_training.py --benchmark-only`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from aam.config import ModelConfig
from aam.data import AAMDataset, load_study
from aam.data.dataset import make_loader
from aam.data.simulate import write_simulation
from aam.models import AAMRegressor
from aam.training.data import prepare_data
from aam.training.demo import DEMO_FEATURES, DEMO_SAMPLES, demo_config
from aam.training.losses import build_loss, plan_loss
from aam.training.run import _model_config
from aam.training.trainer import Trainer

UDCA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "udca_gut"
UDCA_BATCH = 8  # 16 needs ~12 GB of activations in the per-slot mode on CPU


def test_demo_epoch_samples_per_second(benchmark, tmp_path):
    """One training epoch of `aam demo` (its data, model and batch size), without validation."""
    write_simulation(tmp_path / "data", n_samples=DEMO_SAMPLES, seed=0, n_features=DEMO_FEATURES)
    config = demo_config(tmp_path / "data", tmp_path / "run", progress=False)
    data = prepare_data(config.data, config.train.seed)
    config = _model_config(config, data, plan_loss(config.loss, config.data.target_columns))
    torch.manual_seed(0)
    model = AAMRegressor(config.model)
    loader = make_loader(data.train_set, config.train.batch_size, shuffle=True, seed=0)
    loss = build_loss(config.loss, config.data.target_columns)
    trainer = Trainer(model, loss, config.train, data.scaler, config.data.target_columns, torch.device("cpu"),
                      len(loader))
    trainer.train_epoch(loader, 0)  # warm-up: allocator, first-call overheads
    benchmark.pedantic(lambda: trainer.train_epoch(loader, 1), rounds=3, iterations=1)
    n = len(data.train_set)
    benchmark.extra_info.update(samples=n, samples_per_second=n / benchmark.stats.stats.median,
                                threads=torch.get_num_threads())


@pytest.fixture(scope="module")
def udca_batches():
    if not UDCA.exists():
        pytest.skip(f"real data not available: {UDCA}")
    study = load_study(UDCA / "table.qza", UDCA / "rep-seqs.qza", UDCA / "sra-submission-sheet.tsv",
                       target_columns=["host_age"], group_column="host_subject_id")
    dataset = AAMDataset(study, max_bp=150, token_limit=1024, train=True)
    loader = make_loader(dataset, UDCA_BATCH, shuffle=True, seed=0)
    return [batch for batch, _ in zip(loader, range(2))]


@pytest.mark.parametrize("mode", ["distinct", "per_slot"])
def test_udca_train_step_asv_dedup(benchmark, udca_batches, mode):
    """Forward + backward of the published default model on two udca batches of 8 samples."""
    torch.manual_seed(0)
    model = AAMRegressor(dataclasses.replace(ModelConfig(), n_targets=1)).train()
    per_slot = mode == "per_slot"

    def step():
        for batch in udca_batches:
            model.zero_grad(set_to_none=True)
            model.forward_batch(batch, per_slot=per_slot).square().mean().backward()

    step()
    benchmark.pedantic(step, rounds=2, iterations=1)
    slots = sum(int(b.asv_mask.sum()) for b in udca_batches)
    distinct = sum(int(b.asv_tokens.shape[0]) for b in udca_batches)
    benchmark.extra_info.update(batches=len(udca_batches), samples=UDCA_BATCH * len(udca_batches),
                                asv_slots=slots, distinct_asvs=distinct, slots_per_distinct=slots / distinct,
                                samples_per_second=UDCA_BATCH * len(udca_batches) / benchmark.stats.stats.median)
    assert np.isfinite(slots / distinct)
