"""One training step (forward, Huber loss, backward, clipping, AdamW step) of a named setup, on CPU.

Used by ``bench/profile_step.py``, ``bench/test_training.py``, ``bench/gpu_step.py`` and
``bench/speedup.py``. The ``udca`` setup imports only ``torch`` and long-standing ``aam`` names
(``aam.data``, ``aam.models``), so the same file also drives an older checkout of ``aam``: run as a script
it is a step server for ``bench/speedup.py`` (reads "step N" lines on stdin, answers with the seconds each
step took), with whatever ``aam`` is first on ``PYTHONPATH``; its optional third argument, ``bf16``, autocasts
the forward to bf16 as ``--precision bf16`` does (the attention then stays fp32 on the CPU only where the
``aam`` on the path does so). The simulated setups build their batches
through ``aam.training.build_run``.

Setups: ``udca`` = the published model size on the first ``UDCA_BATCH`` samples of the real udca study (shuffled
with seed 0); ``udca-default`` = ``ModelConfig()`` of the ``aam`` being run (its default model, whatever it was at
that commit) on the same batches; ``demo`` = the `aam demo` model on one batch of the demo's simulated study;
``simulated-default`` = the published model size on a simulated study shaped like the default settings.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
import torch
import torch.nn.functional as F

UDCA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "udca_gut"
UDCA_BATCH = 8
STEP_SETUPS = ("udca", "udca-default", "demo", "simulated-default")


def load_udca_batches(data_dir: Path = UDCA, n: int = 1, batch_size: int = UDCA_BATCH):
    """The first n training batches of the udca study (host_age, 150 bp, 1,024 ASVs per sample)."""
    from aam.data import AAMDataset, load_study
    from aam.data.dataset import make_loader

    study = load_study(data_dir / "table.qza", data_dir / "rep-seqs.qza", data_dir / "sra-submission-sheet.tsv",
                       target_columns=["host_age"], group_column="host_subject_id")
    dataset = AAMDataset(study, max_bp=150, token_limit=1024, train=True)
    loader = make_loader(dataset, batch_size, shuffle=True, seed=0)
    return [batch for batch, _ in zip(loader, range(n))]


def run_batches(config, data, n: int):
    """(first n shuffled training batches, ModelConfig with the data-dependent fields filled in) of the run
    `aam.training.build_run` builds for `config` on already prepared `data`."""
    from aam.training import build_run

    run = build_run(config, "cpu", data=data)
    return [batch for batch, _ in zip(run.train_loader, range(n))], run.config.model


def demo_batches(n: int = 1):
    """The first n training batches of `aam demo` and its model configuration."""
    from aam.data.prepared import load_prepared
    from aam.data.simulate import write_simulation
    from aam.training.demo import DEMO_FEATURES, DEMO_SAMPLES, demo_config

    with tempfile.TemporaryDirectory() as root:
        write_simulation(Path(root) / "data", n_samples=DEMO_SAMPLES, seed=0, n_features=DEMO_FEATURES)
        config = demo_config(Path(root) / "data", Path(root) / "run", progress=False)
        return run_batches(config, load_prepared(config.data, config.train.seed), n)


def simulated_default_batches(n: int = 4, samples: int = 400, features: int = 2048):
    """The published model size (`PUBLISHED_MODEL`) and the default data settings (1,024 ASVs x 150 bp,
    batch 8) on a simulated study with two targets and one categorical column; 2,048 simulated ASVs give
    ~900 ASVs per sample."""
    from aam.config import PUBLISHED_BATCH_SIZE, PUBLISHED_MODEL, DataConfig, LossConfig, RunConfig, TrainConfig
    from aam.data.prepared import load_prepared
    from aam.data.simulate import write_simulation

    with tempfile.TemporaryDirectory() as root:
        write_simulation(Path(root) / "data", n_samples=samples, seed=0, n_features=features)
        config = RunConfig(
            data=DataConfig(table=str(Path(root) / "data" / "table.biom"),
                            metadata=str(Path(root) / "data" / "metadata.tsv"),
                            target_columns=("ph", "temperature"), categorical_columns=("location",)),
            model=PUBLISHED_MODEL, loss=LossConfig(),
            train=TrainConfig(output_dir=str(Path(root) / "run"), batch_size=PUBLISHED_BATCH_SIZE, progress=False,
                              seed=0))
        return run_batches(config, load_prepared(config.data, config.train.seed), n)


def setup_batches(name: str, n: int = 1):
    """(batches, ModelConfig) of a named setup."""
    from aam.config import ModelConfig

    if name in ("udca", "udca-default"):
        if not UDCA.exists():
            raise FileNotFoundError(f"the udca study is not available at {UDCA}")
        # the published model size spelled out: an older checkout's aam has no PUBLISHED_MODEL
        published = ModelConfig(embedding_dim=128, attention_heads=4, asv_layers=2, sample_layers=2, dropout=0.1)
        model = published if name == "udca" else ModelConfig()
        return load_udca_batches(n=n), dataclasses.replace(model, n_targets=1)
    if name == "demo":
        return demo_batches(n)
    if name == "simulated-default":
        return simulated_default_batches(n)
    raise ValueError(f"unknown setup {name!r}; choose from {STEP_SETUPS}")


def make_step(model: torch.nn.Module, batches, lr: float = 1e-4, autocast_dtype: torch.dtype | None = None):
    """A closure running one training step per call on the next batch (cycling; batches and model on one
    device); returns the loss tensor without reading it back. Targets are z-scored within the batch
    (NaN -> 0), which is all a timing needs. `autocast_dtype`: autocast the forward to it (bf16 on a GPU)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    model.train()
    state = {"i": 0}
    device = batches[0].asv_tokens.device.type
    targets = []
    for batch in batches:
        target = torch.nan_to_num(batch.targets)
        targets.append((target - target.mean(0)) / (target.std(0) + 1e-6))

    def step() -> torch.Tensor:
        i = state["i"] % len(batches)
        state["i"] += 1
        batch = batches[i]
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
            pred = model(batch.asv_tokens, batch.asv_index, batch.asv_mask, batch.log_counts, batch.categories)
        loss = F.huber_loss(pred[..., 0].float(), targets[i])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss.detach()

    return step


def build_step(name: str, n_batches: int = 1, compile_model: bool = False, seed: int = 0,
               autocast_dtype: torch.dtype | None = None):
    """(step closure, first batch, ModelConfig) for a named setup; the model is seeded with `seed`;
    `autocast_dtype` as in `make_step`."""
    from aam.models import AAMRegressor

    batches, config = setup_batches(name, n_batches)
    torch.manual_seed(seed)
    model = AAMRegressor(config)
    if compile_model:
        model = torch.compile(model)
    return make_step(model, batches, autocast_dtype=autocast_dtype), batches[0], config


PRECISION_DTYPES = {"fp32": None, "bf16": torch.bfloat16}


def serve(name: str, n_batches: int, precision: str = "fp32") -> None:
    """Step server: "ready" and the model's sizes as JSON once built, then "step N" on stdin -> N per-step
    seconds on one stdout line; EOF ends it."""
    step, _, config = build_step(name, n_batches, autocast_dtype=PRECISION_DTYPES[precision])
    step()  # warm-up
    sizes = ("embedding_dim", "attention_heads", "asv_layers", "sample_layers", "feedforward_multiplier", "dropout")
    print("ready", json.dumps({field: getattr(config, field) for field in sizes}), flush=True)
    for line in sys.stdin:
        count = int(line.split()[1])
        times = []
        for _ in range(count):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        print(" ".join(f"{t:.6f}" for t in times), flush=True)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "fp32")
