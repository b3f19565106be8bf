"""The default model's training step on a CUDA GPU, bf16 autocast: eager, torch.compile, CUDA graphs.

    python -m bench.gpu_step [--batches 8] [--steps 20] [--json out.json]

On the simulated default study (``bench/step_setup.py``: 1,024 ASVs x 150 bp per sample, batch 8), one
step = forward, Huber loss, backward, clipping, AdamW (``make_step``).
- ``eager``: the batches in turn (their shapes differ, as in an epoch);
- ``compile``: ``torch.compile(model, dynamic=True)``, the same batches in turn (compiled during the
  untimed first pass over them);
- ``cuda-graph``: ``torch.compile(model, mode="reduce-overhead")`` on the first batch repeated: CUDA graphs
  replay only for shapes they were recorded with, so this is the step with every launch recorded, not an
  epoch over batches of varying shapes.
Prints one line per mode as it ends (median ms per step, samples/s) and rewrites the ``--json`` file after
each mode, so a run cut by a time limit keeps the modes that finished.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from bench.step_setup import make_step, simulated_default_batches


def time_steps(step, n: int) -> list[float]:
    times = []
    for _ in range(n):
        torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per mode")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench.gpu_step needs a CUDA GPU")
    from aam.models import AAMRegressor

    batches, config = simulated_default_batches(n=args.batches)
    batches = [b.to("cuda") for b in batches]
    modes = {
        "eager": (lambda m: m, batches),
        "compile": (lambda m: torch.compile(m, dynamic=True), batches),
        "cuda-graph": (lambda m: torch.compile(m, mode="reduce-overhead"), batches[:1]),
    }
    results = {"device": torch.cuda.get_device_name()}
    for name, (wrap, mode_batches) in modes.items():
        torch.manual_seed(0)
        model = AAMRegressor(config).cuda()
        step = make_step(wrap(model), mode_batches, autocast_dtype=torch.bfloat16)
        start = time.perf_counter()
        time_steps(step, 2 * len(mode_batches) + 2)  # compilation, recording, allocator: untimed
        warm = time.perf_counter() - start
        median = statistics.median(time_steps(step, args.steps))
        samples = statistics.mean(len(b) for b in mode_batches)
        results[name] = {"median_step_s": median, "samples_per_s": samples / median, "warmup_s": warm,
                         "batches": len(mode_batches)}
        print(f"{name}: {1e3 * median:.2f} ms per step, {samples / median:.0f} samples/s "
              f"(warm-up {warm:.0f} s, {len(mode_batches)} batch(es))", flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
