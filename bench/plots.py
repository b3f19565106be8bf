"""PNG plots for bench.report: median time against problem size, one panel per mode.

One line per (provider, family): a family is a series of cases that differ only in size (e.g. pinball
K=3 fp32 over N), so a line is a scaling curve. Colour = provider, marker = family. Ops whose cases
carry no numeric size (the end-to-end benchmarks) are drawn against the case names instead.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

MARKERS = "osD^vP*Xh<>p"


def plot_op(title: str, rows: list, path: Path) -> bool:
    """Write ``path``; False when matplotlib is not installed. ``rows`` are bench.report Rows."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    modes = sorted({r.mode for r in rows}, key=lambda m: {"fwd": 0, "bwd": 1, "fwd+bwd": 2}.get(m, 3))
    numeric = all(r.size for r in rows)
    cases = list(dict.fromkeys(r.case for r in rows))
    providers = sorted({r.provider for r in rows})
    families = sorted({r.family for r in rows})
    colours = {p: plt.get_cmap("tab10")(i % 10) for i, p in enumerate(providers)}
    markers = {f: MARKERS[i % len(MARKERS)] for i, f in enumerate(families)}

    fig, axes = plt.subplots(1, len(modes), figsize=(5.5 * len(modes), 4.5), squeeze=False, sharey=True)
    for ax, mode in zip(axes[0], modes):
        lines: dict[tuple[str, str], list] = defaultdict(list)
        for r in rows:
            if r.mode == mode:
                lines[(r.provider, r.family)].append((r.size if numeric else cases.index(r.case), r.median * 1e3))
        for (provider, family), points in sorted(lines.items()):
            xs, ys = zip(*sorted(points))
            label = f"{provider} | {family}" if family else provider
            ax.plot(xs, ys, marker=markers[family], color=colours[provider], label=label, linewidth=1)
        if numeric:
            ax.set_xscale("log")
            ax.set_xlabel(rows[0].size_label or "size")
        else:
            ax.set_xticks(range(len(cases)), cases, rotation=30, ha="right", fontsize=7)
        ax.set_yscale("log")
        ax.set_title(f"{title}: {mode or 'timed call'}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("median time (ms)")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    for ax in axes[0][:-1]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.06 + 0.022 * (len(labels) // 3), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
