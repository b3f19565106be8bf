"""Which parameters the optimizer moves, and how fast: the encoders of a fine-tuned model may take
smaller steps than the head (`--encoder-lr-scale`) or none (`--freeze-encoder`)."""

from __future__ import annotations

from torch import nn

ENCODERS = ("asv_encoder", "sample_encoder")


def freeze_encoders(model: nn.Module) -> None:
    """The ASV and sample encoders stop taking gradients (their BatchNorm statistics are still recomputed on
    the study after each epoch), except the ASV identity vectors, which train like the head: they are
    per-ASV weights of the study, pretrained or not."""
    for name in ENCODERS:
        getattr(model, name).requires_grad_(False)
    if model.asv_encoder.identity is not None:
        model.asv_encoder.identity.requires_grad_(True)


def parameter_groups(model: nn.Module, lr: float, encoder_lr_scale: float) -> list[dict]:
    """AdamW parameter groups: the head and embeddings at `lr` first (the group the logs report), the encoders
    at `encoder_lr_scale` x `lr`; frozen parameters are left out. One group when the scale is 1."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if encoder_lr_scale == 1.0:
        return [{"params": [p for _, p in trainable]}]
    encoder = [p for n, p in trainable if n.split(".")[0] in ENCODERS]
    rest = [p for n, p in trainable if n.split(".")[0] not in ENCODERS]
    groups = [{"params": rest}]
    if encoder:
        groups.append({"params": encoder, "lr": lr * encoder_lr_scale})
    return groups
