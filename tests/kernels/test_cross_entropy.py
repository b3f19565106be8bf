"""cross_entropy against torch.nn.functional.cross_entropy in fp64.

Every backend that can run here is tested: the CPU path ("torch"), the Triton kernel through Triton's
interpreter ("interpret") and, with a GPU, the compiled kernel ("triton"). The expected values come
from PyTorch's own cross-entropy on fp64 copies of the inputs (row weights: its per-row losses, weighted
and reduced here by hand).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import aam_kernels
from aam_kernels import count_launches, cross_entropy, use_backend
from aam_kernels.backend import next_pow2, poison_outputs, triton_import_error
from aam_kernels.cross_entropy.launch import CrossEntropyLaunchConfig, launch_config
from aam_kernels.cross_entropy.op import cross_entropy_launched
from aam_kernels.cross_entropy.reference import cross_entropy_reference
from tests.kernels.cuda_compile import compile_for_sm90
from tests.kernels.tolerances import assert_close

HAS_CUDA = torch.cuda.is_available()
HAS_TRITON = triton_import_error() is None
BACKENDS = [
    pytest.param("torch", "cpu", id="torch"),
    pytest.param("interpret", "cpu", id="interpret", marks=pytest.mark.skipif(not HAS_TRITON, reason="no triton")),
    pytest.param("triton", "cuda", id="triton", marks=[pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="no CUDA")]),
]
TRITON_BACKENDS = BACKENDS[1:]
IGNORE = -100
# keyword options of one call: class weights, label smoothing, ignored rows, row weights
OPTIONS = {
    "plain": dict(),
    "weight": dict(weight=True),
    "smooth": dict(label_smoothing=0.1),
    "all": dict(weight=True, label_smoothing=0.2, ignore_frac=0.2),
    "rows": dict(weight=True, label_smoothing=0.1, ignore_frac=0.2, row_weight=True),
}


def make_inputs(n, c, dtype, device, seed=0, weight=False, label_smoothing=0.0, ignore_frac=0.0, row_weight=False):
    """(logits [N, C], target [N], keyword arguments of the call); logits of spread 3, so that some rows
    are confident and some are not."""
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, c, generator=g) * 3).to(dtype)
    target = torch.randint(0, c, (n,), generator=g)
    target[torch.rand(n, generator=g) < ignore_frac] = IGNORE
    kwargs = dict(label_smoothing=label_smoothing)
    if weight:
        kwargs["weight"] = (torch.rand(c, generator=g) + 0.25).to(dtype).to(device)
    if row_weight:
        kwargs["row_weight"] = (torch.rand(n, generator=g) * 2).to(dtype).to(device)
    return logits.to(device), target.to(device), kwargs


def torch_expected(logits, target, reduction, weight=None, label_smoothing=0.0, row_weight=None):
    """PyTorch's cross-entropy of fp64 copies; row weights multiply its per-row losses and the mean
    divides by sum(row_weight * w_y) over the rows not ignored."""
    x = logits.cpu().double()
    t = target.cpu()
    w = None if weight is None else weight.cpu().double()
    if row_weight is None:
        return F.cross_entropy(x, t, weight=w, ignore_index=IGNORE, reduction=reduction, label_smoothing=label_smoothing)
    r = row_weight.cpu().double()
    per_row = F.cross_entropy(x, t, weight=w, ignore_index=IGNORE, reduction="none", label_smoothing=label_smoothing) * r
    if reduction == "none":
        return per_row
    if reduction == "sum":
        return per_row.sum()
    valid = t != IGNORE
    w_y = torch.ones(len(t), dtype=torch.float64) if w is None else w[t.clamp_min(0)]
    return per_row.sum() / (r * w_y)[valid].sum()


def run_both(backend, logits, target, reduction, kwargs, launch=None, upstream_seed=1):
    """(loss, d logits) from the op and from PyTorch in fp64, for an upstream gradient of random numbers."""
    x = logits.detach().clone().requires_grad_(True)
    with use_backend(backend):
        loss = cross_entropy_launched(launch, x, target, reduction=reduction, ignore_index=IGNORE, **kwargs)
    xr = logits.detach().cpu().double().requires_grad_(True)
    ref = torch_expected(xr, target, reduction, **kwargs)
    upstream = torch.randn(ref.shape, generator=torch.Generator().manual_seed(upstream_seed), dtype=torch.float64)
    (g,) = torch.autograd.grad((loss * upstream.to(loss)).sum(), x)
    (rg,) = torch.autograd.grad((ref * upstream).sum(), xr)
    return loss, g, ref, rg


def sum_scale(n, reduction):
    """A sum of N per-row losses of magnitude ~3 is compared relative to its size."""
    return max(4.0, n / 64) if reduction == "sum" else 4.0


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("n,c", [(0, 3), (1, 2), (63, 3), (1021, 8), (127, 17), (257, 2)], ids=lambda v: str(v))
def test_matches_torch_fp64(backend, device, option, reduction, n, c):
    logits, target, kwargs = make_inputs(n, c, torch.float32, device, seed=n * 7 + c, **OPTIONS[option])
    loss, g, ref, rg = run_both(backend, logits, target, reduction, kwargs)
    assert loss.shape == ref.shape and loss.dtype == torch.float32 and g.dtype == torch.float32
    assert_close(loss, ref, torch.float32, sum_scale(n, reduction))
    assert_close(g, rg, torch.float32)


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64], ids=str)
@pytest.mark.parametrize("c", [2, 5])
def test_other_precisions(backend, device, dtype, c):
    """Low precision: PyTorch's fp64 loss of the same rounded logits, within one rounding to the dtype."""
    logits, target, kwargs = make_inputs(263, c, dtype, device, seed=5, **OPTIONS["all"])
    for reduction in ("mean", "none"):
        loss, g, ref, rg = run_both(backend, logits, target, reduction, kwargs)
        assert loss.dtype == dtype and g.dtype == dtype
        assert_close(loss, ref, dtype)
        assert_close(g, rg, dtype)


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("c", [2, 3, 5])
def test_large_logits(backend, device, c):
    """Logits in the hundreds: the CPU path shifts each row by its max before exp (its unshifted
    exp holds only up to cpu.SHIFT_FREE_BOUND), and nothing overflows."""
    logits, target, kwargs = make_inputs(301, c, torch.float32, device, seed=c, **OPTIONS["all"])
    logits = logits * 100 + 1000
    for reduction in ("mean", "none"):
        loss, g, ref, rg = run_both(backend, logits, target, reduction, kwargs)
        assert_close(loss, ref, torch.float32, 100.0)  # losses of ~1e3 computed from logits of ~1e3
        assert_close(g, rg, torch.float32)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_non_contiguous_inputs(backend, device):
    base = torch.randn(7, 90, device=device) * 2
    logits = base.t()[::2]  # [45, 7], strides (2, 90)
    target = torch.randint(0, 7, (90,), device=device)[::2]  # stride 2
    weight = torch.rand(14, device=device)[::2] + 0.5  # stride 2
    loss, g, ref, rg = run_both(backend, logits, target, "mean", dict(weight=weight, label_smoothing=0.1))
    assert_close(loss, ref, torch.float32, 4.0)
    assert_close(g, rg, torch.float32)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_every_output_element_written(backend, device):
    logits, target, kwargs = make_inputs(1021, 3, torch.float32, device, seed=3, **OPTIONS["rows"])
    for reduction in ("none", "mean"):
        with poison_outputs():
            loss, g, ref, rg = run_both(backend, logits, target, reduction, kwargs)
        assert not torch.isnan(loss).any() and not torch.isnan(g).any()
        assert_close(loss, ref, torch.float32, 4.0)
        assert_close(g, rg, torch.float32)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_hand_computed_values(backend, device):
    """Two classes with p = (1/4, 3/4): -log p_y and p - onehot, by hand."""
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]], device=device, requires_grad=True)
    target = torch.tensor([1, 0], device=device)
    with use_backend(backend):
        loss = cross_entropy(logits, target, reduction="none")
    assert_close(loss.cpu(), torch.tensor([-math.log(0.75), -math.log(0.25)]), torch.float32)
    (g,) = torch.autograd.grad(loss.sum(), logits)
    assert_close(g.cpu(), torch.tensor([[0.25, -0.25], [-0.75, 0.75]]), torch.float32)
    with use_backend(backend):  # smoothing 0.5 over 2 classes: target (0.25, 0.75) for row 0
        smooth = cross_entropy(logits[:1], target[:1], label_smoothing=0.5)
    assert_close(smooth.cpu(), torch.tensor(-0.25 * math.log(0.25) - 0.75 * math.log(0.75)), torch.float32)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the interpreter's numpy meets inf - inf and 0 / 0
@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("c", [2, 4])
def test_ignored_rows(backend, device, c):
    """Ignored rows add nothing, even with non-finite logits; every row ignored gives a NaN mean with a
    zero gradient, as PyTorch; ignore_index may be a real class."""
    logits = torch.randn(6, c, device=device)
    logits[1] = float("inf")
    target = torch.tensor([0, IGNORE, 2 % c, IGNORE, 3 % c, 1], device=device)
    x = logits.clone().requires_grad_(True)
    with use_backend(backend):
        loss = cross_entropy(x, target, ignore_index=IGNORE, label_smoothing=0.1, reduction="none")
    (g,) = torch.autograd.grad(loss.sum(), x)
    assert torch.all(loss[[1, 3]] == 0) and torch.all(g[[1, 3]] == 0) and not torch.isnan(g).any()
    kept = [0, 2, 4, 5]
    expected = F.cross_entropy(logits[kept].double().cpu(), target[kept].cpu(), label_smoothing=0.1, reduction="none")
    assert_close(loss[kept], expected, torch.float32)

    x = logits[[0, 2]].clone().requires_grad_(True)
    with use_backend(backend):
        none_left = cross_entropy(x, torch.full((2,), IGNORE, device=device))
    (g,) = torch.autograd.grad(none_left, x)
    assert torch.isnan(none_left) and torch.all(g == 0)

    x, t = logits[kept], target[kept]
    loss, g, ref, rg = run_both(backend, x, t, "mean", dict(weight=torch.rand(c, device=device) + 0.5))
    assert_close(loss, ref, torch.float32)
    assert_close(g, rg, torch.float32)
    with use_backend(backend):
        as_class = cross_entropy(x, t, ignore_index=1)  # rows of class 1 are ignored
    assert_close(as_class, F.cross_entropy(x.double().cpu(), t.cpu(), ignore_index=1), torch.float32)


@pytest.mark.parametrize("backend,device", TRITON_BACKENDS)
def test_one_launch_for_loss_and_gradient(backend, device):
    logits, target, kwargs = make_inputs(300, 4, torch.float32, device, **OPTIONS["rows"])
    logits.requires_grad_(True)
    with use_backend(backend), count_launches() as launches:
        loss = cross_entropy(logits, target, ignore_index=IGNORE, **kwargs)
        loss.backward()
    assert launches.count == 1


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_bitwise_deterministic(backend, device):
    logits, target, kwargs = make_inputs(3001, 3, torch.float32, device, seed=9, **OPTIONS["all"])
    outs = []
    for _ in range(2):
        x = logits.clone().requires_grad_(True)
        with use_backend(backend):
            loss = cross_entropy(x, target, ignore_index=IGNORE, **kwargs)
        (g,) = torch.autograd.grad(loss, x)
        outs.append((loss, g))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


@pytest.mark.parametrize("backend,device", TRITON_BACKENDS)
def test_last_program_reduces_many_partials(backend, device):
    """Small blocks, so that the last program sums many partials in several steps."""
    launch = CrossEntropyLaunchConfig(block=64, finish_tile=16)
    logits, target, kwargs = make_inputs(1000, 3, torch.float32, device, seed=4, **OPTIONS["rows"])
    for reduction in ("mean", "sum"):
        loss, g, ref, rg = run_both(backend, logits, target, reduction, kwargs, launch=launch)
        assert_close(loss, ref, torch.float32, sum_scale(1000, reduction))
        assert_close(g, rg, torch.float32)


def test_reference_matches_torch_and_gradcheck():
    """The spec itself: PyTorch's numbers in fp64 for every option, and its gradient by finite
    differences with row weights (which PyTorch lacks)."""
    for option in OPTIONS:
        logits, target, kwargs = make_inputs(37, 5, torch.float64, "cpu", seed=2, **OPTIONS[option])
        for reduction in ("mean", "sum", "none"):
            got = cross_entropy_reference(logits, target, reduction=reduction, ignore_index=IGNORE, **kwargs)
            assert_close(got, torch_expected(logits, target, reduction, **kwargs), torch.float64)
    logits, target, kwargs = make_inputs(12, 4, torch.float64, "cpu", seed=3, **OPTIONS["rows"])
    for reduction in ("mean", "sum", "none"):
        fn = lambda x: cross_entropy_reference(x, target, reduction=reduction, ignore_index=IGNORE, **kwargs)  # noqa: E731
        torch.autograd.gradcheck(fn, (logits.clone().requires_grad_(True),))


def test_torch_compile_fullgraph():
    torch._dynamo.reset()
    logits, target, kwargs = make_inputs(64, 3, torch.float32, "cpu", **OPTIONS["rows"])

    def step(x, t, w, r):
        return cross_entropy(x, t, weight=w, row_weight=r, label_smoothing=0.1)

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    x1 = logits.clone().requires_grad_(True)
    x2 = logits.clone().requires_grad_(True)
    loss = compiled(x1, target, kwargs["weight"], kwargs["row_weight"])
    loss.backward()
    ref = cross_entropy_reference(x2, target, weight=kwargs["weight"], row_weight=kwargs["row_weight"], label_smoothing=0.1)
    ref.backward()
    assert_close(loss, ref, torch.float32)
    assert_close(x1.grad, x2.grad, torch.float32)


def test_public_api_names():
    assert "cross_entropy" in aam_kernels.__all__ and aam_kernels.cross_entropy is cross_entropy


BAD_CALLS = [
    ("logits", TypeError, "int64", lambda x, t: cross_entropy(x.long(), t)),
    ("logits", TypeError, "list", lambda x, t: cross_entropy([1.0], t)),
    ("logits", ValueError, r"\(8,\)", lambda x, t: cross_entropy(x[:, 0], t)),
    ("logits", ValueError, r"\(8, 0\)", lambda x, t: cross_entropy(x[:, :0], t)),
    ("target", TypeError, "float32", lambda x, t: cross_entropy(x, t.float())),
    ("target", TypeError, "int32", lambda x, t: cross_entropy(x, t.int())),
    ("target", ValueError, r"\(7,\)", lambda x, t: cross_entropy(x, t[:7])),
    ("target", ValueError, "got 3 at row 2", lambda x, t: cross_entropy(x, torch.tensor([0, 1, 3, 0, 0, 0, 0, 0]))),
    ("target", ValueError, "got -1 at row 0", lambda x, t: cross_entropy(x, torch.tensor([-1, 1, 2, 0, 0, 0, 0, -100]))),
    ("weight", ValueError, r"\(4,\)", lambda x, t: cross_entropy(x, t, weight=torch.ones(4))),
    ("weight", TypeError, "int64", lambda x, t: cross_entropy(x, t, weight=torch.ones(3, dtype=torch.long))),
    ("row_weight", ValueError, r"\(3,\)", lambda x, t: cross_entropy(x, t, row_weight=torch.ones(3))),
    ("label_smoothing", ValueError, "1.5", lambda x, t: cross_entropy(x, t, label_smoothing=1.5)),
    ("label_smoothing", TypeError, "'high'", lambda x, t: cross_entropy(x, t, label_smoothing="high")),
    ("ignore_index", TypeError, "1.0", lambda x, t: cross_entropy(x, t, ignore_index=1.0)),
    ("reduction", ValueError, "'avg'", lambda x, t: cross_entropy(x, t, reduction="avg")),
]


@pytest.mark.parametrize("name,exc,shown,call", BAD_CALLS, ids=[f"{i}-{c[0]}" for i, c in enumerate(BAD_CALLS)])
def test_bad_input_names_the_argument(name, exc, shown, call):
    """The message names the argument and shows what was given."""
    x, t = torch.randn(8, 3), torch.randint(0, 3, (8,))
    with pytest.raises(exc, match=name) as info:
        call(x, t)
    assert info.match(shown)


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA")
def test_device_mismatch_is_reported():
    with pytest.raises(ValueError, match="target"):
        cross_entropy(torch.randn(4, 2, device="cuda"), torch.zeros(4, dtype=torch.long))


@pytest.mark.skipif(not HAS_TRITON or HAS_CUDA, reason="needs triton; with CUDA the GPU tests run the compiled kernel")
@pytest.mark.parametrize("dtype", ["bf16", "fp32"])
def test_kernel_compiles_for_cuda_without_gpu(dtype, monkeypatch):
    """Compile with the block sizes a GPU run uses (``launch_config``) at a narrow and a wide C."""
    monkeypatch.setenv("TRITON_DEFAULT_FP_FUSION", "1")
    import triton.language as tl

    from aam_kernels.cross_entropy import triton as ct

    pointers = {p: "*" + dtype for p in ("p_logits", "p_weight", "p_row_weight", "p_elem", "p_grad", "p_out")}
    pointers |= {"p_target": "*i64", "p_smooth": "*fp32", "p_parts": "*fp32", "p_stats": "*fp32", "p_ticket": "*i32"}
    ints = {"N": "i32", "C": "i32", "ignore_index": "i32", "P": "i32"} | {s: "i64" for s in ("s_xn", "s_xc", "s_t", "s_w", "s_rw")}
    for c, reduce, weighted in ((2, 2, False), (8, 0, True), (64, 1, True)):
        launch = launch_config(c)
        block_c = next_pow2(c)
        consts = dict(HAS_WEIGHT=weighted, HAS_ROW_WEIGHT=weighted, STORE_ELEM=reduce == 0, STORE_GRAD=True,
                      ACC=tl.float32, REDUCE=reduce, BLOCK_N=launch.block // block_c, BLOCK_C=block_c,
                      BP=launch.finish_tile)  # fmt: skip
        compile_for_sm90(ct._cross_entropy_fwd_kernel, pointers | ints, consts, num_warps=launch.num_warps)
