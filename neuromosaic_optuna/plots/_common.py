"""Shared pieces of the figures: colours, axes, hover text, trial reading."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from neuromosaic_optuna.metrics import METRICS
from neuromosaic_optuna.record import STATUS, architecture_of, metric_names, metric_value
from neuromosaic_optuna.units import format_metric

StudyOrStudies = optuna.Study | Sequence[optuna.Study]

_FRONT = "#d62728"
_DOMINATED = "#1f77b4"
_INFEASIBLE = "#7f7f7f"
_STUDY_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
_RANK_SCALE = "Plasma"
_FONT = {"family": "Helvetica, Arial, sans-serif", "size": 12}

# metric -> (scale applied to the stored value, axis title)
_AXES: dict[str, tuple[float, str]] = {
    "flops": (1e-9, "GFLOPs (G multiply-accumulates)"),
    "params": (1e-6, "params (M)"),
    "memory": (1e-6, "activation memory (MB)"),
    "latency": (1e3, "latency (ms)"),
    "throughput": (1.0, "throughput (images/s)"),
    "params_utilization": (1e-6, "params / accuracy (M)"),
    "memory_efficiency": (1e-3, "memory / throughput (kB·s)"),
    "speed_efficiency": (1e3, "latency × batch size (ms)"),
    "train_time": (1.0, "training time (s)"),
}


# --------------------------------------------------------------------------- formatting


def _axis(metric: str) -> tuple[float, str]:
    """Display scale and axis title of a metric (fractions become percent)."""
    if metric in _AXES:
        return _AXES[metric]
    unit = METRICS[metric].unit if metric in METRICS else ""
    if unit == "fraction":
        return 100.0, ("top-1 accuracy (%)" if metric == "accuracy"
                       else f"{metric.replace('_', ' ')} (%)")
    if unit == "seconds":
        return 1e3, f"{metric.replace('_', ' ')} (ms)"
    if unit == "bytes":
        return 1e-6, f"{metric.replace('_', ' ')} (MB)"
    return 1.0, metric.replace("_", " ")


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        text = ", ".join(_short(v) for v in value)
        return f"[{text}]" if len(text) <= 60 else f"[{text[:57]}...]"
    return str(value)


def describe_architecture(architecture: Mapping[str, Any] | None,
                          params: Mapping[str, Any] | None = None, *,
                          max_items: int = 12) -> list[str]:
    """``key: value`` lines summarizing an architecture (the user attribute, else the params).

    Args:
        architecture: The trial's ``architecture`` user attribute.
        params: The trial's params, used when ``architecture`` is empty.
        max_items: At most this many lines; a last line says how many were left out.

    Returns:
        A list of short strings.

    Example:
        >>> describe_architecture({"family": "efficientnet", "width_multiplier": 1.14398,
        ...                        "stage_depths": [2, 3, 3]})
        ['family: efficientnet', 'width_multiplier: 1.144', 'stage_depths: [2, 3, 3]']
    """
    items = dict(architecture or {}) or dict(params or {})
    lines = [f"{k}: {_short(v)}" for k, v in items.items()]
    if len(lines) > max_items:
        lines = [*lines[:max_items - 1], f"... {len(lines) - max_items + 1} more"]
    return lines


def _hover(study_name: str | None, trial: FrozenTrial, values: Mapping[str, float | None]) -> str:
    head = f"<b>trial {trial.number}</b>" + (f" ({study_name})" if study_name else "")
    status = trial.user_attrs.get(STATUS)
    if status and status != "ok":
        head += f" — {status}"
    lines = [head, *(f"{k}: {format_metric(k, v)}" for k, v in values.items())]
    arch = describe_architecture(architecture_of(trial), trial.params)
    if arch:
        lines += ["<i>architecture</i>", *arch]
    return "<br>".join(lines)


# --------------------------------------------------------------------------- reading trials


def _as_studies(study_or_studies: StudyOrStudies) -> list[optuna.Study]:
    if isinstance(study_or_studies, optuna.Study):
        return [study_or_studies]
    studies = list(study_or_studies)
    if not studies or not all(isinstance(s, optuna.Study) for s in studies):
        raise ValueError("study_or_studies: expected an optuna.Study or a non-empty sequence "
                         "of them")
    return studies


def _complete(study: optuna.Study) -> dict[int, FrozenTrial]:
    return {t.number: t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}


def _has_metrics(study: optuna.Study, metrics: Sequence[str], *, minimum: int = 1) -> bool:
    names = metric_names(study)
    count = sum(all(metric_value(t, m, names) is not None for m in metrics)
                for t in _complete(study).values())
    return count >= minimum


def _study_label(study: optuna.Study, studies: Sequence[optuna.Study]) -> str | None:
    return study.study_name if len(studies) > 1 else None


# --------------------------------------------------------------------------- params


def _proposed(study: optuna.Study) -> list[FrozenTrial]:
    """Trials whose params were chosen (everything but WAITING slots), in trial order."""
    return [t for t in study.get_trials(deepcopy=False)
            if t.state != TrialState.WAITING and t.params]


def _param_space(trials: Sequence[FrozenTrial]) -> dict[str, BaseDistribution]:
    """The params every trial has, with one distribution each (Optuna's intersection)."""
    from optuna.search_space import intersection_search_space

    space: dict[str, BaseDistribution] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        space = dict(intersection_search_space(list(trials), include_pruned=True))
    for t in trials:  # FAIL and RUNNING trials count too: keep only params they share
        space = {k: d for k, d in space.items() if t.distributions.get(k) == d}
    return dict(sorted(space.items()))
