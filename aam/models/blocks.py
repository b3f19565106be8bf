"""Building blocks shared by both encoders: a pre-LN transformer block (PyTorch SDPA) and
attention pooling of a padded set into one vector."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


class SelfAttention(nn.Module):
    """Multi-head self-attention without dropout on the attention probabilities: with it, SDPA falls back
    to its unfused path on CPU (the [N, H, S, S] probabilities materialized, a random mask drawn over
    them) forward and backward; docs/performance.md ("Training step") has the profile. Dropout stays on the
    residual branches (`TransformerBlock`)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        # x [N, S, D]; key_mask bool [N, S], True = a real token that may be attended to.
        n, s, d = x.shape
        # split + view rather than one permute of [N, S, 3, H, Dh]: the backward then concatenates the
        # three gradients straight into [N, S, 3D] instead of stacking them and copying the permuted stack.
        q, k, v = (t.view(n, s, self.heads, d // self.heads).transpose(1, 2) for t in self.qkv(x).split(d, dim=-1))
        attn_mask = key_mask[:, None, None, :]  # [N, 1, 1, S], broadcast over heads and queries
        y = attention(q, k, v, attn_mask)
        return self.out(y.transpose(1, 2).reshape(n, s, d))


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
    """SDPA of q, k, v [N, H, S, Dh]; on the CPU always in fp32, even under bf16 autocast: the CPU flash
    kernel's bf16 backward is several times slower than its fp32 one (docs/performance.md, "Training
    step"), while the Linear layers around it gain from bf16. On CUDA, autocast decides as elsewhere."""
    if q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    with torch.autocast("cpu", enabled=False):
        return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=attn_mask)


class TransformerBlock(nn.Module):
    """x + Attn(LN(x)), then x + FFN(LN(x)) (pre-LN: stable without warmup tricks)."""

    def __init__(self, dim: int, heads: int, ff_multiplier: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(
            nn.Linear(dim, ff_multiplier * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_multiplier * dim, dim)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), key_mask))
        return x + self.drop(self.ff(self.norm2(x)))


class TransformerStack(nn.Module):
    def __init__(self, layers: int, dim: int, heads: int, ff_multiplier: int, dropout: float, checkpointing: bool):
        super().__init__()
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, ff_multiplier, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.checkpointing = checkpointing

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            if self.checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, key_mask, use_reentrant=False)
            else:
                x = block(x, key_mask)
        return self.norm(x)


class AttentionPooling(nn.Module):
    """Weighted mean of a set: one learned score per element, softmax over the real elements.

    Always in fp32, under bf16 autocast too (a small part of the step): the ASV BatchNorm after the
    nucleotide pooling divides by the spread of the ASV vectors across the batch, which is a few % of
    their norm for amplicons of one study, so a bf16 rounding of the pooled vectors (2^-9 of their norm)
    would come out of it magnified."""

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x [N, S, D], mask bool [N, S] with at least one True per row -> [N, D] fp32
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            scores = self.score(x).squeeze(-1).masked_fill(~mask, float("-inf"))
            return torch.einsum("ns,nsd->nd", torch.softmax(scores, dim=-1), x)  # weights [N, S]


def ensure_one_real(mask: torch.Tensor) -> torch.Tensor:
    """The mask with slot 0 switched on in rows that have no real element (an empty sample or ASV).

    Attention over an all-masked row is 0/0 = NaN; attending to one padding element instead keeps
    the output finite without a host sync. Padding holds zeros, so such a row encodes "nothing".
    """
    empty = ~mask.any(dim=-1, keepdim=True)  # [N, 1]
    first = torch.zeros_like(mask)
    first[..., 0] = True
    return mask | (empty & first)


class ASVBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the distinct ASV vectors of a batch ([U, D]), running statistics in eval.

    Amplicons of one study share most of their sequence, so pooled ASV vectors start nearly equal
    (their spread is a few % of their norm) and the sample encoder cannot tell ASVs apart; removing
    the shared component and scaling each feature to unit variance across ASVs makes the sequence
    differences visible from the first step (on the simulated demo data the training loss stays at
    "predict the mean" for 12 epochs without it and falls to ~0.07 with it). In eval the running
    statistics are used, so a prediction does not depend on the rest of its batch. A training batch
    with a single distinct ASV also uses the running statistics (one value has no variance).

    The trainer replaces the momentum averages after each epoch with statistics computed from the
    epoch's final weights (`set_statistics`, `aam.training.norm_statistics`).
    """

    @torch.no_grad()
    def set_statistics(self, batch_means: list[torch.Tensor], batch_variances: list[torch.Tensor]) -> None:
        """Running statistics = the average over batches of each batch's mean and unbiased variance
        ([D] each), i.e. what the momentum average estimates, but all from the same weights."""
        self.running_mean.copy_(torch.stack(batch_means).mean(0))
        self.running_var.copy_(torch.stack(batch_variances).mean(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        use_batch = self.training and x.shape[0] > 1
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, use_batch,
                            self.momentum, self.eps)
