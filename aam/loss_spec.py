"""Loss settings given as text, parsed and checked when the configuration is built.

`--loss-config` (JSON: target name or 0-based index -> loss name or {"type", "delta"/"over"/"under"}),
`--categorical-loss-weights` ("auto" or JSON {column: {level: weight}}) and `--quantiles` become
typed values here; every error names the flag. Checks that need the data (levels of a categorical
column) stay where the data is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aam.errors import UserError

LOSS_TYPES = ("mse", "mae", "huber", "quantile", "asymmetric", "expectile")
QUANTILE_LOSSES = ("quantile", "expectile")  # losses with one output per quantile level
DEFAULT_QUANTILES = (0.1, 0.5, 0.9)
TARGET_LOSS_PARAMETERS = ("delta", "over", "under")

CategoryWeights = dict[str, dict[str, float]]  # {column: {level: weight}}; levels not named weigh 1


@dataclass(frozen=True)
class TargetLoss:
    """The loss of one target as the user named it; None = the global flag's value or the default."""

    kind: str
    delta: float | None = None
    over: float | None = None
    under: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The --loss-config form: {"type": kind, and the parameters that were given}."""
        given = {name: getattr(self, name) for name in TARGET_LOSS_PARAMETERS if getattr(self, name) is not None}
        return {"type": self.kind, **given}


def parse_target_loss(key: str, value) -> TargetLoss:
    """One --loss-config entry: a loss name or {"type": name, "delta"/"over"/"under": number > 0}."""
    if isinstance(value, TargetLoss):
        return value
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise UserError(f"--loss-config['{key}'] must be a loss name or an object with a \"type\"")
    kind = value["type"]
    if kind not in LOSS_TYPES:
        raise UserError(f"--loss-config['{key}']: unknown loss {kind!r} (choose {', '.join(LOSS_TYPES)})")
    unknown = set(value) - {"type", *TARGET_LOSS_PARAMETERS}
    if unknown:
        raise UserError(f"--loss-config['{key}']: unknown parameter(s) {', '.join(sorted(unknown))} "
                        "(known: delta, over, under)")
    params = {k: value.get(k) for k in TARGET_LOSS_PARAMETERS}
    for name, p in params.items():
        if p is not None and (isinstance(p, bool) or not isinstance(p, (int, float)) or not p > 0):
            raise UserError(f"--loss-config['{key}']: {name} must be a number > 0; got {p!r}")
    return TargetLoss(kind, **params)


def parse_loss_config(value: str | dict | None) -> dict[str, TargetLoss] | None:
    """--loss-config JSON text (or its parsed object) -> {key as given: TargetLoss}."""
    if value is None:
        return None
    if isinstance(value, str):
        value = _json(value, "--loss-config is not valid JSON ({msg} at character {pos})")
    if not isinstance(value, dict):
        raise UserError('--loss-config must be a JSON object, e.g. {"ph": "mse", "temperature": "huber"}')
    return {str(key): parse_target_loss(str(key), entry) for key, entry in value.items()}


def losses_by_target(loss_config: dict[str, TargetLoss], target_columns: tuple[str, ...]) -> dict[str, TargetLoss]:
    """Keys that are target names or 0-based indices -> target names; each target named at most once."""
    out: dict[str, TargetLoss] = {}
    for key, loss in loss_config.items():
        if key in target_columns:
            name = key
        elif key.isdigit() and int(key) < len(target_columns):
            name = target_columns[int(key)]
        else:
            raise UserError(f"--loss-config names '{key}', which is not a target column or index "
                            f"({', '.join(target_columns)})")
        if name in out:
            raise UserError(f"--loss-config gives target '{name}' twice (by name and by index)")
        out[name] = loss
    return out


def check_quantiles(values: tuple[float, ...]) -> tuple[float, ...]:
    """--quantiles: each level in (0, 1), no repeats; sorted, since the head's cumulative steps need
    increasing levels."""
    if any(not 0.0 < q < 1.0 for q in values):
        raise UserError(f"--quantiles must lie strictly between 0 and 1; got {','.join(map(str, values))}")
    if len(set(values)) != len(values):
        raise UserError(f"--quantiles repeats a level: {','.join(map(str, values))}")
    return tuple(sorted(float(q) for q in values))


def parse_category_weights(value: str | dict | None) -> str | CategoryWeights | None:
    """--categorical-loss-weights: None, "auto", or JSON text/object {column: {level: weight >= 0}}."""
    if value is None or value == "auto":
        return value
    if isinstance(value, str):
        value = _json(value, "--categorical-loss-weights is neither 'auto' nor JSON ({msg})")
    if not isinstance(value, dict):
        raise UserError('--categorical-loss-weights JSON must map column -> {level: weight}')
    out: CategoryWeights = {}
    for column, levels in value.items():
        if not isinstance(levels, dict):
            raise UserError(f"--categorical-loss-weights: '{column}' must map level -> weight")
        for level, weight in levels.items():
            if not isinstance(weight, (int, float)) or not weight >= 0:
                raise UserError(f"--categorical-loss-weights: weight of {column}={level} must be a number >= 0")
        out[str(column)] = {str(level): float(weight) for level, weight in levels.items()}
    return out


def _json(text: str, error: str) -> Any:
    """json.loads, or UserError(`error` with the parser's {msg} and {pos})."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(error.format(msg=exc.msg, pos=exc.pos)) from None
