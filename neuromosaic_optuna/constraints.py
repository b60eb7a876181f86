"""Hard constraints on trials, through Optuna 5's ``Trial.set_constraint``.

A constraint ``max_<metric>`` or ``min_<metric>`` is stored under its own name with the
signed margin as value (``<= 0`` feasible), which samplers (NSGA-II, TPE) read for
constrained domination and which makes ``study.best_trials`` skip infeasible trials.

Cost constraints (on metrics known from profiling: params, flops, latency, memory,
throughput) are checked **before training**: an architecture that violates one is never
trained. Optuna ignores a second ``set_constraint`` on the same key, so every constraint is
set exactly once per trial, when its value is final (:func:`set_constraints`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import optuna

from neuromosaic_optuna.config import Constraint
from neuromosaic_optuna.metrics import METRICS
from neuromosaic_optuna.record import is_feasible

__all__ = ["constraint_values", "cost_violations", "is_feasible", "set_constraints"]


def constraint_values(constraints: Iterable[Constraint],
                      metrics: Mapping[str, float]) -> dict[str, float]:
    """Signed margins (``<= 0`` is feasible) of every constraint whose metric is known.

    Example:
        >>> from neuromosaic_optuna.config import load_config
        >>> cfg = load_config({"name": "x", "architecture_type": "conv_net",
        ...     "search_space": {"w": [1, 2]}, "constraints": {"max_params": "5M"}})
        >>> constraint_values(cfg.constraints, {"params": 6e6})
        {'max_params': 1000000.0}
    """
    return {c.name: c.violation(float(metrics[c.metric]))
            for c in constraints if c.metric in metrics}


def cost_violations(constraints: Iterable[Constraint],
                    metrics: Mapping[str, float]) -> dict[str, float]:
    """The violated constraints among those on cost metrics (known before training)."""
    cost = [c for c in constraints if METRICS[c.metric].cost]
    return {k: v for k, v in constraint_values(cost, metrics).items() if v > 0}


def set_constraints(trial: optuna.trial.Trial, constraints: Iterable[Constraint],
                    metrics: Mapping[str, float]) -> dict[str, float]:
    """Set each constraint once on ``trial``; a constraint whose metric is missing counts as
    violated by 1.0 (it could not be measured). Returns the values set."""
    values: dict[str, float] = {}
    for c in constraints:
        value = c.violation(float(metrics[c.metric])) if c.metric in metrics else 1.0
        if c.name not in trial.constraints:
            trial.set_constraint(c.name, value)
        values[c.name] = value
    return values
