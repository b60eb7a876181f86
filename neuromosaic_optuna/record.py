"""The trial record: what a trial of ours stores, written and read in one place.

Like Optuna's ``FrozenTrial`` accessors, every module that reads a trial (Pareto math, pruners,
samplers, warm starts, plots, the report, the CLI) reads it through these functions, so they
agree on names, on missing values and on feasibility. The record is plain JSON in user
attributes, so plain Optuna code and optuna-dashboard read it too:

==================  ===========================================================================
user attribute      meaning
==================  ===========================================================================
``metrics``         every measured metric, ``{name: float | None}`` (non-finite stored as null)
``architecture``    a summary of the built network and its input size
``status``          ``ok``, ``rejected``, ``invalid``, ``pruned``, ``diverged``, ``failed``
``reason``          why, when the status is not ``ok``
``curve``           validation accuracy after each epoch
``intermediate``    per-step curves, ``{metric: {str(step): value}}`` (pruners)
``robustness``      ``{"metrics": {...}, "details": {"noise@0.1": acc, ...}}``
``weights_artifact`` the Optuna artifact id of the trained weights
``worker``          ``host:pid`` of the process that ran the trial
``generation``      the genetic sampler's generation (also read from Optuna's own attribute)
``rung``            the last successive-halving rung judged: ``{step, ahead, keep, of}``; a
                    PRUNED trial stopped there (:func:`stopped_rung`)
==================  ===========================================================================

Constraints live where Optuna 5 keeps them (``trial.constraints``); a trial is feasible when
every value is ``<= 0``. A NaN constraint value (it could not be measured) is **infeasible**
everywhere, with an infinite violation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from neuromosaic_optuna import _compat

__all__ = [
    "ARCHITECTURE",
    "CURVE",
    "GENERATION",
    "INTERMEDIATE",
    "METRICS_ATTR",
    "REASON",
    "ROBUSTNESS",
    "RUNG",
    "STATUS",
    "WEIGHTS_ARTIFACT",
    "WORKER",
    "architecture_of",
    "generation_of",
    "is_feasible",
    "metric_names",
    "metric_value",
    "metrics_of",
    "reason_of",
    "robustness_details",
    "robustness_metric",
    "status_of",
    "stopped_rung",
    "trained",
    "violated_constraints",
    "violation",
    "write_metrics",
    "write_result",
]

METRICS_ATTR = "metrics"
ARCHITECTURE = "architecture"
STATUS = "status"
REASON = "reason"
CURVE = "curve"
INTERMEDIATE = "intermediate"
ROBUSTNESS = "robustness"
WEIGHTS_ARTIFACT = "weights_artifact"
WORKER = "worker"
GENERATION = "generation"
RUNG = "rung"

AnyTrial = FrozenTrial | optuna.trial.Trial


# --------------------------------------------------------------------------- study


def metric_names(study: optuna.Study) -> list[str]:
    """The study's objective names (``study.metric_names``, else ``objective_<i>``).

    Example:
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> metric_names(study)
        ['objective_0', 'objective_1']
    """
    names = study.metric_names
    return list(names) if names else [f"objective_{i}" for i in range(len(study.directions))]


# --------------------------------------------------------------------------- reading


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return None if math.isnan(value) else value


def metrics_of(trial: AnyTrial) -> dict[str, Any]:
    """The user attribute ``metrics`` as a dict (empty when absent or malformed).

    Example:
        >>> t = optuna.trial.create_trial(value=1.0, user_attrs={"metrics": {"params": 5.0}})
        >>> metrics_of(t)
        {'params': 5.0}
    """
    metrics = trial.user_attrs.get(METRICS_ATTR)
    return dict(metrics) if isinstance(metrics, Mapping) else {}


def metric_value(trial: AnyTrial, name: str, names: Sequence[str | None] = (), *,
                 values_only_when_complete: bool = False) -> float | None:
    """One metric of a trial: its objective value when ``name`` is among the study's
    objective ``names``, else the user attribute ``metrics``; None when missing or NaN.

    Args:
        trial: The trial.
        name: The metric.
        names: The study's objective names (:func:`metric_names`).
        values_only_when_complete: Read ``trial.values`` only for COMPLETE trials (others
            fall back to ``metrics``, e.g. costs known before training).

    Example:
        >>> t = optuna.trial.create_trial(values=[0.9, 2e6],
        ...                               user_attrs={"metrics": {"latency": 0.01}})
        >>> metric_value(t, "flops", ["accuracy", "flops"]), metric_value(t, "latency")
        (2000000.0, 0.01)
    """
    values = getattr(trial, "values", None)
    complete = getattr(trial, "state", None) == optuna.trial.TrialState.COMPLETE
    if name in names and values is not None and (complete or not values_only_when_complete):
        return _number(values[list(names).index(name)])
    return _number(metrics_of(trial).get(name))


def status_of(trial: FrozenTrial) -> str:
    """The stored status, else the Optuna state's name in lower case.

    Example:
        >>> status_of(optuna.trial.create_trial(value=1.0, user_attrs={"status": "rejected"}))
        'rejected'
    """
    status = trial.user_attrs.get(STATUS)
    return str(status) if status is not None else trial.state.name.lower()


def trained(trial: FrozenTrial) -> bool:
    """True unless the trial's status says it was not fully trained (rejected, invalid, ...).

    Example:
        >>> trained(optuna.trial.create_trial(value=1.0))
        True
    """
    return trial.user_attrs.get(STATUS, "ok") == "ok"


def reason_of(trial: FrozenTrial) -> str:
    """Why the trial is not ``ok`` (empty when no reason was stored)."""
    return str(trial.user_attrs.get(REASON, ""))


def stopped_rung(trial: FrozenTrial) -> int | None:
    """The rung (step, e.g. epoch) at which successive halving stopped a PRUNED trial; None for
    any other trial (a COMPLETE trial trained at full fidelity, a trial stopped otherwise).

    Example:
        >>> t = optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, user_attrs={
        ...     "rung": {"step": 3, "ahead": 4, "keep": 2, "of": 7}})
        >>> stopped_rung(t), stopped_rung(optuna.trial.create_trial(value=1.0))
        (3, None)
    """
    rung = trial.user_attrs.get(RUNG)
    if trial.state != optuna.trial.TrialState.PRUNED or not isinstance(rung, Mapping):
        return None
    step = rung.get("step")
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def architecture_of(trial: FrozenTrial) -> dict[str, Any]:
    """The user attribute ``architecture`` as a dict (empty when absent)."""
    arch = trial.user_attrs.get(ARCHITECTURE)
    return dict(arch) if isinstance(arch, Mapping) else {}


def generation_of(trial: FrozenTrial) -> int | None:
    """The genetic sampler's generation: our user attribute ``generation``, else Optuna's own
    ``<Sampler>:generation`` system attribute (plain ``NSGAIISampler`` studies).

    Example:
        >>> generation_of(optuna.trial.create_trial(value=1.0, user_attrs={"generation": 2}))
        2
    """
    generation = trial.user_attrs.get(GENERATION)
    if isinstance(generation, int) and not isinstance(generation, bool):
        return generation
    for key, value in trial.system_attrs.items():
        if key.endswith(_compat.generation_key_suffix()) and isinstance(value, int):
            return value
    return None


def robustness_details(trial: FrozenTrial) -> dict[str, float]:
    """Single-perturbation accuracies ``<name>@<level>`` of a trial (means left out).

    Example:
        >>> t = optuna.trial.create_trial(value=1.0, user_attrs={"robustness": {
        ...     "details": {"noise@0.1": 0.8, "corrupt:gaussian": 0.7}}})
        >>> robustness_details(t)
        {'noise@0.1': 0.8}
    """
    attr = trial.user_attrs.get(ROBUSTNESS)
    details = attr.get("details") if isinstance(attr, Mapping) else None
    if not isinstance(details, Mapping):
        return {}
    return {str(k): float(v) for k, v in details.items()
            if "@" in str(k) and ":" not in str(k) and isinstance(v, (int, float))
            and not isinstance(v, bool)}


def robustness_metric(trial: FrozenTrial, name: str, names: Sequence[str] = ()) -> float | None:
    """A robustness summary metric: from the trial's metrics, else from its ``robustness``
    attribute (re-evaluations store it there)."""
    value = metric_value(trial, name, names)
    if value is None:
        attr = trial.user_attrs.get(ROBUSTNESS)
        metrics = attr.get("metrics") if isinstance(attr, Mapping) else None
        value = _number(metrics.get(name)) if isinstance(metrics, Mapping) else None
    return value


# --------------------------------------------------------------------------- feasibility


def violation(trial: AnyTrial) -> float:
    """Sum of the positive constraint values; ``inf`` when any value is NaN (unmeasured).

    Example:
        >>> t = optuna.trial.create_trial(value=1.0, constraints={"a": 2.0, "b": -1.0})
        >>> unmeasured = optuna.trial.create_trial(  # the list format of ``constraints_func``
        ...     value=1.0, system_attrs={"constraints": [float("nan")]})
        >>> violation(t), violation(unmeasured)
        (2.0, inf)
    """
    total = 0.0
    for value in trial.constraints.values():
        value = float(value)
        if math.isnan(value):
            return math.inf
        total += max(0.0, value)
    return total


def is_feasible(trial: AnyTrial) -> bool:
    """True when every stored constraint is ``<= 0`` (no constraints: True; NaN: False).

    Example:
        >>> is_feasible(optuna.trial.create_trial(value=1.0, constraints={"c": -0.5}))
        True
    """
    return all(float(v) <= 0 for v in trial.constraints.values())


def violated_constraints(trial: AnyTrial) -> dict[str, float]:
    """The constraints a trial violates: value ``> 0`` or NaN (unmeasured).

    Example:
        >>> t = optuna.trial.create_trial(value=1.0, constraints={"a": 2.0, "b": -1.0})
        >>> violated_constraints(t)
        {'a': 2.0}
    """
    return {k: float(v) for k, v in trial.constraints.items() if not float(v) <= 0}


# --------------------------------------------------------------------------- writing


def _json_float(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def write_metrics(trial: optuna.trial.Trial, metrics: Mapping[str, float]) -> None:
    """Store the user attribute ``metrics`` (non-finite values as null), e.g. the costs of a
    trial before it trains, so pruners can judge it."""
    trial.set_user_attr(METRICS_ATTR, {k: _json_float(v) for k, v in metrics.items()})


def write_result(trial: optuna.trial.Trial, metrics: Mapping[str, float],
                 architecture: Mapping[str, Any], status: str, reason: str | None,
                 curve: Sequence[float] | None = None, *, worker: str | None = None) -> None:
    """Store a trial's record (metrics, architecture, status, reason, curve, worker).

    Example:
        >>> study = optuna.create_study()
        >>> trial = study.ask()
        >>> write_result(trial, {"accuracy": 0.9, "loss": float("nan")}, {"w": 1}, "ok", None)
        >>> trial.user_attrs["metrics"], trial.user_attrs["status"]
        ({'accuracy': 0.9, 'loss': None}, 'ok')
    """
    write_metrics(trial, metrics)
    trial.set_user_attr(ARCHITECTURE, dict(architecture))
    trial.set_user_attr(STATUS, status)
    if worker is not None:
        trial.set_user_attr(WORKER, worker)
    if curve is not None:
        trial.set_user_attr(CURVE, [round(v, 6) for v in curve])
    if reason:
        trial.set_user_attr(REASON, reason)
