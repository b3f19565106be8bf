"""Distances between the samples of a batch, the targets of the pairwise-distance objective.

All three come from scikit-bio on each sample's full profile (every ASV, not only the `token_limit` the
model sees): Bray-Curtis on read counts; Aitchison, the Euclidean distance between centred log-ratios of
the counts plus one pseudo-read, over the ASVs present in the batch; weighted UniFrac (normalized, in
[0, 1]) on a rooted tree sheared once to the corpus's ASVs.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from aam.data.qza import is_qza, read_payload
from aam.errors import UserError


class BatchDistances:
    """`distances(counts)`: rows of the corpus's counts [n, F] -> float32 [n, n] distance matrix."""

    def __init__(self, metric: str, tree_path: str | None = None, feature_names: list[list[str]] | None = None,
                 sequences: list[str] | None = None):
        if metric not in ("braycurtis", "aitchison", "unifrac"):
            raise ValueError(f"metric must be braycurtis, aitchison or unifrac; got {metric!r}")
        self.metric = metric
        self.tree, self.tips = None, None
        if metric == "unifrac":
            assert tree_path is not None and feature_names is not None and sequences is not None
            self.tree, self.tips = _read_tree(tree_path, feature_names, sequences)

    def __call__(self, counts: sp.csr_matrix) -> np.ndarray:
        from skbio.diversity import beta_diversity

        present = np.flatnonzero(np.asarray(counts.sum(axis=0)).ravel() > 0)
        dense = counts[:, present].toarray()
        if self.metric == "braycurtis":
            return beta_diversity("braycurtis", dense).data.astype(np.float32)
        if self.metric == "aitchison":
            from skbio.stats.composition import clr

            return beta_diversity("euclidean", clr(dense + 1.0), validate=False).data.astype(np.float32)
        taxa = [self.tips[j] for j in present]
        return beta_diversity("weighted_unifrac", dense, taxa=taxa, tree=self.tree, normalized=True,
                              validate=False).data.astype(np.float32)


def _read_tree(path: str, feature_names: list[list[str]], sequences: list[str]):
    """The rooted tree sheared to the corpus's ASVs, and per ASV its tip name (one of the feature IDs it
    merges, or its sequence). Every ASV needs a tip: UniFrac has no place for one that is not in the tree."""
    from skbio import TreeNode

    file = Path(path)
    if not file.is_file():
        raise UserError(f"tree file not found: {file}")
    text = read_payload(file, "tree.nwk", "rooted tree").decode() if is_qza(file) else file.read_text()
    try:
        tree = TreeNode.read(io.StringIO(text), format="newick")
    except Exception as exc:
        raise UserError(f"{file} is not a Newick tree ({type(exc).__name__}: {exc})") from None
    names = {tip.name for tip in tree.tips()}
    tips, missing = [], 0
    for ids, sequence in zip(feature_names, sequences):
        name = next((n for n in [*ids, sequence] if n in names), None)
        missing += name is None
        tips.append(name)
    if missing:
        example = next(ids[0] for ids, t in zip(feature_names, tips) if t is None)
        raise UserError(f"{missing} of {len(tips)} ASVs of the tables are not tips of the tree {file} "
                        f"(e.g. '{example}'); give the tree built from these tables' sequences")
    tree = tree.shear(set(tips))
    tree.prune()
    return tree, tips
