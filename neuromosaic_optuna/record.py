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
``timeline``        seconds the worker spent in each phase of the trial (:data:`PHASES`) and
                    the wall-clock time the trial's objective ended (``ended``)
``rung``            the last successive-halving rung judged: ``{step, ahead, keep, of}``; a
                    PRUNED trial stopped there (:func:`stopped_rung`)
==================  ===========================================================================

Constraints live where Optuna 5 keeps them (``trial.constraints``); a trial is feasible when
every value is ``<= 0``. A NaN constraint value (it could not be measured) is **infeasible**
everywhere, with an infinite violation.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import statistics
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
    "REEVALUATION_ATTR",
    "PHASES",
    "REASON",
    "ROBUSTNESS",
    "RUNG",
    "STATUS",
    "TIMELINE",
    "Timeline",
    "WEIGHTS_ARTIFACT",
    "WORKER",
    "add_phase",
    "architecture_of",
    "generation_of",
    "is_feasible",
    "metric_names",
    "metric_value",
    "metrics_of",
    "reason_of",
    "reevaluations",
    "robustness_details",
    "robustness_metric",
    "phase",
    "status_of",
    "timeline_of",
    "timeline_summary",
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
#: Study user attribute: re-evaluation runs per trial number (``neuromosaic reevaluate``).
REEVALUATION_ATTR = "reevaluation"
TIMELINE = "timeline"
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


def reevaluations(study: optuna.Study) -> dict[int, dict[str, Any]]:
    """Stored re-evaluations by trial number: ``seeds``, ``runs``, ``mean``, ``std`` per
    objective (empty when none or malformed).

    Example:
        >>> study = optuna.create_study()
        >>> study.set_user_attr(REEVALUATION_ATTR, {"3": {"seeds": [0, 1], "runs": [[1], [3]],
        ...                                               "mean": [2.0], "std": [1.4]}})
        >>> reevaluations(study)[3]["mean"]
        [2.0]
    """
    raw = study.user_attrs.get(REEVALUATION_ATTR)
    out: dict[int, dict[str, Any]] = {}
    if not isinstance(raw, Mapping):
        return out
    for key, value in raw.items():
        try:
            number = int(key)
        except (TypeError, ValueError):
            continue
        if isinstance(value, Mapping) and isinstance(value.get("mean"), list):
            out[number] = dict(value)
    return out


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


# --------------------------------------------------------------------------- timeline

#: The phases of a trial's timeline, in the order a worker goes through them (seconds each):
#:
#: * ``queue_wait``: from this worker's previous trial stored as finished (or the worker's
#:   start) to the start of this claim: the previous trial's final write and callbacks,
#:   stale-trial checks, looking for a slot;
#: * ``claim``: taking a WAITING slot (reading the queue, setting it RUNNING);
#: * ``sample``: the sampler (``before_trial``, relative sampling) and the ``suggest`` calls;
#: * ``build``: building the network; ``profile``: measuring its costs, the wait for the
#:   latency lock left out; ``latency_lock_wait``: that wait;
#: * ``train``: training and evaluating (robustness and saving the weights included);
#: * ``record``: writing the trial's record (metrics, constraints, status) to the storage;
#: * ``tell``: from the objective's end to the storage's completion time of the trial.
#:
#: The phases do not overlap, so their sum is at most the trial's wall time (from the start
#: of ``queue_wait`` to the completion).
PHASES = ("queue_wait", "claim", "sample", "build", "profile", "latency_lock_wait", "train",
          "record", "tell")

_CURRENT: contextvars.ContextVar[Timeline | None] = contextvars.ContextVar(
    "neuromosaic_timeline", default=None)


class Timeline:
    """Seconds spent per phase of one trial, collected while it runs, stored once at its end.

    The worker loop (:func:`neuromosaic_optuna.study.work`) makes one per trial and makes it
    current (:meth:`current`); the objective adds its phases with :func:`phase`.

    Example:
        >>> timeline = Timeline()
        >>> timeline.add("build", 0.25)
        >>> timeline.add("build", 0.5)
        >>> timeline.phases
        {'build': 0.75}
    """

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        """Add ``seconds`` (clipped at 0) to phase ``name`` (one of :data:`PHASES`)."""
        if name not in PHASES:
            raise ValueError(f"unknown phase {name!r}; phases: {', '.join(PHASES)}")
        self.phases[name] = self.phases.get(name, 0.0) + max(0.0, float(seconds))

    @contextlib.contextmanager
    def current(self) -> Iterator[Timeline]:
        """Within the block, :func:`phase` adds to this timeline."""
        token = _CURRENT.set(self)
        try:
            yield self
        finally:
            _CURRENT.reset(token)

    def write(self, trial: optuna.trial.Trial) -> None:
        """Store the user attribute ``timeline`` on ``trial`` (one storage write), with the
        wall-clock time of now as ``ended`` (the start of ``tell``)."""
        trial.set_user_attr(TIMELINE, {"phases": {k: round(v, 6) for k, v in
                                                  self.phases.items()},
                                       "ended": time.time()})


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Time the block as phase ``name`` of the current :class:`Timeline` (nothing happens
    without one, e.g. when an objective runs outside a worker loop).

    Example:
        >>> with Timeline().current() as timeline, phase("train"):
        ...     pass
        >>> list(timeline.phases)
        ['train']
    """
    timeline = _CURRENT.get()
    if timeline is None:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        timeline.add(name, time.perf_counter() - start)


def timeline_of(trial: FrozenTrial) -> dict[str, float]:
    """A finished trial's timeline: seconds per phase (:data:`PHASES`, those it went
    through); ``tell`` from the stored end of the objective to ``datetime_complete``. Empty
    when the trial has none (made by plain Optuna code or an older version).

    Example:
        >>> import datetime
        >>> now = datetime.datetime.now()
        >>> t = optuna.trial.create_trial(value=1.0, user_attrs={"timeline": {
        ...     "phases": {"claim": 0.01, "train": 1.5}, "ended": now.timestamp() - 0.02}})
        >>> t.datetime_complete = now
        >>> timeline = timeline_of(t)
        >>> timeline["train"], round(timeline["tell"], 2)
        (1.5, 0.02)
    """
    attr = trial.user_attrs.get(TIMELINE)
    stored = attr.get("phases") if isinstance(attr, Mapping) else None
    if not isinstance(stored, Mapping):
        return {}
    phases = {name: float(stored[name]) for name in PHASES
              if _number(stored.get(name)) is not None}
    ended = _number(attr.get("ended")) if isinstance(attr, Mapping) else None
    if ended is not None and trial.datetime_complete is not None:
        phases["tell"] = max(0.0, trial.datetime_complete.timestamp() - ended)
    return phases


def timeline_summary(trials: Iterable[FrozenTrial]) -> dict[str, dict[str, float]]:
    """Per phase, over the trials that have a timeline: ``median_ms``, ``p90_ms`` and
    ``n`` (trials with that phase).

    Example:
        >>> trials = [optuna.trial.create_trial(value=1.0, user_attrs={"timeline": {
        ...     "phases": {"build": b}}}) for b in (0.01, 0.02, 0.03)]
        >>> timeline_summary(trials)["build"]
        {'median_ms': 20.0, 'p90_ms': 30.0, 'n': 3.0}
    """
    values: dict[str, list[float]] = {}
    for trial in trials:
        for name, seconds in timeline_of(trial).items():
            values.setdefault(name, []).append(seconds * 1e3)
    summary = {}
    for name in PHASES:
        ms = sorted(values.get(name, []))
        if ms:
            p90 = ms[min(len(ms) - 1, math.ceil(0.9 * len(ms)) - 1)]
            summary[name] = {"median_ms": round(statistics.median(ms), 3),
                             "p90_ms": round(p90, 3), "n": float(len(ms))}
    return summary


def add_phase(name: str, seconds: float) -> None:
    """Add ``seconds`` to phase ``name`` of the current :class:`Timeline`, if there is one
    (for a phase measured as a difference, like the latency lock wait inside profiling).

    Example:
        >>> with Timeline().current() as timeline:
        ...     add_phase("latency_lock_wait", 0.125)
        >>> timeline.phases
        {'latency_lock_wait': 0.125}
    """
    timeline = _CURRENT.get()
    if timeline is not None:
        timeline.add(name, seconds)
