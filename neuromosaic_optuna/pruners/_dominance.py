""":class:`ParetoDominancePruner`: stop a trial that cannot reach the feasible Pareto front."""

from __future__ import annotations

import math

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from neuromosaic_optuna.pareto import (
    pareto_front_mask,
)
from neuromosaic_optuna.pruners._base import (
    CurvePruner,
    Verdict,
    _check_float,
    _check_int,
    _completed,
    _cost,
    _objectives,
    _optimistic,
)
from neuromosaic_optuna.pruners._curves import _curve, _latest_step
from neuromosaic_optuna.record import is_feasible


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
