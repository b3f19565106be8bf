"""Synthetic amplicon study with a known, learnable signal (used by `aam simulate` and `aam demo`).

Generative story: a random binary phylogeny over the ASVs; sequences evolved down it from a
16S-like root, so mutations are shared within clades; each top-level clade has niche optima on
pH and temperature (ASVs jitter around their clade's); four sites shift abundances; soil depth has
a small clade effect; read depth is log-normal and counts are multinomial. `ph_class` (acidic,
neutral, alkaline: pH below 5.5, below 7.5, from 7.5 on) is a categorical target the abundances predict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from aam.errors import UserError

# 16S V4 region start (515F side), a plausible root to evolve from; extended randomly to 250 nt.
_ROOT_PREFIX = "TACGGAGGGTGCAAGCGTTAATCGGAATTACTGGGCGTAAAGCGCACGCAGGCGGTTTGTTAAGTCAGATGTGAAATCCCCGGGCTCAACCTGGGAACTGCATCTGATACTGGCAAGCTTGAGTCTCGTAGAGGGGGGTAGAATTCCAGG"
_BASES = np.array(list("ACGT"))
LOCATIONS = ("site_A", "site_B", "site_C", "site_D")
PH_CLASSES = ("acidic", "neutral", "alkaline")
PH_CLASS_EDGES = (5.5, 7.5)  # pH below the first edge is acidic, from the second on alkaline


@dataclass
class SimulatedStudy:
    counts: sp.csr_matrix  # int64 [n_samples, n_features]
    sample_ids: list[str]
    sequences: list[str]  # also the feature IDs
    metadata: pd.DataFrame  # index sample_id; columns ph, temperature, location, depth, ph_class
    truth: dict  # generating parameters (JSON-serializable)


def simulate(
    n_samples: int = 300,
    seed: int = 0,
    n_features: int = 256,
    n_clades: int = 8,
    mean_depth: float = 5000.0,
    mutation_rate: float = 0.01,
) -> SimulatedStudy:
    if n_samples < 1 or n_features < 2 or not 1 <= n_clades <= n_features:
        raise ValueError(f"need n_samples >= 1, n_features >= 2, 1 <= n_clades <= n_features; got "
                         f"{n_samples}, {n_features}, {n_clades}")
    rng = np.random.default_rng(seed)
    root = _ROOT_PREFIX + "".join(rng.choice(_BASES, 250 - len(_ROOT_PREFIX)))
    parent, clade = _random_tree(n_features, n_clades, rng)
    sequences = _evolve(root, parent, n_features, mutation_rate, rng)
    # Length per clade in 150..250, +-5 per ASV: amplicons of one clade have similar lengths.
    clade_len = rng.integers(160, 241, size=n_clades)
    lengths = np.clip(clade_len[clade] + rng.integers(-5, 6, size=n_features), 150, 250)
    sequences = _unique([s[:n] for s, n in zip(sequences, lengths)], rng)

    ph_opt_clade = np.linspace(4.5, 8.5, n_clades)[rng.permutation(n_clades)]
    temp_opt_clade = rng.uniform(8.0, 32.0, n_clades)
    ph_opt = ph_opt_clade[clade] + rng.normal(0, 0.3, n_features)
    temp_opt = temp_opt_clade[clade] + rng.normal(0, 2.0, n_features)
    ph_width, temp_width = 1.0, 8.0
    base = rng.normal(0, 1.0, n_features)
    site_effect = rng.normal(0, 0.7, (len(LOCATIONS), n_features))
    depth_coef = rng.normal(0, 0.5, n_clades)[clade]

    ph = rng.uniform(4.0, 9.0, n_samples)
    temperature = rng.uniform(5.0, 35.0, n_samples)
    location = rng.integers(0, len(LOCATIONS), n_samples)
    depth = rng.uniform(0.0, 30.0, n_samples)  # soil depth (cm)
    log_abund = (base[None, :]
                 - (ph[:, None] - ph_opt[None, :]) ** 2 / (2 * ph_width**2)
                 - (temperature[:, None] - temp_opt[None, :]) ** 2 / (2 * temp_width**2)
                 + site_effect[location]
                 + depth_coef[None, :] * depth[:, None] / 30.0
                 + rng.normal(0, 0.3, (n_samples, n_features)))
    probs = np.exp(log_abund - log_abund.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    reads = np.maximum(rng.lognormal(np.log(mean_depth), 0.5, n_samples).astype(np.int64), 100)
    counts = np.stack([rng.multinomial(n, p) for n, p in zip(reads, probs)])

    width = len(str(n_samples))
    sample_ids = [f"sample_{i:0{width}d}" for i in range(n_samples)]
    metadata = pd.DataFrame({
        "ph": np.round(ph, 3), "temperature": np.round(temperature, 2),
        "location": [LOCATIONS[k] for k in location], "depth": np.round(depth, 1),
        "ph_class": np.asarray(PH_CLASSES)[np.searchsorted(PH_CLASS_EDGES, np.round(ph, 3), side="right")],
    }, index=pd.Index(sample_ids, name="sample_id"))
    truth = {
        "seed": seed, "n_samples": n_samples, "n_features": n_features, "n_clades": n_clades,
        "mean_depth": mean_depth, "mutation_rate": mutation_rate, "root_sequence": root,
        "tree_parent": parent.tolist(), "feature_clade": clade.tolist(),
        "ph_optimum": ph_opt.round(4).tolist(), "temperature_optimum": temp_opt.round(4).tolist(),
        "ph_width": ph_width, "temperature_width": temp_width, "base_log_abundance": base.round(4).tolist(),
        "site_effect": {loc: site_effect[k].round(4).tolist() for k, loc in enumerate(LOCATIONS)},
        "depth_effect_per_30cm": depth_coef.round(4).tolist(), "noise_sd": 0.3,
        "ph_class_edges": list(PH_CLASS_EDGES),
        "reads_per_sample": reads.tolist(),
    }
    return SimulatedStudy(sp.csr_matrix(counts), sample_ids, sequences, metadata, truth)


def _random_tree(n_leaves: int, n_clades: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random binary tree by recursive random splits. Returns parent [n_nodes] (-1 at the root; leaves are
    nodes 0..n_leaves-1) and the clade of each leaf: the subtree it falls in once `n_clades` subtrees exist."""
    parent = [-1] * n_leaves
    clade = np.zeros(n_leaves, dtype=np.int64)
    next_node = [n_leaves]
    # Split the largest groups first until there are n_clades, so clades are subtrees.
    groups = [np.arange(n_leaves)]
    while len(groups) < n_clades:
        groups.sort(key=len)
        big = groups.pop()
        cut = int(rng.integers(1, len(big)))
        groups += [big[:cut], big[cut:]]
    clade_nodes = []
    for k, leaves in enumerate(groups):
        clade[leaves] = k
        clade_nodes.append(_build(leaves, parent, next_node, rng))
    root = next_node[0]
    parent.append(-1)
    next_node[0] += 1
    for node in clade_nodes:
        parent[node] = root
    return np.array(parent, dtype=np.int64), clade


def _build(leaves: np.ndarray, parent: list[int], next_node: list[int], rng: np.random.Generator) -> int:
    if len(leaves) == 1:
        return int(leaves[0])
    cut = int(rng.integers(1, len(leaves)))
    left = _build(leaves[:cut], parent, next_node, rng)
    right = _build(leaves[cut:], parent, next_node, rng)
    node = next_node[0]
    next_node[0] += 1
    parent.append(-1)
    parent[left] = parent[right] = node
    return node


def _evolve(root: str, parent: np.ndarray, n_leaves: int, rate: float, rng: np.random.Generator) -> list[str]:
    """Sequence per leaf: substitutions (Poisson per branch) applied from the root down, shared by descendants."""
    n_nodes = len(parent)
    seqs: list[np.ndarray | None] = [None] * n_nodes
    children: list[list[int]] = [[] for _ in range(n_nodes)]
    for node, p in enumerate(parent):
        if p >= 0:
            children[p].append(node)
    stack = [int(np.flatnonzero(parent == -1)[0])]
    seqs[stack[0]] = np.array(list(root))
    while stack:
        node = stack.pop()
        for child in children[node]:
            seq = seqs[node].copy()
            n_mut = rng.poisson(rate * len(seq))
            sites = rng.integers(0, len(seq), n_mut)
            seq[sites] = rng.choice(_BASES, n_mut)
            seqs[child] = seq
            stack.append(child)
    return ["".join(seqs[i]) for i in range(n_leaves)]


def _unique(sequences: list[str], rng: np.random.Generator) -> list[str]:
    """Mutate duplicates until every sequence is distinct (they are the feature IDs)."""
    seen: set[str] = set()
    out = []
    for s in sequences:
        while s in seen:
            i = int(rng.integers(0, len(s)))
            s = s[:i] + str(rng.choice(_BASES)) + s[i + 1:]
        seen.add(s)
        out.append(s)
    return out


def make_output_dir(output_dir: str | Path) -> Path:
    """The folder, created with its parents when missing; UserError naming it when that fails."""
    output_dir = Path(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {output_dir}: {exc.strerror}") from None
    return output_dir


def write_simulation(output_dir: str | Path, n_samples: int = 300, seed: int = 0, **kwargs) -> SimulatedStudy:
    """Simulate and write `table.biom` (HDF5, feature IDs = sequences), `metadata.tsv`, `truth.json`."""
    import biom  # imported here: the package must import without biom-format
    import h5py

    study = simulate(n_samples, seed, **kwargs)
    output_dir = make_output_dir(output_dir)
    table = biom.Table(study.counts.T.tocsr(), observation_ids=study.sequences, sample_ids=study.sample_ids)
    with h5py.File(output_dir / "table.biom", "w") as handle:
        table.to_hdf5(handle, generated_by="aam simulate")
    study.metadata.to_csv(output_dir / "metadata.tsv", sep="\t")
    (output_dir / "truth.json").write_text(json.dumps(study.truth, indent=1) + "\n")
    return study
