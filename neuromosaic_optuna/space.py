"""Search spaces: study-file entries mapped to Optuna distributions.

Rules (also in the README):

* ``[int, int]`` → :class:`optuna.distributions.IntDistribution` (``num_layers = [4, 12]``);
* ``[number, number]`` with a float → :class:`~optuna.distributions.FloatDistribution`
  (``mlp_ratio = [2.0, 4.0]``);
* a list of three or more values, or of strings →
  :class:`~optuna.distributions.CategoricalDistribution`
  (``patch_size = [8, 16, 32]`` is a choice, not a range);
* an explicit table overrides the shorthand: ``{low, high, step, log}`` or ``{choices = [...]}``
  (``resolution = {low = 160, high = 320, step = 32}``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from neuromosaic_optuna import _compat
from neuromosaic_optuna.config import ConfigError

__all__ = ["SearchSpace", "to_distribution", "unit_position"]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def to_distribution(entry: Any, path: str = "search_space") -> BaseDistribution:
    """Map one search-space entry to an Optuna distribution.

    Args:
        entry: ``[low, high]``, a list of choices, or a ``{low, high, step, log}`` /
            ``{choices}`` table.
        path: Field path used in error messages.

    Raises:
        ConfigError: If the entry has none of the accepted shapes.

    Example:
        >>> to_distribution([8, 16, 32])
        CategoricalDistribution(choices=(8, 16, 32))
        >>> to_distribution({"low": 160, "high": 320, "step": 32})
        IntDistribution(high=320, log=False, low=160, step=32)
    """
    if isinstance(entry, Mapping):
        if "choices" in entry:
            return CategoricalDistribution(list(entry["choices"]))
        low, high = entry.get("low"), entry.get("high")
        step, log = entry.get("step"), bool(entry.get("log", False))
        if low is None or high is None:
            raise ConfigError(path, "a range table needs both low and high")
        if low > high:
            raise ConfigError(path, f"low > high ({low} > {high}); swap them")
        if _is_int(low) and _is_int(high) and (step is None or _is_int(step)):
            if step is not None and (high - low) % step:
                raise ConfigError(path, f"high - low ({high - low}) is not a multiple of step "
                                  f"{step}")
            return IntDistribution(low, high, log=log, step=step or 1)
        if step is not None:
            span = (high - low) / step
            if abs(span - round(span)) > 1e-9:
                raise ConfigError(path, f"high - low is not a multiple of step {step}")
        return FloatDistribution(float(low), float(high), log=log, step=step)
    if isinstance(entry, list):
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in entry)
        if len(entry) == 2 and numeric:
            low, high = entry
            if low > high:
                raise ConfigError(path, f"low > high ({low} > {high}); swap them")
            if _is_int(low) and _is_int(high):
                return IntDistribution(low, high)
            return FloatDistribution(float(low), float(high))
        if len(entry) >= 2:
            return CategoricalDistribution(list(entry))
    raise ConfigError(path, "expected [low, high] or a list of choices")


def unit_position(value: Any, dist: BaseDistribution) -> float:
    """Position of a numeric value in its distribution's range, clipped to ``[0, 1]`` (log
    scale when the distribution is ``log``); samplers and warm starts compare params with it.

    Example:
        >>> unit_position(160, IntDistribution(64, 256))
        0.5
        >>> round(unit_position(1e-3, FloatDistribution(1e-4, 1e-2, log=True)), 6)
        0.5
    """
    low, high = float(dist.low), float(dist.high)  # type: ignore[attr-defined]
    x = float(value)
    if getattr(dist, "log", False):
        low, high, x = math.log(low), math.log(high), math.log(max(x, 1e-300))
    return 0.0 if high <= low else min(1.0, max(0.0, (x - low) / (high - low)))


class SearchSpace:
    """A named set of Optuna distributions built from a study file's ``search_space``.

    Args:
        spec: ``{param_name: entry}`` as in a study file (see :func:`to_distribution`).

    Example:
        >>> space = SearchSpace({"num_layers": [4, 12], "patch_size": [8, 16, 32]})
        >>> sorted(space.distributions)
        ['num_layers', 'patch_size']
        >>> study = optuna.create_study()
        >>> params = space.suggest(study.ask())
        >>> 4 <= params["num_layers"] <= 12
        True
    """

    def __init__(self, spec: Mapping[str, Any], *, path: str = "search_space") -> None:
        self._distributions: dict[str, BaseDistribution] = {
            name: to_distribution(entry, f"{path}.{name}") for name, entry in spec.items()
        }

    @property
    def distributions(self) -> dict[str, BaseDistribution]:
        """The Optuna distribution of every parameter, in study-file order."""
        return dict(self._distributions)

    def __contains__(self, name: object) -> bool:
        return name in self._distributions

    def __len__(self) -> int:
        return len(self._distributions)

    def suggest(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """Suggest every parameter on ``trial`` and return ``{name: value}``."""
        params: dict[str, Any] = {}
        for name, dist in self._distributions.items():
            if isinstance(dist, IntDistribution):
                params[name] = trial.suggest_int(name, dist.low, dist.high, step=dist.step,
                                                 log=dist.log)
            elif isinstance(dist, FloatDistribution):
                params[name] = trial.suggest_float(name, dist.low, dist.high, step=dist.step,
                                                   log=dist.log)
            else:
                assert isinstance(dist, CategoricalDistribution)
                params[name] = trial.suggest_categorical(name, dist.choices)
        return params

    def map_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Map foreign params (e.g. from another study) into this space.

        Numbers are clipped to the range and snapped to the step (or rounded for integers;
        on a log scale the clipping is the same, snapping is in value space); a categorical
        value is kept only if it is still a choice (numbers compare by value, so ``16.0``
        matches ``16``); params this space lacks are dropped; params missing from ``params``
        stay missing, left to the sampler.

        Example:
            >>> SearchSpace({"depth": [2, 6], "act": ["relu", "gelu"]}).map_params(
            ...     {"depth": 9.4, "act": "silu", "extra": 1})
            {'depth': 6}
        """
        mapped: dict[str, Any] = {}
        for name, value in params.items():
            dist = self._distributions.get(name)
            if dist is None:
                continue
            if isinstance(dist, CategoricalDistribution):
                for choice in dist.choices:
                    if choice == value and isinstance(choice, bool) == isinstance(value, bool):
                        mapped[name] = choice
                        break
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if not math.isfinite(value):
                continue
            assert isinstance(dist, (IntDistribution, FloatDistribution))
            clipped = min(max(float(value), dist.low), dist.high)
            if isinstance(dist, IntDistribution):
                steps = round((clipped - dist.low) / dist.step)
                mapped[name] = int(min(dist.low + steps * dist.step, dist.high))
            elif dist.step is not None:
                steps = round((clipped - dist.low) / dist.step)
                mapped[name] = min(dist.low + steps * dist.step, dist.high)
            else:
                mapped[name] = clipped
        return mapped

    def contains(self, params: Mapping[str, Any]) -> bool:
        """True when every param of this space is present in ``params`` and valid."""
        for name, dist in self._distributions.items():
            if name not in params:
                return False
            try:
                internal = dist.to_internal_repr(params[name])
            except (ValueError, TypeError):
                return False
            if not _compat.distribution_contains(dist, internal):
                return False
        return True
