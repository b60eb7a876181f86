"""Case 3: search progress from scratch and with transfer, best so far per trial."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from neuromosaic_optuna.metrics import METRICS
from neuromosaic_optuna.pareto import hypervolume_history, reference_point
from neuromosaic_optuna.record import is_feasible, metric_names, metric_value

if TYPE_CHECKING:
    import plotly.graph_objects as go


@dataclass(frozen=True)
class ProgressCurve:
    """Best-so-far curves of one label's searches (one row per search, e.g. per seed).

    Attributes:
        label: The legend label.
        runs: ``(n_searches, n_trials)``; NaN before a search's first usable trial and after
            its last trial.
        center: Median over searches per trial (NaN where no search has a value).
        lower: 25th percentile per trial.
        upper: 75th percentile per trial.
    """

    label: str
    runs: np.ndarray
    center: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    @property
    def trials(self) -> np.ndarray:
        """Trial counts ``1..n`` of the columns."""
        return np.arange(1, self.runs.shape[1] + 1)


@dataclass(frozen=True)
class SearchProgress:
    """Data of :func:`plot_search_progress`: one :class:`ProgressCurve` per label."""

    metric: str
    direction: str
    curves: dict[str, ProgressCurve] = field(default_factory=dict)
    reference_point: tuple[float, ...] | None = None
    objectives: tuple[str, ...] | None = None


def _finished(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def _rows(study: optuna.Study, names: Sequence[str]) -> list[list[float] | None]:
    """Per finished trial: the metrics' values when COMPLETE, feasible and complete."""
    study_names = metric_names(study)
    rows: list[list[float] | None] = []
    for t in _finished(study):
        values = [metric_value(t, n, study_names) for n in names]
        feasible = is_feasible(t)
        ok = t.state == TrialState.COMPLETE and feasible and all(v is not None for v in values)
        rows.append([float(v) for v in values if v is not None] if ok else None)
    return rows


def _direction(study: optuna.Study, name: str) -> str:
    names = metric_names(study)
    if name in names:
        return study.directions[names.index(name)].name.lower()
    if name in METRICS:
        return METRICS[name].direction
    raise ValueError(f"metric: {name!r} is neither an objective of the study ({names}) nor a "
                     f"known metric")


def _best_so_far(rows: list[list[float] | None], maximize: bool) -> np.ndarray:
    out = np.full(len(rows), np.nan)
    best = math.nan
    for i, row in enumerate(rows):
        if row is not None and (math.isnan(best) or (row[0] > best if maximize
                                                    else row[0] < best)):
            best = row[0]
        out[i] = best
    return out


def search_progress(
    studies_by_label: Mapping[str, optuna.Study | Sequence[optuna.Study]],
    metric: str = "accuracy",
    *,
    objectives: Sequence[str] | None = None,
    reference: Sequence[float] | None = None,
    n_trials: int | None = None,
) -> SearchProgress:
    """Best-so-far values against finished trials, per label, with bands over searches.

    Trials are the COMPLETE and PRUNED ones in trial-number order; a value counts only from
    a COMPLETE, feasible trial. ``metric="hypervolume"`` follows the hypervolume of
    ``objectives`` (default: the studies' objectives), with one ``reference`` point for all
    studies (default: the ``"natural"`` rule of :func:`~neuromosaic_optuna.pareto.
    reference_point` over all of them), so the curves are comparable.

    Args:
        studies_by_label: ``{"From Scratch": [s1, s2], "With Transfer": [t1, t2]}``; a single
            study is a list of one.
        metric: An objective, a metric of the user attribute ``metrics``, or
            ``"hypervolume"``.
        objectives: Metrics of the hypervolume.
        reference: Hypervolume reference point in the objectives' units.
        n_trials: Truncate (or NaN-pad) every curve to this many trials.

    Returns:
        A :class:`SearchProgress`.

    Raises:
        ValueError: No study, or an unknown metric.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(direction="maximize")
        >>> study.set_metric_names(["accuracy"])
        >>> study.add_trials([optuna.trial.create_trial(value=v) for v in (0.5, 0.4, 0.7)])
        >>> search_progress({"scratch": study}).curves["scratch"].center.tolist()
        [0.5, 0.5, 0.7]
    """
    groups = {label: [s] if isinstance(s, optuna.Study) else list(s)
              for label, s in studies_by_label.items()}
    studies = [s for group in groups.values() for s in group]
    if not studies:
        raise ValueError("studies_by_label: no study given")
    ref: np.ndarray | None = None
    if metric == "hypervolume":
        names = list(objectives) if objectives is not None else metric_names(studies[0])
        directions = [_direction(studies[0], n) for n in names]
        tables = {id(s): _rows(s, names) for s in studies}
        if reference is not None:
            ref = np.asarray(reference, dtype=float)
        else:
            points = [r for rows in tables.values() for r in rows if r is not None]
            ref = (reference_point(np.asarray(points), directions, rule="natural",
                                   metric_names=names) if points else np.zeros(len(names)))
        direction = "maximize"
    else:
        names = [metric]
        direction = _direction(studies[0], metric)
        tables = {id(s): _rows(s, names) for s in studies}
    curves: dict[str, ProgressCurve] = {}
    for label, group in groups.items():
        series = []
        for s in group:
            rows = tables[id(s)]
            if ref is not None:
                values = np.asarray([r if r is not None else list(ref) for r in rows],
                                    dtype=float).reshape(len(rows), len(ref))
                feasible = np.asarray([r is not None for r in rows], dtype=bool)
                series.append(hypervolume_history(values, directions, ref, feasible=feasible)
                              if len(rows) else np.zeros(0))
            else:
                series.append(_best_so_far(rows, direction == "maximize"))
        width = n_trials if n_trials is not None else max((len(x) for x in series), default=0)
        runs = np.full((len(series), width), np.nan)
        for i, x in enumerate(series):
            runs[i, :min(width, len(x))] = x[:width]
        curves[label] = _band(label, runs)
    return SearchProgress(metric=metric, direction=direction, curves=curves,
                          reference_point=tuple(float(v) for v in ref) if ref is not None
                          else None, objectives=tuple(names) if ref is not None else None)


def _band(label: str, runs: np.ndarray) -> ProgressCurve:
    center, lower, upper = (np.full(runs.shape[1], np.nan) for _ in range(3))
    for j in range(runs.shape[1]):
        col = runs[:, j][~np.isnan(runs[:, j])]
        if col.size:
            lower[j], center[j], upper[j] = np.percentile(col, [25, 50, 75])
    return ProgressCurve(label=label, runs=runs, center=center, lower=lower, upper=upper)


_COLORS = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3")


def _progress_figure(info: SearchProgress, title: str | None) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, (label, curve) in enumerate(info.curves.items()):
        color = _COLORS[i % len(_COLORS)]
        x = curve.trials.tolist()
        if curve.runs.shape[0] > 1:
            rgb = tuple(int(color[k:k + 2], 16) for k in (1, 3, 5))
            fig.add_trace(go.Scatter(
                x=x + x[::-1], y=curve.upper.tolist() + curve.lower[::-1].tolist(),
                fill="toself", fillcolor=f"rgba({rgb[0]},{rgb[1]},{rgb[2]},0.2)",
                line={"width": 0}, hoverinfo="skip", showlegend=False,
                name=f"{label} (25-75%)"))
        n = curve.runs.shape[0]
        fig.add_trace(go.Scatter(x=x, y=curve.center.tolist(), mode="lines",
                                 line={"color": color}, name=label if n == 1
                                 else f"{label} (median of {n})"))
    unit = METRICS[info.metric].unit if info.metric in METRICS else None
    ylabel = ("hypervolume of " + " vs ".join(info.objectives or ())
              if info.metric == "hypervolume" else f"best {info.metric} so far")
    fig.update_layout(title=title or "Search Progress Comparison", xaxis_title="trials",
                      yaxis_title=ylabel, template="plotly_white")
    if unit == "fraction":
        fig.update_yaxes(tickformat=".1%")
    return fig


def plot_search_progress(
    studies_by_label: Mapping[str, optuna.Study | Sequence[optuna.Study]],
    metric: str = "accuracy",
    *,
    objectives: Sequence[str] | None = None,
    reference: Sequence[float] | None = None,
    n_trials: int | None = None,
    title: str | None = None,
) -> go.Figure:
    """The seed's "Search Progress Comparison": best-so-far against trials, per label.

    With several studies per label (e.g. seeds) the line is the median and the band the
    25-75% range. Arguments as in :func:`search_progress`.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(direction="maximize")
        >>> study.add_trials([optuna.trial.create_trial(value=v) for v in (0.5, 0.7)])
        >>> fig = plot_search_progress({"From Scratch": study}, metric="objective_0")
        >>> fig.data[0].y
        (0.5, 0.7)
    """
    info = search_progress(studies_by_label, metric, objectives=objectives,
                           reference=reference, n_trials=n_trials)
    return _progress_figure(info, title)
