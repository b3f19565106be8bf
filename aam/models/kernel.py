"""`ASVKernel`: kernel ridge regressions on the abundance features of the linear model, added to its outputs.

Where a target responds to its ASVs along curves (an optimum, a saturation) rather than lines, a kernel
ridge regression on the same features fits it better than the ridge regression does, and on a few hundred
samples better than the transformer learns it. For each output column o whose fit chose a kernel
(`aam.training.linear_init`):

    kernel_o(u) = sum over the fit's samples j of dual[j, o] * exp(-gamma_o * d_o(u, landmarks[j])),

u [V]: a sample's features (`ASVLinear.features`), landmarks [m, V]: those of the fit's training samples,
d: the squared Euclidean distance (RBF kernel) or the L1 distance (Laplacian kernel). A column whose fit
chose the linear model (kind 0) adds nothing here.
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
        distance = {}
        if 1 in kinds:  # pair by pair: |u|^2 + |l|^2 - 2 u.l would cancel where a sample is a landmark
            distance[1] = torch.cdist(features, landmarks, compute_mode="donot_use_mm_for_euclid_dist").square()
        if 2 in kinds:
            distance[2] = torch.cdist(features, landmarks, p=1)
        # a row's sum over the landmarks in one order whatever the batch (a matrix product's order depends on
        # its shape), so a data-parallel rank's half batch computes what one process does
        columns = [(torch.exp(-self.gamma[o] * distance[kind]) * self.dual[:, o].to(features.dtype)).sum(1) if kind
                   else features.new_zeros(features.shape[0]) for o, kind in enumerate(kinds)]
        return torch.stack(columns, 1)
