"""Case 5: clean against robust accuracy, and accuracy per perturbation."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from neuromosaic_optuna.plots._common import _FONT, _STUDY_COLORS, _complete
from neuromosaic_optuna.record import (
    metric_names,
    metric_value,
    robustness_details,
    robustness_metric,
)
from neuromosaic_optuna.record import trained as is_trained
from neuromosaic_optuna.robustness import SUMMARY_METRICS

if TYPE_CHECKING:
    import plotly.graph_objects as go


#: Summary robustness metrics drawn against the clean accuracy.
ROBUST_METRICS = SUMMARY_METRICS


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
