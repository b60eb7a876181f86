"""Mean pairwise distance of the proposed architectures per NSGA-II generation."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import optuna

from neuromosaic_optuna.plots._common import (
    _FONT,
    _STUDY_COLORS,
    StudyOrStudies,
    _as_studies,
    _param_space,
    _proposed,
)
from neuromosaic_optuna.record import generation_of
from neuromosaic_optuna.space import encode_params, population_diversity

if TYPE_CHECKING:
    import plotly.graph_objects as go


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
