"""aam_kernels: fused Triton kernels for regression losses and mixture-of-experts heads.

Standalone: depends on torch (and Triton where present), never on `aam`.
"""

from aam_kernels.backend import count_launches, use_backend

__all__ = ["count_launches", "use_backend"]
