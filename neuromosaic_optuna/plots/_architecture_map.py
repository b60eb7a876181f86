"""The "sphere metaphor": every architecture on the unit sphere."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from neuromosaic_optuna.pareto import pareto_info
from neuromosaic_optuna.plots._common import (
    _FONT,
    _INFEASIBLE,
    StudyOrStudies,
    _as_studies,
    _hover,
    _param_space,
    _proposed,
)
from neuromosaic_optuna.plots._sphere import _pairwise, _sphere_density, _sphere_embedding
from neuromosaic_optuna.record import metric_names, metric_value
from neuromosaic_optuna.record import trained as is_trained
from neuromosaic_optuna.space import param_features

if TYPE_CHECKING:
    import plotly.graph_objects as go


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
