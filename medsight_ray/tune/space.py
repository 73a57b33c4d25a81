"""Search spaces as data: one YAML file per stage.

    stage: concepts/concepts            # task/stage it tunes
    num_samples: 6                      # default trial count (``--samples`` overrides)
    fixed:                              # config keys set for every trial
      fit.epochs: 4
    params:                             # config key -> distribution
      optim.lr: {dist: loguniform, low: 1.0e-4, high: 3.0e-2}
      loss.beta: {dist: uniform, low: 0.0, high: 2.0}
      fit.batch_size: {dist: int, low: 8, high: 64}
      loss.name: {dist: categorical, choices: [ce, focal]}
    points_to_evaluate:                 # evaluated first, in order (must lie in the space)
      - {optim.lr: 1.0e-4, loss.beta: 1.0}

Every key must be a key of the stage's config; every point must lie inside the space.
Errors name the file, the key and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medsight_ray.config import apply_overrides, load_yaml
from medsight_ray.errors import ConfigError
from medsight_ray.fit.stage import Stage
from medsight_ray.stages.registry import get_stage

DISTS = ("uniform", "loguniform", "int", "categorical")
TOP_KEYS = ("stage", "num_samples", "fixed", "params", "points_to_evaluate", "description")


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter."""

    key: str
    dist: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()

    def contains(self, value: Any) -> bool:
        """Is ``value`` inside this parameter's range?"""
        if self.dist == "categorical":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.dist == "int" and float(value) != int(value):
            return False
        return self.low <= value <= self.high  # type: ignore[operator]

    def describe(self) -> str:
        """The distribution in words, e.g. ``loguniform [1e-05, 0.1]``."""
        if self.dist == "categorical":
            return f"categorical {list(self.choices)}"
        return f"{self.dist} [{self.low:g}, {self.high:g}]"

    def to_tune(self) -> Any:
        """The Ray Tune search-space object."""
        from ray import tune

        if self.dist == "uniform":
            return tune.uniform(self.low, self.high)
        if self.dist == "loguniform":
            return tune.loguniform(self.low, self.high)
        if self.dist == "int":
            return tune.randint(int(self.low), int(self.high) + 1)
        return tune.choice(list(self.choices))


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space for one stage."""

    path: str
    stage: Stage
    params: tuple[Param, ...]
    fixed: dict[str, Any] = field(default_factory=dict)
    points: tuple[dict[str, Any], ...] = ()
    num_samples: int = 4

    def param_space(self) -> dict[str, Any]:
        """Tune's ``param_space``: dotted config keys to distributions."""
        return {p.key: p.to_tune() for p in self.params}

    def bounds(self) -> dict[str, tuple[float, float]]:
        """Numeric bounds, for the report's edge-of-range warning."""
        return {p.key: (p.low, p.high) for p in self.params if p.dist != "categorical"}  # type: ignore[misc]


def _param(path: str, key: str, spec: Any) -> Param:
    where = f"{path}: params.{key}"
    if not isinstance(spec, dict):
        raise ConfigError("parameter spec is not a mapping", where=where,
                          expected="{dist: ..., low: ..., high: ...} or {dist: categorical, choices: [...]}",
                          got=repr(spec))
    unknown = sorted(set(spec) - {"dist", "low", "high", "choices"})
    if unknown:
        raise ConfigError("unknown key in parameter spec", where=where, expected="dist, low, high, choices",
                          got=str(unknown))
    dist = spec.get("dist")
    if dist not in DISTS:
        raise ConfigError("unknown distribution", where=where, expected=f"one of {list(DISTS)}", got=repr(dist))
    if dist == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError("categorical needs choices", where=where, expected="a non-empty list",
                              got=repr(choices))
        return Param(key, dist, choices=tuple(choices))
    try:
        low, high = float(spec["low"]), float(spec["high"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError("numeric distribution needs low and high", where=where, expected="two numbers",
                          got=f"low={spec.get('low')!r}, high={spec.get('high')!r}") from None
    if low > high:
        raise ConfigError("low is above high", where=where, expected="low <= high", got=f"low={low}, high={high}")
    if dist == "loguniform" and low <= 0:
        raise ConfigError("loguniform needs a positive low", where=where, expected="0 < low", got=str(low))
    return Param(key, dist, low, high)


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space YAML."""
    data = load_yaml(path)
    where = str(path)
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise ConfigError("unknown key in search space", where=f"{where}: {unknown[0]}",
                          expected=f"keys among {list(TOP_KEYS)}", got=str(unknown))
    task, _, name = str(data.get("stage", "")).partition("/")
    try:
        stage = get_stage(task, name or None)
    except ConfigError as err:
        raise ConfigError(err.what, where=f"{where}: stage", expected=err.expected, got=err.got) from None
    params = tuple(_param(where, k, v) for k, v in (data.get("params") or {}).items())
    fixed = dict(data.get("fixed") or {})
    base = stage.config_cls()
    try:
        base = apply_overrides(base, fixed)
        for p in params:  # every key must exist in the stage's config; every value must fit its type
            for value in p.choices or ((p.low, p.high) if p.dist != "int" else (int(p.low), int(p.high))):
                apply_overrides(base, {p.key: value})
    except ConfigError as err:
        raise ConfigError(err.what, where=f"{where}: {err.where}", expected=err.expected, got=err.got) from None
    points = tuple(dict(pt) for pt in (data.get("points_to_evaluate") or []))
    by_key = {p.key: p for p in params}
    for i, point in enumerate(points):
        for key, value in point.items():
            if key not in by_key:
                raise ConfigError("point names a key outside the space", where=f"{where}: points_to_evaluate[{i}]",
                                  expected=f"keys among {sorted(by_key)}", got=repr(key))
            if not by_key[key].contains(value):
                raise ConfigError("point lies outside the space", where=f"{where}: points_to_evaluate[{i}].{key}",
                                  expected=f"{by_key[key].dist} in [{by_key[key].low}, {by_key[key].high}]"
                                  if by_key[key].dist != "categorical" else f"one of {list(by_key[key].choices)}",
                                  got=repr(value))
    samples = int(data.get("num_samples", max(4, len(points))))
    return SearchSpace(where, stage, params, fixed, points, samples)
