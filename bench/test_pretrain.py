"""Pretraining throughput: one epoch of `aam pretrain` (masked ASVs and Bray-Curtis distances, the default
objectives; forward, backward, AdamW) over a simulated corpus, in training samples per second.

Cases: the default model on the CPU with 1 and 2 threads (fp32), and on a GPU with bf16 autocast (skipped
without one). The corpus is two simulated tables of 200 samples x 512 ASVs (~230 ASVs per sample, as in the
human stool corpus), 360 training samples, batch 16.
Run on one core: ``taskset -c 0 python -m pytest bench/test_pretrain.py --benchmark-only``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from bench.common import GPU_SKIP, HAS_CUDA, Provider, measure, record, sync

try:
    from aam.config import TrainConfig
    from aam.data.simulate import write_simulation
    from aam.pretrain.config import CorpusConfig, PretrainConfig
    from aam.pretrain.loop import build_pretrain_run, train_epoch
except ImportError as exc:
    pytest.skip(f"pretraining benchmarks need the aam package and its dependencies ({exc})", allow_module_level=True)
pytest.importorskip("skbio", reason="the distance objective needs scikit-bio")

ROUNDS = 3


@dataclass(frozen=True)
class Case:
    name: str
    device: str
    threads: int | None
    precision: str


CASES = [
    pytest.param(Case("cpu-1-thread", "cpu", 1, "fp32"), id="cpu-1-thread"),
    pytest.param(Case("cpu-2-threads", "cpu", 2, "fp32"), id="cpu-2-threads"),
    pytest.param(Case("cuda-bf16", "cuda", None, "bf16"), id="cuda-bf16", marks=[
        pytest.mark.cuda, *([] if HAS_CUDA else [pytest.mark.skip(reason=GPU_SKIP)])]),
]


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    paths = []
    for seed in (0, 1):
        folder = tmp_path_factory.mktemp(f"corpus{seed}")
        write_simulation(folder, n_samples=200, seed=seed, n_features=512)
        paths.append(str(folder / "table.biom"))
    return tuple(paths)


@pytest.mark.parametrize("case", CASES)
def test_pretrain_epoch_samples_per_second(benchmark, tables, tmp_path, case: Case):
    previous = torch.get_num_threads()
    if case.threads:
        torch.set_num_threads(case.threads)
    try:
        config = PretrainConfig(corpus=CorpusConfig(tables=tables),
                                train=TrainConfig(output_dir=str(tmp_path), epochs=ROUNDS + 2, device=case.device,
                                                  precision=case.precision, progress=False)).resolved()
        run = build_pretrain_run(config, None)
        epochs = iter(range(1, 100))

        def timed():
            train_epoch(run, next(epochs))
            sync(case.device)

        samples = len(run.train_loader.dataset)
        peak = measure(benchmark, timed, case.device, group="pretrain-epoch", rounds=ROUNDS)
        record(benchmark, op="pretrain-epoch", provider=Provider(f"pretrain-{case.device}", case.device),
               case=case.name, mode="fwd+bwd+adamw", peak_bytes=peak, items=samples, unit="samples",
               dtype=case.precision, threads=torch.get_num_threads())
    finally:
        torch.set_num_threads(previous)
