"""regression_loss / pinball_loss / asymmetric_loss against the plain-autograd reference.

Every backend that can run here is tested: the CPU path ("torch"), the Triton kernel through
Triton's interpreter ("interpret") and, with a GPU, the compiled kernel ("triton").
"""

from __future__ import annotations

import pytest
import torch

import aam_kernels
from aam_kernels import asymmetric_loss, count_launches, pinball_loss, regression_loss, use_backend
from aam_kernels.backend import next_pow2, poison_outputs, triton_import_error
from aam_kernels.regression_loss.launch import FLAT_MAX_K, MAX_BLOCK_K, LossLaunchConfig, launch_config
from aam_kernels.regression_loss.op import regression_loss_launched
from aam_kernels.regression_loss.reference import regression_loss_reference
from tests.kernels.cuda_compile import compile_for_sm90
from tests.kernels.spy import record_grids
from tests.kernels.tolerances import assert_close

HAS_CUDA = torch.cuda.is_available()
HAS_TRITON = triton_import_error() is None
BACKENDS = [
    pytest.param("torch", "cpu", id="torch"),
    pytest.param("interpret", "cpu", id="interpret", marks=pytest.mark.skipif(not HAS_TRITON, reason="no triton")),
    pytest.param("triton", "cuda", id="triton", marks=[pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="no CUDA")]),
]
NANF = float("nan")


def mixed_params(k: int, seed: int = 0) -> dict:
    """Per-column parameters cycling through every kind: linear, squared, Huber."""
    g = torch.Generator().manual_seed(seed)
    return dict(
        under=(torch.rand(k, generator=g) + 0.1).tolist(),
        over=(torch.rand(k, generator=g) + 0.1).tolist(),
        delta=[0.7 if i % 3 == 2 else 0.0 for i in range(k)],
        power=[2 if i % 3 == 1 else 1 for i in range(k)],
    )


def make_inputs(n, k, dtype, device, seed=0, nan_frac=0.15, weighted=True):
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(n, k, generator=g).to(dtype)
    target = (torch.randn(n, k, generator=g) * 2).to(dtype)
    target[torch.rand(n, k, generator=g) < nan_frac] = NANF
    weight = (torch.rand(n, generator=g) + 0.5).to(dtype) if weighted else None
    move = lambda t: None if t is None else t.to(device)  # noqa: E731
    return move(pred), move(target), move(weight)


def run_both(backend, pred, target, weight, reduction, params, upstream_seed=1, launch=None):
    """Loss, column means and gradients (pred and target) from the op (with the Triton launch
    configuration ``launch``, None: the shipped one) and from the reference."""
    results = []
    for use_op in (True, False):
        p = pred.detach().clone().requires_grad_(True)
        t = target.detach().clone().requires_grad_(True)
        if use_op:
            with use_backend(backend):
                loss, means = regression_loss_launched(
                    launch, p, t, weight=weight, reduction=reduction, return_column_means=True, **params
                )
        else:
            loss, means = regression_loss_reference(p, t, weight=weight, reduction=reduction, return_column_means=True, **params)
        upstream = torch.randn(loss.shape, generator=torch.Generator().manual_seed(upstream_seed)).to(loss)
        gp, gt = torch.autograd.grad((loss * upstream).sum(), (p, t), allow_unused=True)
        results.append((loss, means, gp, gt))
    return results


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("n,k", [(0, 3), (1, 1), (63, 3), (4099, 7), (130, 1), (2048, 4), (40, 12), (33, 70)], ids=lambda v: str(v))
def test_matches_reference_fp32(backend, device, reduction, n, k):
    pred, target, weight = make_inputs(n, k, torch.float32, device, seed=n * 31 + k)
    (loss, means, gp, gt), (rloss, rmeans, rgp, rgt) = run_both(backend, pred, target, weight, reduction, mixed_params(k))
    scale = max(1.0, n * k / 64) if reduction == "sum" else 4.0
    assert loss.shape == rloss.shape and loss.dtype == torch.float32
    assert_close(loss, rloss, torch.float32, scale)
    assert_close(means, rmeans, torch.float32, 4.0)
    assert_close(gp, rgp, torch.float32)
    assert_close(gt, rgt, torch.float32)


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=str)
def test_low_and_high_precision(backend, device, dtype):
    pred, target, weight = make_inputs(257, 3, dtype, device, seed=5)
    (loss, _, gp, gt), (rloss, _, rgp, rgt) = run_both(backend, pred, target, weight, "mean", mixed_params(3))
    assert loss.dtype == dtype and gp.dtype == dtype
    assert_close(loss, rloss, dtype)
    assert_close(gp, rgp, dtype)
    assert_close(gt, rgt, dtype)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_non_contiguous_and_broadcast_inputs(backend, device):
    base = torch.randn(7, 50, device=device)
    pred = base.t()[::2]  # [25, 7], strides (2, 50)
    target = torch.randn(25, 1, device=device).expand(25, 7)  # column stride 0
    weight = torch.rand(50, device=device)[::2]  # stride 2
    (loss, means, gp, gt), (rloss, rmeans, rgp, rgt) = run_both(backend, pred, target, weight, "mean", mixed_params(7))
    assert_close(loss, rloss, torch.float32, 4.0)
    assert_close(means, rmeans, torch.float32, 4.0)
    assert_close(gp, rgp, torch.float32)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_every_output_element_written(backend, device):
    pred, target, weight = make_inputs(1023, 5, torch.float32, device, seed=3, nan_frac=0.0)
    with poison_outputs():
        (loss, means, gp, _), (rloss, _, rgp, _) = run_both(backend, pred, target, weight, "none", mixed_params(5))
    assert not torch.isnan(loss).any() and not torch.isnan(gp).any()
    assert_close(loss, rloss, torch.float32)
    assert not torch.isnan(means).any()


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_missing_targets_add_nothing(backend, device):
    pred = torch.randn(40, 3, device=device, requires_grad=True)
    target = torch.randn(40, 3, device=device)
    target[:10] = NANF  # first 10 rows missing entirely
    target[:, 2] = NANF  # a column with no valid value
    with use_backend(backend):
        loss, means = regression_loss(pred, target, under=0.3, over=0.7, reduction="mean", return_column_means=True)
    (grad,) = torch.autograd.grad(loss, pred)
    assert torch.all(grad[:10] == 0) and torch.all(grad[:, 2] == 0)
    assert means[2] == 0
    kept = regression_loss_reference(pred[10:, :2], target[10:, :2], under=0.3, over=0.7)
    assert_close(loss, kept, torch.float32)
    with use_backend(backend):  # nothing valid at all: loss 0, gradient 0, no NaN
        empty = regression_loss(pred, torch.full_like(target, NANF), under=1, over=1)
    (g0,) = torch.autograd.grad(empty, pred)
    assert empty.item() == 0 and torch.all(g0 == 0)
    half = pred.detach().half().requires_grad_(True)  # 1 / (no weight) must not reach fp16 as inf
    with use_backend(backend):
        empty = regression_loss(half, torch.full_like(half, NANF), under=1, over=1)
    (g0,) = torch.autograd.grad(empty, half)
    assert empty.item() == 0 and torch.all(g0 == 0)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_hand_computed_values(backend, device):
    """One row per loss kind, values worked out by hand."""
    pred = torch.tensor([[0.0, 0.0, 0.0, 0.0], [3.0, 3.0, 3.0, 3.0]], device=device, requires_grad=True)
    target = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 3.0]], device=device)
    # columns: pinball tau=0.1 | expectile tau=0.1 | huber delta=0.5 (weights 1) | mae at r == 0
    with use_backend(backend):
        loss = regression_loss(
            pred, target, under=[0.1, 0.1, 1, 1], over=[0.9, 0.9, 1, 1], delta=[0, 0, 0.5, 0], power=[1, 2, 1, 1],
            reduction="none",
        )
    # row 0: r = +1 -> 0.1*1, 0.1*1, 0.5*(1-0.25)=0.375, r=0 -> 0
    # row 1: r = -2 -> 0.9*2, 0.9*4, 0.5*(2-0.25)=0.875, r=0 -> 0
    expected = torch.tensor([[0.1, 0.1, 0.375, 0.0], [1.8, 3.6, 0.875, 0.0]])
    assert_close(loss.cpu(), expected, torch.float32)
    (grad,) = torch.autograd.grad(loss.sum(), pred)
    # d/dpred = -w * h'(|r|) * sign(r); |r|' at 0 is 0 as autograd defines it
    expected_grad = torch.tensor([[-0.1, -0.2, -0.5, 0.0], [0.9, 3.6, 0.5, 0.0]])
    assert_close(grad.cpu(), expected_grad, torch.float32)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_pinball_and_asymmetric_match_formulas(backend, device):
    g = torch.Generator().manual_seed(11)
    pred = torch.randn(9, 4, 3, generator=g).to(device).requires_grad_(True)
    target = torch.randn(9, 4, generator=g).to(device)
    target[0, 1] = NANF
    q = torch.tensor([0.1, 0.5, 0.9], device=device)
    with use_backend(backend):
        loss = pinball_loss(pred, target, [0.1, 0.5, 0.9])
        per = pinball_loss(pred, target, q, reduction="none")
    r = target[..., None] - pred
    manual = torch.maximum(q * r, (q - 1) * r)  # the textbook pinball form
    valid = ~torch.isnan(manual)
    assert per.shape == pred.shape
    assert_close(per[valid], manual[valid], torch.float32)
    assert_close(loss, manual[valid].mean(), torch.float32)

    p1 = torch.randn(33, generator=g).to(device)
    t1 = torch.randn(33, generator=g).to(device)
    with use_backend(backend):
        a = asymmetric_loss(p1, t1, over_penalty=2.0, under_penalty=0.5, reduction="none")
    manual_a = 2.0 * torch.clamp(p1 - t1, min=0) + 0.5 * torch.clamp(t1 - p1, min=0)
    assert a.shape == p1.shape
    assert_close(a, manual_a, torch.float32)


@pytest.mark.parametrize("backend,device", BACKENDS[1:])
def test_one_launch_for_loss_and_gradient(backend, device):
    pred, target, weight = make_inputs(300, 3, torch.float32, device)
    pred.requires_grad_(True)
    with use_backend(backend), count_launches() as launches:
        loss = regression_loss(pred, target, under=0.2, over=0.8, weight=weight)
        loss.backward()
    assert launches.count == 1


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_bitwise_deterministic(backend, device):
    pred, target, weight = make_inputs(5000, 3, torch.float32, device, seed=9)
    outs = []
    for _ in range(2):
        p = pred.clone().requires_grad_(True)
        with use_backend(backend):
            loss = regression_loss(p, target, under=0.1, over=0.9, weight=weight)
        (g,) = torch.autograd.grad(loss, p)
        outs.append((loss, g))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def test_reference_gradcheck_fp64():
    """The spec itself: analytic gradients equal finite differences (data kept away from the kinks)."""
    g = torch.Generator().manual_seed(2)
    pred = torch.randn(12, 6, generator=g, dtype=torch.float64)
    target = pred + (torch.rand(12, 6, generator=g, dtype=torch.float64) + 0.2) * torch.sign(torch.randn(12, 6, generator=g))
    target[3, 1] = NANF
    weight = torch.rand(12, generator=g, dtype=torch.float64) + 0.5
    params = mixed_params(6)
    params["delta"] = [0.05 if d else 0.0 for d in params["delta"]]  # |r| >= 0.2 stays clear of delta
    for reduction in ("mean", "sum", "none"):
        fn = lambda p, t: regression_loss_reference(p, t, weight=weight, reduction=reduction, **params)  # noqa: E731
        torch.autograd.gradcheck(fn, (pred.clone().requires_grad_(True), target.clone().requires_grad_(True)))


def test_torch_compile_fullgraph():
    pred, target, weight = make_inputs(64, 3, torch.float32, "cpu")

    def step(p, t, w):
        return regression_loss(p, t, under=[0.1, 0.5, 0.9], over=[0.9, 0.5, 0.1], weight=w)

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    p1 = pred.clone().requires_grad_(True)
    p2 = pred.clone().requires_grad_(True)
    loss = compiled(p1, target, weight)
    loss.backward()
    ref = regression_loss_reference(p2, target, under=[0.1, 0.5, 0.9], over=[0.9, 0.5, 0.1], weight=weight)
    ref.backward()
    assert_close(loss, ref, torch.float32)
    assert_close(p1.grad, p2.grad, torch.float32)


def test_public_api_names():
    assert set(aam_kernels.__all__) >= {
        "regression_loss", "pinball_loss", "asymmetric_loss", "use_backend", "count_launches",
    }


BAD_CALLS = [
    ("pred", TypeError, lambda p, t: regression_loss(p.long(), t, under=1, over=1)),
    ("target", TypeError, lambda p, t: regression_loss(p, [1.0], under=1, over=1)),
    ("target", ValueError, lambda p, t: regression_loss(p, t[:, :2], under=1, over=1)),
    ("pred", ValueError, lambda p, t: regression_loss(p[0], t[0], under=1, over=1)),
    ("weight", ValueError, lambda p, t: regression_loss(p, t, under=1, over=1, weight=torch.ones(3))),
    ("weight", TypeError, lambda p, t: regression_loss(p, t, under=1, over=1, weight=torch.ones(8, dtype=torch.long))),
    ("under", ValueError, lambda p, t: regression_loss(p, t, under=-0.1, over=1)),
    ("over", ValueError, lambda p, t: regression_loss(p, t, under=1, over=[1, 1])),
    ("over", ValueError, lambda p, t: regression_loss(p, t, under=1, over=torch.tensor([1.0, -1.0, 1.0]))),
    ("delta", ValueError, lambda p, t: regression_loss(p, t, under=1, over=1, delta=-1)),
    ("power", ValueError, lambda p, t: regression_loss(p, t, under=1, over=1, power=3)),
    ("under", ValueError, lambda p, t: regression_loss(p, t, under=float("inf"), over=1)),
    ("reduction", ValueError, lambda p, t: regression_loss(p, t, under=1, over=1, reduction="avg")),
    ("quantiles", ValueError, lambda p, t: pinball_loss(p, t[:, 0], [0.0, 0.5, 0.9])),
    ("quantiles", ValueError, lambda p, t: pinball_loss(p, t[:, 0], [0.9, 0.5, 0.1])),
    ("quantiles", ValueError, lambda p, t: pinball_loss(p, t[:, 0], [0.5, 0.5, 0.9])),
    ("quantiles", ValueError, lambda p, t: pinball_loss(p, t[:, 0], [0.1, 0.5, 1.2])),
    ("quantiles", ValueError, lambda p, t: pinball_loss(p, t[:, 0], [0.1, 0.9])),
    ("target", ValueError, lambda p, t: pinball_loss(p, t, [0.1, 0.5, 0.9])),
    ("over_penalty", ValueError, lambda p, t: asymmetric_loss(p, t, over_penalty=-2.0)),
    ("under_penalty", TypeError, lambda p, t: asymmetric_loss(p, t, under_penalty="high")),
    ("target", ValueError, lambda p, t: asymmetric_loss(p, t[:4])),
]


@pytest.mark.parametrize("name,exc,call", BAD_CALLS, ids=[f"{i}-{c[0]}" for i, c in enumerate(BAD_CALLS)])
def test_bad_input_names_the_argument(name, exc, call):
    p, t = torch.randn(8, 3), torch.randn(8, 3)
    with pytest.raises(exc, match=name):
        call(p, t)


TRITON_BACKENDS = BACKENDS[1:]  # the two layouts are Triton kernels: interpreted here, compiled with a GPU


TILED = LossLaunchConfig(flat_layout=False)  # the shipped blocks, with the tiled kernel at every K


@pytest.fixture
def tiled_layout(monkeypatch):
    """Records the tiled kernel's launches (the tests pass ``TILED``, so every K takes it)."""
    from aam_kernels.regression_loss import triton as rt

    return record_grids(monkeypatch, rt._regression_loss_fwd_kernel)


@pytest.mark.parametrize("backend,device", TRITON_BACKENDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("n,k,weighted", [(1, 1, True), (63, 3, True), (4099, 7, False), (700, 8, True)], ids=str)
def test_tiled_layout_matches_reference(tiled_layout, backend, device, reduction, n, k, weighted):
    """The kernel that K > FLAT_MAX_K takes, at the widths the flat one usually takes."""
    pred, target, weight = make_inputs(n, k, torch.float32, device, seed=n + k, weighted=weighted)
    (loss, means, gp, gt), (rloss, rmeans, rgp, rgt) = run_both(backend, pred, target, weight, reduction, mixed_params(k), launch=TILED)
    assert tiled_layout, "the tiled kernel did not run"
    scale = max(1.0, n * k / 64) if reduction == "sum" else 4.0
    assert_close(loss, rloss, torch.float32, scale)
    assert_close(means, rmeans, torch.float32, 4.0)
    assert_close(gp, rgp, torch.float32)
    assert_close(gt, rgt, torch.float32)


@pytest.mark.parametrize("backend,device", TRITON_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.float64], ids=str)
def test_tiled_layout_other_precisions(tiled_layout, backend, device, dtype):
    pred, target, weight = make_inputs(257, 3, dtype, device, seed=6)
    (loss, _, gp, _), (rloss, _, rgp, _) = run_both(backend, pred, target, weight, "mean", mixed_params(3), launch=TILED)
    assert tiled_layout and loss.dtype == dtype and gp.dtype == dtype
    assert_close(loss, rloss, dtype)
    assert_close(gp, rgp, dtype)


@pytest.mark.parametrize("backend,device", TRITON_BACKENDS)
def test_tiled_layout_strided_inputs_and_complete_writes(tiled_layout, backend, device):
    base = torch.randn(7, 50, device=device)
    pred, target = base.t()[::2], torch.randn(25, 1, device=device).expand(25, 7)
    (loss, means, gp, _), (rloss, rmeans, rgp, _) = run_both(backend, pred, target, None, "mean", mixed_params(7), launch=TILED)
    assert_close(loss, rloss, torch.float32, 4.0)
    assert_close(gp, rgp, torch.float32)
    pred, target, weight = make_inputs(1023, 5, torch.float32, device, seed=8, nan_frac=0.0)
    with poison_outputs():
        first = run_both(backend, pred, target, weight, "none", mixed_params(5), launch=TILED)[0]
    second = run_both(backend, pred, target, weight, "none", mixed_params(5), launch=TILED)[0]
    assert tiled_layout and not torch.isnan(first[0]).any() and not torch.isnan(first[2]).any()
    assert all(torch.equal(a, b) for a, b in zip(first, second))


@pytest.mark.parametrize("backend,device", TRITON_BACKENDS)
@pytest.mark.parametrize("flat", [True, False], ids=["flat", "tiled"])
def test_last_program_reduces_many_partials(backend, device, flat):
    """Small blocks, so that the last program sums many partial rows in several steps, for every
    reduction; and the loss equals what the per-column sums say."""
    launch = LossLaunchConfig(block=64, flat_layout=flat, finish_tile=16)
    pred, target, weight = make_inputs(1000, 3, torch.float32, device, seed=4)
    for reduction in ("mean", "sum", "none"):
        (loss, means, gp, _), (rloss, rmeans, rgp, _) = run_both(
            backend, pred, target, weight, reduction, mixed_params(3), launch=launch
        )
        assert_close(loss, rloss, torch.float32, 16.0 if reduction == "sum" else 4.0)
        assert_close(means, rmeans, torch.float32, 4.0)
        assert_close(gp, rgp, torch.float32)


@pytest.mark.parametrize("backend,device", TRITON_BACKENDS)
def test_layout_follows_the_column_count(monkeypatch, backend, device):
    """K <= FLAT_MAX_K takes the flat kernel whatever the strides; wider K the tiled one (the shipped
    choice, ``launch_config``)."""
    assert launch_config(FLAT_MAX_K).flat_layout and not launch_config(FLAT_MAX_K + 1).flat_layout
    from aam_kernels.regression_loss import triton as rt

    flat = record_grids(monkeypatch, rt._regression_loss_flat_kernel)
    tiled = record_grids(monkeypatch, rt._regression_loss_fwd_kernel)
    base = torch.randn(7, 50, device=device)
    with use_backend(backend):
        regression_loss(base.t()[::2], torch.randn(25, 1, device=device).expand(25, 7), under=1.0, over=1.0)
        assert len(flat) == 1 and not tiled
        k = FLAT_MAX_K + 1
        regression_loss(torch.randn(9, k, device=device), torch.randn(9, k, device=device), under=1.0, over=1.0)
        assert len(flat) == 1 and len(tiled) == 1


def test_parameter_tensors_changed_in_place_are_checked_and_used_again():
    """[K] fp32 parameter tensors are reused across calls without re-checking; an in-place change
    must still be validated and must change the loss."""
    p, t = torch.randn(8, 3), torch.randn(8, 3)
    under, over = torch.tensor([0.1, 0.5, 0.9]), torch.tensor([0.9, 0.5, 0.1])
    first = regression_loss(p, t, under=under, over=over)
    assert torch.equal(regression_loss(p, t, under=under, over=over), first)
    under.mul_(2.0)
    want = regression_loss_reference(p.double(), t.double(), under=[0.2, 1.0, 1.8], over=[0.9, 0.5, 0.1])
    torch.testing.assert_close(regression_loss(p, t, under=under, over=over).double(), want, rtol=1e-6, atol=1e-7)
    under[1] = -1.0
    with pytest.raises(ValueError, match="under"):
        regression_loss(p, t, under=under, over=over)


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA")
def test_device_mismatch_is_reported():
    with pytest.raises(ValueError, match="target"):
        regression_loss(torch.randn(4, 2, device="cuda"), torch.randn(4, 2), under=1, over=1)


def test_forced_backend_that_cannot_run_says_why():
    if HAS_CUDA:
        pytest.skip("the triton backend can run here")
    with use_backend("triton"), pytest.raises(RuntimeError, match="CUDA"):
        regression_loss(torch.randn(4, 2), torch.randn(4, 2), under=1, over=1)
    with pytest.raises(ValueError, match="use_backend"):
        with use_backend("cuda"):
            pass


def test_environment_variable_sets_default(monkeypatch):
    from aam_kernels.backend import ENV_VAR, resolve

    monkeypatch.setenv(ENV_VAR, "interpret")
    assert resolve(torch.zeros(1)) == "interpret"
    with use_backend("torch"):
        assert resolve(torch.zeros(1)) == "torch"
    monkeypatch.setenv(ENV_VAR, "gpu")
    with pytest.raises(ValueError, match=ENV_VAR):
        resolve(torch.zeros(1))


@pytest.mark.skipif(not HAS_TRITON or HAS_CUDA, reason="needs triton; with CUDA the GPU tests run the compiled kernel")
@pytest.mark.parametrize("dtype", ["bf16", "fp32"])
def test_kernel_compiles_for_cuda_without_gpu(dtype, monkeypatch):
    """Compile with the block sizes a GPU run uses (``launch_config``: flat, or tiled in BLOCK_K = 4
    and 64 columns), after interpreted runs."""
    monkeypatch.setenv("TRITON_DEFAULT_FP_FUSION", "1")
    import triton.language as tl

    from aam_kernels.regression_loss import triton as rt

    pointers = {p: "*" + dtype for p in ("p_pred", "p_target", "p_weight", "p_elem", "p_grad", "p_out")}
    pointers |= {p: "*fp32" for p in ("p_under", "p_over", "p_delta", "p_power", "p_parts", "p_stats")}
    pointers |= {"p_ticket": "*i32", "P": "i32"}
    tiled, flat = launch_config(FLAT_MAX_K + 1), launch_config(1)
    assert not tiled.flat_layout and flat.flat_layout
    for reduce, bk in ((0, 4), (2, MAX_BLOCK_K)):
        ints = {"N": "i32", "K": "i32"} | {s: "i64" for s in ("s_pn", "s_pk", "s_tn", "s_tk", "s_w")}
        consts = dict(HAS_WEIGHT=True, STORE_ELEM=True, STORE_GRAD=True, ACC=tl.float32, REDUCE=reduce,
                      BLOCK_N=tiled.block // bk, BLOCK_K=bk, BP=tiled.finish_tile // bk)  # fmt: skip
        compile_for_sm90(rt._regression_loss_fwd_kernel, pointers | ints, consts, num_warps=tiled.num_warps)
    flat_ints = {"NK": "i64"} | {s: "i64" for s in ("s_pn", "s_pk", "s_tn", "s_tk", "s_w")}
    for k, contiguous, reduce in ((1, True, 2), (3, True, 1), (3, False, 0)):
        flat_consts = dict(HAS_WEIGHT=True, STORE_ELEM=True, STORE_GRAD=True, ACC=tl.float32, REDUCE=reduce,
                           K=k, KP=next_pow2(k), BP=flat.finish_tile // next_pow2(k), PRED_FLAT=contiguous,
                           TARGET_FLAT=contiguous, BLOCK=flat.block)  # fmt: skip
        compile_for_sm90(rt._regression_loss_flat_kernel, pointers | flat_ints, flat_consts, num_warps=flat.num_warps)
