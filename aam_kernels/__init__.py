"""aam_kernels: fused Triton kernels for regression losses, cross-entropy and mixture-of-experts heads.

Standalone: depends on torch (and Triton where present), never on `aam`.
"""

from aam_kernels.backend import count_launches, use_backend
from aam_kernels.cross_entropy.op import cross_entropy
from aam_kernels.moe.op import MoEOutput, moe_mlp
from aam_kernels.regression_loss.op import asymmetric_loss, pinball_loss, regression_loss

__all__ = [
    "asymmetric_loss",
    "count_launches",
    "cross_entropy",
    "MoEOutput",
    "moe_mlp",
    "pinball_loss",
    "regression_loss",
    "use_backend",
]
