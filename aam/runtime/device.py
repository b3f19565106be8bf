"""Device choice and the mixed-precision context.

Precision (`TrainConfig.precision`, --precision): "fp32" runs everything in fp32; "bf16" autocasts the
matrix products to bf16 (fp32 weights, optimizer state, layer norms and loss; on the CPU the attention
kernel stays fp32, `aam.models.blocks.attention`); "auto" = bf16 on CUDA, fp32 on the CPU. A CPU takes bf16
only when it multiplies bf16 matrices natively (AVX-512 BF16 or AMX): elsewhere bf16 is emulated and
slower than fp32. Evaluation passes (validation, BatchNorm statistics, predict) run fp32 on the CPU
whatever the training precision: they are a small part of a run, and predictions keep full precision.
"""

from __future__ import annotations

import contextlib

import torch

from aam.config import PRECISIONS
from aam.errors import UserError


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when available else cpu; cuda without CUDA is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is available to this PyTorch (use --device cpu or auto)")
    if name not in ("cpu", "cuda"):
        raise UserError(f"--device must be auto, cpu or cuda; got {name!r}")
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """True when this CPU multiplies bf16 matrices in hardware (x86 AVX-512 BF16 or AMX tiles), through
    oneDNN; PyTorch has no public query for it."""
    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return torch.backends.mkldnn.is_available() and any(check is not None and check() for check in checks)


def compute_dtype(device: torch.device, precision: str = "auto", training: bool = False) -> torch.dtype | None:
    """The autocast dtype of a forward pass (None = plain fp32). `training`: a training step (the CPU runs
    bf16 only there)."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "fp32":
        return None
    if device.type == "cuda":
        return torch.bfloat16
    if precision == "auto" or not training:
        return None
    if not cpu_has_native_bf16():
        raise UserError("--precision bf16: this CPU has no native bf16 matrix multiply (AVX-512 BF16 or AMX), "
                        "where bf16 is slower than fp32; use --precision fp32 or auto")
    return torch.bfloat16


def autocast(device: torch.device, precision: str = "auto", training: bool = False):
    """The autocast context of `compute_dtype` (bf16 needs no loss scaling, unlike fp16)."""
    dtype = compute_dtype(device, precision, training)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
