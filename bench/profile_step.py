"""Where one training step's time goes: `torch.profiler` over forward + loss + backward + AdamW step.

Models (``bench/step_setup.py``): ``udca`` = the published model size (embedding 128, 2 + 2 layers, 150 bp, up
to 1,024 ASVs per sample) on the first batch of 8 samples of the real udca study (an error names the folder
when it is absent); ``udca-default`` = ``ModelConfig()`` on the same batch; ``demo`` = the `aam demo` model and
data (simulated, 16 samples per batch).

    OMP_NUM_THREADS=1 python -m bench.profile_step --model udca --threads 1
    python -m bench.profile_step --model demo --threads 1 --rows 25
    OMP_NUM_THREADS=1 python -m bench.profile_step --model udca --threads 1 --precision bf16

One untimed warm-up step, then ``--steps`` profiled steps; prints the ops by self CPU time (summed over
the profiled steps and divided by their number) and the wall time per step.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from bench.step_setup import PRECISION_DTYPES, STEP_SETUPS, build_step


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(STEP_SETUPS), default="udca")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--rows", type=int, default=30, help="ops listed")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model first")
    parser.add_argument("--precision", choices=sorted(PRECISION_DTYPES), default="fp32",
                        help="bf16: the forward under bf16 autocast, as --precision bf16 trains")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    step, batch, _ = build_step(args.model, compile_model=args.compile,
                                autocast_dtype=PRECISION_DTYPES[args.precision])
    step()  # warm-up: allocator, oneDNN primitives, compilation
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    wall = (time.perf_counter() - start) / args.steps
    print(f"{args.model}: {len(batch)} samples, {batch.asv_tokens.shape[0]} distinct ASVs x "
          f"{batch.asv_tokens.shape[1]} tokens, {batch.asv_mask.shape[1]} ASV slots per sample "
          f"({int(batch.asv_mask.sum())} real); {torch.get_num_threads()} thread(s), {args.precision}")
    print(f"wall time per step (profiled, so a little slower than plain): {wall:.3f} s")
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows)
    print(table)


if __name__ == "__main__":
    main()
