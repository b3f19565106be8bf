"""A small MoE quantile run with category weights, relative abundances and a weight average, for tests that train a few epochs
on a simulated study (a helper module, not a test module)."""

from aam.config import DataConfig, LossConfig, ModelConfig, RunConfig, TrainConfig


def moe_run_config(study) -> RunConfig:
    return RunConfig(
        DataConfig(table=f"{study}/table.biom", metadata=f"{study}/metadata.tsv",
                   target_columns=("ph", "temperature"), categorical_columns=("location",), max_bp=20,
                   token_limit=16),
        ModelConfig(embedding_dim=8, attention_heads=2, asv_layers=1, sample_layers=1, dropout=0.0, moe_experts=3,
                    regressor_hidden_dims=(8,), abundance="relative"),
        LossConfig(loss_type="quantile", categorical_loss_weights="auto", moe_router_z_weight=0.01),
        TrainConfig(epochs=3, batch_size=5, device="cpu", progress=False, ema_decay=0.9, seed=2))
