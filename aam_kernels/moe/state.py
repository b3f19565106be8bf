"""The tensors moe_mlp's forward and backward pass between them, named. The registered ops take and
return them one by one (custom ops take tensors and primitives); everything else passes these tuples."""

from __future__ import annotations

from typing import NamedTuple, Optional

from torch import Tensor


class MoEInputs(NamedTuple):
    x: Tensor  # [T, D]
    router_logits: Tensor  # [T, E]
    w1: Optional[Tensor]  # [E, D, H], None for Linear experts
    b1: Optional[Tensor]  # [E, H], None for Linear experts
    w2: Tensor  # [E, H, O] ([E, D, O] for Linear experts)
    b2: Tensor  # [E, O]


class MoESaved(NamedTuple):
    """What backward needs from forward besides the inputs. ``probs`` is also an output of the op."""

    probs: Tensor  # [T, E] fp32 softmax of the router logits
    topi: Tensor  # [T, k] int64 chosen experts
    gates: Tensor  # [T, k] fp32 combine weights
    o_tk: Tensor  # [T, k, O] fp32 (fp64 for fp64 inputs): unweighted expert output of each pair
    route: Tensor  # int32: the Triton path's route buffer, or each pair's row in the CPU path's batch
    xp: Tensor  # [E, cap, D] the CPU path's padded input batch (cap = 0 on the Triton path)
    a: Tensor  # [E, cap, H] its pre-activations
    h: Tensor  # [E, cap, H] its activations
