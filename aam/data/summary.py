"""`summarize`: the facts a user checks before training (what `aam inspect` prints)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from aam.data.metadata import non_finite_samples, read_metadata
from aam.data.study import resolve_sequences
from aam.data.table import read_table

_EXAMPLES = 5  # sample IDs listed per mismatch category


def summarize(table: str | Path, sequences: str | Path | None = None, metadata: str | Path | None = None,
              columns: Sequence[str] = ()) -> dict:
    """JSON-ready summary. Column statistics are over the samples found in both table and metadata
    (the ones training would use); all metadata columns when `columns` is empty."""
    ftable = read_table(table)
    seqs = resolve_sequences(ftable, sequences)
    reads = np.asarray(ftable.counts.sum(axis=1)).ravel()
    per_sample = np.diff(ftable.counts.indptr)
    lengths = np.array([len(s) for s in seqs])
    zero = [s for s, r in zip(ftable.sample_ids, reads) if r <= 0]
    out: dict = {
        "table": str(ftable.path),
        "samples": len(ftable.sample_ids),
        "features": len(ftable.feature_ids),
        "features_with_reads": int((np.asarray(ftable.counts.sum(axis=0)).ravel() > 0).sum()),
        "reads_per_sample": _range(reads, total=True),
        "features_per_sample": _range(per_sample),
        "zero_read_samples": len(zero),
        "zero_read_sample_examples": zero[:_EXAMPLES],
        "sequences": {
            "source": "feature IDs" if sequences is None else str(sequences),
            "length_min": int(lengths.min()) if lengths.size else None,
            "length_max": int(lengths.max()) if lengths.size else None,
            "with_non_acgt": int(sum(1 for s in seqs if s.strip("ACGTacgt"))),
        },
        "metadata": None,
        "columns": {},
    }
    if metadata is None:
        return out
    meta = read_metadata(metadata)
    for column in columns:
        meta.require(column, "metadata")
    table_ids = pd.Index(ftable.sample_ids)
    both = table_ids[table_ids.isin(meta.frame.index)]
    table_only = table_ids[~table_ids.isin(meta.frame.index)]
    meta_only = meta.frame.index[~meta.frame.index.isin(table_ids)]
    out["metadata"] = {
        "path": str(meta.path), "samples": len(meta.frame), "columns": len(meta.frame.columns),
        "in_both": len(both), "table_only": len(table_only), "metadata_only": len(meta_only),
        "table_only_examples": list(table_only[:_EXAMPLES]), "metadata_only_examples": list(meta_only[:_EXAMPLES]),
    }
    frame = meta.frame.loc[both]
    for column in columns or list(meta.frame.columns):
        values = frame[column]
        present = int(values.notna().sum())
        info: dict = {"present": present, "missing": len(values) - present}
        if meta.is_numeric(column):
            numbers = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=np.float64)
            info = {"type": "numeric", **info, **_range(numbers[np.isfinite(numbers)], as_float=True)}
            info["non_numeric"] = present - len(numbers)
        else:
            levels = values.dropna().value_counts()
            info = {"type": "categorical", **info, "n_levels": len(levels),
                    "levels": {str(k): int(v) for k, v in levels.items()}}
        non_finite = non_finite_samples(values)  # training refuses these (inf in a target or category)
        info["non_finite"] = len(non_finite)
        info["non_finite_examples"] = non_finite[:_EXAMPLES]
        out["columns"][column] = info
    return out


def _range(values: np.ndarray, total: bool = False, as_float: bool = False) -> dict:
    cast = float if as_float else (lambda v: int(v) if float(v).is_integer() else float(v))
    if values.size == 0:
        stats = {"min": None, "median": None, "max": None}
    else:
        stats = {"min": cast(values.min()), "median": cast(np.median(values)), "max": cast(values.max())}
    if total:
        stats["total"] = cast(values.sum())
    return stats


def format_summary(summary: dict, max_levels: int = 10) -> str:
    """Human-readable text of `summarize`'s result."""
    r, f, s = summary["reads_per_sample"], summary["features_per_sample"], summary["sequences"]
    lines = [
        f"table: {summary['table']}",
        f"  samples: {summary['samples']}   features: {summary['features']} "
        f"({summary['features_with_reads']} with reads)",
        f"  reads per sample: min {r['min']}, median {r['median']}, max {r['max']} (total {r['total']})",
        f"  features per sample: min {f['min']}, median {f['median']}, max {f['max']}",
        f"  samples with zero reads: {summary['zero_read_samples']}"
        + (f" (e.g. {', '.join(summary['zero_read_sample_examples'])})" if summary["zero_read_samples"] else ""),
        f"sequences: from {s['source']}; length {s['length_min']}-{s['length_max']} nt; "
        f"{s['with_non_acgt']} with codes other than A/C/G/T",
    ]
    m = summary["metadata"]
    if m is not None:
        lines += [
            f"metadata: {m['path']} ({m['samples']} samples, {m['columns']} columns)",
            f"  in both: {m['in_both']}   table only: {m['table_only']}   metadata only: {m['metadata_only']}",
        ]
        if m["table_only"]:
            lines.append(f"  table only, e.g.: {', '.join(m['table_only_examples'])}")
        if m["metadata_only"]:
            lines.append(f"  metadata only, e.g.: {', '.join(m['metadata_only_examples'])}")
    for name, c in summary["columns"].items():
        head = f"  {name} [{c['type']}]: {c['present']} present, {c['missing']} missing"
        if c["type"] == "numeric":
            head += f", range {c['min']:g} to {c['max']:g}, median {c['median']:g}" if c["min"] is not None else ""
            head += f", {c['non_numeric']} not numeric" if c["non_numeric"] else ""
        else:
            shown = ", ".join(f"{k} ({v})" for k, v in list(c["levels"].items())[:max_levels])
            more = f", ... ({c['n_levels']} levels)" if c["n_levels"] > max_levels else ""
            head += f", levels: {shown}{more}" if c["n_levels"] else ""
        if c["non_finite"]:
            head += (f"; NON-FINITE in {c['non_finite']} sample(s) (e.g. {', '.join(c['non_finite_examples'])}): "
                     "training refuses this column")
        lines.append(head)
    return "\n".join(lines)
