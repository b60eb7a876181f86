"""Optuna's hypervolume history with this package's reference point."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import optuna

from neuromosaic_optuna.pareto import pareto_info, reference_point
from neuromosaic_optuna.plots._common import _FONT, _STUDY_COLORS, StudyOrStudies, _as_studies
from neuromosaic_optuna.record import metric_names
from neuromosaic_optuna.units import format_metric

if TYPE_CHECKING:
    import plotly.graph_objects as go


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
