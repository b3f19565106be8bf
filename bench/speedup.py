"""Side-by-side speed-up of this checkout's training step over an older commit, measured in one run.

    python -m bench.speedup --base 3c442fd --threads 1 2 --rounds 3 --demo-rounds 2
    python -m bench.speedup --base 3c442fd --threads 1 2 --rounds 3 --precision fp32 bf16 --demo-rounds 0

1. The base commit is exported with `git archive` into a temporary folder (the repository is not touched).
2. Per thread count, step servers (``bench/step_setup.py``: one with the base commit's ``aam`` in fp32, one
   with this checkout's per ``--precision``: fp32, or bf16 = the forward under bf16 autocast as
   ``--precision bf16`` runs it) build the udca default model with the same seed on the same first udca
   batch; each round asks the base, then each new one, for ``--steps`` training steps (forward, Huber loss,
   backward, clipping, AdamW). Alternating keeps a shared, noisy CPU fair to all; medians are reported.
3. The floors: the step's Linear and attention FLOPs (``bench.step_flops``) at the fp32 matmul rate, and at
   the bf16 rate, measured in the same run with the same thread count (a 1,024^3 `torch.mm`, median of 5);
   "mixed" = the Linear FLOPs at the bf16 rate plus the attention FLOPs at the fp32 rate, the floor of a
   bf16 step whose attention stays fp32.
4. ``--demo-rounds``: the whole `python -m aam demo --no-progress` command on one core (``taskset -c 0``,
   one thread), base then new, each round; wall time and the validation R^2 of both targets.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "bench" / "step_setup.py"


def export_commit(commit: str, into: Path) -> Path:
    """The tree of `commit` under `into`/<commit> (git archive: no worktree, no change to the repository)."""
    target = into / commit
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def _env(tree: Path, threads: int) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


class StepServer:
    """`bench/step_setup.py` as a child process with `tree`'s aam on its path."""

    def __init__(self, tree: Path, setup: str, threads: int, precision: str = "fp32"):
        self.proc = subprocess.Popen([sys.executable, str(SERVER), setup, "1", precision], cwd=tree,
                                     env=_env(tree, threads),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError(f"step server in {tree} failed to start")

    def steps(self, n: int) -> list[float]:
        self.proc.stdin.write(f"step {n}\n")
        self.proc.stdin.flush()
        return [float(t) for t in self.proc.stdout.readline().split()]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def matmul_rate(threads: int, n: int = 1024, repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """FLOP/s of an n^3 torch.mm in `dtype` at `threads` threads, median of `repeats`."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    torch.set_num_threads(previous)
    return 2 * n**3 / statistics.median(times)


def compare_steps(base: Path, threads: int, rounds: int, steps: int, precisions: list[str]) -> dict:
    """Servers "base" and "new" (fp32) or "new-<precision>" per precision, alternating; medians, floors."""
    from bench.step_flops import step_flops
    from bench.step_setup import UDCA_BATCH, setup_batches

    batches, config = setup_batches("udca", 1)
    flops = step_flops(batches[0], config)
    servers = {"base": StepServer(base, "udca", threads)}
    for precision in precisions:
        servers["new" if precision == "fp32" else f"new-{precision}"] = StepServer(ROOT, "udca", threads, precision)
    times: dict[str, list[float]] = {name: [] for name in servers}
    rates: dict[str, list[float]] = {"fp32": [], "bf16": []}
    try:
        for _ in range(rounds):
            for name, server in servers.items():
                times[name] += server.steps(steps)
            rates["fp32"].append(matmul_rate(threads))
            rates["bf16"].append(matmul_rate(threads, dtype=torch.bfloat16))
    finally:
        for server in servers.values():
            server.close()
    median = {name: statistics.median(t) for name, t in times.items()}
    rate = {dtype: statistics.median(r) for dtype, r in rates.items()}
    floors = {"fp32": flops["total"] / rate["fp32"], "bf16": flops["total"] / rate["bf16"],
              "mixed": flops["linear"] / rate["bf16"] + flops["attention"] / rate["fp32"]}
    return {
        "threads": threads, "samples_per_step": UDCA_BATCH, "step_s": median, "all_step_s": times,
        "samples_per_s": {name: UDCA_BATCH / t for name, t in median.items()},
        "speedup": {name: median["base"] / t for name, t in median.items() if name != "base"},
        "flops_per_step": flops["total"], "linear_flops_per_step": flops["linear"],
        "attention_flops_per_step": flops["attention"], "matmul_flops_per_s": rate, "floor_s": floors,
        "fraction_of_floor": {floor: {name: f / t for name, t in median.items()} for floor, f in floors.items()},
    }


def time_demo(tree: Path, out: Path) -> dict:
    """Wall time of `python -m aam demo --no-progress` on core 0, one thread; validation R^2 per target."""
    start = time.perf_counter()
    subprocess.run(["taskset", "-c", "0", sys.executable, "-m", "aam", "demo", "--no-progress", "--overwrite",
                    "--output-dir", str(out)], cwd=tree, env=_env(tree, 1), check=True, capture_output=True)
    wall = time.perf_counter() - start
    metrics = json.loads((out / "run" / "metrics.json").read_text())
    return {"wall_s": wall, "r2": {t: m["r2"] for t, m in metrics.items() if isinstance(m, dict) and "r2" in m}}


def compare_demo(base: Path, rounds: int, scratch: Path) -> dict:
    runs: dict[str, list[dict]] = {"base": [], "new": []}
    for r in range(rounds):
        for name, tree in (("base", base), ("new", ROOT)):
            runs[name].append(time_demo(tree, scratch / f"demo-{name}-{r}"))
    median = {name: statistics.median(run["wall_s"] for run in rs) for name, rs in runs.items()}
    return {"runs": runs, "wall_s": median, "speedup": median["base"] / median["new"]}


def print_row(row: dict) -> None:
    rate, floor, share = row["matmul_flops_per_s"], row["floor_s"], row["fraction_of_floor"]
    print(f"udca step, {row['threads']} thread(s), {row['flops_per_step'] / 1e9:.0f} GFLOP; 1,024^3 mm: fp32"
          f" {rate['fp32'] / 1e9:.0f} GFLOP/s, bf16 {rate['bf16'] / 1e9:.0f} GFLOP/s; floors: fp32"
          f" {floor['fp32']:.2f} s, bf16 {floor['bf16']:.2f} s, mixed (attention fp32) {floor['mixed']:.2f} s",
          flush=True)
    for name, t in row["step_s"].items():
        speedup = f" -> {row['speedup'][name]:.2f}x base" if name in row["speedup"] else ""
        print(f"  {name}: {t:.2f} s{speedup}; of the floor: fp32 {share['fp32'][name]:.0%}, bf16"
              f" {share['bf16'][name]:.0%}, mixed {share['mixed'][name]:.0%}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="3c442fd", help="commit to compare with")
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per thread count")
    parser.add_argument("--steps", type=int, default=1, help="steps per server per round")
    parser.add_argument("--precision", nargs="+", choices=("fp32", "bf16"), default=["fp32"],
                        help="precisions of this checkout's step (the base runs fp32)")
    parser.add_argument("--demo-rounds", type=int, default=1, help="0 = skip the demo comparison")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    result = {"base": args.base, "new": commit, "steps": [], "demo": None}
    with tempfile.TemporaryDirectory() as scratch:
        base = export_commit(args.base, Path(scratch))
        for threads in args.threads:
            row = compare_steps(base, threads, args.rounds, args.steps, args.precision)
            result["steps"].append(row)
            print_row(row)
        if args.demo_rounds:
            demo = compare_demo(base, args.demo_rounds, Path(scratch))
            result["demo"] = demo
            r2 = {name: runs[-1]["r2"] for name, runs in demo["runs"].items()}
            print(f"aam demo (taskset -c 0): base {demo['wall_s']['base']:.1f} s, new {demo['wall_s']['new']:.1f} s "
                  f"-> {demo['speedup']:.2f}x; validation R^2 base {r2['base']}, new {r2['new']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
