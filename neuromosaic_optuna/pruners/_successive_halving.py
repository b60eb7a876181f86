""":class:`MultiObjectiveSuccessiveHalvingPruner`: asynchronous successive halving (MO-ASHA) by
non-dominated rank, and :func:`rung_decision`, the pure rule it applies at a rung."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from neuromosaic_optuna.pareto import (
    crowding_distance,
    pareto_ranks,
)
from neuromosaic_optuna.pruners._base import (
    CurvePruner,
    Verdict,
    _check_bounds,
    _check_int,
    _cost,
    _Objectives,
    _objectives,
)
from neuromosaic_optuna.pruners._curves import _curve, _latest_step
from neuromosaic_optuna.record import RUNG, metric_value


class RungDecision(NamedTuple):
    """What :func:`rung_decision` says about one trial at a rung.

    Attributes:
        promote: The trial continues.
        ahead: How many trials at the rung rank strictly before it.
        keep: How many continue: ``max(1, n // reduction_factor)``.
        n: Trials at the rung, itself included.
        pareto_rank: Its non-domination rank among the feasible finite trials (0 = front);
            ``-1`` when it is infeasible or non-finite.
    """

    promote: bool
    ahead: int
    keep: int
    n: int
    pareto_rank: int


def _unique_crowding(values: np.ndarray) -> np.ndarray:
    """Crowding distance of each row, equal for equal rows (computed on the distinct points),
    so a duplicate of a trial gets the same decision whatever the order of arrival."""
    unique, inverse = np.unique(values, axis=0, return_inverse=True)
    return crowding_distance(unique)[inverse.reshape(-1)]


def rung_decision(points: Sequence[Sequence[float]], directions: Sequence[str], *,
                  reduction_factor: int, violations: Sequence[float] | None = None,
                  index: int = 0) -> RungDecision:
    """Does trial ``index`` continue past a rung? The asynchronous rule of ASHA for several
    objectives (MO-ASHA, Schmucker et al. 2021): it continues when fewer than
    ``max(1, n // reduction_factor)`` of the ``n`` trials at the rung rank strictly before it.

    The order: feasible trials with finite values first, by non-domination rank, then by
    crowding distance within their front (larger first; equal points share one distance);
    then infeasible trials, by violation (smaller first); then trials with a non-finite value
    (diverged), last. Ties favour the trial, so duplicates of a promoted trial are promoted.

    Args:
        points: ``(n, m)`` objective values of the trials at the rung (NaN or inf: non-finite).
        directions: ``"maximize"`` / ``"minimize"`` per column.
        reduction_factor: ``eta``, at least 2.
        violations: Per trial, ``> 0`` when it violates a constraint (default: all feasible).
        index: The row of the trial being judged.

    Returns:
        A :class:`RungDecision`.

    Example:
        >>> pts = [[0.70, 2e6], [0.50, 1e6], [0.90, 3e6], [0.40, 2e6]]
        >>> rung_decision(pts, ["maximize", "minimize"], reduction_factor=2).promote
        False
        >>> rung_decision(pts, ["maximize", "minimize"], reduction_factor=2, index=2)
        RungDecision(promote=True, ahead=0, keep=2, n=4, pareto_rank=0)
    """
    values = np.asarray(points, dtype=float).reshape(len(points), -1)
    n = len(values)
    viol = np.zeros(n) if violations is None else np.asarray(violations, dtype=float)
    viol = np.where(np.isnan(viol), np.inf, viol)
    finite = np.isfinite(values).all(axis=1)
    feasible = finite & (viol <= 0)
    keys = np.full((n, 3), np.inf)
    keys[finite & ~feasible, 0] = 1.0
    keys[finite & ~feasible, 1] = viol[finite & ~feasible]
    keys[~finite, 0] = 2.0
    keys[~finite, 1:] = 0.0
    rank = np.full(n, -1)
    if feasible.any():
        members = np.flatnonzero(feasible)
        ranks = pareto_ranks(values[members], list(directions))
        rank[members] = ranks
        keys[members, 0] = 0.0
        keys[members, 1] = ranks
        for r in np.unique(ranks):
            front = members[ranks == r]
            keys[front, 2] = -_unique_crowding(values[front])
    keys[keys[:, 0] == 1.0, 2] = 0.0
    mine = keys[index]
    before = ((keys[:, 0] < mine[0])
              | ((keys[:, 0] == mine[0]) & (keys[:, 1] < mine[1]))
              | ((keys[:, 0] == mine[0]) & (keys[:, 1] == mine[1]) & (keys[:, 2] < mine[2])))
    ahead = int(np.sum(before))
    keep = max(1, n // reduction_factor)
    return RungDecision(ahead < keep, ahead, keep, n, int(rank[index]))


class MultiObjectiveSuccessiveHalvingPruner(CurvePruner):
    """Asynchronous successive halving by Pareto rank (MO-ASHA): at each rung keep the top
    ``1 / reduction_factor``.

    A stopping-type scheduler, as Optuna's ``SuccessiveHalvingPruner``: a trial that reports a
    rung step is ranked against every other trial that reported the same step (running, pruned
    or complete, in any worker: the storage is the only coordinator) by :func:`rung_decision`:
    non-domination rank over the study's objectives (reported metrics at the rung, costs from
    the user attribute ``metrics``; an objective unknown for the trial is left out), then
    crowding distance; trials that violate ``bounds`` at the rung rank after every feasible
    one, and trials with a non-finite value last. The rung is stored in the user attribute
    ``rung`` (:data:`~neuromosaic_optuna.record.RUNG`), so a PRUNED trial says where it was
    stopped (:func:`~neuromosaic_optuna.record.stopped_rung`). A trial with a non-finite
    objective at a rung is stopped at once.

    With ``brackets=k > 1`` it is Hyperband-style: bracket ``s`` (``0 <= s < k``) starts
    ranking at the ``s``-th rung (``min_resource * reduction_factor ** s``, or ``rungs[s]``),
    so later brackets judge trials only after more epochs, and the last of the
    ``len(rungs) + 1`` possible brackets never stops a trial. A trial's bracket is its number
    modulo ``k`` (:meth:`bracket_of`: deterministic in every worker, round-robin, no
    coordination), and a rung compares only trials of the same bracket.

    Args:
        rungs: Steps (epochs) at which trials are ranked, increasing; default
            ``min_resource * reduction_factor ** k`` for k = 0, 1, ... below ``max_resource``.
        min_resource: First rung when ``rungs`` is not given.
        reduction_factor: ``eta``, at least 2.
        n_startup_trials: Prune at a rung only when this many other trials reached it.
        max_resource: Full fidelity (the last epoch); no rung at or after it. Default: none.
        bounds: Constraints judged at the rung, ``{"min_accuracy": 0.8, "max_flops": 1e8}``
            (values in base units); a metric neither reported nor known is ignored.
        brackets: Hyperband-style brackets (1: plain asynchronous successive halving). At
            most the number of rungs plus one (the full-fidelity level) when ``rungs`` or
            ``max_resource`` is given.

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
        >>> hb = MultiObjectiveSuccessiveHalvingPruner(max_resource=9, brackets=3)
        >>> [[s for s in range(1, 10) if hb.is_rung(s, bracket=b)] for b in range(3)]
        [[1, 3], [3], []]
    """

    def __init__(self, *, rungs: Sequence[int] | None = None, min_resource: int = 1,
                 reduction_factor: int = 3, n_startup_trials: int = 0,
                 max_resource: int | None = None,
                 bounds: Mapping[str, float] | None = None, brackets: int = 1) -> None:
        self.min_resource = _check_int("min_resource", min_resource, 1)
        self.reduction_factor = _check_int("reduction_factor", reduction_factor, 2)
        self.n_startup_trials = _check_int("n_startup_trials", n_startup_trials, 0)
        self.max_resource = (None if max_resource is None
                             else _check_int("max_resource", max_resource, 1))
        if rungs is not None:
            if isinstance(rungs, (str, bytes)) or not isinstance(rungs, Sequence) or not rungs:
                raise ValueError(f"rungs: expected a non-empty list of steps, got {rungs!r}")
            checked = [_check_int("rungs", r, 1) for r in rungs]
            if any(b <= a for a, b in zip(checked, checked[1:], strict=False)):
                raise ValueError(f"rungs: must increase strictly, got {list(rungs)}")
            rungs = checked
        self.rungs: list[int] | None = rungs
        if bounds is not None and not isinstance(bounds, Mapping):
            raise ValueError(f"bounds: expected a table such as {{'min_accuracy': 0.8}}, got "
                             f"{bounds!r}")
        self.bounds = _check_bounds(bounds or {})
        self.brackets = _check_int("brackets", brackets, 1)
        levels = self._levels()
        if levels is not None and self.brackets > levels:
            raise ValueError(f"brackets: at most {levels} (the rungs plus full fidelity), got "
                             f"{self.brackets}")

    def _levels(self) -> int | None:
        """Rungs below full fidelity plus one; None when unbounded."""
        if self.rungs is not None:
            return len([r for r in self.rungs
                        if self.max_resource is None or r < self.max_resource]) + 1
        if self.max_resource is None:
            return None
        count, r = 0, self.min_resource
        while r < self.max_resource:
            count, r = count + 1, r * self.reduction_factor
        return count + 1

    def bracket_of(self, number: int) -> int:
        """The bracket of trial ``number``: ``number % brackets``."""
        return number % self.brackets

    def is_rung(self, step: int, bracket: int = 0) -> bool:
        """True when trials of ``bracket`` are ranked at ``step``."""
        if self.max_resource is not None and step >= self.max_resource:
            return False
        if self.rungs is not None:
            return step in self.rungs[bracket:]
        r = self.min_resource * self.reduction_factor ** bracket
        while r < step:
            r *= self.reduction_factor
        return r == step

    @staticmethod
    def _point(trial: FrozenTrial, step: int, objectives: _Objectives,
               columns: Sequence[int], reported: Sequence[int]) -> list[float] | None:
        """Objectives at ``step`` (reported ones from the curve, costs from ``metrics``);
        None when one is missing, NaN in place of a non-finite value."""
        row = []
        for i in columns:
            name = objectives.names[i]
            if i in reported:
                value = _curve(trial, name, objectives.single_name).get(step)
            else:
                value = _cost(trial, name, objectives)
            if value is None:
                return None
            row.append(float(value) if math.isfinite(value) else math.nan)
        return row

    def _violation(self, trial: FrozenTrial, step: int, objectives: _Objectives) -> float:
        """Summed relative violation of :attr:`bounds` at ``step`` (0: feasible)."""
        total = 0.0
        for kind, metric, bound in self.bounds.values():
            value: float | None = _curve(trial, metric, objectives.single_name).get(step)
            if value is None:
                value = metric_value(trial, metric)  # a cost known before training
            if value is None:
                continue
            if not math.isfinite(value):
                return math.inf
            gap = bound - value if kind == "min" else value - bound
            total += max(0.0, gap) / max(abs(bound), 1e-12)
        return total

    def judge(self, study: optuna.Study, trial: FrozenTrial) -> Verdict:
        """See the class docstring."""
        step = _latest_step(trial)
        bracket = self.bracket_of(trial.number)
        if step is None or not self.is_rung(step, bracket):
            return Verdict(False)
        objectives = _objectives(study)
        reported = [i for i, n in enumerate(objectives.names)
                    if n is not None and step in _curve(trial, n, objectives.single_name)]
        if not reported:
            return Verdict(False)
        columns = [i for i in range(len(objectives.names))
                   if i in reported or _cost(trial, objectives.names[i], objectives) is not None]
        where = {"bracket": bracket} if self.brackets > 1 else {}
        mine = self._point(trial, step, objectives, columns, reported)
        if mine is None or not all(math.isfinite(v) for v in mine):
            return Verdict(True, f"non-finite {objectives.names[reported[0]]} at rung {step}",
                           {RUNG: {"step": step, "ahead": -1, "keep": 0, "of": 0, **where}})
        points, violations = [mine], [self._violation(trial, step, objectives)]
        for t in study.get_trials(deepcopy=False):
            if (t.number == trial.number or t.state == TrialState.FAIL
                    or self.bracket_of(t.number) != bracket):
                continue
            if not all(step in _curve(t, objectives.names[i], objectives.single_name)
                       for i in reported):
                continue
            row = self._point(t, step, objectives, columns, reported)
            if row is not None:
                points.append(row)
                violations.append(self._violation(t, step, objectives))
        if len(points) - 1 < self.n_startup_trials:
            return Verdict(False)
        decision = rung_decision(points, [objectives.directions[i] for i in columns],
                                 reduction_factor=self.reduction_factor, violations=violations)
        attrs = {RUNG: {"step": step, "ahead": decision.ahead, "keep": decision.keep,
                        "of": decision.n, **where}}
        if decision.promote:
            return Verdict(False, "", attrs)
        standing = (f"Pareto rank {decision.pareto_rank}" if decision.pareto_rank >= 0
                    else "violates a constraint")
        label = f"rung {step}" + (f" (bracket {bracket})" if self.brackets > 1 else "")
        return Verdict(True, f"{label}: {decision.ahead} of {decision.n} trials rank ahead "
                             f"({standing}); only the top {decision.keep} continue", attrs)
