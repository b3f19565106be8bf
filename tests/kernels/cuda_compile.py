"""Compile a kernel for a GPU target with Triton's bundled toolchain, on a machine without a GPU.

The interpreter accepts code the compiler rejects (dtype mixes in ``tl.dot``, scalar/tensor control
flow, unsupported casts), so CPU-only CI also compiles every kernel for an H100 (sm_90).
"""

from __future__ import annotations


def compile_for_sm90(kernel, types: dict, consts: dict, num_warps: int = 4):
    """``types``: Triton type string per runtime argument (``"*fp32"``, ``"i32"``); ``consts``: constexprs.
    Returns Triton's compiled kernel: ``.asm["ptx"]`` is the PTX, ``.metadata.shared`` its shared memory."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fn = kernel.compiled
    signature = {name: "constexpr" if name in consts else types[name] for name in fn.arg_names}
    return triton.compile(ASTSource(fn, signature, constexprs=consts), target=GPUTarget("cuda", 90, 32),
                          options={"num_warps": num_warps})
