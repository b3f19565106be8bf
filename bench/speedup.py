"""Side-by-side speed-up of this checkout's training step over an older commit, measured in one run.

    python -m bench.speedup --base 3c442fd --threads 1 2 --rounds 3 --demo-rounds 2
    python -m bench.speedup --base 3c442fd --model default --threads 1 --rounds 5 --demo-rounds 0
    python -m bench.speedup --base 3c442fd --threads 1 --rounds 0 --demo-rounds 2   # the demo only

1. The base commit is exported with `git archive` into a temporary folder (the repository is not touched).
2. Per thread count, two step servers (``bench/step_setup.py``: one with the base commit's ``aam``, one with
   this checkout's) build a model with the same seed on the same first udca batch; each round asks the base,
   then the new one, for ``--steps`` training steps (forward, Huber loss, backward, clipping, AdamW).
   Alternating keeps a shared, noisy CPU fair to both; the medians are reported. ``--model published``: the
   published model size on both sides (the same model, so the same arithmetic); ``--model default``: each
   side's own ``ModelConfig()`` (two different models when the defaults changed in between: the speed a user
   gets without setting any model flag), compared per sample. ``--rounds 0`` skips the steps.
3. The floor of each side: its model's Linear, attention and pooling FLOPs on the batch (``bench.step_flops``)
   at the fp32 matmul rate measured in the same run with the same thread count (a 1,024^3 `torch.mm`,
   median of 5).
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

    def __init__(self, tree: Path, setup: str, threads: int):
        self.proc = subprocess.Popen([sys.executable, str(SERVER), setup, "1"], cwd=tree, env=_env(tree, threads),
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


def matmul_rate(threads: int, n: int = 1024, repeats: int = 5) -> float:
    """fp32 FLOP/s of an n^3 torch.mm at `threads` threads, median of `repeats`."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    torch.set_num_threads(previous)
    return 2 * n**3 / statistics.median(times)


SETUPS = {"published": "udca", "default": "udca-default"}


def compare_steps(base: Path, threads: int, rounds: int, steps: int, model: str) -> dict:
    from bench.step_flops import step_flops
    from bench.step_setup import UDCA_BATCH, load_udca_batches

    batch = load_udca_batches(n=1)[0]
    servers = {"base": StepServer(base, SETUPS[model], threads), "new": StepServer(ROOT, SETUPS[model], threads)}
    flops = {name: step_flops(batch, server.model)["total"] for name, server in servers.items()}
    times: dict[str, list[float]] = {"base": [], "new": []}
    rates = []
    try:
        for _ in range(rounds):
            for name, server in servers.items():
                times[name] += server.steps(steps)
            rates.append(matmul_rate(threads))
    finally:
        for server in servers.values():
            server.close()
    median = {name: statistics.median(t) for name, t in times.items()}
    rate = statistics.median(rates)
    return {
        "model": model, "models": {name: vars(server.model) for name, server in servers.items()},
        "threads": threads, "samples_per_step": UDCA_BATCH, "step_s": median, "all_step_s": times,
        "samples_per_s": {name: UDCA_BATCH / t for name, t in median.items()},
        "speedup": median["base"] / median["new"], "flops_per_step": flops, "matmul_flops_per_s": rate,
        "floor_s": {name: f / rate for name, f in flops.items()},
        "fraction_of_floor": {name: flops[name] / rate / t for name, t in median.items()},
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="3c442fd", help="commit to compare with")
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--model", choices=sorted(SETUPS), default="published",
                        help="published: the published size on both sides; default: each side's ModelConfig()")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per thread count; 0 = no steps")
    parser.add_argument("--steps", type=int, default=1, help="steps per server per round")
    parser.add_argument("--demo-rounds", type=int, default=1, help="0 = skip the demo comparison")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    result = {"base": args.base, "new": commit, "steps": [], "demo": None}
    with tempfile.TemporaryDirectory() as scratch:
        base = export_commit(args.base, Path(scratch))
        for threads in args.threads if args.rounds else []:
            row = compare_steps(base, threads, args.rounds, args.steps, args.model)
            result["steps"].append(row)
            models = "" if args.model == "published" else " (two different models: each commit's ModelConfig())"
            print(f"udca step, {args.model} model{models}, {threads} thread(s): base {row['step_s']['base']:.3f} s, "
                  f"new {row['step_s']['new']:.3f} s -> {row['speedup']:.2f}x samples/s; floor base "
                  f"{row['floor_s']['base']:.3f} s, new {row['floor_s']['new']:.3f} s (at "
                  f"{row['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s): new at {row['fraction_of_floor']['new']:.0%} of "
                  f"its floor, base at {row['fraction_of_floor']['base']:.0%}", flush=True)
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
