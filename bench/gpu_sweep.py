"""Block-size sweep of the Triton kernels on a CUDA GPU, with a correctness check at every shape.

For each kernel configuration and shape: the relative error of the fused op's output and gradients
against the reference computed in fp32 (MoE) or fp64 (loss), then the median forward+backward time
(``triton.testing.do_bench``, CUDA events). The first configuration of each list is the shipped one.
The kernel tests cover small shapes only; this also checks the scale shapes the benchmarks time.

    python -m bench.gpu_sweep [--budget-s 60]
    python -m bench.gpu_sweep --profile      (per-kernel GPU times of moe_mlp and regression_loss)

Prints one line per (shape, configuration) as it goes, so a run stopped at its time limit keeps what
finished. Needs a CUDA GPU; imports only torch, triton and aam_kernels.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
import time

import torch
import triton
from triton.testing import do_bench, do_bench_cudagraph

from aam_kernels import moe_mlp, regression_loss, use_backend
from aam_kernels.moe.launch import launch_config as moe_launch_config
from aam_kernels.moe.op import moe_mlp_launched
from aam_kernels.moe.reference import moe_mlp_reference
from aam_kernels.regression_loss import triton as loss_triton
from aam_kernels.regression_loss.checks import ColumnParams
from aam_kernels.regression_loss.launch import LossLaunchConfig
from aam_kernels.regression_loss.op import regression_loss_launched
from aam_kernels.regression_loss.reference import regression_loss_reference

# (BM, BD, BH, warps, chunked routing); None = the shipped configuration (``launch_config``), run first.
# BD or BH = 256 exceed an H200's shared memory at D = 1024, H = 2048.
MOE_CONFIGS = [None, (64, 64, 64, 4, False), (64, 64, 64, 4, True), (128, 128, 128, 8, True), (64, 128, 64, 8, True)]
# (T, D, H, O, E, k, dtype): the transformer-sized shape first (GPU-bound; the AAM ones are host-bound)
MOE_SHAPES = [
    (32768, 1024, 2048, 3, 8, 2, torch.bfloat16),
    (65536, 128, 64, 3, 8, 2, torch.bfloat16),
    (4096, 128, 64, 3, 8, 2, torch.float32),
]
# the shipped configuration first (``launch_config`` for K <= 8), then the tiled layout and other blocks
LOSS_CONFIGS = [LossLaunchConfig(), LossLaunchConfig(flat_layout=False), LossLaunchConfig(block=4096, num_warps=8),
                LossLaunchConfig(block=1024)]  # fmt: skip
# (N, K, dtype, target broadcast over K as pinball_loss passes it): the goal shape (16M x 1
# fp32), the same less one element (no 16-byte alignment of N), quantile-shaped K = 3 in fp32 and bf16
LOSS_SHAPES = [
    (16_777_216, 1, torch.float32, False), (16_777_215, 1, torch.float32, False),
    (5_592_405, 3, torch.float32, False), (5_592_405, 3, torch.float32, True), (22_369_621, 3, torch.bfloat16, False),
]  # fmt: skip


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.detach().double(), ref.detach().double()
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30))


def moe_inputs(T, D, H, O, E, dtype, gen):
    def r(shape, scale, dt=dtype):
        return (torch.randn(shape, generator=gen, device="cuda") * scale).to(dt).requires_grad_(True)

    return [r((T, D), 1.0), r((T, E), 1.0, torch.float32), r((E, D, H), D**-0.5), r((E, H), 0.1),
            r((E, H, O), H**-0.5), r((E, O), 0.1)]  # fmt: skip


def sweep_moe(deadline: float) -> None:
    gen = torch.Generator(device="cuda").manual_seed(0)
    for T, D, H, O, E, k, dtype in MOE_SHAPES:
        inputs = moe_inputs(T, D, H, O, E, dtype, gen)
        gy = torch.randn((T, O), generator=gen, device="cuda").to(dtype)
        ref_in = [t.detach().float().requires_grad_(True) for t in inputs]
        ref_y = moe_mlp_reference(*ref_in, top_k=k)[0]
        ref = [ref_y, *torch.autograd.grad(ref_y, ref_in, gy.float())]
        flops = 3 * 2 * T * k * (D * H + H * O)
        shipped = moe_launch_config("triton", dtype)
        for config in MOE_CONFIGS:
            if time.monotonic() > deadline:
                print("moe: time budget spent, stopping", flush=True)
                return
            cfg = shipped
            if config is not None:
                bm, bd, bh, warps, chunks = config
                cfg = dataclasses.replace(shipped, bm=bm, bd=bd, bh=bh, num_warps=warps, route_chunks_from=0 if chunks else T + 1)
            run = functools.partial(moe_mlp_launched, cfg)
            chunks = cfg.route_chunks(T)
            try:
                with use_backend("triton"):
                    y = run(*inputs, top_k=k)[0]
                    grads = torch.autograd.grad(y, inputs, gy)
                    err = max(rel_err(a, b) for a, b in zip([y, *grads], ref))
                    ms = do_bench(lambda: torch.autograd.grad(run(*inputs, top_k=k)[0], inputs, gy),
                                  warmup=25, rep=100, return_mode="median")  # fmt: skip
                print(f"moe T={T} D={D} H={H} E={E} k={k} {str(dtype)[6:]} BM={cfg.bm} BD={cfg.bd} BH={cfg.bh} "
                      f"warps={cfg.num_warps} route_chunks={chunks}{' (shipped)' if config is None else ''}: "
                      f"fwd+bwd {ms:.3f} ms, {flops / ms / 1e9:.1f} TFLOP/s, max rel err {err:.2e}", flush=True)  # fmt: skip
            except Exception as exc:  # a configuration that does not compile or fit is a result too
                print(f"moe T={T} D={D} H={H} BM={cfg.bm} BD={cfg.bd} BH={cfg.bh} warps={cfg.num_warps} "
                      f"route_chunks={chunks}: failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
                      flush=True)  # fmt: skip
        del inputs, ref_in, ref, ref_y
        torch.cuda.empty_cache()


def sweep_loss(deadline: float) -> None:
    gen = torch.Generator(device="cuda").manual_seed(1)
    for n, k, dtype, broadcast in LOSS_SHAPES:
        pred = torch.randn((n, k), generator=gen, device="cuda").to(dtype).requires_grad_(True)
        target = torch.randn((n, 1 if broadcast else k), generator=gen, device="cuda").to(dtype).expand(n, k)
        taus = [(0.1, 0.5, 0.9)[i % 3] for i in range(k)]
        p = dict(under=torch.tensor(taus, device="cuda"), over=torch.tensor([1 - t for t in taus], device="cuda"),
                 delta=torch.zeros(k, device="cuda"), power=torch.ones(k, device="cuda"))  # fmt: skip
        ref_pred = pred.detach().double().requires_grad_(True)
        ref_loss = regression_loss_reference(ref_pred, target.double(), **{a: v.double() for a, v in p.items()})
        ref = [ref_loss, torch.autograd.grad(ref_loss, ref_pred)[0]]
        bytes_moved = (3 - broadcast + broadcast / k) * n * k * pred.element_size()  # read pred, target; write d pred
        params = ColumnParams(p["under"], p["over"], p["delta"], p["power"])
        for launch in LOSS_CONFIGS:
            if time.monotonic() > deadline:
                print("loss: time budget spent, stopping", flush=True)
                return
            run = functools.partial(regression_loss_launched, launch)
            label = f"per_program={launch.block} warps={launch.num_warps} flat={launch.flat_layout}"
            try:
                with use_backend("triton"):
                    loss = run(pred, target, **p)
                    err = max(rel_err(a, b) for a, b in zip([loss, torch.autograd.grad(loss, pred)[0]], ref))
                    ms = do_bench(lambda: torch.autograd.grad(run(pred, target, **p), pred),
                                  warmup=25, rep=100, return_mode="median")  # fmt: skip
                # The kernel alone (loss, gradient and reduced loss of one launch), replayed from a CUDA
                # graph so that the host's launch cost stays out: what the kernel itself moves per second.
                kernel_ms = do_bench_cudagraph(lambda: loss_triton.forward(
                    pred.detach(), target, None, params, "mean", True, "triton", launch), rep=100, return_mode="median")  # fmt: skip
                print(f"loss N={n} K={k} {str(dtype)[6:]}{' target [N, 1]' if broadcast else ''} {label}: fwd+bwd "
                      f"{ms:.3f} ms, {bytes_moved / ms / 1e6:.0f} GB/s; kernel alone {kernel_ms * 1e3:.1f} us, "
                      f"{bytes_moved / kernel_ms / 1e6:.0f} GB/s; max rel err {err:.2e}", flush=True)  # fmt: skip
            except Exception as exc:
                print(f"loss N={n} K={k} {label}: failed: "
                      f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}", flush=True)  # fmt: skip
        del pred, target, ref_pred, ref, ref_loss
        torch.cuda.empty_cache()


# (T, D, H, O, dtype) of the per-kernel profile: the MoE goal shape and the transformer-sized one
PROFILE_SHAPES = [(4096, 128, 64, 3, torch.float32), (32768, 1024, 2048, 3, torch.bfloat16)]
# (N, K) of the loss profile, fp32 pinball: the goal shape and a quantile-shaped one
PROFILE_LOSS_SHAPES = [(16_777_216, 1), (5_592_405, 3)]


def _profiled(label: str, step, calls: int = 5) -> None:
    """GPU time per kernel of ``calls`` calls of ``step`` (torch.profiler, CUDA activity), and the wall
    time per call: which kernel to work on, and whether the host dominates."""
    from torch.profiler import ProfilerActivity, profile

    step()
    torch.cuda.synchronize()
    started = time.perf_counter()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            step()
        torch.cuda.synchronize()
    host_ms = (time.perf_counter() - started) * 1e3 / calls
    print(f"{label}: {host_ms:.3f} ms per call (wall, profiled)", flush=True)
    # device_time_total in recent PyTorch, cuda_time_total before (times in microseconds)
    gpu_us = lambda e: getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0)  # noqa: E731
    for event in sorted(prof.key_averages(), key=gpu_us, reverse=True)[:8]:
        print(f"  {event.key[:60]:60s} {gpu_us(event) / calls / 1e3:8.3f} ms per call", flush=True)


def profile_kernels() -> None:
    """Per-kernel GPU times of moe_mlp and regression_loss forward+backward at the profile shapes."""
    gen = torch.Generator(device="cuda").manual_seed(2)
    for T, D, H, O, dtype in PROFILE_SHAPES:
        inputs = moe_inputs(T, D, H, O, 8, dtype, gen)
        gy = torch.randn((T, O), generator=gen, device="cuda").to(dtype)

        def moe_step():
            with use_backend("triton"):
                return torch.autograd.grad(moe_mlp(*inputs, top_k=2)[0], inputs, gy)

        _profiled(f"moe profile T={T} D={D} H={H} {str(dtype)[6:]}", moe_step)
        del inputs, gy
        torch.cuda.empty_cache()
    for n, k in PROFILE_LOSS_SHAPES:
        pred = torch.randn((n, k), generator=gen, device="cuda").requires_grad_(True)
        target = torch.randn((n, k), generator=gen, device="cuda")
        under = torch.tensor([(0.1, 0.5, 0.9)[i % 3] for i in range(k)], device="cuda")
        over = 1 - under

        def loss_step():
            with use_backend("triton"):
                return torch.autograd.grad(regression_loss(pred, target, under=under, over=over), pred)

        _profiled(f"loss profile N={n} K={k} float32 pinball", loss_step)
        del pred, target
        torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=60.0, help="stop starting new runs after this long")
    parser.add_argument("--profile", action="store_true", help="only the per-kernel profiles of both ops")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("error: no CUDA device is visible to PyTorch; the sweep needs one", file=sys.stderr)
        return 2
    print(f"device {torch.cuda.get_device_name()}, torch {torch.__version__}, triton {triton.__version__}", flush=True)
    if args.profile:
        profile_kernels()
        return 0
    start = time.monotonic()
    sweep_loss(start + args.budget_s * 0.4)
    sweep_moe(start + args.budget_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
