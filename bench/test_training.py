"""End-to-end benchmarks: training samples/second with and without the fused kernels, data-loader
throughput, and what encoding each distinct ASV once per batch saves on the real udca study.

- ``test_train_epoch_samples_per_second``: one training epoch (forward, loss, backward, AdamW step; no
  validation) of the demo configuration on CPU, and of the default model configuration on the GPU (skipped
  without one), each with the reference loss and with ``use_kernels`` (``--fused-kernels``: fused loss, MoE head).
- ``test_loader_samples_per_second``: one epoch of ``make_loader`` batches (per-sample ASV selection and
  collate, no model) for both configurations.
- ``test_udca_train_step_asv_dedup``: forward + backward of the default model on two udca batches.

Needs the ``aam`` package and its dependencies (biom-format, scipy, ...); skipped where they are missing.
Run on one core: ``taskset -c 0 python -m pytest bench/test_training.py --benchmark-only``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.common import Provider, measure, params, record, sync

try:
    from aam.config import PUBLISHED_BATCH_SIZE, PUBLISHED_MODEL, DataConfig, LossConfig, RunConfig, TrainConfig
    from aam.data import AAMDataset, load_study
    from aam.data.dataset import make_loader
    from aam.data.prepared import prepare_data
    from aam.data.simulate import write_simulation
    from aam.models import AAMRegressor
    from aam.training.build import build_run
    from aam.training.demo import DEMO_FEATURES, DEMO_SAMPLES, demo_config
except ImportError as exc:
    pytest.skip(f"end-to-end benchmarks need the aam package and its dependencies ({exc})", allow_module_level=True)

UDCA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "udca_gut"
UDCA_BATCH = 8  # 16 needs ~12 GB of activations in the per-slot mode on CPU
EPOCH_ROUNDS = 3  # an epoch takes seconds: a fixed number of rounds after one warm-up epoch
# The default-configuration study: 2,048 simulated ASVs and ~5,000 reads per sample give ~900 ASVs per
# sample (median; up to ~1,500), so the default token_limit of 1,024 is mostly filled.
DEFAULT_SAMPLES, DEFAULT_FEATURES = 400, 2048


@dataclass(frozen=True)
class Setup:
    name: str
    fixture: str  # the module fixture that builds (RunConfig, PreparedData)
    devices: tuple[str, ...]


SETUPS = [
    Setup("demo", "demo_data", ("cpu",)),
    # On an H100: ~40 steps of 8 samples, ~20 ms each, so ~1 s per epoch and ~10 s for both providers.
    Setup("default-model", "default_data", ("cuda",)),
]
PROVIDERS = [
    Provider("reference-loss-cpu", "cpu", baseline="unfused"),
    Provider("fused-kernels-cpu", "cpu"),
    Provider("reference-loss-cuda", "cuda", baseline="unfused"),
    Provider("fused-kernels-cuda", "cuda"),
]


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    """Exactly what `aam demo` trains on: 240 training samples, up to 128 ASVs each, 100 bp, batch 16."""
    root = tmp_path_factory.mktemp("demo")
    write_simulation(root / "data", n_samples=DEMO_SAMPLES, seed=0, n_features=DEMO_FEATURES)
    config = demo_config(root / "data", root / "run", progress=False)
    return config, prepare_data(config.data, config.train.seed)


@pytest.fixture(scope="module")
def default_data(tmp_path_factory):
    """The published model and batch size (embedding 128, 2 + 2 layers, 1,024 ASVs x 150 bp, batch 8) with the
    default data and loss settings (Huber) on a simulated study with two targets and one categorical column."""
    root = tmp_path_factory.mktemp("default")
    write_simulation(root / "data", n_samples=DEFAULT_SAMPLES, seed=0, n_features=DEFAULT_FEATURES)
    config = RunConfig(
        data=DataConfig(table=str(root / "data" / "table.biom"), metadata=str(root / "data" / "metadata.tsv"),
                        target_columns=("ph", "temperature"), categorical_columns=("location",)),
        model=PUBLISHED_MODEL,
        loss=LossConfig(),
        train=TrainConfig(output_dir=str(root / "run"), batch_size=PUBLISHED_BATCH_SIZE, progress=False, seed=0),
    )
    return config, prepare_data(config.data, config.train.seed)


def build_trainer(config: RunConfig, data, device: torch.device, fused: bool):
    """(Trainer, training loader) of the run `aam.training.train` would build, on ``device``."""
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, use_kernels=fused),
                                 train=dataclasses.replace(config.train, device=device.type))
    run = build_run(config, device, data=data)
    return run.trainer, run.train_loader


@pytest.mark.parametrize("setup,provider,mode", params(SETUPS, PROVIDERS, modes=("train",)))
def test_train_epoch_samples_per_second(benchmark, request, setup: Setup, provider: Provider, mode: str):
    config, data = request.getfixturevalue(setup.fixture)
    device = torch.device(provider.device)
    trainer, loader = build_trainer(config, data, device, fused=provider.name.startswith("fused"))

    def epoch():
        trainer.train_epoch(loader, 1)
        sync(device)

    peak = measure(benchmark, epoch, provider.device, group=f"training:{setup.name}", rounds=EPOCH_ROUNDS)
    n = len(data.train_set)
    record(benchmark, op="training", provider=provider, case=f"{setup.name}-epoch-{n}-samples", mode=mode,
           peak_bytes=peak, items=n, unit="samples", batch_size=config.train.batch_size,
           threads=torch.get_num_threads())


@pytest.mark.parametrize("setup", SETUPS, ids=lambda s: s.name)
def test_loader_samples_per_second(benchmark, request, setup: Setup):
    config, data = request.getfixturevalue(setup.fixture)
    loader = make_loader(data.train_set, config.train.batch_size, shuffle=True, seed=0)

    def one_epoch():
        for _ in loader:
            pass

    measure(benchmark, one_epoch, "cpu", group=f"data-loader:{setup.name}")
    n = len(data.train_set)
    record(benchmark, op="data-loader", provider=Provider("make_loader", "cpu"), case=f"{setup.name}-{n}-samples",
           items=n, unit="samples", batches=len(loader), batch_size=config.train.batch_size,
           token_limit=config.data.token_limit, max_bp=config.data.max_bp)


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
    model = AAMRegressor(dataclasses.replace(PUBLISHED_MODEL, n_targets=1)).train()
    per_slot = mode == "per_slot"

    def step():
        for batch in udca_batches:
            model.zero_grad(set_to_none=True)
            model.forward_batch(batch, per_slot=per_slot).square().mean().backward()

    measure(benchmark, step, "cpu", group="training-udca", rounds=2)
    slots = sum(int(b.asv_mask.sum()) for b in udca_batches)
    distinct = sum(int(b.asv_tokens.shape[0]) for b in udca_batches)
    samples = UDCA_BATCH * len(udca_batches)
    provider = Provider(mode.replace("_", "-"), "cpu", baseline="per-slot" if per_slot else None)
    record(benchmark, op="training-udca", provider=provider, case=f"udca-{samples}-samples", items=samples,
           unit="samples", batches=len(udca_batches), samples=samples, asv_slots=slots, distinct_asvs=distinct,
           slots_per_distinct=slots / distinct)
    assert np.isfinite(slots / distinct)
