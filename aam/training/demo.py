"""`run_demo`: simulate a small study and train a small model on CPU in a few minutes."""

from __future__ import annotations

from pathlib import Path

from aam.config import DataConfig, LossConfig, ModelConfig, RunConfig, TrainConfig
from aam.data.simulate import write_simulation
from aam.run_folder import run_folder
from aam.training.run import TrainResult, train

DEMO_SAMPLES = 300
DEMO_FEATURES = 128


def demo_config(data_dir: Path, run_dir: Path, epochs: int = 40, progress: bool = True) -> RunConfig:
    """Two targets (ph, temperature), location as a category; the default model (`ModelConfig()`: width 32,
    no nucleotide layers, one sample layer), with a learning rate of 1e-2 for 40 epochs: at the default 2e-3
    this model stays short of the validation R^2 of the nucleotide-layer model the demo trained before
    (docs/performance.md, "The demo")."""
    return RunConfig(
        data=DataConfig(table=str(data_dir / "table.biom"), metadata=str(data_dir / "metadata.tsv"),
                        target_columns=("ph", "temperature"), categorical_columns=("location",),
                        max_bp=100, token_limit=128),
        model=ModelConfig(),
        loss=LossConfig(loss_type="huber"),
        train=TrainConfig(output_dir=str(run_dir), epochs=epochs, batch_size=16, lr=1e-2, patience=0, seed=0,
                          device="cpu", progress=progress),
    )


def run_demo(output_dir: str | Path = "aam-demo", epochs: int = 40, overwrite: bool = False,
             progress: bool = True) -> TrainResult:
    """Writes `output_dir/data` (simulated study) and `output_dir/run` (the trained model and reports),
    holding the folder's lock (the run folder inside it is `train`'s own)."""
    with run_folder(output_dir, "aam demo", overwrite=overwrite) as out:
        data_dir, run_dir = out / "data", out / "run"
        write_simulation(data_dir, n_samples=DEMO_SAMPLES, seed=0, n_features=DEMO_FEATURES)
        return train(demo_config(data_dir, run_dir, epochs, progress), overwrite=True)
