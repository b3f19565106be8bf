"""The kernel regressions' distances (`aam.models.kernel`): every sample of a batch to every landmark, over
the whole vocabulary (`dense_distances`, `torch.cdist`, the GPU path) against over each sample's own nonzero
features (`sparse_distances`, the CPU path), in samples per second; forward only (training keeps the kernel
fixed).

Cases: a human gut study's shape (udca_gut: 642 landmarks, 2,108 ASVs in the vocabulary, ~120 of them per
sample) and a larger one (1,000 landmarks, the most a model keeps, and 10,000 ASVs, ~150 per sample); batch 16,
one thread, the Laplacian (L1) and RBF (squared Euclidean) kinds.
Run: ``python -m pytest bench/test_asv_kernel.py --benchmark-only``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from bench.common import Provider, measure, record

try:
    from aam.models.kernel import KINDS, dense_distances, sparse_distances
except ImportError as exc:
    pytest.skip(f"the kernel regression benchmarks need the aam package ({exc})", allow_module_level=True)

BATCH = 16


@dataclass(frozen=True)
class Case:
    name: str
    landmarks: int
    vocabulary: int
    per_sample: int  # nonzero features of a sample, on average


CASES = [Case("udca-shape", 642, 2108, 120), Case("large", 1000, 10_000, 150)]
FORMS = {"dense": dense_distances, "sparse": sparse_distances}


def _features(rows: int, case: Case, seed: int) -> torch.Tensor:
    """[rows, V] in [0, 1), each feature nonzero with probability per_sample / V."""
    generator = torch.Generator().manual_seed(seed)
    present = torch.rand(rows, case.vocabulary, generator=generator) < case.per_sample / case.vocabulary
    return present * torch.rand(rows, case.vocabulary, generator=generator)


@pytest.mark.parametrize("kind", [1, 2], ids=lambda k: KINDS[k])
@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_kernel_distances_samples_per_second(benchmark, case: Case, form: str, kind: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        landmarks, features = _features(case.landmarks, case, 0), _features(BATCH, case, 1)

        def call():
            return FORMS[form](features, landmarks, [kind])

        measure(benchmark, call, "cpu", group=f"asv-kernel:{case.name}:{KINDS[kind]}")
        provider = Provider(form, "cpu", baseline="dense" if form == "dense" else None)
        record(benchmark, op="asv-kernel-distances", provider=provider, case=f"{case.name} {KINDS[kind]}", mode="fwd",
               items=BATCH, unit="samples", dtype="fp32", threads=1)
    finally:
        torch.set_num_threads(previous)
