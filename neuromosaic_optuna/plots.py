"""Plotly figures of architecture searches: the seed's case-study plots and the architecture map.

Every figure comes in two steps, as in :mod:`optuna.visualization`: ``<name>_info(study, ...)``
computes a :class:`~typing.NamedTuple` of plain arrays and strings (no plotly involved, so it is
tested on its own), and ``plot_<name>(study_or_studies, ...)`` only draws it.

============================  ================================================================
figure                        what it shows
============================  ================================================================
:func:`plot_accuracy_flops`   case 1: top-1 accuracy (%) against GFLOPs, Pareto front
                              highlighted, the architecture on hover; several studies overlay
:func:`plot_efficiency`       case 2: params, activation memory, latency and throughput against
                              accuracy, and the seed's three efficiency metrics
:func:`plot_pareto_surface`   case 4: accuracy, latency and memory in 3D, colored by Pareto
                              rank, front surface, knee and operating point marked, infeasible
                              trials as crosses
:func:`plot_robustness`       case 5: clean against robust accuracy, and accuracy per
                              perturbation and severity
:func:`plot_diversity`        mean pairwise distance of the proposed architectures per NSGA-II
                              generation ("monitor diversity")
:func:`plot_hypervolume`      Optuna's hypervolume history with this package's reference point
:func:`plot_architecture_map` the "sphere metaphor": every architecture on the unit sphere,
                              neighbours in the search space close on the sphere
============================  ================================================================

Case 3 (search progress from scratch and with transfer) lives with the warm start, in
:mod:`neuromosaic_optuna.warmstart`. Optuna's own plots are used where they do the job
(:func:`plot_hypervolume`, and the parameter importances of :func:`study_figures`).

What the figures read from a trial (written by :class:`neuromosaic_optuna.Objective`):

* objective values from ``trial.values`` (names from ``study.metric_names``), every other
  metric from the user attribute ``metrics`` (metric name -> float, units of
  :mod:`neuromosaic_optuna.metrics`: accuracies are fractions, ``flops`` are MACs,
  ``latency`` seconds, ``memory`` bytes);
* the user attributes ``architecture`` (dict, shown on hover) and ``status`` (``"ok"``,
  ``"rejected"``, ...); constraints from ``trial.constraints``;
* robustness: the summary metrics (``clean_accuracy``, ``noise_accuracy``,
  ``corrupt_accuracy``, ``adversarial_accuracy``) in ``metrics``, and the user attribute
  ``robustness = {"metrics": {...}, "details": {"noise@0.1": acc, "gaussian@3": acc,
  "fgsm@0.0313725": acc, "corrupt:gaussian": mean, ...}}``: ``<perturbation>@<level>`` keys are
  single perturbations, keys with ``:`` are means and are not drawn again;
* the NSGA-II generation from the trial system attribute ``<SamplerClass>:generation``.

Pareto ranks, fronts, knees, operating points and hypervolumes all come from
:mod:`neuromosaic_optuna.pareto`, so every figure agrees with ``neuromosaic pareto``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from neuromosaic_optuna.metrics import METRICS
from neuromosaic_optuna.pareto import (
    OperatingPoint,
    pareto_info,
    reference_point,
)
from neuromosaic_optuna.pareto import operating_point as find_operating_point
from neuromosaic_optuna.record import (
    STATUS,
    architecture_of,
    generation_of,
    metric_names,
    metric_value,
    robustness_details,
    robustness_metric,
)
from neuromosaic_optuna.record import trained as is_trained
from neuromosaic_optuna.robustness import SUMMARY_METRICS
from neuromosaic_optuna.space import encode_params, param_features, population_diversity
from neuromosaic_optuna.units import format_metric

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = [
    "AccuracyFlopsInfo",
    "ArchitectureMapInfo",
    "DiversityInfo",
    "EfficiencyInfo",
    "ParetoSurfaceInfo",
    "Preservation",
    "RobustnessInfo",
    "accuracy_flops_info",
    "architecture_map_info",
    "available_figures",
    "describe_architecture",
    "diversity_info",
    "efficiency_info",
    "format_metric",
    "neighbourhood_preservation",
    "pareto_surface_info",
    "plot_accuracy_flops",
    "plot_architecture_map",
    "plot_diversity",
    "plot_efficiency",
    "plot_hypervolume",
    "plot_pareto_surface",
    "plot_robustness",
    "robustness_info",
    "study_figures",
]

StudyOrStudies = optuna.Study | Sequence[optuna.Study]

#: Metrics of the efficiency profile, in panel order (seed, case 2).
EFFICIENCY_METRICS = ("params", "memory", "latency", "throughput",
                      "params_utilization", "memory_efficiency", "speed_efficiency")
#: Summary robustness metrics drawn against the clean accuracy.
ROBUST_METRICS = SUMMARY_METRICS
#: Default metrics of the 3D Pareto surface (seed, case 4) when the study has no 3 objectives.
SURFACE_METRICS = ("accuracy", "latency", "memory")

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


# --------------------------------------------------------------------------- case 1


class AccuracyFlopsInfo(NamedTuple):
    """Data of :func:`plot_accuracy_flops` for one study.

    Attributes:
        study_name: The study's name.
        trial_numbers: COMPLETE trials with accuracy and FLOPs, in trial order.
        gflops: FLOPs in G multiply-accumulates.
        accuracy_percent: Top-1 accuracy in percent.
        on_front: The feasible accuracy/FLOPs Pareto front (:func:`pareto.pareto_info`).
        feasible: Trials satisfying all their constraints.
        trained: False for trials rejected before training, whose accuracy is the
            sentinel 0 (see :mod:`neuromosaic_optuna.objective`).
        knee_trial: Trial number of the front's knee, or None.
        hover: Hover text per trial (values and architecture).
    """

    study_name: str
    trial_numbers: np.ndarray
    gflops: np.ndarray
    accuracy_percent: np.ndarray
    on_front: np.ndarray
    feasible: np.ndarray
    trained: np.ndarray
    knee_trial: int | None
    hover: list[str]


def accuracy_flops_info(study: optuna.Study, *, accuracy: str = "accuracy",
                        label: str | None = None) -> AccuracyFlopsInfo:
    """Accuracy against FLOPs of every COMPLETE trial, with the front of these two metrics.

    Args:
        study: The study.
        accuracy: The accuracy metric (``"test_accuracy"`` for the held-out split).
        label: Study name shown on hover (default: none).

    Returns:
        An :class:`AccuracyFlopsInfo`.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> study.set_metric_names(["accuracy", "flops"])
        >>> study.add_trials([optuna.trial.create_trial(values=v)
        ...                   for v in ([0.9, 4e9], [0.8, 1e9], [0.7, 2e9])])
        >>> info = accuracy_flops_info(study)
        >>> info.gflops.tolist(), info.on_front.tolist(), info.knee_trial
        ([4.0, 1.0, 2.0], [True, True, False], 0)
    """
    pinfo = pareto_info(study, metrics=[accuracy, "flops"])
    trials = _complete(study)
    on_front = np.zeros(len(pinfo.trial_numbers), dtype=bool)
    on_front[pinfo.front] = True
    hover = [_hover(label, trials[int(n)], {accuracy: row[0], "flops": row[1]})
             for n, row in zip(pinfo.trial_numbers, pinfo.values, strict=True)]
    trained = np.asarray([is_trained(trials[int(n)]) for n in pinfo.trial_numbers], dtype=bool)
    return AccuracyFlopsInfo(study.study_name, pinfo.trial_numbers, pinfo.values[:, 1] * 1e-9,
                             pinfo.values[:, 0] * 100.0, on_front, pinfo.feasible, trained,
                             pinfo.knee_trial, hover)


def _log_axis(values: np.ndarray) -> bool:
    positive = values[np.isfinite(values) & (values > 0)]
    return positive.size > 1 and bool(positive.max() / positive.min() > 30)


def _floor_range(values: np.ndarray) -> tuple[float, list[float]]:
    """Where to draw trials without a measured value (just below the others) and the axis
    range that shows both."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return 0.0, [-1.0, 1.0]
    low, high = float(finite.min()), float(finite.max())
    pad = max(0.06 * (high - low), 0.5)
    return low - pad, [low - 2 * pad, high + pad]


def plot_accuracy_flops(study_or_studies: StudyOrStudies, *,
                        accuracy: str = "accuracy") -> go.Figure:
    """Case study 1: top-1 accuracy (%) against GFLOPs, Pareto front highlighted.

    Feasible trials off the front are dots, the front is a step line of larger markers, the
    knee a star, infeasible trials grey crosses. Trials rejected by a cost constraint before
    training have no accuracy: they are grey crosses on a line just below the lowest measured
    accuracy. Several studies are overlaid, one color each. Hovering a point shows its values
    and architecture.

    Args:
        study_or_studies: A study or a sequence of studies.
        accuracy: The accuracy metric on the y axis.

    Returns:
        A plotly figure; every trace's ``customdata`` holds the trial numbers.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> study.set_metric_names(["accuracy", "flops"])
        >>> study.add_trials([optuna.trial.create_trial(values=v)
        ...                   for v in ([0.9, 4e9], [0.8, 1e9], [0.7, 2e9])])
        >>> [t.name for t in plot_accuracy_flops(study).data]
        ['dominated', 'Pareto front', 'knee']
    """
    import plotly.graph_objects as go

    studies = _as_studies(study_or_studies)
    fig = go.Figure()
    infos = [accuracy_flops_info(s, accuracy=accuracy, label=_study_label(s, studies))
             for s in studies]
    measured = np.concatenate([i.accuracy_percent[i.trained] for i in infos])
    floor, y_range = _floor_range(measured)
    for i, (study, info) in enumerate(zip(studies, infos, strict=True)):
        label = _study_label(study, studies)
        color = _STUDY_COLORS[i % len(_STUDY_COLORS)] if label else None
        prefix = f"{label}: " if label else ""
        groups = (
            ("dominated", info.feasible & ~info.on_front,
             {"color": color or _DOMINATED, "size": 7, "opacity": 0.55}),
            ("infeasible", ~info.feasible & info.trained,
             {"color": _INFEASIBLE, "size": 7, "symbol": "x", "opacity": 0.7}),
            ("rejected before training", ~info.trained,
             {"color": _INFEASIBLE, "size": 7, "symbol": "x-thin-open", "opacity": 0.8,
              "line": {"width": 1.5, "color": _INFEASIBLE}}),
        )
        for name, mask, marker in groups:
            if mask.any():
                idx = np.flatnonzero(mask)
                y = (np.full(idx.size, floor) if name == "rejected before training"
                     else info.accuracy_percent[idx])
                fig.add_trace(go.Scatter(
                    x=info.gflops[idx], y=y, mode="markers",
                    name=prefix + name, legendgroup=label, marker=marker,
                    customdata=info.trial_numbers[idx],
                    hovertext=[info.hover[j] for j in idx], hoverinfo="text"))
        front = np.flatnonzero(info.on_front)
        if front.size:
            front = front[np.argsort(info.gflops[front], kind="stable")]
            fig.add_trace(go.Scatter(
                x=info.gflops[front], y=info.accuracy_percent[front], mode="lines+markers",
                name=prefix + "Pareto front", legendgroup=label, line_shape="hv",
                line={"color": color or _FRONT, "width": 2},
                marker={"color": color or _FRONT, "size": 10, "symbol": "diamond"},
                customdata=info.trial_numbers[front],
                hovertext=[info.hover[j] for j in front], hoverinfo="text"))
        if info.knee_trial is not None:
            k = int(np.flatnonzero(info.trial_numbers == info.knee_trial)[0])
            fig.add_trace(go.Scatter(
                x=[info.gflops[k]], y=[info.accuracy_percent[k]], mode="markers+text",
                name=prefix + "knee", legendgroup=label, text=[f"knee #{info.knee_trial}"],
                textposition="top left",
                marker={"color": "gold", "size": 18, "symbol": "star",
                        "line": {"color": "black", "width": 1}},
                customdata=[info.knee_trial], hovertext=[info.hover[k]], hoverinfo="text"))
    x = np.concatenate([i.gflops for i in infos])
    fig.update_layout(
        title="Accuracy vs FLOPs", font=_FONT, template="plotly_white",
        xaxis={"title": {"text": _AXES["flops"][1]},
               "type": "log" if _log_axis(x) else "linear"},
        yaxis={"title": {"text": _axis(accuracy)[1]}, "range": y_range}, hovermode="closest",
        legend={"orientation": "h", "y": -0.2})
    return fig


# --------------------------------------------------------------------------- case 2


class EfficiencyInfo(NamedTuple):
    """Data of :func:`plot_efficiency`: trained trials only (rejected ones have no accuracy).

    Attributes:
        trial_numbers: COMPLETE trials with status ``ok`` and an accuracy.
        accuracy_percent: Their accuracy in percent.
        on_front: Trials on the study's feasible Pareto front (of its objectives).
        metrics: Metric name -> values in display units (NaN where missing), only metrics
            that some trial has, in :data:`EFFICIENCY_METRICS` order.
        titles: Metric name -> axis title with the display unit.
    """

    trial_numbers: np.ndarray
    accuracy_percent: np.ndarray
    on_front: np.ndarray
    metrics: dict[str, np.ndarray]
    titles: dict[str, str]


def efficiency_info(study: optuna.Study, *, accuracy: str = "accuracy") -> EfficiencyInfo:
    """Costs and the seed's efficiency metrics of every trained trial, against accuracy.

    Args:
        study: The study.
        accuracy: The accuracy metric.

    Returns:
        An :class:`EfficiencyInfo`.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(directions=["maximize"])
        >>> study.set_metric_names(["accuracy"])
        >>> study.add_trial(optuna.trial.create_trial(values=[0.5], user_attrs={
        ...     "metrics": {"params": 2e6, "latency": 0.004}}))
        >>> info = efficiency_info(study)
        >>> {k: v.tolist() for k, v in info.metrics.items()}
        {'params': [2.0], 'latency': [4.0]}
    """
    names = metric_names(study)
    front = set(pareto_info(study).front_trials)
    rows = [t for t in _complete(study).values()
            if is_trained(t) and metric_value(t, accuracy, names) is not None]
    numbers = np.asarray([t.number for t in rows], dtype=int)
    acc = np.asarray([metric_value(t, accuracy, names) for t in rows], dtype=float) * 100.0
    metrics: dict[str, np.ndarray] = {}
    titles: dict[str, str] = {}
    for name in EFFICIENCY_METRICS:
        raw = [metric_value(t, name, names) for t in rows]
        if any(v is not None for v in raw):
            scale, title = _axis(name)
            values = np.asarray([np.nan if v is None else v for v in raw], dtype=float)
            metrics[name] = np.where(np.isfinite(values), values * scale, np.nan)
            titles[name] = title
    return EfficiencyInfo(numbers, acc.reshape(-1),
                          np.asarray([t.number in front for t in rows], dtype=bool),
                          metrics, titles)


def plot_efficiency(study: optuna.Study, *, accuracy: str = "accuracy",
                    metrics: Sequence[str] | None = None, columns: int | None = None,
                    title: str = "Efficiency profile") -> go.Figure:
    """Case study 2: the efficiency profile of a study.

    One panel per metric with accuracy (%) on the y axis: params, activation memory, latency
    and throughput in the top row, the seed's efficiency metrics (``params_utilization =
    params / accuracy``, ``memory_efficiency = memory / throughput``, ``speed_efficiency =
    latency * batch_size``) in the bottom row. Trials on the study's Pareto front are red.

    Args:
        study: The study.
        accuracy: The accuracy metric.
        metrics: The panels to draw (default :data:`EFFICIENCY_METRICS`); metrics no trial
            has are left out.
        columns: Panels per row; default: costs in one row, efficiency metrics in the next.
        title: The figure's title.

    Returns:
        A plotly figure with one subplot per available metric.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(directions=["maximize"])
        >>> study.set_metric_names(["accuracy"])
        >>> study.add_trial(optuna.trial.create_trial(values=[0.5], user_attrs={
        ...     "metrics": {"params": 2e6, "latency": 0.004}}))
        >>> [a.text for a in plot_efficiency(study).layout.annotations]
        ['params (M)', 'latency (ms)']
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if columns is not None and (isinstance(columns, bool) or not isinstance(columns, int)
                                or columns < 1):
        raise ValueError(f"columns must be a positive integer, got {columns!r}")
    info = efficiency_info(study, accuracy=accuracy)
    wanted = list(EFFICIENCY_METRICS if metrics is None else metrics)
    names = [m for m in wanted if m in info.metrics]
    if columns is None:
        layout_rows = [r for r in ([m for m in names if m in EFFICIENCY_METRICS[:4]],
                                   [m for m in names if m not in EFFICIENCY_METRICS[:4]]) if r]
    else:
        layout_rows = [names[i:i + columns] for i in range(0, len(names), columns)]
    cols = max((len(r) for r in layout_rows), default=1)
    fig = make_subplots(rows=max(len(layout_rows), 1), cols=cols, shared_yaxes=True,
                        subplot_titles=[info.titles[m] for r in layout_rows for m in r],
                        horizontal_spacing=0.06 if cols < 4 else 0.04, vertical_spacing=0.18)
    for r, row_metrics in enumerate(layout_rows, start=1):
        for c, name in enumerate(row_metrics, start=1):
            x = info.metrics[name]
            for label, mask, color in (("dominated", ~info.on_front, _DOMINATED),
                                       ("Pareto front", info.on_front, _FRONT)):
                idx = np.flatnonzero(mask & np.isfinite(x))
                fig.add_trace(go.Scatter(
                    x=x[idx], y=info.accuracy_percent[idx], mode="markers", name=label,
                    legendgroup=label, showlegend=(r, c) == (1, 1),
                    marker={"color": color, "size": 8 if label == "Pareto front" else 6,
                            "opacity": 0.9 if label == "Pareto front" else 0.6},
                    customdata=info.trial_numbers[idx],
                    hovertemplate=f"trial %{{customdata}}<br>{info.titles[name]}: %{{x:.4g}}"
                                  "<br>accuracy: %{y:.2f}%<extra></extra>"), row=r, col=c)
            fig.update_xaxes(type="log" if _log_axis(x) else "linear", row=r, col=c)
        fig.update_yaxes(title_text=_axis(accuracy)[1], row=r, col=1)
    fig.update_layout(title=title, font=_FONT, template="plotly_white",
                      height=330 * max(len(layout_rows), 1) + 80,
                      legend={"orientation": "h", "y": -0.15})
    return fig


# --------------------------------------------------------------------------- case 4


class ParetoSurfaceInfo(NamedTuple):
    """Data of :func:`plot_pareto_surface`.

    Attributes:
        metric_names: The three metrics (x, y, z).
        axis_titles: Axis titles with display units.
        trial_numbers: COMPLETE trials having the three metrics.
        values: ``(n, 3)`` values in the metrics' own units.
        display: ``(n, 3)`` values in display units (percent, ms, MB).
        ranks: Constrained Pareto ranks of the rows (:func:`pareto.pareto_ranks`), also the
            marker colors.
        feasible: Rows whose trial satisfies its constraints.
        trained: False for rows rejected before training (their accuracies are sentinels).
        on_front: Rows on the feasible front.
        knee_row: Row of the front's knee, or None.
        operating_row: Row of the trial chosen by the operating point, or None.
        operating_label: The operating point as text, or None.
        triangles: ``(k, 3)`` row indices of the triangles of the front surface (empty when
            the front has fewer than three points in general position).
        hover: Hover text per row.
    """

    metric_names: list[str]
    axis_titles: list[str]
    trial_numbers: np.ndarray
    values: np.ndarray
    display: np.ndarray
    ranks: np.ndarray
    feasible: np.ndarray
    trained: np.ndarray
    on_front: np.ndarray
    knee_row: int | None
    operating_row: int | None
    operating_label: str | None
    triangles: np.ndarray
    hover: list[str]


def _surface_metrics(study: optuna.Study, metrics: Sequence[str] | None) -> list[str]:
    if metrics is not None:
        if len(metrics) != 3:
            raise ValueError(f"metrics: the Pareto surface needs 3 metrics, got {list(metrics)}")
        return list(metrics)
    names = metric_names(study)
    return names if len(names) == 3 else list(SURFACE_METRICS)


def _front_triangles(points: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Delaunay triangles of front points over the two first objectives (normalized)."""
    if points.shape[0] < 3:
        return np.zeros((0, 3), dtype=int)
    from scipy.spatial import Delaunay, QhullError

    xy = points[:, :2]
    span = np.ptp(xy, axis=0)
    if np.any(span == 0):
        return np.zeros((0, 3), dtype=int)
    try:
        tri = Delaunay((xy - xy.min(axis=0)) / span)
    except QhullError:
        return np.zeros((0, 3), dtype=int)
    return np.asarray(tri.simplices, dtype=int)


def pareto_surface_info(study: optuna.Study, *, metrics: Sequence[str] | None = None,
                        operating_point: str | OperatingPoint | None = None
                        ) -> ParetoSurfaceInfo:
    """Ranks, front, knee and operating point of three metrics, ready to draw in 3D.

    Args:
        study: The study.
        metrics: Three metrics (objectives or measured metrics); default: the study's
            objectives when it has three, else accuracy, latency and memory.
        operating_point: A bound such as ``"latency<=20ms"``; the best feasible trial that
            meets it (:func:`pareto.operating_point`) is marked.

    Returns:
        A :class:`ParetoSurfaceInfo`.

    Raises:
        ValueError: ``metrics`` is not three known metrics.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
        >>> study.set_metric_names(["accuracy", "latency", "memory"])
        >>> study.add_trials([optuna.trial.create_trial(values=v) for v in (
        ...     [0.9, 0.02, 4e6], [0.8, 0.01, 2e6], [0.7, 0.03, 5e6])])
        >>> info = pareto_surface_info(study)
        >>> info.ranks.tolist(), info.knee_row, info.display[1].tolist()
        ([0, 0, 1], 1, [80.0, 10.0, 2.0])
    """
    names = _surface_metrics(study, metrics)
    pinfo = pareto_info(study, metrics=names)
    trials = _complete(study)
    scales = [_axis(m)[0] for m in names]
    on_front = np.zeros(len(pinfo.trial_numbers), dtype=bool)
    on_front[pinfo.front] = True
    rows = {int(n): i for i, n in enumerate(pinfo.trial_numbers)}
    knee = rows.get(pinfo.knee_trial) if pinfo.knee_trial is not None else None
    op_row, op_label = None, None
    if operating_point is not None:
        chosen = find_operating_point(study, operating_point)
        op_label = str(operating_point)
        if chosen is not None:
            op_row = rows.get(chosen.number)
    triangles = _front_triangles(pinfo.values[pinfo.front], pinfo.directions)
    triangles = pinfo.front[triangles] if triangles.size else triangles
    hover = [_hover(None, trials[int(n)], dict(zip(names, row, strict=True)))
             + f"<br>Pareto rank: {int(r)}"
             for n, row, r in zip(pinfo.trial_numbers, pinfo.values, pinfo.ranks, strict=True)]
    return ParetoSurfaceInfo(
        metric_names=names, axis_titles=[_axis(m)[1] for m in names],
        trial_numbers=pinfo.trial_numbers, values=pinfo.values,
        display=pinfo.values * np.asarray(scales), ranks=pinfo.ranks, feasible=pinfo.feasible,
        trained=np.asarray([is_trained(trials[int(n)]) for n in pinfo.trial_numbers], dtype=bool),
        on_front=on_front, knee_row=knee, operating_row=op_row, operating_label=op_label,
        triangles=triangles, hover=hover)


def plot_pareto_surface(study: optuna.Study, *, metrics: Sequence[str] | None = None,
                        operating_point: str | OperatingPoint | None = None) -> go.Figure:
    """Case study 4: the 3D Pareto surface of accuracy, latency and memory.

    Points are colored by constrained Pareto rank (one color scale, rank 0 is the front):
    front trials are diamonds under a translucent surface through the front, dominated
    trials are dots, infeasible trials crosses. Trials rejected before training have no
    accuracy; they sit on a plane just below the lowest measured accuracy. The knee is ringed
    in black, the operating point's trial in green.

    Args:
        study: The study.
        metrics: Three metrics; see :func:`pareto_surface_info`.
        operating_point: A bound such as ``"latency<=20ms"`` whose best trial is marked.

    Returns:
        A plotly figure with a 3D scene.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
        >>> study.set_metric_names(["accuracy", "latency", "memory"])
        >>> study.add_trials([optuna.trial.create_trial(values=v) for v in (
        ...     [0.9, 0.02, 4e6], [0.8, 0.01, 2e6], [0.7, 0.03, 5e6])])
        >>> [t.name for t in plot_pareto_surface(study).data]
        ['Pareto front', 'dominated', 'knee (trial 1)']
    """
    import plotly.graph_objects as go

    info = pareto_surface_info(study, metrics=metrics, operating_point=operating_point)
    d = info.display.copy()
    ranges: list[list[float] | None] = [None, None, None]
    for j, name in enumerate(info.metric_names):
        if (not info.trained.all() and name in METRICS
                and METRICS[name].unit == "fraction"):
            floor, ranges[j] = _floor_range(d[info.trained, j])
            d[~info.trained, j] = floor
    fig = go.Figure()
    if info.triangles.size:
        fig.add_trace(go.Mesh3d(
            x=d[:, 0], y=d[:, 1], z=d[:, 2], i=info.triangles[:, 0], j=info.triangles[:, 1],
            k=info.triangles[:, 2], name="front surface", color=_FRONT, opacity=0.18,
            hoverinfo="skip", showlegend=True))
    max_rank = int(info.ranks.max()) if info.ranks.size else 0
    # One shared color scale, repeated on every trace: a layout coloraxis breaks the legend
    # symbols of 3D scatters in plotly.js ("Invalid color specifier" warnings).
    scale = {"colorscale": _RANK_SCALE, "cmin": 0, "cmax": max(max_rank, 1)}
    groups = (("Pareto front", info.on_front, "diamond", 5),
              ("dominated", info.feasible & ~info.on_front, "circle", 4),
              ("infeasible", ~info.feasible, "cross", 4))
    shown_scale = False
    for name, mask, symbol, size in groups:
        idx = np.flatnonzero(mask)
        if idx.size:
            fig.add_trace(go.Scatter3d(
                x=d[idx, 0], y=d[idx, 1], z=d[idx, 2], mode="markers", name=name,
                marker={"color": info.ranks[idx], **scale, "symbol": symbol,
                        "showscale": not shown_scale,
                        "colorbar": {"title": {"text": "Pareto rank"}, "dtick": 1},
                        "size": size, "opacity": 0.95 if name == "Pareto front" else 0.75},
                customdata=info.trial_numbers[idx],
                hovertext=[info.hover[j] for j in idx], hoverinfo="text"))
            shown_scale = True
    marks = (("knee", info.knee_row, "black", "knee"),
             ("operating point", info.operating_row, "#2ca02c",
              f"{info.operating_label}"))
    for name, row, color, text in marks:
        if row is not None:
            fig.add_trace(go.Scatter3d(
                x=[d[row, 0]], y=[d[row, 1]], z=[d[row, 2]], mode="markers+text",
                name=f"{name} (trial {int(info.trial_numbers[row])})",
                text=[f"{text} #{int(info.trial_numbers[row])}"],
                marker={"color": color, "size": 12, "symbol": "circle-open",
                        "line": {"width": 3, "color": color}},
                customdata=[int(info.trial_numbers[row])], hovertext=[info.hover[row]],
                hoverinfo="text"))
    fig.update_layout(
        title="Pareto surface", font=_FONT, template="plotly_white", height=600,
        scene={axis: {"title": {"text": title}, **({"range": r} if r else {})}
               for axis, title, r in zip(("xaxis", "yaxis", "zaxis"), info.axis_titles, ranges,
                                         strict=True)}
        | {"camera": {"eye": {"x": 1.7, "y": -1.5, "z": 0.9}}},
        legend={"orientation": "h", "y": -0.05}, margin={"l": 0, "r": 0, "b": 0, "t": 40})
    return fig


# --------------------------------------------------------------------------- case 5


class RobustnessInfo(NamedTuple):
    """Data of :func:`plot_robustness`: trained trials with a clean accuracy.

    Attributes:
        trial_numbers: The trials.
        clean_percent: ``clean_accuracy`` (else ``accuracy``) in percent.
        robust: Summary metric (:data:`ROBUST_METRICS`) -> percent per trial (NaN missing);
            only metrics some trial has.
        perturbations: Single perturbations ``<name>@<level>`` in first-seen order.
        per_perturbation: ``(n, p)`` accuracy in percent under each perturbation (NaN
            missing).
    """

    trial_numbers: np.ndarray
    clean_percent: np.ndarray
    robust: dict[str, np.ndarray]
    perturbations: list[str]
    per_perturbation: np.ndarray


def robustness_info(study: optuna.Study) -> RobustnessInfo:
    """Clean, robust and per-perturbation accuracy of every trained COMPLETE trial.

    Args:
        study: The study.

    Returns:
        A :class:`RobustnessInfo` (empty arrays when no trial was evaluated for robustness).

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(directions=["maximize"])
        >>> study.add_trial(optuna.trial.create_trial(values=[0.9], user_attrs={
        ...     "metrics": {"clean_accuracy": 0.9, "adversarial_accuracy": 0.3},
        ...     "robustness": {"details": {"fgsm@0.1": 0.4, "pgd@0.1": 0.2}}}))
        >>> info = robustness_info(study)
        >>> info.perturbations, info.per_perturbation.tolist(), info.robust
        (['fgsm@0.1', 'pgd@0.1'], [[40.0, 20.0]], {'adversarial_accuracy': array([30.])})
    """
    names = metric_names(study)
    rows: list[FrozenTrial] = []
    for trial in _complete(study).values():
        if not is_trained(trial):
            continue
        has_robust = any(robustness_metric(trial, m, names) is not None for m in ROBUST_METRICS)
        if has_robust or robustness_details(trial):
            rows.append(trial)
    clean = [(robustness_metric(t, "clean_accuracy", names) if
              robustness_metric(t, "clean_accuracy", names) is not None
              else metric_value(t, "accuracy", names)) for t in rows]
    robust: dict[str, np.ndarray] = {}
    for name in ROBUST_METRICS:
        values = [robustness_metric(t, name, names) for t in rows]
        if any(v is not None for v in values):
            robust[name] = np.asarray([np.nan if v is None else 100 * v for v in values])
    keys: list[str] = []
    details = [robustness_details(t) for t in rows]
    for d in details:
        keys += [k for k in d if k not in keys]
    matrix = np.asarray([[100 * d[k] if k in d else np.nan for k in keys] for d in details],
                        dtype=float).reshape(len(rows), len(keys))
    return RobustnessInfo(
        np.asarray([t.number for t in rows], dtype=int),
        np.asarray([np.nan if c is None else 100 * c for c in clean], dtype=float),
        robust, keys, matrix)


def plot_robustness(study: optuna.Study) -> go.Figure:
    """Case study 5: clean against robust accuracy, and accuracy per perturbation.

    Left: one point per trial and robust metric (noise, corruption, adversarial) against the
    clean accuracy, with the diagonal where robustness costs nothing. Right: the accuracy of
    all trials under each single perturbation and level, one box per ``<name>@<level>``.

    Args:
        study: The study.

    Returns:
        A plotly figure with two subplots.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(directions=["maximize"])
        >>> study.add_trial(optuna.trial.create_trial(values=[0.9], user_attrs={
        ...     "metrics": {"clean_accuracy": 0.9, "adversarial_accuracy": 0.3},
        ...     "robustness": {"details": {"fgsm@0.1": 0.4, "pgd@0.1": 0.2}}}))
        >>> [t.name for t in plot_robustness(study).data]
        ['adversarial accuracy', 'no loss', 'fgsm', 'pgd']
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    info = robustness_info(study)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.42, 0.58], horizontal_spacing=0.08,
                        subplot_titles=["clean vs robust accuracy",
                                        "accuracy per perturbation and level"])
    for i, (name, values) in enumerate(info.robust.items()):
        ok = np.flatnonzero(np.isfinite(values) & np.isfinite(info.clean_percent))
        fig.add_trace(go.Scatter(
            x=info.clean_percent[ok], y=values[ok], mode="markers",
            name=name.replace("_", " "), legendgroup=name,
            marker={"color": _STUDY_COLORS[(i + 1) % len(_STUDY_COLORS)], "size": 8},
            customdata=info.trial_numbers[ok],
            hovertemplate=f"trial %{{customdata}}<br>clean: %{{x:.2f}}%<br>"
                          f"{name.replace('_', ' ')}: %{{y:.2f}}%<extra></extra>"),
            row=1, col=1)
    finite = info.clean_percent[np.isfinite(info.clean_percent)]
    top = float(finite.max()) if finite.size else 100.0
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name="no loss",
                             line={"color": "#999", "dash": "dash"}, hoverinfo="skip"),
                  row=1, col=1)
    kinds: dict[str, list[int]] = {}
    for j, key in enumerate(info.perturbations):
        kinds.setdefault(key.split("@", 1)[0], []).append(j)
    for i, (kind, cols) in enumerate(kinds.items()):
        xs, ys, custom = [], [], []
        for j in cols:
            ok = np.flatnonzero(np.isfinite(info.per_perturbation[:, j]))
            xs += [info.perturbations[j]] * ok.size
            ys += info.per_perturbation[ok, j].tolist()
            custom += info.trial_numbers[ok].tolist()
        fig.add_trace(go.Box(x=xs, y=ys, name=kind, boxpoints="all", jitter=0.3,
                             pointpos=0, customdata=custom,
                             marker={"color": _STUDY_COLORS[i % len(_STUDY_COLORS)], "size": 4},
                             hovertemplate="trial %{customdata}<br>%{x}: %{y:.1f}%"
                                           "<extra></extra>"), row=1, col=2)
    fig.update_xaxes(title_text="clean accuracy (%)", row=1, col=1)
    fig.update_yaxes(title_text="robust accuracy (%)", row=1, col=1)
    fig.update_yaxes(title_text="accuracy (%)", row=1, col=2)
    fig.update_layout(title="Robustness", font=_FONT, template="plotly_white", height=480,
                      legend={"orientation": "h", "y": -0.25})
    return fig


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


def _pairwise(features: np.ndarray) -> np.ndarray:
    sq = np.sum(features ** 2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * features @ features.T, 0.0)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(d2)


# --------------------------------------------------------------------------- diversity


class DiversityInfo(NamedTuple):
    """Data of :func:`plot_diversity` for one study.

    Attributes:
        study_name: The study's name.
        grouping: ``"generation"`` (the sampler's) or ``"window of <k> trials"``.
        generations: Generation (or window) index per point.
        diversity: Mean pairwise distance of the generation's architectures, the same
            measure :class:`~neuromosaic_optuna.samplers.ParetoSampler` warns on
            (:func:`neuromosaic_optuna.space.population_diversity`: 0 all identical, about
            1/3 for uniform random floats).
        unique: Fraction of distinct architectures in the generation.
        counts: Trials in the generation.
    """

    study_name: str
    grouping: str
    generations: np.ndarray
    diversity: np.ndarray
    unique: np.ndarray
    counts: np.ndarray


def diversity_info(study: optuna.Study, *, window: int = 10) -> DiversityInfo:
    """Diversity of the proposed architectures per generation.

    Generations come from the genetic samplers' system attribute ``<Sampler>:generation``
    (NSGA-II, NSGA-III; see :func:`neuromosaic_optuna.record.generation_of`); with other
    samplers, consecutive windows of ``window`` trials.

    Args:
        study: The study.
        window: Window size when the trials carry no generation.

    Returns:
        A :class:`DiversityInfo`.

    Raises:
        ValueError: ``window`` is not a positive integer.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study()
        >>> study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=4)
        >>> info = diversity_info(study, window=2)
        >>> info.grouping, info.generations.tolist(), info.counts.tolist()
        ('window of 2 trials', [0, 1], [2, 2])
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive integer, got {window!r}")
    trials = _proposed(study)
    space = _param_space(trials)
    gens = [generation_of(t) for t in trials]
    if trials and all(g is not None for g in gens):
        grouping = "generation"
        labels = np.asarray(gens, dtype=int)
    else:
        grouping = f"window of {window} trials"
        labels = np.arange(len(trials)) // window
    codes, _ = encode_params([t.params for t in trials], space)
    generations, diversity, unique, counts = [], [], [], []
    for g in np.unique(labels):
        members = [trials[i].params for i in np.flatnonzero(labels == g)]
        n = len(members)
        generations.append(int(g))
        diversity.append(population_diversity(members, space) if n > 1 else 0.0)
        unique.append(len({tuple(np.round(r, 9)) for r in codes[labels == g]}) / n)
        counts.append(n)
    return DiversityInfo(study.study_name, grouping, np.asarray(generations, dtype=int),
                         np.asarray(diversity, dtype=float), np.asarray(unique, dtype=float),
                         np.asarray(counts, dtype=int))


def plot_diversity(study_or_studies: StudyOrStudies, *, window: int = 10) -> go.Figure:
    """Diversity of the proposed architectures over generations, one line per study.

    A falling line is the sampler converging; a line that falls to zero early is premature
    convergence (the seed's "monitor diversity").

    Args:
        study_or_studies: A study or a sequence of studies.
        window: Window size for trials without a generation (see :func:`diversity_info`).

    Returns:
        A plotly figure.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(study_name="s")
        >>> study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=4)
        >>> plot_diversity(study, window=2).data[0].x.tolist()
        [0, 1]
    """
    import plotly.graph_objects as go

    studies = _as_studies(study_or_studies)
    fig = go.Figure()
    groupings = set()
    last = 0
    for i, study in enumerate(studies):
        info = diversity_info(study, window=window)
        groupings.add(info.grouping)
        last = max(last, int(info.generations.max(initial=0)))
        fig.add_trace(go.Scatter(
            x=info.generations, y=info.diversity, mode="lines+markers", name=info.study_name,
            line={"color": _STUDY_COLORS[i % len(_STUDY_COLORS)]},
            customdata=np.stack([info.counts, info.unique * 100], axis=-1),
            hovertemplate="%{x}: diversity %{y:.3f}<br>%{customdata[0]} trials, "
                          "%{customdata[1]:.0f}% distinct<extra>" + info.study_name
                          + "</extra>"))
    fig.update_layout(
        title="Architecture diversity", font=_FONT, template="plotly_white",
        xaxis={"title": {"text": " / ".join(sorted(groupings)) or "generation"},
               **({"dtick": 1} if last <= 20 else {})},
        yaxis={"title": {"text": "mean pairwise distance (normalized params)"},
               "rangemode": "tozero"},
        showlegend=len(studies) > 1)
    return fig


# --------------------------------------------------------------------------- hypervolume


def plot_hypervolume(study_or_studies: StudyOrStudies, *,
                     reference_point: Sequence[float] | None = None) -> go.Figure:
    """Hypervolume history drawn by :func:`optuna.visualization.plot_hypervolume_history`.

    The reference point defaults to the one :func:`pareto.pareto_info` uses (the
    ``"natural"`` rule over the feasible trials of all given studies), so the last value is
    the hypervolume that ``neuromosaic pareto`` prints. Several studies (same objectives)
    are overlaid. A single-objective study gets Optuna's optimization history instead.

    Args:
        study_or_studies: A study or a sequence of studies with the same objectives.
        reference_point: Explicit reference point in the objectives' units.

    Returns:
        A plotly figure.

    Raises:
        ValueError: The studies have different objectives.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> study.set_metric_names(["accuracy", "flops"])
        >>> study.add_trials([optuna.trial.create_trial(values=v)
        ...                   for v in ([0.5, 4.0], [0.8, 2.0])])
        >>> [round(y, 6) for y in plot_hypervolume(study, reference_point=[0.0, 5.0]).data[0].y]
        [0.5, 2.4]
    """
    import plotly.graph_objects as go

    studies = _as_studies(study_or_studies)
    directions = [d.name.lower() for d in studies[0].directions]
    names = metric_names(studies[0])
    for s in studies[1:]:
        if [d.name.lower() for d in s.directions] != directions or metric_names(s) != names:
            raise ValueError("study_or_studies: the studies have different objectives "
                             f"({names} vs {metric_names(s)})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if len(directions) == 1:
            fig = optuna.visualization.plot_optimization_history(
                studies if len(studies) > 1 else studies[0], target_name=names[0])
            fig.update_layout(font=_FONT)
            return fig
        if reference_point is None:
            infos = [pareto_info(s) for s in studies]
            feasible = [i.values[i.feasible] for i in infos]
            points = np.vstack(feasible) if any(f.size for f in feasible) else np.vstack(
                [i.values for i in infos])
            ref = (reference_point_of(points, directions, names) if points.size
                   else np.zeros(len(directions)))
        else:
            ref = np.asarray(reference_point, dtype=float)
        traces = []
        for i, study in enumerate(studies):
            sub = optuna.visualization.plot_hypervolume_history(study, ref.tolist())
            for trace in sub.data:
                trace.name = study.study_name
                trace.line.color = _STUDY_COLORS[i % len(_STUDY_COLORS)]
                traces.append(trace)
    fig = go.Figure(data=traces, layout=sub.layout)
    ref_text = ", ".join(f"{n} {format_metric(n, v)}" for n, v in zip(names, ref, strict=True))
    fig.update_layout(title=f"Hypervolume history (reference: {ref_text})", font=_FONT,
                      template="plotly_white", showlegend=len(studies) > 1)
    return fig


def reference_point_of(points: np.ndarray, directions: Sequence[str],
                       names: Sequence[str]) -> np.ndarray:
    """The ``"natural"`` reference point of :mod:`pareto` for a set of points."""
    return reference_point(points, directions, rule="natural", metric_names=names)


# --------------------------------------------------------------------------- sphere map


class ArchitectureMapInfo(NamedTuple):
    """Data of :func:`plot_architecture_map`.

    Attributes:
        study_names: Study of each point.
        trial_numbers: Trial number of each point (all trials with chosen params).
        features: ``(n, d)`` params scaled to ``[0, 1]`` (see the module's distance).
        xyz: ``(n, 3)`` points on the unit sphere.
        accuracy: Accuracy (fraction) per point, NaN for trials without one.
        cost: The cost metric per point (NaN missing); drawn as marker size.
        cost_name: Which metric ``cost`` is (``flops``, else ``params``, else ``latency``).
        reference_row: Row of the reference trial (the knee, else the most accurate).
        geodesic: Great-circle distance (radians) of each point to the reference.
        param_distance: Normalized param distance of each point to the reference.
        stress: Relative stress of the embedding (0 = distances kept exactly).
        hover: Hover text per point.
    """

    study_names: list[str]
    trial_numbers: np.ndarray
    features: np.ndarray
    xyz: np.ndarray
    accuracy: np.ndarray
    cost: np.ndarray
    cost_name: str | None
    reference_row: int | None
    geodesic: np.ndarray
    param_distance: np.ndarray
    stress: float
    hover: list[str]


def _normalize_rows(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    small = norm[:, 0] < 1e-9
    if small.any():
        x = x.copy()
        x[small] = rng.normal(size=(int(small.sum()), 3))
        norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / norm


def _sphere_embedding(features: np.ndarray, *, iterations: int, seed: int
                      ) -> tuple[np.ndarray, float]:
    """Place points on the unit sphere so that great-circle distances follow param distances.

    Target: the largest param distance maps to half a great circle (``pi``), others in
    proportion. Start: the first three principal components, centered, pushed onto the
    sphere. Then spherical stress majorization: each step is SMACOF's Guttman transform on
    chord lengths (``2 sin(theta / 2)``) followed by a projection back onto the sphere.
    Returns the points and the relative stress ``sum (d - t)^2 / sum t^2`` of the chords.
    """
    n = features.shape[0]
    rng = np.random.default_rng(seed)
    if n == 0:
        return np.zeros((0, 3)), 0.0
    dist = _pairwise(features)
    top = float(dist.max())
    if n == 1 or top <= 0:
        return np.tile([0.0, 0.0, 1.0], (n, 1)), 0.0
    target = 2.0 * np.sin(np.pi * dist / top / 2.0)
    centered = features - features.mean(axis=0)
    u, s, _ = np.linalg.svd(centered, full_matrices=False)
    init = np.zeros((n, 3))
    k = min(3, u.shape[1])
    init[:, :k] = u[:, :k] * s[:k]
    init += 1e-3 * rng.normal(size=init.shape) * max(float(s[0]), 1e-9)
    x = _normalize_rows(init, rng)
    for _ in range(iterations):
        chord = np.sqrt(np.maximum(2.0 - 2.0 * (x @ x.T), 0.0))
        ratio = np.where(chord > 1e-12, target / np.maximum(chord, 1e-12), 0.0)
        np.fill_diagonal(ratio, 0.0)
        guttman = (ratio.sum(axis=1, keepdims=True) * x - ratio @ x) / n
        x = _normalize_rows(guttman, rng)
    chord = np.sqrt(np.maximum(2.0 - 2.0 * (x @ x.T), 0.0))
    stress = float(np.sum((chord - target) ** 2) / max(np.sum(target ** 2), 1e-300))
    return x, stress


def architecture_map_info(study_or_studies: StudyOrStudies, *, iterations: int = 200,
                          seed: int = 0) -> ArchitectureMapInfo:
    """Embed every proposed architecture of one or more studies on the unit sphere.

    The params shared by all trials (Optuna's intersection search space) are scaled to
    ``[0, 1]`` (categorical params one-hot / ``sqrt(2)``), and the points are placed on the
    sphere so that great-circle distances follow the param distances (see
    :func:`neighbourhood_preservation` for how well they do). Several studies share one
    embedding, so their explored regions can be compared.

    Args:
        study_or_studies: A study or a sequence of studies over the same params.
        iterations: Steps of the spherical stress majorization.
        seed: Seed of the tie-breaking jitter (same seed, same map).

    Returns:
        An :class:`ArchitectureMapInfo`.

    Example:
        >>> import numpy as np, optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        >>> study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_int("y", 0, 9),
        ...                n_trials=20)
        >>> info = architecture_map_info(study)
        >>> np.allclose(np.linalg.norm(info.xyz, axis=1), 1.0)
        True
    """
    studies = _as_studies(study_or_studies)
    trials: list[FrozenTrial] = []
    labels: list[str] = []
    accuracy: list[float] = []
    cost_rows: list[dict[str, float | None]] = []
    knees: dict[str, int | None] = {}
    for study in studies:
        names = metric_names(study)
        knees[study.study_name] = pareto_info(study).knee_trial if study.trials else None
        for t in _proposed(study):
            trials.append(t)
            labels.append(study.study_name)
            ok = t.state == TrialState.COMPLETE and is_trained(t)
            acc = metric_value(t, "accuracy", names) if ok else None
            accuracy.append(np.nan if acc is None else acc)
            cost_rows.append({m: metric_value(t, m, names) for m in ("flops", "params", "latency")})
    space = _param_space(trials)
    features = param_features([t.params for t in trials], space)
    xyz, stress = _sphere_embedding(features, iterations=iterations, seed=seed)
    cost_name = next((m for m in ("flops", "params", "latency")
                      if any(r[m] is not None for r in cost_rows)), None)
    cost = np.asarray([np.nan if cost_name is None or r[cost_name] is None else r[cost_name]
                       for r in cost_rows], dtype=float)
    acc_arr = np.asarray(accuracy, dtype=float)
    ref = _reference_row(trials, labels, knees, acc_arr)
    if ref is not None:
        geodesic = np.arccos(np.clip(xyz @ xyz[ref], -1.0, 1.0))
        param_distance = (np.linalg.norm(features - features[ref], axis=1)
                          / math.sqrt(max(len(space), 1)))
    else:
        geodesic = param_distance = np.full(len(trials), np.nan)
    hover = []
    for i, t in enumerate(trials):
        text = _hover(labels[i] if len(studies) > 1 else None, t,
                      {"accuracy": None if np.isnan(acc_arr[i]) else acc_arr[i],
                       **({cost_name: None if np.isnan(cost[i]) else cost[i]}
                          if cost_name else {})})
        if ref is not None:
            text += (f"<br>geodesic distance to trial {trials[ref].number}: "
                     f"{geodesic[i]:.2f} rad ({math.degrees(geodesic[i]):.0f}°), "
                     f"param distance {param_distance[i]:.2f}")
        hover.append(text)
    return ArchitectureMapInfo(labels, np.asarray([t.number for t in trials], dtype=int),
                               features, xyz, acc_arr, cost, cost_name, ref, geodesic,
                               param_distance, stress, hover)


def _reference_row(trials: Sequence[FrozenTrial], labels: Sequence[str],
                   knees: Mapping[str, int | None], accuracy: np.ndarray) -> int | None:
    first = labels[0] if labels else None
    knee = knees.get(first) if first is not None else None
    for i, t in enumerate(trials):
        if labels[i] == first and t.number == knee:
            return i
    if np.isfinite(accuracy).any():
        return int(np.nanargmax(accuracy))
    return 0 if trials else None


class Preservation(NamedTuple):
    """How well a map keeps neighbourhoods (see :func:`neighbourhood_preservation`).

    Attributes:
        overlap: Mean fraction of each point's ``k`` nearest neighbours on the sphere that
            are among its nearest neighbours in the search space (ties included).
        random: The expected overlap of a random placement.
        k: The neighbourhood size.
    """

    overlap: float
    random: float
    k: int


def neighbourhood_preservation(info: ArchitectureMapInfo, *, k: int = 5) -> Preservation:
    """k-nearest-neighbour overlap between the sphere and the search space.

    For each point, its ``k`` nearest neighbours by great-circle distance are compared with
    its nearest neighbours by param distance, where every point as close as the ``k``-th
    one counts (categorical spaces have many ties). A random placement scores the size of
    that tie-extended set over ``n - 1`` on average.

    Args:
        info: An :class:`ArchitectureMapInfo`.
        k: Neighbourhood size, at least 1.

    Returns:
        A :class:`Preservation`; NaN scores with fewer than ``k + 1`` points.

    Raises:
        ValueError: ``k`` is not a positive integer.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        >>> study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_float("y", 0, 1),
        ...                n_trials=40)
        >>> p = neighbourhood_preservation(architecture_map_info(study), k=5)
        >>> p.overlap > 3 * p.random
        True
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    n = info.xyz.shape[0]
    if n < k + 1:
        return Preservation(math.nan, math.nan, k)
    param = _pairwise(info.features)
    sphere = np.arccos(np.clip(info.xyz @ info.xyz.T, -1.0, 1.0))
    np.fill_diagonal(param, np.inf)
    np.fill_diagonal(sphere, np.inf)
    overlaps, randoms = [], []
    for i in range(n):
        kth = np.partition(param[i], k - 1)[k - 1]
        near = param[i] <= kth + 1e-12
        on_sphere = np.argsort(sphere[i], kind="stable")[:k]
        overlaps.append(near[on_sphere].sum() / k)
        randoms.append(min(int(near.sum()), n - 1) / (n - 1))
    return Preservation(float(np.mean(overlaps)), float(np.mean(randoms)), k)


def _sphere_density(xyz: np.ndarray, grid: np.ndarray, kappa: float = 12.0) -> np.ndarray:
    """Von Mises-Fisher kernel density of the points at the grid's unit vectors."""
    if xyz.shape[0] == 0:
        return np.zeros(grid.shape[:-1])
    flat = grid.reshape(-1, 3)
    density = np.exp(kappa * (flat @ xyz.T - 1.0)).sum(axis=1)
    return density.reshape(grid.shape[:-1])


def plot_architecture_map(study_or_studies: StudyOrStudies, *, iterations: int = 200,
                          seed: int = 0, k: int = 5) -> go.Figure:
    """The architecture space as a sphere: similar architectures sit close together.

    Each trial is a point on the unit sphere (:func:`architecture_map_info`), colored by
    accuracy and sized by cost (FLOPs, else params, else latency); trials without an
    accuracy (rejected, invalid) are grey. The sphere is shaded by the density of explored
    architectures: dark regions were searched, light ones were not. Hovering a point shows
    its great-circle and param distance to the reference trial (the knee), which is ringed.
    The title gives the k-nearest-neighbour overlap of the map against a random placement.

    Args:
        study_or_studies: A study or a sequence of studies over the same params.
        iterations: Steps of the embedding.
        seed: Seed of the embedding.
        k: Neighbourhood size of the quality score in the title.

    Returns:
        A plotly figure with a 3D scene.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        >>> study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=10)
        >>> [t.type for t in plot_architecture_map(study).data][:2]
        ['surface', 'scatter3d']
    """
    import plotly.graph_objects as go

    info = architecture_map_info(study_or_studies, iterations=iterations, seed=seed)
    theta, phi = np.meshgrid(np.linspace(0, np.pi, 30), np.linspace(0, 2 * np.pi, 60))
    grid = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)],
                    axis=-1)
    density = np.round(_sphere_density(info.xyz, grid), 3)
    grid = np.round(grid, 4)  # a lighter figure (it is stored in the study for the dashboard)
    fig = go.Figure()
    fig.add_trace(go.Surface(
        x=0.985 * grid[..., 0], y=0.985 * grid[..., 1], z=0.985 * grid[..., 2],
        surfacecolor=density, colorscale="Greys", showscale=False, opacity=0.55,
        name="explored density", hoverinfo="skip", cmin=0,
        cmax=max(float(density.max()), 1e-9)))
    scored = np.isfinite(info.accuracy)
    size = np.full(info.xyz.shape[0], 7.0)
    finite_cost = np.isfinite(info.cost) & (info.cost > 0)
    if finite_cost.any():
        logc = np.log(info.cost[finite_cost])
        span = float(logc.max() - logc.min()) or 1.0
        size[finite_cost] = 5.0 + 10.0 * (logc - logc.min()) / span
    for name, mask in (("trained", scored), ("no accuracy", ~scored)):
        idx = np.flatnonzero(mask)
        if not idx.size:
            continue
        marker: dict[str, Any] = {"size": size[idx], "opacity": 0.9,
                                  "line": {"width": 0.5, "color": "#333"}}
        if name == "trained":
            marker.update(color=info.accuracy[idx] * 100, colorscale="Viridis",
                          colorbar={"title": {"text": "accuracy (%)"}})
        else:
            marker.update(color=_INFEASIBLE, symbol="cross")
        fig.add_trace(go.Scatter3d(
            x=info.xyz[idx, 0], y=info.xyz[idx, 1], z=info.xyz[idx, 2], mode="markers",
            name=name, marker=marker, customdata=info.trial_numbers[idx],
            hovertext=[info.hover[j] for j in idx], hoverinfo="text"))
    if info.reference_row is not None:
        r = info.reference_row
        fig.add_trace(go.Scatter3d(
            x=[info.xyz[r, 0] * 1.03], y=[info.xyz[r, 1] * 1.03], z=[info.xyz[r, 2] * 1.03],
            mode="markers+text", name=f"reference (trial {int(info.trial_numbers[r])})",
            text=[f"#{int(info.trial_numbers[r])}"],
            marker={"size": 14, "symbol": "circle-open", "color": "black",
                    "line": {"width": 3}}, hovertext=[info.hover[r]], hoverinfo="text",
            customdata=[int(info.trial_numbers[r])]))
    quality = neighbourhood_preservation(info, k=k)
    subtitle = (f"{k}-NN overlap with the search space {quality.overlap:.2f} "
                f"(random placement {quality.random:.2f})" if math.isfinite(quality.overlap)
                else "too few trials to score the map")
    hidden = {"visible": False, "showbackground": False}
    size_note = f", size = {info.cost_name}" if info.cost_name else ""
    fig.update_layout(
        title={"text": f"Architecture space map<br><sup>{subtitle}; color = accuracy"
                       f"{size_note}</sup>"},
        font=_FONT, template="plotly_white", height=620,
        scene={"xaxis": hidden, "yaxis": hidden, "zaxis": hidden, "aspectmode": "cube",
               "camera": {"eye": {"x": 1.05, "y": 1.05, "z": 0.75}}},
        legend={"orientation": "h", "y": -0.02}, margin={"l": 0, "r": 0, "b": 0, "t": 60})
    return fig


# --------------------------------------------------------------------------- all figures


def available_figures(study: optuna.Study) -> list[str]:
    """Ids of the figures that apply to a study, in the order a report shows them.

    Ids: ``accuracy-vs-flops``, ``efficiency-profile``, ``pareto-surface``, ``robustness``,
    ``hypervolume-history`` (``optimization-history`` for one objective), ``diversity``,
    ``architecture-map``.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> study.set_metric_names(["accuracy", "flops"])
        >>> study.add_trial(optuna.trial.create_trial(values=[0.5, 1e6]))
        >>> available_figures(study)
        ['accuracy-vs-flops', 'hypervolume-history']
    """
    ids = []
    if _has_metrics(study, ["accuracy", "flops"]):
        ids.append("accuracy-vs-flops")
    names = metric_names(study)
    trained = [t for t in _complete(study).values()
               if is_trained(t) and metric_value(t, "accuracy", names) is not None]
    if any(metric_value(t, m, names) is not None for t in trained for m in EFFICIENCY_METRICS):
        ids.append("efficiency-profile")
    if _has_metrics(study, _surface_metrics(study, None)):
        ids.append("pareto-surface")
    if robustness_info(study).trial_numbers.size:
        ids.append("robustness")
    if _complete(study):
        ids.append("hypervolume-history" if len(study.directions) > 1
                   else "optimization-history")
    proposed = _proposed(study)
    if len(proposed) >= 2 and _param_space(proposed):
        ids.append("diversity")
    if len(proposed) >= 3 and _param_space(proposed):
        ids.append("architecture-map")
    return ids


def study_figures(study: optuna.Study, *, operating_point: str | OperatingPoint | None = None,
                  include_optuna: bool = True, compact: bool = False) -> dict[str, go.Figure]:
    """Every figure that applies to a study, by id (see :func:`available_figures`).

    Args:
        study: The study.
        operating_point: Marked on the Pareto surface, e.g. ``"latency<=20ms"``.
        include_optuna: Add Optuna's parameter importances (``param-importances``) when at
            least two COMPLETE trials differ in their params; optuna-dashboard draws it
            itself, a report needs it.
        compact: Size the figures for optuna-dashboard's half-width, 450 px high cards: no
            fixed heights, and the efficiency profile split into ``efficiency-profile``
            (costs) and ``efficiency-metrics`` (the seed's three), two panels per row.

    Returns:
        Figure id -> plotly figure, in report order.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> study.set_metric_names(["accuracy", "flops"])
        >>> study.add_trial(optuna.trial.create_trial(values=[0.5, 1e6]))
        >>> list(study_figures(study))
        ['accuracy-vs-flops', 'hypervolume-history']
    """
    builders = {
        "accuracy-vs-flops": lambda: plot_accuracy_flops(study),
        "efficiency-profile": lambda: plot_efficiency(study),
        "pareto-surface": lambda: plot_pareto_surface(study, operating_point=operating_point),
        "robustness": lambda: plot_robustness(study),
        "hypervolume-history": lambda: plot_hypervolume(study),
        "optimization-history": lambda: plot_hypervolume(study),
        "diversity": lambda: plot_diversity(study),
        "architecture-map": lambda: plot_architecture_map(study),
    }
    if compact:
        builders["efficiency-profile"] = lambda: plot_efficiency(
            study, metrics=EFFICIENCY_METRICS[:4], columns=2, title="Efficiency profile: costs")
    figures = {fid: builders[fid]() for fid in available_figures(study)}
    if compact and "efficiency-profile" in figures:
        split = {}
        for fid, fig in figures.items():
            split[fid] = fig
            if fid == "efficiency-profile" and set(efficiency_info(study).metrics) & set(
                    EFFICIENCY_METRICS[4:]):
                split["efficiency-metrics"] = plot_efficiency(
                    study, metrics=EFFICIENCY_METRICS[4:], columns=2,
                    title="Efficiency metrics (seed, case 2)")
        figures = split
    if include_optuna:
        complete = list(_complete(study).values())
        distinct = {tuple(sorted(map(str, t.params.items()))) for t in complete}
        if len(complete) >= 2 and len(distinct) >= 2 and _param_space(complete):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fig = (optuna.visualization.plot_param_importances(study)
                       if len(study.directions) > 1 else
                       optuna.visualization.plot_param_importances(
                           study, target_name=metric_names(study)[0]))
            fig.update_layout(font=_FONT, title="Parameter importances (Optuna, fANOVA)")
            figures["param-importances"] = fig
    if compact:
        for fig in figures.values():
            fig.update_layout(height=None, margin={"l": 50, "r": 20, "t": 60, "b": 40})
    return figures
