"""Turn pytest-benchmark JSON into the performance report: one Markdown table per op and device, plus PNG plots.

    python -m bench.report RESULTS.json [MORE.json ...] [--no-plots] [--plots PREFIX]

Per (case, mode, provider): median, p20, p80, rounds, achieved GB/s, TFLOP/s or items/s, the fraction of
the device's peak measured in the same run (``bench/test_peak.py``; several files are merged, so the
peaks may come from another file), the peak GPU memory, and the speed-up over every baseline provider
of the same case, mode and device ("vs eager", "vs compile", "vs loop", ...). Plots (``bench/plots.py``),
one PNG per op and device type, are written to ``PREFIX-<op>-<cpu|cuda>.png``; PREFIX defaults to the
first JSON's path without ``.json``. Benchmarks that recorded no op (the data layer, ``aam explain``, the
large table) get one plain table per file: min, median, mean, max and rounds. With ``--no-plots`` the output
is Markdown only, ready for ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

MODE_ORDER = {"fwd": 0, "bwd": 1, "fwd+bwd": 2}
ROLE_ORDER = {"eager": 0, "compile": 1, "loop": 2}  # speed-up columns in this order, any other role after


@dataclass
class Row:
    op: str
    case: str
    provider: str
    baseline: str | None  # the speed-up column this provider is the reference of, if any
    mode: str
    device: str
    device_type: str
    median: float  # seconds
    p20: float
    p80: float
    quartiles: bool  # p20/p80 are really the quartiles (the JSON has no per-round data)
    rounds: int
    bytes: int
    flops: int
    items: int  # with unit: a throughput (e.g. samples) per call
    unit: str
    peak_memory: int | None  # bytes, GPU only
    size: float | None  # x axis of the plots
    size_label: str  # what size counts, e.g. "elements N*K"
    family: str  # one line of the plots per (provider, family)
    dtype: str


def _percentile(data: list[float], q: float) -> float:
    # the same interpolation as bench.common's; kept here so the report needs neither torch nor pytest
    ordered = sorted(data)
    pos = q * (len(ordered) - 1)
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _baseline(info: dict) -> str | None:
    if "baseline" in info:
        return info["baseline"]
    name = info["provider"]  # results written before providers declared their baseline
    return next((role for role in ("eager", "compile") if name.startswith(role)), None)


def load_rows(results: dict) -> list[Row]:
    rows = []
    for bench in results["benchmarks"]:
        info, stats = bench.get("extra_info", {}), bench["stats"]
        if "op" not in info:
            continue  # a benchmark that did not record metadata cannot be reported
        data = stats.get("data") or []
        if info.get("p20") is not None:
            p20, p80, quartiles = info["p20"], info["p80"], False
        elif data:
            p20, p80, quartiles = _percentile(data, 0.2), _percentile(data, 0.8), False
        else:
            p20, p80, quartiles = stats["q1"], stats["q3"], True
        rows.append(
            Row(
                op=info["op"],
                case=info["case"],
                provider=info["provider"],
                baseline=_baseline(info),
                mode=info.get("mode") or "",
                device=info.get("device", "?"),
                device_type=info.get("device_type") or ("cuda" if "cuda" in info["provider"] else "cpu"),
                median=stats["median"],
                p20=p20,
                p80=p80,
                quartiles=quartiles,
                rounds=int(stats.get("rounds") or 0),
                bytes=int(info.get("bytes") or 0),
                flops=int(info.get("flops") or 0),
                items=int(info.get("items") or 0),
                unit=str(info.get("unit") or ""),
                peak_memory=info.get("peak_memory"),
                size=info.get("size"),
                size_label=str(info.get("size_label") or ""),
                family=str(info.get("family") or ""),
                dtype=str(info.get("dtype") or ""),
            )
        )
    return rows


def peaks(rows: list[Row]) -> dict[str, dict[str, float]]:
    """device -> {"bandwidth": bytes/s, "compute": best flop/s, "compute:<dtype>": flop/s per dtype}."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for row in rows:
        if row.op != "peak":
            continue
        found = {}
        if row.bytes:
            found["bandwidth"] = row.bytes / row.median
        if row.flops:
            found["compute"] = row.flops / row.median
            if row.dtype:
                found[f"compute:{row.dtype}"] = row.flops / row.median
        for key, value in found.items():
            out[row.device][key] = max(out[row.device].get(key, 0.0), value)
    return out


def _fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def _rate(row: Row) -> str:
    if row.bytes:
        return f"{row.bytes / row.median / 1e9:.2f} GB/s"
    if row.flops:
        return f"{row.flops / row.median / 1e12:.3f} TFLOP/s"
    if row.items:
        return f"{row.items / row.median:.1f} {row.unit or 'items'}/s"
    return ""


def _fraction(row: Row, peak: dict[str, float]) -> str:
    if row.bytes and "bandwidth" in peak:
        return f"{100 * row.bytes / row.median / peak['bandwidth']:.1f}% bw"
    compute = peak.get(f"compute:{row.dtype}", peak.get("compute"))
    if row.flops and compute:
        return f"{100 * row.flops / row.median / compute:.1f}% mm"
    return ""


def _memory(row: Row) -> str:
    return f"{row.peak_memory / 2**20:.0f} MiB" if row.peak_memory is not None else ""


def op_table(op: str, device: str, rows: list[Row], device_peaks: dict[str, dict[str, float]]) -> str:
    """One Markdown table: the rows of one op on one device, by case, then mode, then median time."""
    roles = sorted({r.baseline for r in rows if r.baseline}, key=lambda b: (ROLE_ORDER.get(b, len(ROLE_ORDER)), b))
    head = ["case", "mode", "provider", "median", "p20", "p80", "rounds", "rate", "of peak", "peak mem"]
    head += [f"vs {role}" for role in roles]
    lines = [f"### {op} on {device}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in rows:
        groups[(row.case, row.mode)].append(row)
    cases = list(dict.fromkeys(r.case for r in rows))  # order of the run
    keys = sorted(groups, key=lambda key: (cases.index(key[0]), MODE_ORDER.get(key[1], 3)))
    peak = device_peaks.get(device, {})
    for key in keys:
        group = groups[key]
        for row in sorted(group, key=lambda r: r.median):
            cells = [row.case, row.mode or "-", row.provider, _fmt_time(row.median), _fmt_time(row.p20),
                     _fmt_time(row.p80), str(row.rounds), _rate(row), _fraction(row, peak), _memory(row)]
            for role in roles:
                base = next((r for r in group if r.baseline == role), None)
                cells.append(f"{base.median / row.median:.2f}x" if base is not None and base is not row else "")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plain_table(results: dict) -> str | None:
    """The benchmarks of one results file that recorded no op, as one Markdown table (None if there are none)."""
    plain = [b for b in results["benchmarks"] if "op" not in b.get("extra_info", {})]
    if not plain:
        return None
    cpu = results.get("machine_info", {}).get("cpu", {}).get("brand_raw")
    head = ["benchmark", "min", "median", "mean", "max", "rounds"]
    lines = [f"### other benchmarks{f' on {cpu}' if cpu else ''}", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    for bench in plain:
        stats = bench["stats"]
        cells = [bench["name"]] + [_fmt_time(stats[key]) for key in ("min", "median", "mean", "max")]
        lines.append("| " + " | ".join(cells + [str(int(stats.get("rounds") or 0))]) + " |")
    return "\n".join(lines)


def _header(path: Path, results: dict) -> str:
    commit = results.get("commit_info", {})
    dirty = " (uncommitted changes)" if commit.get("dirty") else ""
    return f"{path.name}: date {results.get('datetime', '?')}, commit {str(commit.get('id', '?'))[:10]}{dirty}"


def report(paths: list[Path], make_plots: bool = True, plots: Path | None = None) -> str:
    rows: list[Row] = []
    plain: list[str] = []
    parts = ["Results:"]
    for path in paths:
        results = json.loads(path.read_text())
        rows += load_rows(results)
        parts.append(f"- {_header(path, results)}")
        table = plain_table(results)
        if table is not None:
            plain.append(table)
    device_peaks = peaks(rows)
    parts += ["", "Devices: " + "; ".join(sorted({r.device for r in rows})) if rows else "No benchmark recorded an op."]
    for device, peak in sorted(device_peaks.items()):
        bits = [f"copy {peak['bandwidth'] / 1e9:.1f} GB/s"] if "bandwidth" in peak else []
        bits += [f"{key.split(':')[1]} matmul {value / 1e12:.3f} TFLOP/s" for key, value in sorted(peak.items())
                 if key.startswith("compute:")]
        parts.append(f"Measured peak on {device}: " + ", ".join(bits))
    if rows and not any(r.device_type == "cuda" for r in rows):
        parts.append("No GPU provider ran (no CUDA device): CPU figures only.")
    if any(r.quartiles for r in rows):
        parts.append("Rows without per-round data show the quartiles in the p20/p80 columns.")
    ops = sorted({r.op for r in rows} - {"peak"})
    for op in ops:
        op_rows = [r for r in rows if r.op == op]
        for device in sorted({r.device for r in op_rows}):
            parts += ["", op_table(op, device, [r for r in op_rows if r.device == device], device_peaks)]
    for table in plain:
        parts += ["", table]
    if make_plots and ops:
        from bench.plots import plot_op

        prefix = plots or paths[0].with_suffix("")
        for op in ops:
            for device_type in sorted({r.device_type for r in rows if r.op == op}):
                png = prefix.with_name(f"{prefix.name}-{op}-{device_type}.png")
                op_rows = [r for r in rows if r.op == op and r.device_type == device_type]
                if not plot_op(f"{op} ({device_type})", op_rows, png):
                    parts.append("\n(no plots: matplotlib is not installed)")
                    return "\n".join(parts)
                parts.append(f"\nplot: {png}")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+", help="JSON written by pytest --benchmark-json")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--plots", type=Path, metavar="PREFIX",
                        help="write the plots to PREFIX-<op>-<device>.png (default: the first JSON without .json)")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.results if not p.is_file()]
    if missing:
        print(f"bench.report: error: no such results file: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        text = report(args.results, make_plots=not args.no_plots, plots=args.plots)
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        print(f"bench.report: error: not pytest-benchmark JSON ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
