"""`ASVKernel`: kernel ridge regressions on the abundance features of the linear model, added to its outputs.

Where a target responds to its ASVs along curves (an optimum, a saturation) rather than lines, a kernel
ridge regression on the same features fits it better than the ridge regression does, and on a few hundred
samples better than the transformer learns it. For each output column o whose fit chose a kernel
(`aam.training.linear_init`):

    kernel_o(u) = sum over the fit's samples j of dual[j, o] * exp(-gamma_o * d_o(u, landmarks[j])),

u [V]: a sample's features (`ASVLinear.features`), landmarks [m, V]: those of the fit's training samples,
d: the squared Euclidean distance (RBF kernel) or the L1 distance (Laplacian kernel). A column whose fit
chose the linear model (kind 0) adds nothing here.

A sample holds a few of the vocabulary's ASVs (about 120 of 2,100 on a human gut study), so on the CPU its
distances are summed over its own nonzero features only (`sparse_distances`):

    d(u, l) = sum over v with u_v != 0 of (g(u_v - l_v) - g(l_v))  +  sum over all v of g(l_v),

g = square (RBF) or |.| (Laplacian), each sample on its own. On a GPU they are `torch.cdist`'s
(`dense_distances`): one launch for the batch, where the per-sample form would wait on the device for each
sample's nonzero count. Both compute each sample's row independently of the rest of the batch, so a
data-parallel rank's half batch computes what one process does.
"""

from __future__ import annotations

import torch
from torch import nn

KINDS = ("linear", "rbf", "laplacian")  # index = the `kind` buffer's value
FITS = ("ridge regression", "RBF kernel ridge regression", "Laplacian kernel ridge regression")  # what each names


class ASVKernel(nn.Module):
    def __init__(self, samples: int, vocabulary: int, outputs: int):
        super().__init__()
        self.register_buffer("landmarks", torch.zeros(samples, vocabulary))  # [m, V]
        self.register_buffer("dual", torch.zeros(samples, outputs))  # [m, O]
        self.register_buffer("gamma", torch.zeros(outputs))  # [O]
        self.register_buffer("kind", torch.zeros(outputs, dtype=torch.int64))  # [O], an index into KINDS
        # the kinds on the host too: the forward chooses its distances from them without reading the device
        self.kinds = [0] * outputs

    def set_landmarks(self, landmarks: torch.Tensor) -> None:
        self.landmarks.copy_(landmarks)

    def set_column(self, column: int, kind: int, gamma: float, dual: torch.Tensor) -> None:
        """Output `column` becomes the kernel regression of kernel KINDS[kind] with this gamma and dual [m]."""
        self.kind[column], self.gamma[column] = kind, gamma
        self.dual[:, column] = dual
        self.kinds[column] = kind

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.kinds = self.kind.tolist()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features [B, V] -> [B, O]; 0 in the linear columns."""
        kinds = self.kinds
        landmarks = self.landmarks.to(features.dtype)
        used = sorted({kind for kind in kinds if kind})
        distances = sparse_distances if features.device.type == "cpu" else dense_distances
        distance = distances(features, landmarks, used) if used else {}
        # a row's sum over the landmarks in one order whatever the batch (a matrix product's order depends on
        # its shape)
        columns = [(torch.exp(-self.gamma[o] * distance[kind]) * self.dual[:, o].to(features.dtype)).sum(1) if kind
                   else features.new_zeros(features.shape[0]) for o, kind in enumerate(kinds)]
        return torch.stack(columns, 1)


def dense_distances(features: torch.Tensor, landmarks: torch.Tensor, kinds: list[int]) -> dict[int, torch.Tensor]:
    """{kind: [B, m]}: each sample's distance to each landmark (features [B, V], landmarks [m, V]) for each
    kind in `kinds` (1: squared Euclidean, 2: L1), over every feature."""
    distance = {}
    if 1 in kinds:  # pair by pair: |u|^2 + |l|^2 - 2 u.l would cancel where a sample is a landmark
        distance[1] = torch.cdist(features, landmarks, compute_mode="donot_use_mm_for_euclid_dist").square()
    if 2 in kinds:
        distance[2] = torch.cdist(features, landmarks, p=1)
    return distance


def sparse_distances(features: torch.Tensor, landmarks: torch.Tensor, kinds: list[int]) -> dict[int, torch.Tensor]:
    """`dense_distances`, summed over each sample's nonzero features (the module's docstring); a loop over the
    samples that reads each one's nonzero count, for the CPU."""
    if not len(features):
        return {kind: features.new_zeros(0, landmarks.shape[0]) for kind in kinds}
    g = {1: torch.square, 2: torch.abs}
    totals = {kind: g[kind](landmarks).sum(1) for kind in kinds}  # [m]: the distance from an empty sample
    rows = {kind: [] for kind in kinds}
    for u in features:
        present = u.nonzero().squeeze(1)  # [k]
        values, columns = u[present], landmarks.index_select(1, present)  # [k], [m, k]
        for kind in kinds:
            rows[kind].append((g[kind](values - columns) - g[kind](columns)).sum(1))
    # the two sums cancel to rounding where a sample is a landmark; a distance is never below 0
    return {kind: (torch.stack(rows[kind]) + totals[kind]).clamp_min(0) for kind in kinds}
