"""Case 4: accuracy, latency and memory in 3D, colored by Pareto rank."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import optuna

from neuromosaic_optuna.metrics import METRICS
from neuromosaic_optuna.pareto import OperatingPoint, pareto_info
from neuromosaic_optuna.pareto import operating_point as find_operating_point
from neuromosaic_optuna.plots._accuracy_flops import _floor_range
from neuromosaic_optuna.plots._common import _FONT, _FRONT, _RANK_SCALE, _axis, _complete, _hover
from neuromosaic_optuna.record import metric_names
from neuromosaic_optuna.record import trained as is_trained

if TYPE_CHECKING:
    import plotly.graph_objects as go


#: Default metrics of the 3D Pareto surface (seed, case 4) when the study has no 3 objectives.
SURFACE_METRICS = ("accuracy", "latency", "memory")


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
