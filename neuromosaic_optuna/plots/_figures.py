"""Which figures a study supports, and all of them at once."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import optuna

from neuromosaic_optuna.pareto import OperatingPoint
from neuromosaic_optuna.plots._accuracy_flops import plot_accuracy_flops
from neuromosaic_optuna.plots._architecture_map import plot_architecture_map
from neuromosaic_optuna.plots._common import _FONT, _complete, _has_metrics, _param_space, _proposed
from neuromosaic_optuna.plots._diversity import plot_diversity
from neuromosaic_optuna.plots._efficiency import (
    EFFICIENCY_METRICS,
    efficiency_info,
    plot_efficiency,
)
from neuromosaic_optuna.plots._hypervolume import plot_hypervolume
from neuromosaic_optuna.plots._pareto_surface import _surface_metrics, plot_pareto_surface
from neuromosaic_optuna.plots._robustness import plot_robustness, robustness_info
from neuromosaic_optuna.record import metric_names, metric_value
from neuromosaic_optuna.record import trained as is_trained

if TYPE_CHECKING:
    import plotly.graph_objects as go


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
