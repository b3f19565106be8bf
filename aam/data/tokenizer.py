"""Nucleotide tokenizer: DNA strings -> uint8 token matrix.

Token ids: 0 = padding, A/C/G/T (any case) = 1..4, any other IUPAC code (N, R, Y, ..., U)
= 5, optional start token = 6. `VOCAB_SIZE` (7) is what an embedding table needs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

PAD = 0
OTHER = 5  # any IUPAC code that is not A/C/G/T: still a real position, not padding
START = 6
VOCAB_SIZE = 7

IUPAC = "ACGTURYSWKMBDHVN"
_DNA_RE = re.compile(f"[{IUPAC}{IUPAC.lower()}]+")

# byte -> token; bytes outside the IUPAC alphabet also map to OTHER (readers reject them first).
_LUT = np.full(256, OTHER, dtype=np.uint8)
for _token, _base in enumerate("ACGT", start=1):
    _LUT[ord(_base)] = _token
    _LUT[ord(_base.lower())] = _token


def is_dna(text: str) -> bool:
    """True when `text` is a non-empty string of IUPAC nucleotide codes (any case)."""
    return _DNA_RE.fullmatch(text) is not None


def tokenize(sequences: Sequence[str], max_bp: int, start_token: bool = False) -> np.ndarray:
    """uint8 [n, max_bp (+1 with start_token)]: one row per sequence, truncated at `max_bp`, padded with 0."""
    if max_bp < 1:
        raise ValueError(f"max_bp must be >= 1, got {max_bp}")
    offset = 1 if start_token else 0
    out = np.zeros((len(sequences), max_bp + offset), dtype=np.uint8)
    if start_token:
        out[:, 0] = START
    if len(sequences) == 0:
        return out
    clipped = [s[:max_bp] for s in sequences]
    lengths = np.fromiter((len(s) for s in clipped), dtype=np.int64, count=len(clipped))
    codes = np.frombuffer("".join(clipped).encode("ascii", errors="replace"), dtype=np.uint8)
    # Row-major boolean mask of the filled positions lines up with the concatenated bytes.
    filled = np.arange(max_bp)[None, :] < lengths[:, None]
    body = out[:, offset:]
    body[filled] = _LUT[codes]
    return out
