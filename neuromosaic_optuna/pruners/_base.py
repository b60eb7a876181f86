"""What our pruners share: :class:`CurvePruner`, its :class:`Verdict`, study views, the
optimistic estimate and argument checks."""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

from neuromosaic_optuna.metrics import METRICS
from neuromosaic_optuna.pruners._curves import (
    _curve,
)
from neuromosaic_optuna.record import metric_value

EpochHook = Callable[[optuna.trial.Trial, int, dict[str, float]], None]


class Verdict(NamedTuple):
    """A pruner's judgement of one trial.

    Attributes:
        prune: Stop the trial now.
        reason: Why (empty when it continues).
        attrs: User attributes to store on the trial (e.g. running constraint margins).
    """

    prune: bool
    reason: str = ""
    attrs: Mapping[str, Any] = {}


class _Objectives(NamedTuple):
    names: list[str | None]
    directions: list[str]

    @property
    def single_name(self) -> str | None:
        return self.names[0] if len(self.names) == 1 else None


def _objectives(study: optuna.Study) -> _Objectives:
    names = study.metric_names
    directions = [d.name.lower() for d in study.directions]
    return _Objectives(list(names) if names else [None] * len(directions), directions)


def _cost(trial: FrozenTrial, name: str | None, objectives: _Objectives) -> float | None:
    """A known value of objective ``name``: a COMPLETE trial's value, else user attr metrics."""
    if name is None:
        return None
    return metric_value(trial, name, objectives.names, values_only_when_complete=True)


def _is_fraction(metric: str) -> bool:
    info = METRICS.get(metric)
    return info is not None and info.unit == "fraction"


class _Estimate(NamedTuple):
    value: float
    current: float
    gain: float
    n: int


def _optimistic(completed: Sequence[FrozenTrial], metric: str, step: int, current: float,
                larger_is_better: bool, margin: float, so_name: str | None) -> _Estimate:
    """Current value plus the largest remaining gain seen from ``step`` in COMPLETE trials."""
    sign = 1.0 if larger_is_better else -1.0
    gains = []
    for t in completed:
        curve = _curve(t, metric, so_name)
        if step in curve and len(curve) > 0:
            final = curve[max(curve)]
            if math.isfinite(final) and math.isfinite(curve[step]):
                gains.append(sign * (final - curve[step]))
    gain = max([0.0, *gains]) + margin
    value = current + sign * gain
    if _is_fraction(metric):
        value = min(1.0, max(0.0, value))
    return _Estimate(value, current, gain, len(gains))


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name}: must be >= {low}, got {value}")
    return value


def _check_float(name: str, value: Any, low: float, *, open_low: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    if value < low or (open_low and value == low):
        raise ValueError(f"{name}: must be {'>' if open_low else '>='} {low}, got {value}")
    return float(value)


def _check_bounds(bounds: Mapping[str, Any]) -> dict[str, tuple[str, str, float]]:
    """``{"min_accuracy": 0.8}`` as ``{"min_accuracy": ("min", "accuracy", 0.8)}``."""
    checked: dict[str, tuple[str, str, float]] = {}
    for key, bound in bounds.items():
        kind, _, metric = str(key).partition("_")
        if kind not in ("min", "max") or not metric:
            raise ValueError(f"bounds: {key!r} is not min_<metric> or max_<metric>")
        checked[key] = (kind, metric, _check_float(f"bounds.{key}", bound, -math.inf))
    return checked


def _completed(study: optuna.Study, trial: FrozenTrial) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.number != trial.number]


class CurvePruner(BasePruner):
    """Base of pruners that read the curves of :func:`report` and explain their decisions.

    Subclasses implement :meth:`judge`; :meth:`prune` returns its ``prune`` flag, so Optuna can
    call them in single-objective studies and :func:`should_prune` in any study.
    """

    @abc.abstractmethod
    def judge(self, study: optuna.Study, trial: FrozenTrial) -> Verdict:
        """Decide about ``trial`` (its latest reported step) and say why."""

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        """Optuna's entry point: ``judge(study, trial).prune``."""
        return self.judge(study, trial).prune
