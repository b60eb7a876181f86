"""The reporting protocol: per-step curves stored in the trial's user attribute ``intermediate``
(:func:`report`, :func:`intermediate_values`), readable in any study and any worker."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from neuromosaic_optuna.record import INTERMEDIATE

#: User attribute holding the reported curves: ``{metric: {str(step): value}}``.
INTERMEDIATE_ATTR = INTERMEDIATE


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
