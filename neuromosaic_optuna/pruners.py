"""Early stopping for single- and multi-objective studies.

Optuna 5 refuses ``Trial.report`` and ``Trial.should_prune`` in multi-objective studies and never
calls a multi-objective study's pruner. This module makes early stopping work in both kinds:

* :func:`report` records per-step metrics. Every study keeps them in the trial's user attribute
  ``intermediate``: ``{metric: {str(step): value}}`` (non-finite values stored as ``null``), a
  plain JSON value that pruners in any worker process and optuna-dashboard read. In a
  single-objective study the objective's metric is also passed to ``trial.report``, so Optuna's
  own pruners and plots work as usual.
* :func:`should_prune` asks a pruner (default: the study's) in both kinds of study: our pruners
  read the ``intermediate`` curves; Optuna's pruners judge single-objective trials as they
  always do. A pruned trial gets the user attribute ``reason``.
* Pruners (real :class:`optuna.pruners.BasePruner` subclasses, usable in plain Optuna scripts):
  :class:`ParetoDominancePruner`, :class:`ConstraintTrajectoryPruner`,
  :class:`MultiObjectiveSuccessiveHalvingPruner`, :class:`DivergencePruner`, and
  :class:`CombinedPruner` to run several. Objectives are matched to reported metrics by
  ``study.metric_names``; cost objectives (params, FLOPs, latency, memory, throughput) are known
  before training and read from the trial's user attribute ``metrics`` (completed trials: from
  their values).
* :class:`HypervolumeStagnationCallback` stops a study whose hypervolume stalls.

The *optimistic estimate* used by the dominance and constraint pruners: a trial at step ``s``
with value ``v`` may still gain, at most, the largest gain ``max_j (final_j - value_j(s))``
seen among COMPLETE trials that reported step ``s`` (never less than 0; ``margin`` added; for a
minimized metric the same with signs flipped; fractions clipped to ``[0, 1]``).

Study files choose a pruner in the ``[pruner]`` table::

    [pruner]
    name = "MultiObjectiveSuccessiveHalvingPruner"  # ours, or any class of optuna.pruners
    reduction_factor = 3                            # the pruner's keyword arguments
    divergence = true                # also run a DivergencePruner (a table gives its arguments)
    [pruner.stop]                    # optional: stop the study when hypervolume stalls
    window = 10
    min_improvement = 0.01

Without a ``[pruner]`` table a study uses :data:`DEFAULT_PRUNER` (with divergence): it only stops
a trial that cannot reach the feasible Pareto front (or, with one objective, beat the best
trial) even under the optimistic estimate, so it never costs hypervolume on curves like the ones
seen so far, and it needs no tuning. ``name = "NopPruner"`` turns pruning off.
"""

from __future__ import annotations

import abc
import inspect
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import optuna
from optuna.pruners import BasePruner, NopPruner
from optuna.trial import FrozenTrial, TrialState

from neuromosaic_optuna.config import ConfigError, StudyConfig, check_argument_types
from neuromosaic_optuna.constraints import is_feasible
from neuromosaic_optuna.metrics import METRICS
from neuromosaic_optuna.pareto import (
    crowding_distance,
    hypervolume_history_of,
    pareto_front_mask,
    pareto_info,
    pareto_ranks,
)

__all__ = [
    "DEFAULT_PRUNER",
    "INTERMEDIATE_ATTR",
    "STOPPED_ATTR",
    "CombinedPruner",
    "ConstraintTrajectoryPruner",
    "CurvePruner",
    "DivergencePruner",
    "HypervolumeStagnationCallback",
    "MultiObjectiveSuccessiveHalvingPruner",
    "ParetoDominancePruner",
    "Verdict",
    "epoch_hook_for",
    "intermediate_values",
    "make_pruner",
    "report",
    "should_prune",
    "stop_callback_for",
]

#: User attribute holding the reported curves: ``{metric: {str(step): value}}``.
INTERMEDIATE_ATTR = "intermediate"
#: Study user attribute set when a :class:`HypervolumeStagnationCallback` stops the study.
STOPPED_ATTR = "stopped_by"
#: Pruner used when a study file has no ``[pruner]`` table (see the module docstring).
DEFAULT_PRUNER = "ParetoDominancePruner"

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


# --------------------------------------------------------------------------- curves


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def intermediate_values(trial: FrozenTrial | optuna.trial.Trial, metric: str) -> dict[int, float]:
    """The curve :func:`report` stored for ``metric``: ``{step: value}`` (non-finite as NaN).

    Example:
        >>> t = optuna.trial.create_trial(value=0.0, user_attrs={
        ...     "intermediate": {"accuracy": {"1": 0.5, "2": 0.75}}})
        >>> intermediate_values(t, "accuracy")
        {1: 0.5, 2: 0.75}
    """
    table = trial.user_attrs.get(INTERMEDIATE_ATTR)
    curve = table.get(metric) if isinstance(table, Mapping) else None
    if not isinstance(curve, Mapping):
        return {}
    return {int(step): math.nan if value is None else float(value)
            for step, value in curve.items()}


def _curve(trial: FrozenTrial, metric: str | None, so_name: str | None) -> dict[int, float]:
    """``intermediate`` curve, or Optuna's intermediate values for the single objective."""
    if metric is None:
        return {}
    curve = intermediate_values(trial, metric)
    if not curve and so_name == metric and trial.intermediate_values:
        curve = dict(trial.intermediate_values)
    return curve


def _latest_step(trial: FrozenTrial) -> int | None:
    table = trial.user_attrs.get(INTERMEDIATE_ATTR)
    steps = [int(s) for curve in (table or {}).values() if isinstance(curve, Mapping)
             for s in curve]
    if trial.last_step is not None:
        steps.append(trial.last_step)
    return max(steps) if steps else None


def report(trial: optuna.trial.BaseTrial, step: int, **metrics: float) -> None:
    """Record metrics after ``step`` (an epoch) in any study.

    Every study stores them in the user attribute ``intermediate`` (see the module docstring).
    A single-objective study also gets ``trial.report(value, step)``, where ``value`` is the
    metric named like the study's objective (``study.metric_names``), else ``accuracy``, else
    the first metric given. Trials without a study (``FixedTrial``) only store the attribute.

    Args:
        trial: The running trial.
        step: Non-negative step number (the training loop uses the epoch, from 1).
        **metrics: Metric values, e.g. ``accuracy=0.91, loss=0.3``.

    Raises:
        TypeError: ``step`` is not an integer or a value is not a number.
        ValueError: ``step`` is negative or no metric is given.

    Example:
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> trial = study.ask()
        >>> report(trial, 1, accuracy=0.5, loss=1.2)
        >>> trial.user_attrs["intermediate"]
        {'accuracy': {'1': 0.5}, 'loss': {'1': 1.2}}
    """
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
        raise TypeError(f"step: expected an integer, got {step!r}")
    if step < 0:
        raise ValueError(f"step: must be >= 0, got {step}")
    if not metrics:
        raise ValueError("metrics: give at least one, e.g. accuracy=0.9")
    values: dict[str, float] = {}
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise TypeError(f"{name}: expected a number, got {value!r}")
        values[name] = float(value)
    table = trial.user_attrs.get(INTERMEDIATE_ATTR)
    table = {k: dict(v) for k, v in table.items()} if isinstance(table, Mapping) else {}
    for name, value in values.items():
        table.setdefault(name, {})[str(int(step))] = _finite_or_none(value)
    trial.set_user_attr(INTERMEDIATE_ATTR, table)
    study = getattr(trial, "study", None)
    if isinstance(trial, optuna.trial.Trial) and study is not None and len(study.directions) == 1:
        names = study.metric_names or []
        name = next((n for n in (*names, "accuracy") if n in values), next(iter(values)))
        trial.report(values[name], int(step))


# --------------------------------------------------------------------------- study views


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
    if trial.state == TrialState.COMPLETE and trial.values is not None:
        value: Any = trial.values[objectives.names.index(name)]
    else:
        metrics = trial.user_attrs.get("metrics")
        value = metrics.get(name) if isinstance(metrics, Mapping) else None
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else float(value)


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


def _completed(study: optuna.Study, trial: FrozenTrial) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.number != trial.number]


# --------------------------------------------------------------------------- pruners


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


class ParetoDominancePruner(CurvePruner):
    """Stop a trial whose optimistic final point is dominated by the current feasible front.

    The trial's point has, for each objective, the optimistic estimate of a reported metric
    (see the module docstring) or the known value of a cost (user attribute ``metrics``). It is
    pruned when a feasible COMPLETE trial is at least as good in every objective and better in
    one. An objective that is neither reported nor known keeps the trial running.

    Args:
        n_startup_trials: Judge a step only when this many COMPLETE trials reported it (the gain
            estimate needs them).
        n_warmup_steps: Never prune before this step.
        margin: Added to the largest remaining gain (extra caution, in the metric's units).

    Raises:
        ValueError: On an invalid argument (the message names it).

    Example:
        >>> study = optuna.create_study(directions=["maximize", "minimize"],
        ...                             pruner=ParetoDominancePruner(n_startup_trials=1))
        >>> study.set_metric_names(["accuracy", "flops"])
        >>> study.add_trial(optuna.trial.create_trial(values=[0.9, 1e6], user_attrs={
        ...     "intermediate": {"accuracy": {"1": 0.6, "2": 0.9}}}))
        >>> trial = study.ask()
        >>> trial.set_user_attr("metrics", {"flops": 2e6})
        >>> report(trial, 1, accuracy=0.5)
        >>> should_prune(trial), trial.user_attrs["optimistic"]
        (True, {'accuracy': 0.8})
    """

    def __init__(self, *, n_startup_trials: int = 3, n_warmup_steps: int = 0,
                 margin: float = 0.0) -> None:
        self.n_startup_trials = _check_int("n_startup_trials", n_startup_trials, 1)
        self.n_warmup_steps = _check_int("n_warmup_steps", n_warmup_steps, 0)
        self.margin = _check_float("margin", margin, 0.0)

    def judge(self, study: optuna.Study, trial: FrozenTrial) -> Verdict:
        """See the class docstring."""
        step = _latest_step(trial)
        if step is None or step < self.n_warmup_steps:
            return Verdict(False)
        objectives = _objectives(study)
        completed = _completed(study, trial)
        point: list[float] = []
        estimates: dict[str, float] = {}
        for name, direction in zip(objectives.names, objectives.directions, strict=True):
            curve = _curve(trial, name, objectives.single_name)
            if name is not None and step in curve:
                if not math.isfinite(curve[step]):
                    return Verdict(False)
                est = _optimistic(completed, name, step, curve[step],
                                  direction == "maximize", self.margin, objectives.single_name)
                if est.n < self.n_startup_trials:
                    return Verdict(False)
                point.append(est.value)
                estimates[name] = round(est.value, 6)
                continue
            known = _cost(trial, name, objectives)
            if known is None:
                return Verdict(False)
            point.append(known)
        front = [t for t in completed if t.values is not None and is_feasible(t)
                 and all(not math.isnan(v) for v in t.values)]
        attrs = {"optimistic": estimates}
        if not front:
            return Verdict(False, "", attrs)
        values = np.asarray([t.values for t in front] + [point], dtype=float)
        mask = pareto_front_mask(values, objectives.directions)
        if mask[-1]:
            return Verdict(False, "", attrs)
        signs = np.asarray([1.0 if d == "maximize" else -1.0 for d in objectives.directions])
        better = values[:-1] * signs
        mine = values[-1] * signs
        by = next(t.number for t, row in zip(front, better, strict=True)
                  if np.all(row >= mine) and np.any(row > mine))
        shown = ", ".join(f"{name} {v:.4g}" for name, v in estimates.items())
        return Verdict(True, f"dominated at step {step}: optimistic {shown} is dominated by "
                             f"trial {by}", attrs)


class ConstraintTrajectoryPruner(CurvePruner):
    """Stop a trial that cannot meet a ``min_``/``max_`` constraint on a reported metric.

    For ``min_accuracy = 0.9`` the trial is pruned when its optimistic final accuracy (see the
    module docstring) is below 0.9; for a ``max_`` bound, when its optimistic final value is
    above it. The running margins (``bound - estimate`` for ``min_``, ``estimate - bound`` for
    ``max_``: ``<= 0`` still reachable) are stored in the user attribute
    ``constraint_margins``; the constraints themselves are set once, when final, by the
    objective.

    Args:
        bounds: ``{"min_accuracy": 0.9, ...}``; constraints on metrics never reported are
            ignored.
        n_startup_trials: Judge a step only when this many COMPLETE trials reported it.
        n_warmup_steps: Never prune before this step.
        margin: Added to the largest remaining gain.

    Raises:
        ValueError: On an invalid argument (the message names it).

    Example:
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> study.add_trial(optuna.trial.create_trial(values=[0.9, 1e6], user_attrs={
        ...     "intermediate": {"accuracy": {"1": 0.7, "2": 0.9}}}))
        >>> pruner = ConstraintTrajectoryPruner(bounds={"min_accuracy": 0.8}, n_startup_trials=1)
        >>> trial = study.ask()
        >>> report(trial, 1, accuracy=0.55)
        >>> should_prune(trial, pruner), trial.user_attrs["constraint_margins"]
        (True, {'min_accuracy': 0.05})
    """

    def __init__(self, *, bounds: Mapping[str, float], n_startup_trials: int = 3,
                 n_warmup_steps: int = 0, margin: float = 0.0) -> None:
        if not isinstance(bounds, Mapping) or not bounds:
            raise ValueError("bounds: give at least one bound, e.g. {'min_accuracy': 0.9}")
        self.bounds: dict[str, tuple[str, str, float]] = {}
        for key, bound in bounds.items():
            kind, _, metric = str(key).partition("_")
            if kind not in ("min", "max") or not metric:
                raise ValueError(f"bounds: {key!r} is not min_<metric> or max_<metric>")
            self.bounds[key] = (kind, metric, _check_float(f"bounds.{key}", bound, -math.inf))
        self.n_startup_trials = _check_int("n_startup_trials", n_startup_trials, 1)
        self.n_warmup_steps = _check_int("n_warmup_steps", n_warmup_steps, 0)
        self.margin = _check_float("margin", margin, 0.0)

    def judge(self, study: optuna.Study, trial: FrozenTrial) -> Verdict:
        """See the class docstring."""
        step = _latest_step(trial)
        if step is None or step < self.n_warmup_steps:
            return Verdict(False)
        so_name = _objectives(study).single_name
        completed = _completed(study, trial)
        margins: dict[str, float] = {}
        failed: list[str] = []
        for key, (kind, metric, bound) in self.bounds.items():
            curve = _curve(trial, metric, so_name)
            if step not in curve or not math.isfinite(curve[step]):
                continue
            est = _optimistic(completed, metric, step, curve[step], kind == "min", self.margin,
                              so_name)
            if est.n < self.n_startup_trials:
                continue
            margins[key] = round(bound - est.value if kind == "min" else est.value - bound, 6)
            if margins[key] > 0:
                failed.append(f"{key} = {bound:g} is out of reach at step {step} (optimistic "
                              f"{metric} {est.value:.4g} = {est.current:.4g} "
                              f"{'+' if kind == 'min' else '-'} {est.gain:.4g})")
        attrs = {"constraint_margins": margins} if margins else {}
        return Verdict(bool(failed), "; ".join(failed), attrs)


class MultiObjectiveSuccessiveHalvingPruner(CurvePruner):
    """Successive halving by Pareto rank: at each rung keep the top ``1 / reduction_factor``.

    A trial that reports a rung step is ranked against every other trial that reported the same
    step (running, pruned or complete; all trained, so all within the cost constraints): by
    non-domination rank over the study's objectives (reported metrics at the rung, costs from
    the user attribute ``metrics``; an objective unknown for the trial is left out), then by
    crowding distance within its front (larger first). It continues when fewer than
    ``max(1, n // reduction_factor)`` of the ``n`` trials at the rung (itself included) rank
    strictly before it, so ties favour it (the asynchronous rule of Optuna's
    ``SuccessiveHalvingPruner``, ASHA).

    Args:
        rungs: Steps (epochs) at which trials are ranked, increasing; default
            ``min_resource * reduction_factor ** k`` for k = 0, 1, ...
        min_resource: First rung when ``rungs`` is not given.
        reduction_factor: ``eta``, at least 2.
        n_startup_trials: Prune at a rung only when this many other trials reached it.

    Raises:
        ValueError: On an invalid argument (the message names it).

    Example:
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> study.set_metric_names(["accuracy", "flops"])
        >>> for acc, flops in ((0.9, 1e6), (0.8, 2e6)):
        ...     t = study.ask(); t.set_user_attr("metrics", {"flops": flops})
        ...     report(t, 1, accuracy=acc); _ = study.tell(t, [acc, flops])
        >>> pruner = MultiObjectiveSuccessiveHalvingPruner(rungs=[1], reduction_factor=2)
        >>> t = study.ask(); t.set_user_attr("metrics", {"flops": 3e6})
        >>> report(t, 1, accuracy=0.7)
        >>> should_prune(t, pruner)
        True
    """

    def __init__(self, *, rungs: Sequence[int] | None = None, min_resource: int = 1,
                 reduction_factor: int = 3, n_startup_trials: int = 0) -> None:
        self.min_resource = _check_int("min_resource", min_resource, 1)
        self.reduction_factor = _check_int("reduction_factor", reduction_factor, 2)
        self.n_startup_trials = _check_int("n_startup_trials", n_startup_trials, 0)
        if rungs is not None:
            if isinstance(rungs, (str, bytes)) or not isinstance(rungs, Sequence) or not rungs:
                raise ValueError(f"rungs: expected a non-empty list of steps, got {rungs!r}")
            checked = [_check_int("rungs", r, 1) for r in rungs]
            if any(b <= a for a, b in zip(checked, checked[1:], strict=False)):
                raise ValueError(f"rungs: must increase strictly, got {list(rungs)}")
            rungs = checked
        self.rungs: list[int] | None = rungs

    def is_rung(self, step: int) -> bool:
        """True when trials are ranked at ``step``."""
        if self.rungs is not None:
            return step in self.rungs
        r = self.min_resource
        while r < step:
            r *= self.reduction_factor
        return r == step

    @staticmethod
    def _point(trial: FrozenTrial, step: int, objectives: _Objectives,
               columns: Sequence[int], reported: Sequence[int]) -> list[float] | None:
        """Reported objectives at ``step`` and known costs; None when one is missing."""
        row = []
        for i in columns:
            name = objectives.names[i]
            if i in reported:
                value = _curve(trial, name, objectives.single_name).get(step)
            else:
                value = _cost(trial, name, objectives)
            if value is None or not math.isfinite(value):
                return None
            row.append(float(value))
        return row

    def judge(self, study: optuna.Study, trial: FrozenTrial) -> Verdict:
        """See the class docstring."""
        step = _latest_step(trial)
        if step is None or not self.is_rung(step):
            return Verdict(False)
        objectives = _objectives(study)
        reported = [i for i, n in enumerate(objectives.names)
                    if n is not None and step in _curve(trial, n, objectives.single_name)]
        if not reported:
            return Verdict(False)
        columns = [i for i in range(len(objectives.names))
                   if i in reported or _cost(trial, objectives.names[i], objectives) is not None]
        mine = self._point(trial, step, objectives, columns, reported)
        if mine is None:
            return Verdict(True, f"non-finite {objectives.names[reported[0]]} at rung {step}")
        others = []
        for t in study.get_trials(deepcopy=False):
            if t.number == trial.number or t.state == TrialState.FAIL:
                continue
            if not all(step in _curve(t, objectives.names[i], objectives.single_name)
                       for i in reported):
                continue
            row = self._point(t, step, objectives, columns, reported)
            if row is not None:
                others.append(row)
        n = len(others) + 1
        if len(others) < self.n_startup_trials:
            return Verdict(False)
        directions = [objectives.directions[i] for i in columns]
        values = np.asarray([mine, *others], dtype=float)
        ranks = pareto_ranks(values, directions)
        crowd = np.zeros(n)
        for r in np.unique(ranks):
            members = np.flatnonzero(ranks == r)
            crowd[members] = crowding_distance(values[members])
        ahead = int(np.sum((ranks < ranks[0]) | ((ranks == ranks[0]) & (crowd > crowd[0]))))
        keep = max(1, n // self.reduction_factor)
        attrs = {"rung": {"step": step, "ahead": ahead, "keep": keep, "of": n}}
        if ahead < keep:
            return Verdict(False, "", attrs)
        return Verdict(True, f"rung {step}: {ahead} of {n} trials rank ahead (Pareto rank "
                             f"{int(ranks[0])}); only the top {keep} continue", attrs)


class DivergencePruner(CurvePruner):
    """Stop a trial at once when its loss is NaN/inf or explodes.

    Args:
        metric: The reported metric to watch.
        growth: Prune when the latest value exceeds ``growth`` times the smallest earlier
            value (``None`` turns this test off).
        max_value: Prune when the latest value exceeds it (``None``: no absolute bound).

    Raises:
        ValueError: On an invalid argument (the message names it).

    Example:
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> trial = study.ask()
        >>> report(trial, 1, loss=2.0); report(trial, 2, loss=float("nan"))
        >>> should_prune(trial, DivergencePruner()), trial.user_attrs["reason"]
        (True, 'diverged: loss is not finite at step 2')
    """

    def __init__(self, *, metric: str = "loss", growth: float | None = 10.0,
                 max_value: float | None = None) -> None:
        if not isinstance(metric, str) or not metric:
            raise ValueError(f"metric: expected a metric name, got {metric!r}")
        self.metric = metric
        self.growth = None if growth is None else _check_float("growth", growth, 1.0,
                                                               open_low=True)
        self.max_value = None if max_value is None else _check_float("max_value", max_value,
                                                                     -math.inf)

    def judge(self, study: optuna.Study, trial: FrozenTrial) -> Verdict:
        """See the class docstring."""
        curve = _curve(trial, self.metric, _objectives(study).single_name)
        if not curve:
            return Verdict(False)
        step = max(curve)
        value = curve[step]
        if not math.isfinite(value):
            return Verdict(True, f"diverged: {self.metric} is not finite at step {step}")
        if self.max_value is not None and value > self.max_value:
            return Verdict(True, f"diverged: {self.metric} {value:.4g} at step {step} exceeds "
                                 f"{self.max_value:g}")
        earlier = [v for s, v in curve.items() if s < step and math.isfinite(v)]
        if self.growth is not None and earlier and min(earlier) > 0 \
                and value > self.growth * min(earlier):
            return Verdict(True, f"diverged: {self.metric} {value:.4g} at step {step} exceeds "
                                 f"{self.growth:g} x its best {min(earlier):.4g}")
        return Verdict(False)


class CombinedPruner(CurvePruner):
    """Prune when any of ``pruners`` does (the first one that does gives the reason).

    Optuna's own pruners may be combined in single-objective studies.

    Args:
        pruners: One or more pruners.

    Raises:
        ValueError: When ``pruners`` is empty or holds something that is not a pruner.

    Example:
        >>> p = CombinedPruner(pruners=[DivergencePruner(), ParetoDominancePruner()])
        >>> [type(x).__name__ for x in p.pruners]
        ['DivergencePruner', 'ParetoDominancePruner']
    """

    def __init__(self, *, pruners: Sequence[BasePruner]) -> None:
        if not pruners or not all(isinstance(p, BasePruner) for p in pruners):
            raise ValueError(f"pruners: expected a non-empty list of pruners, got {pruners!r}")
        self.pruners = list(pruners)

    def judge(self, study: optuna.Study, trial: FrozenTrial) -> Verdict:
        """See the class docstring."""
        attrs: dict[str, Any] = {}
        for pruner in self.pruners:
            verdict = _judge(pruner, study, trial)
            attrs.update(verdict.attrs)
            if verdict.prune:
                return Verdict(True, verdict.reason, attrs)
        return Verdict(False, "", attrs)


_warned: set[int] = set()


def _judge(pruner: BasePruner, study: optuna.Study, trial: FrozenTrial) -> Verdict:
    if isinstance(pruner, CurvePruner):
        return pruner.judge(study, trial)
    if isinstance(pruner, NopPruner):
        return Verdict(False)
    if len(study.directions) > 1:
        if id(pruner) not in _warned:
            _warned.add(id(pruner))
            warnings.warn(f"{type(pruner).__name__} judges one objective and cannot prune a "
                          "multi-objective study; use ParetoDominancePruner, "
                          "MultiObjectiveSuccessiveHalvingPruner, ConstraintTrajectoryPruner or "
                          "DivergencePruner", stacklevel=3)
        return Verdict(False)
    if not pruner.prune(study, trial):
        return Verdict(False)
    step = trial.last_step
    value = trial.intermediate_values.get(step) if step is not None else None
    shown = f" (value {value:.4g})" if value is not None else ""
    return Verdict(True, f"{type(pruner).__name__} at step {step}{shown}")


def _latest_frozen(trial: optuna.trial.Trial) -> FrozenTrial:
    latest = getattr(trial, "_get_latest_trial", None)
    if callable(latest):
        return latest()
    return trial.study._storage.get_trial(trial._trial_id)


def _decide(trial: optuna.trial.BaseTrial, pruner: BasePruner | None) -> Verdict:
    """Judge ``trial`` as ``Trial.should_prune`` would, and store the verdict's attributes."""
    if not isinstance(trial, optuna.trial.Trial):
        return Verdict(False)
    study = trial.study
    verdict = _judge(pruner if pruner is not None else study.pruner, study,
                     _latest_frozen(trial))
    for key, value in verdict.attrs.items():
        trial.set_user_attr(key, value)
    if verdict.prune:
        trial.set_user_attr("reason", verdict.reason)
    return verdict


def should_prune(trial: optuna.trial.BaseTrial, pruner: BasePruner | None = None) -> bool:
    """Should ``trial`` stop now? Works in single- and multi-objective studies.

    ``pruner`` defaults to the study's. Our pruners (:class:`CurvePruner`) judge the curves of
    :func:`report` in any study; Optuna's pruners judge single-objective studies through
    ``trial.should_prune`` and, unable to rank several objectives, never prune a
    multi-objective trial (with a warning). When the answer is yes the user attribute
    ``reason`` says why; a pruner's running details (e.g. ``constraint_margins``) are stored as
    user attributes too. Trials without a study (``FixedTrial``) never stop.

    Args:
        trial: The running trial.
        pruner: Judge with this pruner instead of ``trial.study.pruner``.

    Returns:
        True when the trial should raise :class:`optuna.TrialPruned`.

    Example:
        >>> study = optuna.create_study(pruner=optuna.pruners.NopPruner())
        >>> trial = study.ask()
        >>> report(trial, 1, accuracy=0.5)
        >>> should_prune(trial)
        False
    """
    return _decide(trial, pruner).prune


# --------------------------------------------------------------------------- study stopping


class HypervolumeStagnationCallback:
    """Stop a study when its hypervolume grew by less than ``min_improvement`` over the last
    ``window`` finished trials.

    After each trial: ``HV_now`` is the hypervolume of the feasible COMPLETE trials;
    ``HV_before`` that of those among the finished (COMPLETE or PRUNED) trials before the last
    ``window``; both with the same reference point (given, or :func:`pareto.pareto_info`'s
    ``"natural"`` rule over the current trials). When ``HV_before > 0`` and
    ``(HV_now - HV_before) / HV_before < min_improvement`` it prints one line, stores it in the
    study user attribute ``stopped_by`` and calls ``study.stop()``. In every worker process that
    runs this callback, the next finished trial sees ``stopped_by`` and stops that worker too.

    Args:
        window: ``K``, the number of recent finished trials judged.
        min_improvement: Relative hypervolume gain (fraction) that keeps the study going.
        min_trials: Never stop before this many finished trials (default ``2 * window``).
        reference_point: Fixed reference point in the objectives' units.
        verbose: Print when it fires.

    Raises:
        ValueError: On an invalid argument (the message names it).

    Example:
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> stop = HypervolumeStagnationCallback(window=2, min_improvement=0.01,
        ...                                      reference_point=[0.0, 10.0], verbose=False)
        >>> study.optimize(lambda t: (0.5, 5.0), n_trials=10, callbacks=[stop])
        >>> len(study.trials), study.user_attrs["stopped_by"]["trial"]
        (4, 3)
    """

    def __init__(self, *, window: int = 10, min_improvement: float = 0.01,
                 min_trials: int | None = None, reference_point: Sequence[float] | None = None,
                 verbose: bool = True) -> None:
        self.window = _check_int("window", window, 1)
        self.min_improvement = _check_float("min_improvement", min_improvement, 0.0)
        self.min_trials = (2 * self.window if min_trials is None
                           else _check_int("min_trials", min_trials, self.window + 1))
        if reference_point is not None:
            reference_point = [_check_float("reference_point", v, -math.inf)
                               for v in reference_point]
        self.reference_point = reference_point
        self.verbose = bool(verbose)

    def improvement(self, study: optuna.Study) -> float | None:
        """Relative hypervolume gain over the last ``window`` trials (None: cannot tell yet)."""
        finished = study.get_trials(deepcopy=False,
                                    states=(TrialState.COMPLETE, TrialState.PRUNED))
        if len(finished) < max(self.min_trials, self.window + 1):
            return None
        cutoff = sorted(t.number for t in finished)[-self.window]
        info = pareto_info(study, reference_point=self.reference_point)
        if info.trial_numbers.size == 0 or not np.isfinite(info.reference_point).all():
            return None
        history = hypervolume_history_of(study, info.reference_point)
        before_idx = np.flatnonzero(info.trial_numbers < cutoff)
        before = float(history[before_idx[-1]]) if before_idx.size else 0.0
        now = float(history[-1])
        if not before > 0 or not math.isfinite(now):
            return None
        return (now - before) / before

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Optuna callback: judge after each finished trial."""
        if STOPPED_ATTR in study.user_attrs:
            study.stop()
            return
        gain = self.improvement(study)
        if gain is None or gain >= self.min_improvement:
            return
        message = (f"Stopping study {study.study_name!r} after trial {trial.number}: "
                   f"hypervolume improved by {gain:.2%} over the last {self.window} trials "
                   f"(< {self.min_improvement:.2%})")
        study.set_user_attr(STOPPED_ATTR, {"callback": type(self).__name__,
                                           "trial": trial.number, "message": message})
        if self.verbose:
            print(message, flush=True)
        study.stop()


# --------------------------------------------------------------------------- config

_OURS: dict[str, type[BasePruner]] = {
    cls.__name__: cls for cls in (ParetoDominancePruner, ConstraintTrajectoryPruner,
                                  MultiObjectiveSuccessiveHalvingPruner, DivergencePruner)
}
_EXTRA_KEYS = ("name", "divergence", "stop")


def _pruner_class(name: Any) -> type[BasePruner]:
    if name in _OURS:
        return _OURS[name]
    cls = getattr(optuna.pruners, name, None) if isinstance(name, str) else None
    if not (inspect.isclass(cls) and issubclass(cls, BasePruner)) or name == "BasePruner":
        optuna_names = sorted(n for n in dir(optuna.pruners)
                              if n.endswith("Pruner") and n != "BasePruner")
        raise ConfigError("pruner.name", f"unknown pruner {name!r}; choose one of: "
                          f"{', '.join([*_OURS, *optuna_names])}")
    return cls


def _instantiate(cls: type[BasePruner], kwargs: Mapping[str, Any], path: str) -> BasePruner:
    accepted = inspect.signature(cls.__init__).parameters
    for key in kwargs:
        if key not in accepted or key == "self":
            raise ConfigError(f"{path}.{key}", f"{cls.__name__} takes no argument {key!r}; it "
                              f"takes {', '.join(k for k in accepted if k != 'self') or 'none'}")
    check_argument_types(cls, kwargs, path)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        text = str(exc)
        arg = text.split(":", 1)[0].split(".", 1)[0]
        if arg in accepted:
            raise ConfigError(f"{path}.{text.split(':', 1)[0]}",
                              text.split(":", 1)[1].strip()) from None
        raise ConfigError(path, f"{cls.__name__} rejected its arguments: {text}") from None


def _reported_bounds(config: StudyConfig) -> dict[str, float]:
    return {c.name: c.bound for c in config.constraints if not METRICS[c.metric].cost}


def _stop_options(config: StudyConfig) -> dict[str, Any] | None:
    stop = config.pruner.get("stop")
    if stop is None or stop is False:
        return None
    if stop is True:
        return {}
    if not isinstance(stop, Mapping):
        raise ConfigError("pruner.stop", f"expected a table {{window, min_improvement}} or "
                          f"true, got {stop!r}")
    return dict(stop)


def make_pruner(config: StudyConfig) -> BasePruner:
    """Build the pruner a study file asks for (see the module docstring).

    ``name`` is one of our pruners or any class of :mod:`optuna.pruners`, with its keyword
    arguments. :class:`ConstraintTrajectoryPruner` takes its ``bounds`` from the study's
    constraints on trained metrics (e.g. ``min_accuracy``) unless given. ``divergence`` (default
    true; a table gives :class:`DivergencePruner` arguments) adds a divergence check in front,
    through :class:`CombinedPruner`. Without a ``[pruner]`` table: :data:`DEFAULT_PRUNER`.

    Raises:
        ConfigError: Unknown pruner or argument, an invalid value, a single-objective Optuna
            pruner in a multi-objective study, or a constraint pruner without bounds.

    Example:
        >>> from neuromosaic_optuna.config import load_config
        >>> cfg = load_config({"defaults": {"pruner": {"name": "MedianPruner",
        ...     "n_warmup_steps": 1, "divergence": False}}, "experiment": {"name": "x",
        ...     "architecture_type": "conv_net", "search_space": {"w": [1, 2]}}})
        >>> type(make_pruner(cfg)).__name__
        'MedianPruner'
    """
    options = {k: v for k, v in config.pruner.items() if k not in _EXTRA_KEYS}
    name = config.pruner.get("name")
    if name is None:
        if options:
            raise ConfigError("pruner.name", "missing; name a pruner, e.g. "
                              "ParetoDominancePruner or MedianPruner")
        name = DEFAULT_PRUNER
    cls = _pruner_class(name)
    if (len(config.directions) > 1 and cls not in _OURS.values()
            and not issubclass(cls, NopPruner)):
        raise ConfigError("pruner.name", f"{name} judges one objective; this study has "
                          f"{len(config.directions)}: use one of {', '.join(_OURS)}")
    if cls is ConstraintTrajectoryPruner and "bounds" not in options:
        bounds = _reported_bounds(config)
        if not bounds:
            raise ConfigError("pruner.bounds", "ConstraintTrajectoryPruner needs a constraint "
                              "on a trained metric (e.g. min_accuracy) or pruner.bounds")
        options["bounds"] = bounds
    pruner = _instantiate(cls, options, "pruner")
    stop = _stop_options(config)
    if stop is not None:
        _build_stop(stop)
    divergence = config.pruner.get("divergence", True)
    if isinstance(pruner, (NopPruner, DivergencePruner)) or divergence is False:
        return pruner
    if divergence is True:
        divergence = {}
    if not isinstance(divergence, Mapping):
        raise ConfigError("pruner.divergence", f"expected true, false or a table of "
                          f"DivergencePruner arguments, got {divergence!r}")
    guard = _instantiate(DivergencePruner, dict(divergence), "pruner.divergence")
    return CombinedPruner(pruners=[guard, pruner])


def _build_stop(options: Mapping[str, Any]) -> HypervolumeStagnationCallback:
    accepted = inspect.signature(HypervolumeStagnationCallback).parameters
    for key in options:
        if key not in accepted:
            raise ConfigError(f"pruner.stop.{key}", f"HypervolumeStagnationCallback takes no "
                              f"argument {key!r}; it takes {', '.join(accepted)}")
    try:
        return HypervolumeStagnationCallback(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError("pruner.stop", str(exc)) from None


def stop_callback_for(config: StudyConfig) -> HypervolumeStagnationCallback | None:
    """The study-stopping callback of ``[pruner.stop]``, or None when the table is absent.

    Example:
        >>> from neuromosaic_optuna.config import load_config
        >>> cfg = load_config({"defaults": {"pruner": {"stop": {"window": 5}}},
        ...     "experiment": {"name": "x", "architecture_type": "conv_net",
        ...     "search_space": {"w": [1, 2]}}})
        >>> stop_callback_for(cfg).window
        5
    """
    stop = _stop_options(config)
    if stop is None:
        return None
    return _build_stop(stop)


def epoch_hook_for(config: StudyConfig, study: optuna.Study) -> EpochHook:
    """The per-epoch hook a study's :class:`~neuromosaic_optuna.objective.Objective` runs.

    ``hook(trial, epoch, metrics)`` reports ``metrics`` (:func:`report`) and, before the last
    epoch (``config.epochs``), asks the config's pruner (:func:`make_pruner`, not
    ``study.pruner``, so a study made by plain ``optuna.create_study`` prunes as configured)
    and raises :class:`optuna.TrialPruned` with the reason when it says stop. A trial is never
    pruned after its last epoch: it completes and the sampler learns from its values. The
    hook's ``pruner`` attribute is that pruner (so callers can tell whether one is installed).

    Args:
        config: The study configuration.
        study: The study the hook's trials belong to.

    Raises:
        ConfigError: The ``[pruner]`` table is invalid, or the study's number of objectives
            differs from the config's.

    Example:
        >>> from neuromosaic_optuna.config import load_config
        >>> cfg = load_config({"defaults": {"epochs": 3}, "experiment": {"name": "x",
        ...     "architecture_type": "conv_net", "search_space": {"w": [1, 2]},
        ...     "objectives": ["accuracy", "flops"]}})
        >>> study = optuna.create_study(directions=cfg.directions)
        >>> hook = epoch_hook_for(cfg, study)
        >>> trial = study.ask()
        >>> hook(trial, 1, {"accuracy": 0.4, "loss": 1.5})
        >>> trial.user_attrs["intermediate"]["accuracy"]
        {'1': 0.4}
    """
    pruner = make_pruner(config)
    if len(study.directions) != len(config.directions):
        raise ConfigError("objectives", f"the study has {len(study.directions)} objectives, "
                          f"the config {len(config.directions)}")
    last_epoch = config.epochs

    def hook(trial: optuna.trial.Trial, epoch: int, metrics: dict[str, float]) -> None:
        report(trial, epoch, **metrics)
        if epoch >= last_epoch or isinstance(pruner, NopPruner):
            return
        verdict = _decide(trial, pruner)
        if verdict.prune:
            raise optuna.TrialPruned(verdict.reason)

    hook.pruner = pruner  # type: ignore[attr-defined]
    return hook
