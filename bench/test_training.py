"""End-to-end benchmarks: training samples/second with and without the fused kernels, data-loader
throughput, and what encoding each distinct ASV once per batch saves on the real udca study.

- ``test_train_epoch_samples_per_second``: one training epoch (forward, loss, backward, AdamW step; no
  validation) of the demo configuration on CPU, and of the default model configuration on the GPU (skipped
  without one), each with the reference loss and with ``use_kernels`` (``--fused-kernels``: fused loss, MoE head).
- ``test_loader_samples_per_second``: one epoch of ``make_loader`` batches (per-sample ASV selection and
  collate, no model) for both configurations.
- ``test_udca_train_step_asv_dedup``: forward + backward of the published model size on two udca batches.
- ``test_train_step_samples_per_second``: one training step (forward, Huber loss, backward, clipping, AdamW;
  ``bench/step_setup.py``) of the udca published-size model (``udca-published-*``, CPU, 1 and 2 threads,
  fp32 and bf16 autocast as ``--precision bf16`` runs it; bf16 skipped on a CPU without native bf16), of
  ``ModelConfig()`` on the same udca batches (``udca-default-*``, CPU, 1 and 2 threads), of the demo model
  (CPU) and of the published-size model on the simulated default study (GPU, bf16 autocast; skipped without
  one), with the step's Linear + attention + pooling FLOPs (``bench/step_flops.py``) and the fraction of the
  matmul rate of the step's dtype (fp32 or bf16) measured in the same test at the same thread count.

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

from bench.common import GPU_SKIP, HAS_CUDA, Provider, measure, params, record, sync

try:
    from aam.config import PUBLISHED_BATCH_SIZE, PUBLISHED_MODEL, DataConfig, LossConfig, RunConfig, TrainConfig
    from aam.data.dataset import make_loader
    from aam.data.prepared import load_prepared
    from aam.data.simulate import write_simulation
    from aam.models import AAMRegressor
    from aam.runtime.device import cpu_has_native_bf16
    from aam.training.build import build_run
    from aam.training.demo import DEMO_FEATURES, DEMO_SAMPLES, demo_config
    from bench.step_flops import step_flops
    from bench.step_setup import demo_batches, load_udca_batches, make_step, run_batches, setup_batches
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
    # ~40 steps of 8 samples an epoch (320 simulated samples), for each of the two providers.
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
    return config, load_prepared(config.data, config.train.seed)


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
    return config, load_prepared(config.data, config.train.seed)


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
    return load_udca_batches(UDCA, n=2, batch_size=UDCA_BATCH)


def without_deduplication(batch):
    """The batch with one row of `asv_tokens` per real (sample, slot), so the model encodes every slot's
    sequence on its own, as a model without deduplication would."""
    index = torch.zeros_like(batch.asv_index)
    index[batch.asv_mask] = torch.arange(int(batch.asv_mask.sum()))
    return dataclasses.replace(batch, asv_tokens=batch.asv_tokens[batch.asv_index[batch.asv_mask]], asv_index=index)


@pytest.mark.parametrize("mode", ["distinct", "per_slot"])
def test_udca_train_step_asv_dedup(benchmark, udca_batches, mode):
    """Forward + backward of the published default model on two udca batches of 8 samples."""
    torch.manual_seed(0)
    model = AAMRegressor(dataclasses.replace(PUBLISHED_MODEL, n_targets=1)).train()
    per_slot = mode == "per_slot"
    batches = [without_deduplication(b) for b in udca_batches] if per_slot else udca_batches

    def step():
        for batch in batches:
            model.zero_grad(set_to_none=True)
            model.forward_batch(batch).square().mean().backward()

    measure(benchmark, step, "cpu", group="training-udca", rounds=2)
    slots = sum(int(b.asv_mask.sum()) for b in udca_batches)
    distinct = sum(int(b.asv_tokens.shape[0]) for b in udca_batches)
    samples = UDCA_BATCH * len(udca_batches)
    provider = Provider(mode.replace("_", "-"), "cpu", baseline="per-slot" if per_slot else None)
    record(benchmark, op="training-udca", provider=provider, case=f"udca-{samples}-samples", items=samples,
           unit="samples", batches=len(udca_batches), samples=samples, asv_slots=slots, distinct_asvs=distinct,
           slots_per_distinct=slots / distinct)
    assert np.isfinite(slots / distinct)


STEP_ROUNDS = 3  # timed steps after one warm-up step; a udca step takes seconds on a CPU


@dataclass(frozen=True)
class StepCase:
    name: str
    fixture: str  # module fixture -> (batches, ModelConfig)
    device: str
    threads: int  # CPU threads (0 = leave as is)
    autocast: torch.dtype | None = None


def _step_case(case: StepCase):
    marks = []
    if case.device == "cuda":
        marks = [pytest.mark.cuda] + ([] if HAS_CUDA else [pytest.mark.skip(reason=GPU_SKIP)])
    elif case.autocast is torch.bfloat16 and not cpu_has_native_bf16():
        marks = [pytest.mark.skip(reason="this CPU has no native bf16 matrix multiply (AVX-512 BF16 or AMX)")]
    return pytest.param(case, id=case.name, marks=marks)


STEP_CASES = [_step_case(c) for c in (
    StepCase("udca-published-1-thread", "udca_step_data", "cpu", 1),
    StepCase("udca-published-2-threads", "udca_step_data", "cpu", 2),
    StepCase("udca-published-1-thread-bf16", "udca_step_data", "cpu", 1, torch.bfloat16),
    StepCase("udca-published-2-threads-bf16", "udca_step_data", "cpu", 2, torch.bfloat16),
    StepCase("udca-default-1-thread", "udca_default_step_data", "cpu", 1),
    StepCase("udca-default-2-threads", "udca_default_step_data", "cpu", 2),
    StepCase("demo", "demo_step_data", "cpu", 1),
    StepCase("simulated-default-bf16", "default_step_data", "cuda", 0, torch.bfloat16),
)]


@pytest.fixture(scope="module")
def udca_step_data():
    if not UDCA.exists():
        pytest.skip(f"real data not available: {UDCA}")
    return setup_batches("udca", n=2)


@pytest.fixture(scope="module")
def udca_default_step_data():
    """The same udca batches for today's default model, `ModelConfig()`."""
    if not UDCA.exists():
        pytest.skip(f"real data not available: {UDCA}")
    return setup_batches("udca-default", n=2)


@pytest.fixture(scope="module")
def demo_step_data():
    return demo_batches(n=4)


@pytest.fixture(scope="module")
def default_step_data(default_data):
    """Four batches of the default-model study the epoch benchmark uses (simulated once per module)."""
    config, data = default_data
    return run_batches(config, data, 4)


def matmul_rate(device: str, dtype: torch.dtype, n: int, repeats: int = 5) -> float:
    """FLOP/s of an n^3 torch.mm (median of `repeats`), with the thread count the caller set."""
    import time

    a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / sorted(times)[repeats // 2]


@pytest.mark.parametrize("case", STEP_CASES)
def test_train_step_samples_per_second(benchmark, request, case: StepCase):
    batches, model_config = request.getfixturevalue(case.fixture)
    previous = torch.get_num_threads()
    if case.threads:
        torch.set_num_threads(case.threads)
    try:
        device = torch.device(case.device)
        batches = [b.to(device) for b in batches]
        torch.manual_seed(0)
        model = AAMRegressor(model_config).to(device)
        step = make_step(model, batches, autocast_dtype=case.autocast)

        def timed():
            step()
            sync(device)

        peak = measure(benchmark, timed, case.device, group=f"training-step:{case.name}", rounds=STEP_ROUNDS)
        dtype = case.autocast or torch.float32
        rate = matmul_rate(case.device, dtype, 8192 if case.device == "cuda" else 1024)
        # FLOPs of the mean batch of the cycle the timing went through
        flops = sum(step_flops(b, model_config)["total"] for b in batches) / len(batches)
        samples = sum(len(b) for b in batches) / len(batches)
        median = getattr(getattr(benchmark.stats, "stats", None), "median", None)
        tag = "bf16" if case.autocast is torch.bfloat16 else "fp32"
        # recorded before the thread count is restored: the device name states it
        record(benchmark, op="training-step", provider=Provider(f"step-{case.device}", case.device),
               case=case.name, mode="fwd+bwd+adamw", peak_bytes=peak, flops=int(flops), items=samples,
               unit="samples", dtype=tag, threads=torch.get_num_threads(), matmul_flops_per_second=rate,
               floor_seconds=flops / rate, fraction_of_matmul_peak=(flops / median / rate) if median else None)
    finally:
        torch.set_num_threads(previous)
