"""Turn a pytest-benchmark JSON into the performance report: one table per op, plus PNG plots.

    python -m bench.report RESULTS.json [--no-plots]

Per (op, case) and provider: median, p20, p80, achieved GB/s or TFLOP/s, the fraction of the
device's peak measured in the same run (``bench/test_peak.py``), and the speed-up over the eager
and torch.compile baselines on the same device (providers named ``eager-*`` / ``compile-*``).
Tables are Markdown, ready for docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Row:
    op: str
    case: str
    provider: str
    device: str
    median: float  # seconds
    p20: float
    p80: float
    bytes: int
    flops: int

    @property
    def gbps(self) -> float | None:
        return self.bytes / self.median / 1e9 if self.bytes else None

    @property
    def tflops(self) -> float | None:
        return self.flops / self.median / 1e12 if self.flops else None


def _percentile(data: list[float], q: float) -> float:
    ordered = sorted(data)
    pos = q * (len(ordered) - 1)
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def load_rows(results: dict) -> list[Row]:
    rows = []
    for bench in results["benchmarks"]:
        info, stats = bench.get("extra_info", {}), bench["stats"]
        if "op" not in info:
            continue  # a benchmark that did not record metadata cannot be reported
        data = stats.get("data") or []
        rows.append(
            Row(
                op=info["op"],
                case=info["case"],
                provider=info["provider"],
                device=info.get("device", "?"),
                median=stats["median"],
                p20=_percentile(data, 0.2) if data else stats["q1"],
                p80=_percentile(data, 0.8) if data else stats["q3"],
                bytes=int(info.get("bytes") or 0),
                flops=int(info.get("flops") or 0),
            )
        )
    return rows


def peaks(rows: list[Row]) -> dict[str, dict[str, float]]:
    """device -> {"bandwidth": bytes/s, "compute": flop/s} from the peak benchmarks."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for row in rows:
        if row.op != "peak":
            continue
        if row.bytes:
            out[row.device]["bandwidth"] = max(out[row.device].get("bandwidth", 0.0), row.bytes / row.median)
        if row.flops:
            out[row.device]["compute"] = max(out[row.device].get("compute", 0.0), row.flops / row.median)
    return out


def _fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def _speedup(row: Row, group: list[Row], prefix: str) -> str:
    base = [r for r in group if r.provider.startswith(prefix) and r.device == row.device]
    if not base or base[0] is row:
        return ""
    return f"{base[0].median / row.median:.2f}x"


def op_table(op: str, rows: list[Row], device_peaks: dict[str, dict[str, float]]) -> str:
    lines = [
        f"### {op}",
        "",
        "| case | provider | device | median | p20 | p80 | GB/s | TFLOP/s | % of peak | vs eager | vs compile |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_case: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_case[row.case].append(row)
    for case, group in by_case.items():
        for row in sorted(group, key=lambda r: (r.device, r.median)):
            peak = device_peaks.get(row.device, {})
            frac = ""
            if row.gbps and "bandwidth" in peak:
                frac = f"{100 * row.bytes / row.median / peak['bandwidth']:.0f}% bw"
            elif row.tflops and "compute" in peak:
                frac = f"{100 * row.flops / row.median / peak['compute']:.0f}% mm"
            lines.append(
                f"| {case} | {row.provider} | {row.device} | {_fmt_time(row.median)} | {_fmt_time(row.p20)} "
                f"| {_fmt_time(row.p80)} | {row.gbps or 0:.1f} | {row.tflops or 0:.3f} | {frac} "
                f"| {_speedup(row, group, 'eager')} | {_speedup(row, group, 'compile')} |"
            )
    return "\n".join(lines)


def plot(op: str, rows: list[Row], path: Path) -> bool:
    """Median time per case for each provider; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    cases = list(dict.fromkeys(r.case for r in rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(cases)), 4))
    for provider in sorted({r.provider for r in rows}):
        xs, ys = [], []
        for i, case in enumerate(cases):
            hit = [r for r in rows if r.case == case and r.provider == provider]
            if hit:
                xs.append(i)
                ys.append(hit[0].median * 1e3)
        ax.plot(xs, ys, marker="o", label=provider)
    ax.set_xticks(range(len(cases)), cases, rotation=30, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("median time (ms)")
    ax.set_title(op)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def report(path: Path, make_plots: bool = True) -> str:
    results = json.loads(path.read_text())
    rows = load_rows(results)
    device_peaks = peaks(rows)
    commit = results.get("commit_info", {})
    parts = [
        f"Results: {path.name}; date {results.get('datetime', '?')}; commit {str(commit.get('id', '?'))[:10]}"
        + (" (uncommitted changes)" if commit.get("dirty") else ""),
        "",
        "Devices: " + ", ".join(sorted({r.device for r in rows})),
    ]
    for device, peak in sorted(device_peaks.items()):
        bits = []
        if "bandwidth" in peak:
            bits.append(f"copy {peak['bandwidth'] / 1e9:.1f} GB/s")
        if "compute" in peak:
            bits.append(f"matmul {peak['compute'] / 1e12:.2f} TFLOP/s")
        parts.append(f"Measured peak on {device}: " + ", ".join(bits))
    if not any("cuda" in r.provider or r.provider == "triton" for r in rows):
        parts.append("No GPU provider ran (no CUDA device): CPU providers only.")
    ops = sorted({r.op for r in rows} - {"peak"})
    for op in ops:
        op_rows = [r for r in rows if r.op == op]
        parts += ["", op_table(op, op_rows, device_peaks)]
        if make_plots:
            png = path.with_name(f"{path.stem}-{op}.png")
            if plot(op, op_rows, png):
                parts.append(f"\nplot: {png}")
            else:
                parts.append("\n(no plot: matplotlib is not installed)")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="JSON written by pytest --benchmark-json")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    args = parser.parse_args(argv)
    if not args.results.is_file():
        print(f"bench.report: error: no such results file: {args.results}", file=sys.stderr)
        return 2
    try:
        text = report(args.results, make_plots=not args.no_plots)
    except (json.JSONDecodeError, KeyError) as exc:
        print(f"bench.report: error: {args.results} is not pytest-benchmark JSON ({exc})", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
