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
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from neuromosaic_optuna import _compat
from neuromosaic_optuna.config import ConfigError

__all__ = [
    "SearchSpace",
    "encode_params",
    "param_distance",
    "param_distances",
    "param_features",
    "population_diversity",
    "to_distribution",
    "unit_position",
]


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


# --------------------------------------------------------------------------- encoding


def encode_params(params: Sequence[Mapping[str, Any]],
            distributions: Mapping[str, BaseDistribution]) -> tuple[np.ndarray, np.ndarray]:
    """Parameter sets as a matrix, the one encoding every distance uses: per parameter, a
    category's index or a number's :func:`unit_position`; NaN when a set lacks it.

    Returns:
        ``(codes, categorical)``: the ``(n, d)`` codes in ``distributions`` order and a
        boolean mask of the categorical columns.

    Example:
        >>> dists = {"op": CategoricalDistribution(["a", "b"]), "w": FloatDistribution(0, 2)}
        >>> codes, categorical = encode_params([{"op": "b", "w": 0.5}, {"op": "a"}], dists)
        >>> codes.tolist(), categorical.tolist()
        ([[1.0, 0.25], [0.0, nan]], [True, False])
    """
    names = list(distributions)
    codes = np.full((len(params), len(names)), np.nan)
    categorical = np.array([isinstance(distributions[n], CategoricalDistribution)
                            for n in names], dtype=bool)
    for i, p in enumerate(params):
        for j, name in enumerate(names):
            if name not in p:
                continue
            dist = distributions[name]
            if isinstance(dist, CategoricalDistribution):
                codes[i, j] = dist.to_internal_repr(p[name])
            else:
                codes[i, j] = unit_position(p[name], dist)
    return codes, categorical


def param_distances(a: np.ndarray, b: np.ndarray, categorical: np.ndarray) -> np.ndarray:
    """Normalized distances between the rows of two :func:`encode_params` matrices (the
    distance :func:`population_diversity` describes), shape ``(len(a), len(b))``.

    Example:
        >>> codes, categorical = encode_params(
        ...     [{"w": 0.0}, {"w": 1.5}], {"w": FloatDistribution(0, 2)})
        >>> param_distances(codes, codes, categorical).tolist()
        [[0.0, 0.75], [0.75, 0.0]]
    """
    total = np.zeros((len(a), len(b)))
    counted = np.zeros_like(total)
    for j in range(a.shape[1]):
        have_a, have_b = ~np.isnan(a[:, j]), ~np.isnan(b[:, j])
        either = have_a[:, None] | have_b[None, :]
        both = have_a[:, None] & have_b[None, :]
        diff = np.abs(a[:, j][:, None] - b[:, j][None, :])
        if categorical[j]:
            diff = (diff > 0).astype(float)
        total += np.where(both, np.nan_to_num(diff), np.where(either, 1.0, 0.0))
        counted += either
    return np.divide(total, counted, out=np.zeros_like(total), where=counted > 0)


def population_diversity(params: Sequence[Mapping[str, Any]],
                         distributions: Mapping[str, BaseDistribution]) -> float:
    """Mean pairwise normalized distance between the parameter sets of a population.

    The distance of two parameter sets is the mean, over the parameters either of them has,
    of a per-parameter distance in ``[0, 1]``: 0 or 1 for a categorical (same choice or not),
    ``|a - b| / (high - low)`` for a number (on a log scale for log distributions), 1 when only
    one of them has the parameter. A population of identical architectures has diversity 0;
    uniformly random choices among ``k`` categories give about ``1 - 1/k``, uniformly random
    numbers about 1/3.

    Args:
        params: One ``{name: value}`` per individual.
        distributions: The distribution of every parameter name used in ``params``.

    Returns:
        The diversity in ``[0, 1]``, or NaN for fewer than two individuals.

    Raises:
        KeyError: A parameter has no distribution.

    Example:
        >>> dists = {"op": CategoricalDistribution(["a", "b"]), "w": FloatDistribution(0, 1)}
        >>> population_diversity([{"op": "a", "w": 0.0}, {"op": "b", "w": 0.5}], dists)
        0.75
    """
    if len(params) < 2:
        return math.nan
    missing = {name for p in params for name in p} - set(distributions)
    if missing:
        raise KeyError(f"no distribution for parameter(s) {', '.join(sorted(missing))}")
    codes, categorical = encode_params(params, distributions)
    upper = np.triu_indices(len(params), k=1)
    return float(param_distances(codes, codes, categorical)[upper].mean())


def param_features(params: Sequence[Mapping[str, Any]],
                   distributions: Mapping[str, BaseDistribution]) -> np.ndarray:
    """Parameter sets as points for geometry and regression, built on :func:`encode_params`:
    a number is its unit position (``-1`` when missing), a categorical is one-hot divided by
    ``sqrt(2)`` (zeros when missing), so that changing one parameter moves a point by at
    most 1 whatever its type.

    Example:
        >>> dists = {"op": CategoricalDistribution(["a", "b"]), "w": FloatDistribution(0, 2)}
        >>> param_features([{"op": "b", "w": 0.5}], dists).round(4).tolist()
        [[0.0, 0.7071, 0.25]]
    """
    codes, categorical = encode_params(params, distributions)
    columns: list[np.ndarray] = []
    for j, dist in enumerate(distributions.values()):
        if categorical[j]:
            assert isinstance(dist, CategoricalDistribution)
            block = np.zeros((len(params), len(dist.choices)))
            have = ~np.isnan(codes[:, j])
            block[np.flatnonzero(have), codes[have, j].astype(int)] = 1.0 / math.sqrt(2.0)
            columns.append(block)
        else:
            columns.append(np.nan_to_num(codes[:, j], nan=-1.0).reshape(-1, 1))
    return np.hstack(columns) if columns else np.zeros((len(params), 0))


def param_distance(a: Mapping[str, Any], b: Mapping[str, Any],
                   distributions: Mapping[str, BaseDistribution]) -> float:
    """The normalized distance of two parameter sets (see :func:`population_diversity`).

    Example:
        >>> dists = {"op": CategoricalDistribution(["a", "b"]), "w": FloatDistribution(0, 1)}
        >>> param_distance({"op": "a", "w": 0.0}, {"op": "b", "w": 0.5}, dists)
        0.75
    """
    codes, categorical = encode_params([a, b], distributions)
    return float(param_distances(codes[:1], codes[1:], categorical)[0, 0])


# --------------------------------------------------------------------------- spaces


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
