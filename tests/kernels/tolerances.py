"""One table of (atol, rtol) per dtype for comparing an op with its fp32/fp64 reference.

Low precision bounds are ~2x the error PyTorch itself makes when it rounds an fp32 result
to that dtype (one rounding of a value of magnitude ~1: 2^-8 for bf16, 2^-11 for fp16).
"""

import torch

TOLERANCES = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-5, 1e-5),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (1.6e-2, 1.6e-2),
}

# The parameter gradients of a whole training step (forward, loss, backward of the model) against its
# float64 reference, by the dtype of its matrix products: (atol as a fraction of the largest gradient of
# the model, rtol); the loss itself is compared with TOLERANCES. fp32: rounding only. bf16 (--precision
# bf16): every Linear rounds its input and weight to bf16 (2^-9 relative), and the errors of the layers
# add up along the forward and again along the backward (attention, norms and pooling stay fp32); ~2x the
# largest error measured on the test batches (4.7e-3 of the largest gradient).
STEP_TOLERANCES = {
    torch.float32: (1e-6, 1e-4),
    torch.bfloat16: (1e-2, 5e-2),
}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, scale: float = 1.0) -> None:
    """Compare in fp64 on the CPU (the reference runs there); ``scale`` widens the bound for sums over
    many elements."""
    atol, rtol = TOLERANCES[dtype]
    torch.testing.assert_close(
        actual.detach().cpu().double(), expected.detach().cpu().double(), atol=atol * scale, rtol=rtol * scale, equal_nan=True
    )
