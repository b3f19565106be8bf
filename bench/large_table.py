"""A simulated large study, and the peak memory and time of building its training datasets.

    python -m bench.large_table --folder FOLDER [--samples 100000 --features 200000 --per-sample 500]

writes FOLDER/table.biom (BIOM 2.1 HDF5, feature IDs = random 150 bp sequences), FOLDER/metadata.tsv
(one numeric target) when absent, then measures in a fresh process what `aam train` does before its
first step -- read the table, join the metadata, split, fit the scaler, build both AAMDatasets
(`aam.data.prepared.load_prepared`) -- and collates one batch of 64 samples. It prints one JSON line:
seconds to prepare, peak resident memory of that process (ru_maxrss), the table's nonzeros and the
tokenized sequences' bytes. bench/test_large_table.py runs it under pytest-benchmark.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MAX_BP = 150


def write_study(folder: Path, n_samples: int, n_features: int, per_sample: int, seed: int = 0) -> None:
    """BIOM HDF5 table [n_features x n_samples] with about `per_sample` ASVs per sample, and metadata."""
    import h5py
    import scipy.sparse as sp

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    # Sample-major (CSR over samples): each sample's distinct features, ascending.
    rows = [np.unique(rng.integers(0, n_features, per_sample)) for _ in range(n_samples)]
    indices = np.concatenate(rows)
    indptr = np.concatenate([[0], np.cumsum([r.size for r in rows])])
    del rows
    data = rng.integers(1, 1_000, indices.size).astype(np.float64)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, (n_features, MAX_BP), dtype=np.uint8)]
    feature_ids = letters.view(f"S{MAX_BP}").ravel()
    sample_ids = np.array([f"s{i}".encode() for i in range(n_samples)])
    # The observation axis (CSR over features) is the same matrix transposed.
    by_sample = sp.csr_matrix((data, indices, indptr), shape=(n_samples, n_features))
    by_feature = by_sample.T.tocsr()
    with h5py.File(folder / "table.biom", "w") as f:
        f.attrs.update({"id": "large", "type": "OTU table", "format-url": "http://biom-format.org",
                        "format-version": (2, 1), "generated-by": "bench.large_table",
                        "creation-date": "2026-01-01T00:00:00", "shape": (n_features, n_samples),
                        "nnz": by_sample.nnz})
        for axis, ids, matrix in (("observation", feature_ids, by_feature), ("sample", sample_ids, by_sample)):
            group = f.create_group(axis)
            group.create_dataset("ids", data=ids)
            group.create_group("metadata")
            group.create_group("group-metadata")
            m = group.create_group("matrix")
            m.create_dataset("data", data=matrix.data)
            m.create_dataset("indices", data=matrix.indices.astype(np.int32))
            m.create_dataset("indptr", data=matrix.indptr.astype(np.int32))
    target = rng.normal(7.0, 1.0, n_samples)
    lines = ["sample-id\tph"] + [f"s{i}\t{t:.4f}" for i, t in enumerate(target)]
    (folder / "metadata.tsv").write_text("\n".join(lines) + "\n")


def measure(folder: Path) -> dict:
    """Run in the measuring process: prepare the data as `aam train` does, collate one batch."""
    from aam.config import DataConfig
    from aam.data.prepared import load_prepared

    started = time.perf_counter()
    config = DataConfig(table=str(folder / "table.biom"), metadata=str(folder / "metadata.tsv"),
                        target_columns=("ph",), max_bp=MAX_BP, token_limit=1024)
    data = load_prepared(config, seed=0)
    seconds = time.perf_counter() - started
    batch = data.train_set.collate([data.train_set[i] for i in range(64)])
    return {"prepare_s": round(seconds, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),  # Linux: KiB
            "samples": data.study.n_samples, "features": len(data.study.feature_ids),
            "nonzeros": int(data.study.counts.nnz), "token_bytes": int(data.train_set.tokens.nbytes),
            "batch_distinct_asvs": int(batch.asv_tokens.shape[0])}


def run_measurement(folder: Path) -> dict:
    """`measure` in a fresh interpreter, so the peak memory is that of building the data alone."""
    done = subprocess.run([sys.executable, "-m", "bench.large_table", "--folder", str(folder), "--measure-only"],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=200_000)
    parser.add_argument("--per-sample", type=int, default=500)
    parser.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_only:
        print(json.dumps(measure(args.folder)))
        return
    if not (args.folder / "table.biom").exists():
        write_study(args.folder, args.samples, args.features, args.per_sample)
    print(json.dumps(run_measurement(args.folder)))


if __name__ == "__main__":
    main()
