"""Case 1: top-1 accuracy against GFLOPs, the Pareto front highlighted."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import optuna

from neuromosaic_optuna.pareto import pareto_info
from neuromosaic_optuna.plots._common import (
    _AXES,
    _DOMINATED,
    _FONT,
    _FRONT,
    _INFEASIBLE,
    _STUDY_COLORS,
    StudyOrStudies,
    _as_studies,
    _axis,
    _complete,
    _hover,
    _study_label,
)
from neuromosaic_optuna.record import trained as is_trained

if TYPE_CHECKING:
    import plotly.graph_objects as go


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
