""":class:`MultiObjectiveSuccessiveHalvingPruner`: successive halving by non-dominated rank."""

from __future__ import annotations

import math
from collections.abc import Sequence

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
    _check_int,
    _cost,
    _Objectives,
    _objectives,
)
from neuromosaic_optuna.pruners._curves import _curve, _latest_step


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
