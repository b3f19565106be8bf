"""Side-by-side speed-up of this checkout's training step over an older commit, measured in one run.

    python -m bench.speedup --base 3c442fd --threads 1 2 --rounds 3 --demo-rounds 2
    python -m bench.speedup --base 3c442fd --threads 1 2 --rounds 3 --precision fp32 bf16 --demo-rounds 0
    python -m bench.speedup --base 3c442fd --model default --threads 1 --rounds 5 --demo-rounds 0
    python -m bench.speedup --base 3c442fd --threads 1 --rounds 0 --demo-rounds 2   # the demo only

1. The base commit is exported with `git archive` into a temporary folder (the repository is not touched).
2. Per thread count, step servers (``bench/step_setup.py``: one with the base commit's ``aam`` in fp32, one
   with this checkout's per ``--precision``: fp32, or bf16 = the forward under bf16 autocast as
   ``--precision bf16`` runs it) build a model with the same seed on the same first udca batch; each round
   asks the base, then each new one, for ``--steps`` training steps (forward, Huber loss, backward, clipping,
   AdamW). Alternating keeps a shared, noisy CPU fair to all; medians are reported. ``--model published``:
   the published model size on both sides (the same model, so the same arithmetic); ``--model default``:
   each side's own ``ModelConfig()`` (two different models when the defaults changed in between: the speed a
   user gets without setting any model flag), compared per sample. ``--rounds 0`` skips the steps.
3. The floors of each side: its model's Linear, attention and pooling FLOPs on the batch
   (``bench.step_flops``) at the fp32 matmul rate, and at the bf16 rate, measured in the same run with the
   same thread count (a 1,024^3 `torch.mm`, median of 5); "mixed" = the Linear FLOPs at the bf16 rate plus
   the rest at the fp32 rate, the floor of a bf16 step whose attention and poolings stay fp32.
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
from types import SimpleNamespace

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
        self.model = SimpleNamespace(**json.loads(line.removeprefix("ready")))  # the sizes step_flops reads

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


SETUPS = {"published": "udca", "default": "udca-default"}


def compare_steps(base: Path, threads: int, rounds: int, steps: int, model: str, precisions: list[str]) -> dict:
    """Servers "base" and "new" (fp32) or "new-<precision>" per precision, alternating; medians, floors."""
    from bench.step_flops import step_flops
    from bench.step_setup import UDCA_BATCH, load_udca_batches

    batch = load_udca_batches(n=1)[0]
    setup = SETUPS[model]
    servers = {"base": StepServer(base, setup, threads)}
    for precision in precisions:
        servers["new" if precision == "fp32" else f"new-{precision}"] = StepServer(ROOT, setup, threads, precision)
    flops = {name: step_flops(batch, server.model) for name, server in servers.items()}
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
    floors = {"fp32": {name: f["total"] / rate["fp32"] for name, f in flops.items()},
              "bf16": {name: f["total"] / rate["bf16"] for name, f in flops.items()},
              "mixed": {name: f["linear"] / rate["bf16"] + (f["total"] - f["linear"]) / rate["fp32"]
                        for name, f in flops.items()}}
    return {
        "model": model, "models": {name: vars(server.model) for name, server in servers.items()},
        "threads": threads, "samples_per_step": UDCA_BATCH, "step_s": median, "all_step_s": times,
        "samples_per_s": {name: UDCA_BATCH / t for name, t in median.items()},
        "speedup": {name: median["base"] / t for name, t in median.items() if name != "base"},
        "flops_per_step": flops, "matmul_flops_per_s": rate, "floor_s": floors,
        "fraction_of_floor": {floor: {name: f[name] / t for name, t in median.items()} for floor, f in floors.items()},
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
    models = "" if row["model"] == "published" else " (two different models: each commit's ModelConfig())"
    print(f"udca step, {row['model']} model{models}, {row['threads']} thread(s); 1,024^3 mm: fp32"
          f" {rate['fp32'] / 1e9:.0f} GFLOP/s, bf16 {rate['bf16'] / 1e9:.0f} GFLOP/s", flush=True)
    for name, t in row["step_s"].items():
        speedup = f" -> {row['speedup'][name]:.2f}x base" if name in row["speedup"] else ""
        print(f"  {name}: {t:.3f} s{speedup}; {row['flops_per_step'][name]['total'] / 1e9:.2f} GFLOP; floors:"
              f" fp32 {floor['fp32'][name]:.3f} s ({share['fp32'][name]:.0%}), bf16 {floor['bf16'][name]:.3f} s"
              f" ({share['bf16'][name]:.0%}), mixed {floor['mixed'][name]:.3f} s ({share['mixed'][name]:.0%})",
              flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="3c442fd", help="commit to compare with")
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--model", choices=sorted(SETUPS), default="published",
                        help="published: the published size on both sides; default: each side's ModelConfig()")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per thread count; 0 = no steps")
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
        for threads in args.threads if args.rounds else []:
            row = compare_steps(base, threads, args.rounds, args.steps, args.model, args.precision)
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
