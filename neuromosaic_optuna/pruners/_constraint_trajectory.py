""":class:`ConstraintTrajectoryPruner`: stop a trial whose constraint metrics cannot recover."""

from __future__ import annotations

import math
from collections.abc import Mapping

import optuna
from optuna.trial import FrozenTrial

from neuromosaic_optuna.pruners._base import (
    CurvePruner,
    Verdict,
    _check_bounds,
    _check_float,
    _check_int,
    _completed,
    _objectives,
    _optimistic,
)
from neuromosaic_optuna.pruners._curves import _curve, _latest_step


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
        self.bounds = _check_bounds(bounds)
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
