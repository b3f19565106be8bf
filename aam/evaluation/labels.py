"""How quantile levels are named in predictions files, metrics.json and plots (the shortest decimal form),
and the probability columns of a classification target."""

from __future__ import annotations


def level_label(level: float) -> str:
    """0.1 -> "0.1", 0.25 -> "0.25" (the keys of metrics.json's per-level blocks)."""
    return f"{level:g}"


def quantile_label(level: float) -> str:
    """0.1 -> "q0.1"."""
    return f"q{level_label(level)}"


def quantile_column(target: str, level: float) -> str:
    """The predictions column of one target's quantile: ("ph", 0.1) -> "ph_q0.1"."""
    return f"{target}_{quantile_label(level)}"


def probability_column(target: str, level: str) -> str:
    """The predictions column of one level's probability: ("host_sex", "female") -> "host_sex_p_female"."""
    return f"{target}_p_{level}"
