"""See a study: a self-contained HTML report, optuna-dashboard notes and figures, the dashboard.

The side effects of looking at a study live here (files, notes written into the storage, an
HTTP server); the figures themselves come from :mod:`neuromosaic_optuna.plots` and the
trade-off numbers from :mod:`neuromosaic_optuna.pareto`.

* :func:`write_report`: one HTML file that works offline (plotly.js embedded once, no CDN):
  study summary, Pareto front table with knee and hypervolume, constraint violations, trials
  that were not trained, and every figure that applies to the study.
* :func:`annotate_dashboard`: a Markdown note on the study and on every trial (architecture,
  metrics, constraint margins, Pareto rank, the reason a trial was rejected or pruned) and the
  figures attached with ``optuna_dashboard.save_plotly_graph_object``, so optuna-dashboard
  shows all of it on the study and trial pages.
* :func:`make_dashboard_server` / :func:`serve_dashboard`: optuna-dashboard on the study's
  storage, bound to 127.0.0.1 by default, with a file-system artifact store when asked.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import html
import math
import socketserver
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from neuromosaic_optuna import _compat
from neuromosaic_optuna.config import StudyConfig
from neuromosaic_optuna.metrics import METRICS
from neuromosaic_optuna.pareto import OperatingPoint, ParetoInfo, operating_point, pareto_info
from neuromosaic_optuna.plots import describe_architecture, format_metric, study_figures
from neuromosaic_optuna.record import (
    STATUS,
    architecture_of,
    metric_names,
    metrics_of,
    reason_of,
    status_of,
    trained,
    violated_constraints,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = [
    "FIGURE_TITLES",
    "annotate_dashboard",
    "make_dashboard_server",
    "serve_dashboard",
    "study_note",
    "trial_note",
    "write_report",
]

#: Title and one-line caption of each figure id of :func:`plots.study_figures`.
FIGURE_TITLES: dict[str, tuple[str, str]] = {
    "accuracy-vs-flops": ("Accuracy vs FLOPs", "Top-1 accuracy against GFLOPs (multiply-"
                          "accumulates); the Pareto front is the red step line, the knee a "
                          "star; trials rejected before training (no accuracy) are grey "
                          "crosses below the others."),
    "efficiency-profile": ("Efficiency profile", "Params, activation memory, latency and "
                           "throughput against accuracy, and the three efficiency metrics "
                           "(params / accuracy, memory / throughput, latency × batch size)."),
    "efficiency-metrics": ("Efficiency metrics", "The seed's efficiency metrics against "
                           "accuracy: params / accuracy, memory / throughput, latency × batch "
                           "size."),
    "pareto-surface": ("Pareto surface", "Accuracy, latency and memory colored by Pareto rank; "
                       "diamonds are the front, crosses infeasible trials, the black ring the "
                       "knee, the green ring the operating point."),
    "robustness": ("Robustness", "Clean against robust accuracy, and accuracy under each "
                   "perturbation and level."),
    "hypervolume-history": ("Hypervolume history", "Hypervolume of the feasible trials after "
                            "each trial (Optuna's plot), with the reference point of the front "
                            "table."),
    "optimization-history": ("Optimization history", "Optuna's optimization history."),
    "diversity": ("Architecture diversity", "Mean pairwise distance of the proposed "
                  "architectures per generation; a fall to zero is premature convergence."),
    "architecture-map": ("Architecture space map", "Every architecture on a sphere, neighbours "
                         "in the search space close together; color accuracy, size cost, "
                         "shading the explored regions. Drag to rotate, hover for distances."),
    "search-progress": ("Search progress", "Best so far against trials, from scratch and "
                        "with transfer (median and 25-75% band over seeds)."),
    "param-importances": ("Parameter importances", "Optuna's fANOVA importance of each "
                          "searched parameter for each objective."),
}

_PAGE_CSS = """
body { font-family: Helvetica, Arial, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { background: #1e88e5; color: white; padding: 18px 32px; }
header h1 { margin: 0 0 4px 0; font-size: 26px; }
header p { margin: 2px 0; opacity: 0.95; }
main { padding: 8px 32px 40px 32px; max-width: 1400px; }
section { background: white; border: 1px solid #e0e0e0; border-radius: 6px; margin: 18px 0;
          padding: 12px 20px; }
h2 { font-size: 20px; margin: 6px 0 10px 0; }
p.caption { color: #555; margin: 4px 0 8px 0; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #eee; padding: 4px 10px; text-align: left;
         vertical-align: top; }
th { background: #f5f5f5; }
div.arch { font-size: 12px; line-height: 1.3; color: #444; max-width: 560px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.knee td { background: #fff8e1; }
span.tag { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 11px;
           margin-right: 4px; background: #e3f2fd; color: #0d47a1; }
span.bad { background: #ffebee; color: #b71c1c; }
nav a { margin-right: 14px; }
footer { color: #777; font-size: 12px; padding: 0 32px 24px 32px; }
"""

_MAX_ROWS = 60


# --------------------------------------------------------------------------- study facts


def _meta(study: optuna.Study) -> dict[str, Any]:
    meta = study.user_attrs.get("neuromosaic")
    return dict(meta) if isinstance(meta, Mapping) else {}


def _constraint_bounds(study: optuna.Study, config: StudyConfig | None) -> dict[str, str]:
    """Constraint name -> the bound as the study file wrote it."""
    if config is not None:
        return {c.name: str(c.raw) for c in config.constraints}
    raw = _meta(study).get("constraints")
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}


def _constraint_metric(name: str) -> str | None:
    for prefix in ("max_", "min_"):
        if name.startswith(prefix) and name[len(prefix):] in METRICS:
            return name[len(prefix):]
    return None


def _constraint_lines(trial: FrozenTrial, bounds: Mapping[str, str]) -> list[str]:
    """One line per constraint: measured value, bound, signed margin, verdict."""
    lines = []
    metrics = metrics_of(trial)
    for name, margin in sorted(trial.constraints.items()):
        metric = _constraint_metric(name)
        measured = format_metric(metric, metrics.get(metric)) if metric else "-"
        shown = format_metric(metric, margin) if metric else f"{margin:.4g}"
        verdict = "ok" if margin <= 0 else "VIOLATED"
        bound = bounds.get(name, "?")
        lines.append(f"{name} = {bound}: measured {measured}, margin {shown} ({verdict})")
    return lines


def _state_counts(study: optuna.Study) -> tuple[dict[str, int], dict[str, int]]:
    states: dict[str, int] = {}
    status: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.WAITING:
            continue
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
        s = status_of(t)
        status[s] = status.get(s, 0) + 1
    return states, status


def _counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])) or "0"


def _objectives_text(study: optuna.Study) -> str:
    return ", ".join(f"{n} ({d.name.lower()})"
                     for n, d in zip(metric_names(study), study.directions, strict=True))


def _reference_text(info: ParetoInfo) -> str:
    return ", ".join(f"{n} {format_metric(n, v)}"
                     for n, v in zip(info.metric_names, info.reference_point, strict=True))


def _front_rows(study: optuna.Study, info: ParetoInfo) -> list[int]:
    """Front row indices sorted by the first objective, best first."""
    rows = list(info.front)
    reverse = info.directions[0] == "maximize"
    return sorted(rows, key=lambda r: info.values[r, 0], reverse=reverse)


def _extra_metrics(study: optuna.Study, info: ParetoInfo) -> list[str]:
    wanted = ("accuracy", "test_accuracy", "flops", "params", "latency", "memory")
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    present = set()
    for n in info.trial_numbers[info.front]:
        present |= set(metrics_of(trials[int(n)]))
    return [m for m in wanted if m in present and m not in info.metric_names]


def _chosen(study: optuna.Study,
            point: str | OperatingPoint | None) -> tuple[str | None, FrozenTrial | None]:
    if point is None:
        return None, None
    return str(point), operating_point(study, point)


# --------------------------------------------------------------------------- notes


def study_note(study: optuna.Study, *, config: StudyConfig | None = None,
               info: ParetoInfo | None = None) -> str:
    """The Markdown note optuna-dashboard shows on the study page.

    Args:
        study: The study.
        config: Its configuration (description and constraints); default: the study's
            ``neuromosaic`` user attribute.
        info: A precomputed :func:`pareto.pareto_info`.

    Returns:
        Markdown: objectives, constraints, trial counts, the front with the knee, hypervolume
        and constraint violations.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(study_name="demo", directions=["maximize", "minimize"])
        >>> study.set_metric_names(["accuracy", "flops"])
        >>> study.add_trials([optuna.trial.create_trial(values=v)
        ...                   for v in ([0.9, 4e6], [0.8, 1e6], [0.7, 2e6])])
        >>> print(study_note(study).splitlines()[0])
        ## demo
    """
    info = info if info is not None else pareto_info(study)
    meta = _meta(study)
    description = config.description if config is not None else ""
    states, status = _state_counts(study)
    bounds = _constraint_bounds(study, config)
    lines = [f"## {study.study_name}", ""]
    if description:
        lines += [description, ""]
    facts = [("architecture", meta.get("architecture_type")), ("dataset", meta.get("dataset")),
             ("budget", meta.get("budget"))]
    known = [f"{k} **{v}**" for k, v in facts if v]
    if known:
        lines += [" · ".join(known), ""]
    lines += [f"- **Objectives**: {_objectives_text(study)}",
              "- **Constraints**: " + (", ".join(f"{k} = {v}" for k, v in bounds.items())
                                       or "none"),
              f"- **Trials**: {_counts_text(states)} (status: {_counts_text(status)})"]
    if info.front.size:
        knee = info.knee_trial
        front = ", ".join(f"#{n}" + (" (knee)" if n == knee else "") for n in
                          (int(info.trial_numbers[r]) for r in _front_rows(study, info)))
        label = "Pareto front" if len(info.metric_names) > 1 else "Best"
        lines.append(f"- **{label}** ({len(info.front)} of {len(info.trial_numbers)} "
                     f"complete trials): {front}")
        if len(info.metric_names) > 1:
            lines.append(f"- **Hypervolume**: {info.hypervolume:.6g} (reference point: "
                         f"{_reference_text(info)})")
    else:
        lines.append("- **Pareto front**: no feasible complete trial yet")
    violations: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        for name in violated_constraints(t):
            violations[name] = violations.get(name, 0) + 1
    if violations:
        lines.append("- **Constraint violations**: " + ", ".join(
            f"{k}: {v} trial{'s' if v != 1 else ''}" for k, v in sorted(violations.items())))
    lines += ["", "Figures: on the study's page. Each trial's note gives its architecture, "
              "metrics, constraint margins and Pareto rank."]
    return "\n".join(lines)


def trial_note(trial: FrozenTrial, *, info: ParetoInfo | None = None,
               bounds: Mapping[str, str] | None = None) -> str:
    """The Markdown note optuna-dashboard shows on a trial's page.

    Args:
        trial: The trial.
        info: The study's :func:`pareto.pareto_info`, for the trial's rank and front/knee.
        bounds: Constraint name -> bound as written in the study file.

    Returns:
        Markdown: status (and the reason when the trial was not trained), Pareto rank,
        metrics, architecture summary and constraint margins.

    Example:
        >>> import optuna
        >>> t = optuna.trial.create_trial(value=0.5, user_attrs={
        ...     "status": "rejected", "reason": "violates max_params = 5M",
        ...     "metrics": {"params": 6e6}, "architecture": {"width": 2}},
        ...     constraints={"max_params": 1e6})
        >>> print(trial_note(t, bounds={"max_params": "5M"}).splitlines()[0])
        **Status**: rejected — violates max_params = 5M
    """
    status = status_of(trial)
    head = f"**Status**: {status}"
    reason = reason_of(trial)
    if reason:
        head += f" — {reason}"
    elif trial.state == TrialState.FAIL:
        head += " (no reason recorded; see the worker's log)"
    lines = [head]
    if info is not None:
        rows = {int(n): i for i, n in enumerate(info.trial_numbers)}
        if trial.number in rows:
            r = rows[trial.number]
            tags = []
            if info.feasible[r] and info.ranks[r] == 0:
                tags.append("on the Pareto front")
            if trial.number == info.knee_trial:
                tags.append("**knee**")
            if not info.feasible[r]:
                tags.append("infeasible")
            lines.append(f"**Pareto rank**: {int(info.ranks[r])}"
                         + (f" ({', '.join(tags)})" if tags else ""))
    metrics = metrics_of(trial)
    if metrics:
        lines += ["", "**Metrics**", ""]
        lines += [f"- {k}: {format_metric(k, v)}" for k, v in metrics.items()]
    arch = describe_architecture(architecture_of(trial), trial.params,
                                 max_items=16)
    if arch:
        lines += ["", "**Architecture**", ""]
        lines += [f"- {line}" for line in arch]
    constraint_lines = _constraint_lines(trial, bounds or {})
    if constraint_lines:
        lines += ["", "**Constraints** (margin <= 0 is feasible)", ""]
        lines += [f"- {line}" for line in constraint_lines]
    return "\n".join(lines)


def annotate_dashboard(study: optuna.Study, *, config: StudyConfig | None = None,
                       figures: Mapping[str, go.Figure] | None = None,
                       operating_point: str | OperatingPoint | None = None,
                       trial_notes: bool = True) -> list[str]:
    """Write notes and figures into the study's storage for optuna-dashboard.

    The study gets :func:`study_note`, every finished trial :func:`trial_note`, and every
    figure of :func:`plots.study_figures` (compact, sized for the dashboard's cards; without
    Optuna's, which the dashboard draws itself) is saved with
    ``optuna_dashboard.save_plotly_graph_object`` under its figure id, so annotating again
    replaces the figures instead of adding copies.

    Args:
        study: A study in a persistent storage (the one the dashboard serves).
        config: The study's configuration (constraint bounds, description).
        figures: Figures to attach instead of :func:`plots.study_figures`.
        operating_point: Marked on the Pareto surface, e.g. ``"latency<=20ms"``.
        trial_notes: Also write the per-trial notes.

    Returns:
        The ids of the attached figures.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> study.set_metric_names(["accuracy", "flops"])
        >>> study.add_trials([optuna.trial.create_trial(values=v)
        ...                   for v in ([0.9, 4e6], [0.8, 1e6], [0.7, 2e6])])
        >>> annotate_dashboard(study)
        ['accuracy-vs-flops', 'hypervolume-history']
    """
    import optuna_dashboard

    info = pareto_info(study)
    optuna_dashboard.save_note(study, study_note(study, config=config, info=info))
    if trial_notes:
        bounds = _constraint_bounds(study, config)
        for trial in study.get_trials(deepcopy=False):
            if trial.state.is_finished():
                optuna_dashboard.save_note(_compat.trial_handle(study, trial),
                                           trial_note(trial, info=info, bounds=bounds))
    if figures is None:
        figures = study_figures(study, operating_point=operating_point, include_optuna=False,
                                compact=True)
    for fid, fig in figures.items():
        optuna_dashboard.save_plotly_graph_object(study, fig, graph_object_id=fid)
    return list(figures)


# --------------------------------------------------------------------------- HTML report


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], *,
           row_classes: Sequence[str] = (), numeric: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = row_classes[i] if i < len(row_classes) and row_classes[i] else ""
        cells = "".join(f'<td class="num">{c}</td>' if j in numeric else f"<td>{c}</td>"
                        for j, c in enumerate(row))
        body.append(f'<tr class="{cls}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _summary_section(study: optuna.Study, config: StudyConfig | None, info: ParetoInfo,
                     chosen: tuple[str | None, FrozenTrial | None]) -> str:
    meta = _meta(study)
    states, status = _state_counts(study)
    bounds = _constraint_bounds(study, config)
    space = (dict(config.search_space) if config is not None
             else dict(meta.get("experiment", {}).get("search_space", {}) or {}))
    rows = [
        ("Study", _e(study.study_name)),
        ("Architecture type", _e(meta.get("architecture_type", "-"))),
        ("Dataset", _e(meta.get("dataset", "-"))),
        ("Budget", _e(meta.get("budget") or "-")),
        ("Objectives", _e(_objectives_text(study))),
        ("Constraints", _e(", ".join(f"{k} = {v}" for k, v in bounds.items()) or "none")),
        ("Search space", _e(", ".join(f"{k}: {v}" for k, v in space.items()) or "-")),
        ("Trials", _e(_counts_text(states))),
        ("Trial status", _e(_counts_text(status))),
    ]
    if info.front.size:
        rows.append(("Pareto front", _e(f"{len(info.front)} of {len(info.trial_numbers)} "
                                        f"complete trials; knee: trial {info.knee_trial}")))
        if len(info.metric_names) > 1:
            rows.append(("Hypervolume", _e(f"{info.hypervolume:.6g} (reference point: "
                                           f"{_reference_text(info)})")))
    label, trial = chosen
    if label is not None:
        rows.append(("Operating point", _e(f"{label}: trial {trial.number}" if trial
                                           else f"{label}: no feasible trial meets it")))
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<section id="summary"><h2>Summary</h2><table>{body}</table></section>'


def _front_section(study: optuna.Study, info: ParetoInfo,
                   chosen: tuple[str | None, FrozenTrial | None]) -> str:
    if not info.front.size:
        return ('<section id="front"><h2>Pareto front</h2><p>No feasible complete trial '
                'yet.</p></section>')
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    extra = _extra_metrics(study, info)
    header = ["trial", *info.metric_names, *extra, "architecture", ""]
    rows, classes = [], []
    chosen_number = chosen[1].number if chosen[1] is not None else None
    for r in _front_rows(study, info):
        number = int(info.trial_numbers[r])
        trial = trials[number]
        metrics = metrics_of(trial)
        tags = []
        if number == info.knee_trial:
            tags.append('<span class="tag">knee</span>')
        if number == chosen_number:
            tags.append(f'<span class="tag">{_e(chosen[0])}</span>')
        arch = '<div class="arch">' + "; ".join(_e(x) for x in describe_architecture(
            architecture_of(trial), trial.params, max_items=8)) + "</div>"
        rows.append([str(number),
                     *(_e(format_metric(m, v)) for m, v in
                       zip(info.metric_names, info.values[r], strict=True)),
                     *(_e(format_metric(m, metrics.get(m))) for m in extra), arch,
                     "".join(tags)])
        classes.append("knee" if number == info.knee_trial else "")
    numeric = list(range(len(info.metric_names) + len(extra) + 1))
    caption = (f"{len(info.front)} feasible non-dominated trials, best "
               f"{_e(info.metric_names[0])} first; "
               + (f"hypervolume {info.hypervolume:.6g} (reference point: "
                  f"{_e(_reference_text(info))}); " if len(info.metric_names) > 1 else "")
               + f"knee: trial {info.knee_trial}.")
    return (f'<section id="front"><h2>Pareto front</h2><p class="caption">{caption}</p>'
            f"{_table(header, rows, row_classes=classes, numeric=numeric)}</section>")


def _violations_section(study: optuna.Study, config: StudyConfig | None) -> str:
    bounds = _constraint_bounds(study, config)
    per_constraint: dict[str, list[float]] = {}
    rows = []
    for t in study.get_trials(deepcopy=False):
        bad = violated_constraints(t)
        for k, v in bad.items():
            per_constraint.setdefault(k, []).append(v)
        if bad:
            rows.append([str(t.number), _e(status_of(t)),
                         "<br>".join(_e(line) for line in _constraint_lines(t, bounds)),
                         _e(reason_of(t))])
    if not rows:
        text = ("No trial violated a constraint." if bounds or per_constraint
                else "The study has no constraints.")
        return f'<section id="constraints"><h2>Constraint violations</h2><p>{text}</p></section>'
    summary_rows = []
    for name, margins in sorted(per_constraint.items()):
        metric = _constraint_metric(name)
        worst = max(margins, key=lambda v: math.inf if math.isnan(v) else v)
        summary_rows.append([_e(name), _e(bounds.get(name, "?")), str(len(margins)),
                             _e(format_metric(metric, worst) if metric else f"{worst:.4g}")])
    shown = rows[:_MAX_ROWS]
    more = (f"<p>... and {len(rows) - _MAX_ROWS} more.</p>" if len(rows) > _MAX_ROWS else "")
    return ('<section id="constraints"><h2>Constraint violations</h2>'
            + _table(["constraint", "bound", "violating trials", "worst margin"], summary_rows,
                     numeric=[2, 3])
            + "<p></p>"
            + _table(["trial", "status", "constraints", "reason"], shown, numeric=[0])
            + more + "</section>")


def _untrained_section(study: optuna.Study) -> str:
    rows = []
    for t in study.get_trials(deepcopy=False):
        status = t.user_attrs.get(STATUS)
        if t.state in (TrialState.PRUNED, TrialState.FAIL) or not trained(t):
            if t.state in (TrialState.WAITING, TrialState.RUNNING):
                continue
            rows.append([str(t.number), _e(t.state.name.lower()), _e(status or "-"),
                         _e(reason_of(t))])
    if not rows:
        return ""
    shown = rows[:_MAX_ROWS]
    more = (f"<p>... and {len(rows) - _MAX_ROWS} more.</p>" if len(rows) > _MAX_ROWS else "")
    return ('<section id="untrained"><h2>Trials that were not trained</h2>'
            '<p class="caption">Rejected by a cost constraint before training, impossible to '
            "build, pruned, or diverged.</p>"
            + _table(["trial", "state", "status", "reason"], shown, numeric=[0])
            + more + "</section>")


def _insights_section(study: optuna.Study) -> str:
    """The study's findings (:mod:`neuromosaic_optuna.insights`): claims first."""
    from neuromosaic_optuna.insights import ALPHA, study_insights

    found = study_insights(study, seed=0, n_boot=500, importance=False)
    rows = [[_e(f.analysis), "claim" if f.supported else "measured", _e(f.sentence)]
            for f in sorted(found.findings, key=lambda f: not f.supported)]
    notes = "".join(f"<p>{_e(n)}</p>" for n in found.notes)
    shown = rows[:_MAX_ROWS]
    more = (f"<p>... and {len(rows) - _MAX_ROWS} more (neuromosaic insights prints all).</p>"
            if len(rows) > _MAX_ROWS else "")
    return ('<section id="insights"><h2>Findings</h2><p class="caption">Numbers with 95% '
            f"bootstrap intervals; a claim survives Benjamini-Hochberg at {ALPHA:g} across the "
            "study's tests. Effects are associations among the trials the sampler chose."
            "</p>" + (_table(["analysis", "kind", "finding"], shown) if rows else "")
            + more + notes + "</section>")


def _figure_sections(figures: Mapping[str, go.Figure]) -> str:
    import plotly.io as pio

    parts = []
    for fid, fig in figures.items():
        title, caption = FIGURE_TITLES.get(fid, (fid.replace("-", " ").capitalize(), ""))
        div = pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=f"fig-{fid}",
                          default_height="480px", default_width="100%", validate=False,
                          config={"displaylogo": False, "responsive": True})
        parts.append(f'<section id="{_e(fid)}" class="figure"><h2>{_e(title)}</h2>'
                     f'<p class="caption">{_e(caption)}</p>{div}</section>')
    return "".join(parts)


def write_report(study: optuna.Study, path: str | Path, *, config: StudyConfig | None = None,
                 operating_point: str | OperatingPoint | None = None,
                 figures: Mapping[str, go.Figure] | None = None,
                 extra_figures: Mapping[str, go.Figure] | None = None) -> Path:
    """Write a self-contained HTML report of a study.

    The file works offline: plotly.js is embedded once and nothing is loaded from the
    network. It holds the study summary, the Pareto front table (knee, hypervolume and the
    reference point, the operating point when given), the constraint violations, the trials
    that were not trained, and every figure that applies to the study.

    Args:
        study: The study.
        path: Where to write the file (folders are created).
        config: The study's configuration (description, constraints, search space);
            default: the study's ``neuromosaic`` user attribute.
        operating_point: A bound such as ``"latency<=20ms"``; its best trial is tagged in
            the front table and marked on the Pareto surface.
        figures: Figures to show instead of :func:`plots.study_figures`.
        extra_figures: Figures appended after them, e.g. the warm-start search progress.

    Returns:
        The path written.

    Example:
        >>> import optuna, tempfile, pathlib
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> study.set_metric_names(["accuracy", "flops"])
        >>> study.add_trials([optuna.trial.create_trial(values=v)
        ...                   for v in ([0.9, 4e6], [0.8, 1e6], [0.7, 2e6])])
        >>> out = write_report(study, pathlib.Path(tempfile.mkdtemp()) / "report.html")
        >>> text = out.read_text(encoding="utf-8")
        >>> "Pareto front" in text, "<script src=" in text, text.count("Plotly.newPlot(") >= 2
        (True, False, True)
    """
    import plotly
    from plotly.offline import get_plotlyjs

    path = Path(path)
    info = pareto_info(study)
    chosen = _chosen(study, operating_point)
    if figures is None:
        figures = study_figures(study, operating_point=operating_point)
    figures = {**figures, **(extra_figures or {})}
    description = config.description if config is not None else ""
    meta = _meta(study)
    subtitle = " · ".join(str(x) for x in (meta.get("architecture_type"), meta.get("dataset"),
                                           _objectives_text(study)) if x)
    from neuromosaic_optuna import __version__

    nav = "".join(f'<a href="#{_e(fid)}">{_e(FIGURE_TITLES.get(fid, (fid, ""))[0])}</a>'
                  for fid in figures)
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(study.study_name)}: neuromosaic report</title>",
        f"<style>{_PAGE_CSS}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head><body>",
        f"<header><h1>{_e(study.study_name)}</h1>",
        f"<p>{_e(description)}</p>" if description else "",
        f"<p>{_e(subtitle)}</p></header><main>",
        '<nav><a href="#summary">Summary</a><a href="#front">Pareto front</a>'
        f'<a href="#constraints">Constraint violations</a>'
        f'<a href="#insights">Findings</a>{nav}</nav>',
        _summary_section(study, config, info, chosen),
        _front_section(study, info, chosen),
        _violations_section(study, config),
        _untrained_section(study),
        _insights_section(study),
        _figure_sections(figures),
        f"</main><footer>neuromosaic_optuna {_e(__version__)} · Optuna "
        f"{_e(optuna.__version__)} · plotly {_e(plotly.__version__)} · generated {generated}"
        "</footer></body></html>\n",
    ])
    _write_atomically(path, page)
    return path


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``: a
    full disk or a killed process leaves the old file (or none), never a truncated one."""
    import os
    import tempfile

    if path.is_dir():
        raise IsADirectoryError(21, "is a folder; give a file name such as report.html",
                                str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0o022)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would make the report private
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


# --------------------------------------------------------------------------- dashboard


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (base signature)
        pass


def make_dashboard_server(storage: str | BaseStorage, *, host: str = "127.0.0.1",
                          port: int = 8080, artifact_dir: str | Path | None = None,
                          quiet: bool = False) -> WSGIServer:
    """An optuna-dashboard HTTP server on ``storage``, bound but not yet serving.

    Call ``serve_forever()`` on it (in a thread if need be) and ``shutdown()`` to stop.
    ``port=0`` picks a free port (read it from ``server.server_port``).

    Args:
        storage: A storage URL or journal path (opened with
            :func:`neuromosaic_optuna.storage.make_storage`), or an Optuna storage.
        host: Interface to bind; loopback by default, so the dashboard is not exposed.
        port: TCP port.
        artifact_dir: Folder of a :class:`optuna.artifacts.FileSystemArtifactStore` (created
            when missing), so the dashboard lists and serves the studies' artifacts.
        quiet: Do not log every request to stderr.

    Returns:
        The bound server.

    Raises:
        neuromosaic_optuna.storage.StorageError: The storage cannot be opened.
        OSError: The address is taken.

    Example:
        >>> server = make_dashboard_server("sqlite:///:memory:", port=0, quiet=True)
        >>> server.server_address[0]
        '127.0.0.1'
        >>> server.server_close()
    """
    import optuna_dashboard

    if isinstance(storage, str):
        from neuromosaic_optuna.storage import make_storage

        storage = make_storage(storage, heartbeat_interval=None)
    artifact_store = None
    if artifact_dir is not None:
        from optuna.artifacts import FileSystemArtifactStore

        Path(artifact_dir).mkdir(parents=True, exist_ok=True)
        artifact_store = FileSystemArtifactStore(str(artifact_dir))
    app = optuna_dashboard.wsgi(storage, artifact_store=artifact_store)
    return make_server(host, port, app, server_class=_ThreadingWSGIServer,
                       handler_class=_QuietHandler if quiet else WSGIRequestHandler)


def serve_dashboard(storage: str | BaseStorage, *, host: str = "127.0.0.1", port: int = 8080,
                    artifact_dir: str | Path | None = None, quiet: bool = True) -> None:
    """Run optuna-dashboard on ``storage`` until interrupted (Ctrl+C).

    Prints the URL once listening. See :func:`make_dashboard_server` for the arguments.

    Example:
        >>> serve_dashboard("sqlite:///nas.db", artifact_dir="artifacts")  # doctest: +SKIP
        optuna-dashboard: http://127.0.0.1:8080/dashboard/ (Ctrl+C to stop)
    """
    server = make_dashboard_server(storage, host=host, port=port, artifact_dir=artifact_dir,
                                   quiet=quiet)
    shown = f"[{host}]" if ":" in host else host
    print(f"optuna-dashboard: http://{shown}:{server.server_port}/dashboard/ "
          "(Ctrl+C to stop)", file=sys.stdout, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
