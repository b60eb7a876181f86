"""Case 2: the efficiency profile (params, memory, latency, throughput)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import optuna

from neuromosaic_optuna.pareto import pareto_info
from neuromosaic_optuna.plots._accuracy_flops import _log_axis
from neuromosaic_optuna.plots._common import _DOMINATED, _FONT, _FRONT, _axis, _complete
from neuromosaic_optuna.record import metric_names, metric_value
from neuromosaic_optuna.record import trained as is_trained

if TYPE_CHECKING:
    import plotly.graph_objects as go


#: Metrics of the efficiency profile, in panel order (seed, case 2).
EFFICIENCY_METRICS = ("params", "memory", "latency", "throughput",
                      "params_utilization", "memory_efficiency", "speed_efficiency")


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
