"""Findings computed from a finished study: numbers with intervals, claims under FDR control.

The design document's case studies are findings ("patch size impact", "compound scaling
effects", "clean vs robust accuracy", ...). This module computes them from a finished
:class:`optuna.Study` (no training, no plotting). Every :class:`Finding` is a number with a
95% interval (seeded bootstrap over trials). A finding that tests a hypothesis carries a
p-value (seeded permutation test, Fisher's exact test or a regression's t-test); all p-values
of one study are adjusted together with the Benjamini-Hochberg procedure
(:func:`scipy.stats.false_discovery_control`), and only findings that survive at
:data:`ALPHA` and whose interval excludes zero (the test and the interval agree on the sign)
are stated as claims. The others say what was measured and that the study
cannot support a claim. Effects are associations among the trials the sampler chose, not
causal effects, and the sentences say so.

Analyses (chosen from the study's params and metrics; :func:`study_insights`):

* every study: parameter importance per objective (Optuna's fANOVA), the marginal effect of
  each searched parameter on each objective (Spearman's rho, or Kruskal-Wallis for unordered
  choices), and the training cost of the front;
* ViT spaces: depth-width ratio of the front, and whether heads can be told apart from width
  (only when the width is fixed with the ``embed_dim`` model option);
* ConvNet spaces: power laws of error against FLOPs and params, and accuracy bought per
  doubling of FLOPs by depth, width and resolution (EfficientNet's compound-scaling question);
* multi-objective studies: the knee and the marginal rate of substitution along the front;
* robustness studies: clean-vs-robust slope and the size-robustness correlation;
* NAS-Bench-201 spaces: operations enriched on the front (Fisher's exact test per edge and
  operation).

:func:`transfer_insights` compares a source and a target study.

Example:
    >>> import optuna
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> study = optuna.create_study(directions=["maximize", "minimize"])
    >>> study.set_metric_names(["accuracy", "flops"])
    >>> dist = optuna.distributions.IntDistribution(1, 8)
    >>> study.add_trials([optuna.trial.create_trial(
    ...     params={"depth": d}, distributions={"depth": dist},
    ...     values=[0.5 + 0.05 * d, 1e6 * d]) for d in [1, 2, 3, 4, 5, 6, 7, 8] * 3])
    >>> found = study_insights(study, seed=0, n_boot=200, importance=False)
    >>> [f.subject for f in found.claims()][:1]
    ['depth on accuracy']
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from neuromosaic_optuna.pareto import knee_point, pareto_front_mask
from neuromosaic_optuna.record import (
    architecture_of,
    is_feasible,
    metric_names,
    metric_value,
    reevaluations,
)

__all__ = ["ALPHA", "Finding", "Insights", "study_insights", "transfer_insights"]

#: False-discovery rate at which a finding is stated as a claim.
ALPHA = 0.05

_ACCURACY = ("accuracy", "clean_accuracy", "val_accuracy", "weighted_score")
_ROBUST = ("corrupt_accuracy", "adversarial_accuracy", "noise_accuracy", "robust_accuracy")
_COSTS = {"latency": (1e3, "ms"), "memory": (1e-6, "MB"), "params": (1e-6, "M params"),
          "flops": (1e-9, "GFLOPs")}
_SCALING = ("depth_multiplier", "width_multiplier", "resolution")


@dataclass(frozen=True)
class Finding:
    """One measured quantity of a study, with its interval and, when tested, its p-value.

    Attributes:
        analysis: Which analysis produced it (e.g. ``"marginal effect"``).
        subject: What it is about (e.g. ``"depth on accuracy"``).
        estimate: The measured number.
        low: Lower end of its 95% interval.
        high: Upper end of its 95% interval.
        unit: What the number is (e.g. ``"Spearman rho"``).
        p_value: Raw p-value of its test; None for a descriptive number (no claim is tested).
        adjusted_p: Benjamini-Hochberg adjusted p-value across the study's tests.
        supported: True when the test survives the false-discovery control at :data:`ALPHA`
            and the interval ``[low, high]`` excludes zero.
        claim: The sentence stated when supported.
        measured: The sentence stated otherwise.
    """

    analysis: str
    subject: str
    estimate: float
    low: float
    high: float
    unit: str
    p_value: float | None = None
    adjusted_p: float | None = None
    supported: bool = False
    claim: str = ""
    measured: str = ""

    @property
    def sentence(self) -> str:
        """The plain sentence for this finding (the claim only when supported)."""
        return self.claim if self.supported else self.measured

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``sentence`` included)."""
        out = {k: getattr(self, k) for k in ("analysis", "subject", "estimate", "low", "high",
                                             "unit", "p_value", "adjusted_p", "supported")}
        out["sentence"] = self.sentence
        return out


@dataclass
class Insights:
    """The findings of one study (or study pair)."""

    study_name: str
    analyses: list[str]
    n_trials: int
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def claims(self) -> list[Finding]:
        """Findings that survive the false-discovery control."""
        return [f for f in self.findings if f.supported]

    def by_analysis(self, analysis: str) -> list[Finding]:
        """Findings of one analysis."""
        return [f for f in self.findings if f.analysis == analysis]

    def lines(self) -> list[str]:
        """Plain-text lines: one per finding, grouped by analysis, then the notes."""
        out = [f"{self.study_name}: {self.n_trials} complete trials; "
               f"claims at a false-discovery rate of {ALPHA:g} (Benjamini-Hochberg); effects "
               "are associations among the trials the sampler chose"]
        for analysis in dict.fromkeys(f.analysis for f in self.findings):
            out.append(f"[{analysis}]")
            out += [f"  {'CLAIM ' if f.supported else ''}{f.sentence}"
                    for f in self.by_analysis(analysis)]
        out += [f"note: {n}" for n in self.notes]
        return out

    def to_json(self) -> str:
        """The findings as JSON."""
        return json.dumps({"study": self.study_name, "n_trials": self.n_trials,
                           "analyses": self.analyses, "alpha": ALPHA,
                           "findings": [f.to_dict() for f in self.findings],
                           "notes": self.notes}, indent=2)


# --------------------------------------------------------------------------- statistics


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    return f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def _interval(f: float, lo: float, hi: float, unit: str) -> str:
    return f"{unit} {_fmt(f)} (95% interval {_fmt(lo)} to {_fmt(hi)})"


def _ranks(a: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return np.asarray(rankdata(a, axis=-1), dtype=float)


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation of two ``(k, n)`` arrays (NaN where a row is constant)."""
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    den = np.sqrt((xc ** 2).sum(axis=-1) * (yc ** 2).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (xc * yc).sum(axis=-1) / np.where(den > 0, den, 1), np.nan)


def _spearman_test(x: np.ndarray, y: np.ndarray, rng: np.random.Generator,
                   n_boot: int) -> tuple[float, float, float, float]:
    """Spearman's rho, its bootstrap interval and a two-sided permutation p-value."""
    rx, ry = _ranks(x), _ranks(y)
    rho = float(_pearson_rows(rx[None], ry[None])[0])
    if not math.isfinite(rho):
        return math.nan, math.nan, math.nan, 1.0
    n = len(x)
    perms = np.argsort(rng.random((n_boot, n)), axis=1)
    null = _pearson_rows(np.broadcast_to(rx, (n_boot, n)), ry[perms])
    p = (1 + np.count_nonzero(np.abs(null) >= abs(rho) - 1e-12)) / (n_boot + 1)
    idx = rng.integers(0, n, (n_boot, n))
    boot = _pearson_rows(_ranks(x[idx]), _ranks(y[idx]))
    boot = boot[np.isfinite(boot)]
    lo, hi = (np.percentile(boot, [2.5, 97.5]) if boot.size else (math.nan, math.nan))
    return rho, float(lo), float(hi), float(p)


def _bootstrap(stat: Callable[[np.ndarray], float], n: int, rng: np.random.Generator,
               n_boot: int) -> tuple[float, float]:
    values = []
    for _ in range(n_boot):
        v = stat(rng.integers(0, n, n))
        if math.isfinite(v):
            values.append(v)
    if not values:
        return math.nan, math.nan
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def _median_of(values: np.ndarray) -> Callable[[np.ndarray], float]:
    return lambda i: float(np.median(values[i]))


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.ptp(x) == 0:
        return math.nan
    return float(np.polyfit(x, y, 1)[0])


def _regression_finding(analysis: str, subject: str, x: np.ndarray, y: np.ndarray,
                        rng: np.random.Generator, n_boot: int, unit: str,
                        claim: Callable[[float], str]) -> Finding | None:
    """Least-squares slope of y on x, bootstrap interval, t-test p-value."""
    from scipy.stats import linregress

    if len(x) < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    fit = linregress(x, y)
    lo, hi = _bootstrap(lambda i: _slope(x[i], y[i]), len(x), rng, n_boot)
    slope = float(fit.slope)
    text = _interval(slope, lo, hi, unit)
    return Finding(analysis, subject, slope, lo, hi, unit, p_value=float(fit.pvalue),
                   claim=f"{subject}: {claim(slope)}: {text}.",
                   measured=f"{subject}: {text}; this study cannot support a claim about it.")


# --------------------------------------------------------------------------- trial table


@dataclass
class _Table:
    trials: list[FrozenTrial]
    names: list[str]
    directions: list[str]
    accuracy: str | None
    means: dict[int, list[float]] = field(default_factory=dict)

    def value(self, trial: FrozenTrial, name: str) -> float:
        """A metric of a trial; an objective at its re-evaluated mean when there is one."""
        if trial.number in self.means and name in self.names:
            return _num(self.means[trial.number][self.names.index(name)])
        return _num(metric_value(trial, name, self.names))

    def column(self, name: str) -> np.ndarray:
        return np.array([self.value(t, name) for t in self.trials])

    def param(self, name: str) -> np.ndarray:
        return np.array([_num(t.params.get(name)) for t in self.trials])

    def front(self, columns: Sequence[str]) -> np.ndarray:
        """Boolean mask of the feasible front over ``columns`` (rows with all finite)."""
        values = np.column_stack([self.column(c) for c in columns])
        ok = np.isfinite(values).all(axis=1)
        mask = np.zeros(len(self.trials), dtype=bool)
        if not ok.any():
            return mask
        feasible = np.array([is_feasible(t) for t in self.trials])[ok]
        directions = [self.direction(c) for c in columns]
        mask[np.flatnonzero(ok)] = pareto_front_mask(values[ok], directions, feasible=feasible)
        return mask

    def direction(self, name: str) -> str:
        if name in self.names:
            return self.directions[self.names.index(name)]
        from neuromosaic_optuna.metrics import METRICS

        return METRICS[name].direction if name in METRICS else "maximize"


def _num(value: Any) -> float:
    if value is None or isinstance(value, (bool, str)):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _table(study: optuna.Study) -> _Table:
    names = metric_names(study)
    directions = [d.name.lower() for d in study.directions]
    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if t.values is not None and all(math.isfinite(v) for v in t.values)]
    accuracy = next((n for n in _ACCURACY if n in names), None)
    if accuracy is None:
        accuracy = next((n for n, d in zip(names, directions, strict=True) if d == "maximize"),
                        None)
    means = {n: list(r["mean"]) for n, r in reevaluations(study).items()
             if len(r["mean"]) == len(names)}
    return _Table(trials, names, directions, accuracy, means)


def _searched(study: optuna.Study, trials: Sequence[FrozenTrial]) -> dict[str, Any]:
    dists: dict[str, Any] = {}
    for t in trials:
        for name, dist in t.distributions.items():
            dists.setdefault(name, dist)
    return dists


def _ordered(dist: Any) -> bool:
    if isinstance(dist, CategoricalDistribution):
        return all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in dist.choices)
    return True


def _metrics_to_study(table: _Table) -> list[str]:
    out = list(table.names)
    extra = ["test_accuracy", *_ROBUST]
    for name in extra:
        if name not in out and np.isfinite(table.column(name)).sum() >= 4:
            out.append(name)
    return out


# --------------------------------------------------------------------------- analyses


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's log at WARNING inside the block, as it was after."""
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def _importance(study: optuna.Study, table: _Table, seed: int, n_boot: int) -> list[Finding]:
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    findings: list[Finding] = []
    dists = _searched(study, table.trials)
    usable = [t for t in table.trials if set(t.params) == set(dists)]
    if len(usable) < 4 or len(dists) < 2:
        return findings
    rng = np.random.default_rng(seed)
    for i, name in enumerate(table.names):
        def target(t: FrozenTrial, i: int = i) -> float:
            return float(t.values[i])

        def importances(trials: Sequence[FrozenTrial]) -> dict[str, float]:
            with _quiet_optuna():  # one in-memory study per bootstrap sample: no log line each
                tmp = optuna.create_study(directions=study.directions)
            tmp.add_trials(trials)
            return get_param_importances(
                tmp, evaluator=FanovaImportanceEvaluator(n_trees=32, seed=seed),
                target=target)

        full = importances(usable)
        boots: dict[str, list[float]] = {p: [] for p in full}
        for _ in range(n_boot):
            sample = [usable[j] for j in rng.integers(0, len(usable), len(usable))]
            try:
                got = importances(sample)
            except (ValueError, RuntimeError):
                continue
            for p in boots:
                boots[p].append(got.get(p, 0.0))
        for param, value in full.items():
            lo, hi = (np.percentile(boots[param], [2.5, 97.5]) if boots[param]
                      else (math.nan, math.nan))
            text = _interval(100 * value, 100 * lo, 100 * hi, "share %")
            findings.append(Finding(
                "importance", f"{param} for {name}", float(value), float(lo), float(hi),
                "fANOVA share", measured=f"{param} explains a {text} of the fANOVA variance "
                f"of {name} (measured; no claim tested)."))
    return findings


def _marginal(study: optuna.Study, table: _Table, metrics: Sequence[str],
              rng: np.random.Generator, n_boot: int) -> list[Finding]:
    from scipy.stats import kruskal

    findings = []
    for param, dist in _searched(study, table.trials).items():
        for metric in metrics:
            y = table.column(metric)
            if _ordered(dist):
                x = table.param(param)
                ok = np.isfinite(x) & np.isfinite(y)
                if ok.sum() < 5 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
                    continue
                rho, lo, hi, p = _spearman_test(x[ok], y[ok], rng, n_boot)
                if not math.isfinite(rho):
                    continue
                way = "higher" if rho > 0 else "lower"
                text = _interval(rho, lo, hi, "Spearman rho")
                findings.append(Finding(
                    "marginal effect", f"{param} on {metric}", rho, lo, hi, "Spearman rho",
                    p_value=p,
                    claim=f"Among the trials the sampler chose, higher {param} went with "
                          f"{way} {metric}: {text}.",
                    measured=f"{param} vs {metric}: {text}; this study cannot support a claim "
                             "about it."))
            else:
                labels = [str(t.params.get(param)) for t in table.trials]
                groups: dict[str, list[float]] = {}
                for label, v in zip(labels, y, strict=True):
                    if math.isfinite(v):
                        groups.setdefault(label, []).append(v)
                groups = {k: v for k, v in groups.items() if len(v) >= 2}
                if len(groups) < 2:
                    continue
                h, p = kruskal(*groups.values())
                n, k = sum(map(len, groups.values())), len(groups)
                eps = float((h - k + 1) / (n - k)) if n > k else math.nan
                best = max(groups, key=lambda g: float(np.mean(groups[g]))
                           * (1 if table.direction(metric) == "maximize" else -1))
                flat = [(g, v) for g, vs in groups.items() for v in vs]

                def eps_of(i: np.ndarray, flat: list[tuple[str, float]] = flat) -> float:
                    sample: dict[str, list[float]] = {}
                    for j in i:
                        sample.setdefault(flat[j][0], []).append(flat[j][1])
                    if len(sample) < 2 or all(np.ptp(v) == 0 for v in sample.values()):
                        return math.nan
                    hh = kruskal(*sample.values())[0]
                    nn, kk = len(i), len(sample)
                    return float((hh - kk + 1) / (nn - kk)) if nn > kk else math.nan

                lo, hi = _bootstrap(eps_of, len(flat), rng, min(n_boot, 300))
                text = _interval(eps, lo, hi, "epsilon squared")
                findings.append(Finding(
                    "marginal effect", f"{param} on {metric}", eps, lo, hi, "epsilon squared",
                    p_value=float(p),
                    claim=f"Among the trials the sampler chose, {metric} differed between "
                          f"{param} choices (best: {best}): {text}.",
                    measured=f"{param} vs {metric}: {text}; this study cannot support a claim "
                             "about it."))
    return findings


def _front_cost(table: _Table, front: np.ndarray, rng: np.random.Generator,
                n_boot: int) -> list[Finding]:
    seconds = table.column("train_time")
    if not front.any() or not np.isfinite(seconds).any():
        return []
    total = float(np.nansum(seconds))
    per_point = total / int(front.sum())
    fin = seconds[np.isfinite(seconds)]
    lo, hi = _bootstrap(lambda i: float(fin[i].sum()) / int(front.sum()), len(fin), rng,
                        n_boot)
    return [Finding("cost of the front", "training seconds per front point", per_point, lo, hi,
                    "s", measured=f"The study trained {_fmt(total)} s for {int(front.sum())} "
                    f"front points: {_interval(per_point, lo, hi, 's per point')} "
                    "(measured; no claim tested).")]


def _vit(study: optuna.Study, table: _Table, front: np.ndarray, rng: np.random.Generator,
         n_boot: int, notes: list[str]) -> list[Finding]:
    archs = [architecture_of(t) for t in table.trials]
    widths = np.array([_num(a.get("hidden_dim")) for a in archs])
    depths = np.array([_num(a.get("num_layers", t.params.get("num_layers")))
                       for a, t in zip(archs, table.trials, strict=True)])
    findings = []
    if "num_heads" in _searched(study, table.trials):
        finite = widths[np.isfinite(widths)]
        if finite.size and np.ptp(finite) > 0:
            notes.append("num_heads: the ViT width is heads x head_dim in this study, so a heads "
                         "effect is a width effect; fix the width with the model option "
                         "embed_dim to measure heads at a fixed width")
        elif finite.size:
            notes.append(f"num_heads was measured at a fixed width of {int(finite[0])}")
    ratio = depths / widths
    sel = front & np.isfinite(ratio)
    if sel.sum() >= 2:
        r = ratio[sel]
        lo, hi = _bootstrap(lambda i: float(np.median(r[i])), len(r), rng, n_boot)
        med = float(np.median(r))
        findings.append(Finding(
            "depth-width ratio", "layers per unit of width on the front", med, lo, hi,
            "layers/width", measured=f"The front's ViTs have a median depth-width ratio of "
            f"{_interval(med, lo, hi, 'layers per width unit')} over {int(sel.sum())} points "
            "(measured; no claim tested)."))
    return findings


def _convnet(study: optuna.Study, table: _Table, front: np.ndarray, rng: np.random.Generator,
             n_boot: int, notes: list[str]) -> list[Finding]:
    findings: list[Finding] = []
    acc = table.column(table.accuracy) if table.accuracy else None
    if acc is None:
        return findings
    for cost in ("flops", "params"):
        c = table.column(cost)
        ok = np.isfinite(c) & np.isfinite(acc) & (c > 0) & (acc < 1)
        base = front & ok
        where = "front"
        if base.sum() < 4:
            base, where = ok, "all complete trials"
            if front.any():
                notes.append(f"power law vs {cost}: fewer than 4 front points, fitted on all "
                             "complete trials")
        f = _regression_finding(
            "power law", f"log error vs log {cost} ({where})", np.log(c[base]),
            np.log(1 - acc[base]), rng, n_boot, "exponent",
            lambda s: "error fell with size" if s < 0 else "error rose with size")
        if f:
            findings.append(f)
    flops = table.column("flops")
    dims = [d for d in _SCALING if d in _searched(study, table.trials)]
    if dims and np.isfinite(flops).sum() >= len(dims) + 3:
        x = np.column_stack([np.log(table.param(d)) for d in dims])
        ok = np.isfinite(x).all(axis=1) & np.isfinite(flops) & np.isfinite(acc) & (flops > 0)
        x, a, lf = x[ok], acc[ok], np.log2(flops[ok])
        if len(a) >= len(dims) + 3:
            def per_doubling(i: np.ndarray) -> np.ndarray:
                design = np.column_stack([np.ones(len(i)), x[i]])
                ba = np.linalg.lstsq(design, a[i], rcond=None)[0][1:]
                bf = np.linalg.lstsq(design, lf[i], rcond=None)[0][1:]
                with np.errstate(divide="ignore", invalid="ignore"):
                    return np.where(np.abs(bf) > 1e-9, ba / bf, np.nan)

            est = per_doubling(np.arange(len(a)))
            boots = np.array([per_doubling(rng.integers(0, len(a), len(a)))
                              for _ in range(n_boot)])
            for j, dim in enumerate(dims):
                col = boots[:, j][np.isfinite(boots[:, j])]
                lo, hi = (np.percentile(col, [2.5, 97.5]) if col.size
                          else (math.nan, math.nan))
                text = _interval(100 * est[j], 100 * lo, 100 * hi, "accuracy points")
                findings.append(Finding(
                    "compound scaling", f"{dim}: accuracy per doubling of FLOPs", float(est[j]),
                    float(lo), float(hi), "accuracy per FLOPs doubling",
                    measured=f"Scaling {dim} bought {text} per doubling of FLOPs (joint fit "
                    "over the searched dimensions; measured, no claim tested)."))
    eff = _efficiency_on_front(table, front)
    findings += eff
    return findings


def _efficiency_on_front(table: _Table, front: np.ndarray) -> list[Finding]:
    out = []
    for name in ("params_utilization", "memory_efficiency", "speed_efficiency"):
        v = table.column(name)[front]
        v = v[np.isfinite(v)]
        if v.size:
            med = float(np.median(v))
            out.append(Finding("efficiency on the front", name, med, float(v.min()),
                               float(v.max()), name, measured=f"{name} on the front: median "
                               f"{_fmt(med)} (range {_fmt(float(v.min()))} to "
                               f"{_fmt(float(v.max()))}; measured, no claim tested)."))
    return out


def _multi_objective(table: _Table, rng: np.random.Generator,
                     n_boot: int) -> list[Finding]:
    findings: list[Finding] = []
    if table.accuracy is None:
        return findings
    for cost, (scale, unit) in _COSTS.items():
        if cost not in table.names and not np.isfinite(table.column(cost)).any():
            continue
        front = table.front([table.accuracy, cost])
        c = table.column(cost)[front] * scale
        a = table.column(table.accuracy)[front]
        order = np.argsort(c)
        c, a = c[order], a[order]
        if len(c) < 2:
            continue
        knee = knee_point(np.column_stack([a, c]), ["maximize", "minimize"])
        findings.append(Finding(
            "knee", f"{table.accuracy} vs {cost}", float(a[knee]), float(c[knee]),
            float(c[knee]), unit, measured=f"Knee of {table.accuracy} vs {cost}: "
            f"{_fmt(float(a[knee]))} at {_fmt(float(c[knee]))} {unit} ({len(c)} front points; "
            "measured)."))
        dc, da = np.diff(c), np.diff(a)
        seg = dc > 0
        if seg.sum() >= 1:
            rates = 100 * da[seg] / dc[seg]
            med = float(np.median(rates))
            lo, hi = ((float(np.min(rates)), float(np.max(rates))) if rates.size < 3 else
                      _bootstrap(_median_of(rates), len(rates), rng, n_boot))
            findings.append(Finding(
                "marginal rate of substitution", f"{table.accuracy} per {unit}", med, lo, hi,
                f"accuracy points per {unit}", measured=f"Along the front, one more {unit} "
                f"bought {_interval(med, lo, hi, 'accuracy points')} (median over "
                f"{int(seg.sum())} segments; measured, no claim tested)."))
    return findings


def _robustness(table: _Table, rng: np.random.Generator, n_boot: int) -> list[Finding]:
    findings: list[Finding] = []
    clean = table.column(table.accuracy) if table.accuracy else None
    params = table.column("params")
    for robust in _ROBUST:
        r = table.column(robust)
        if np.isfinite(r).sum() < 5:
            continue
        if clean is not None and table.accuracy != robust:
            ok = np.isfinite(clean) & np.isfinite(r)
            f = _regression_finding(
                "clean vs robust", f"{robust} per unit of {table.accuracy}", clean[ok], r[ok],
                rng, n_boot, "slope",
                lambda s: "robust accuracy rose with clean accuracy" if s > 0
                else "robust accuracy fell as clean accuracy rose")
            if f:
                findings.append(f)
        ok = np.isfinite(params) & np.isfinite(r)
        if ok.sum() >= 5 and np.ptp(params[ok]) > 0 and np.ptp(r[ok]) > 0:
            rho, lo, hi, p = _spearman_test(params[ok], r[ok], rng, n_boot)
            text = _interval(rho, lo, hi, "Spearman rho")
            findings.append(Finding(
                "model size and robustness", f"params vs {robust}", rho, lo, hi, "Spearman rho",
                p_value=p, claim=f"Among the trials the sampler chose, larger models were "
                f"{'more' if rho > 0 else 'less'} robust ({robust}): {text}.",
                measured=f"params vs {robust}: {text}; this study cannot support a claim about "
                "it."))
    return findings


def _motifs(study: optuna.Study, table: _Table, front: np.ndarray) -> list[Finding]:
    from scipy.stats import fisher_exact

    findings: list[Finding] = []
    edges = sorted(p for p in _searched(study, table.trials) if p.startswith("edge_"))
    if not edges or front.sum() < 2 or (~front).sum() < 2:
        return findings
    # One row per distinct cell (a cell evaluated twice counts once; on the front when any of
    # its trials is), so a sampler that revisits a cell does not inflate the Fisher counts.
    cells: dict[str, bool] = {}
    cell_params: dict[str, Mapping[str, Any]] = {}
    for t, f in zip(table.trials, front, strict=True):
        k = _key({e: t.params.get(e) for e in edges})
        cells[k] = cells.get(k, False) or bool(f)
        cell_params[k] = t.params
    front = np.array(list(cells.values()), dtype=bool)
    if front.sum() < 2 or (~front).sum() < 2:
        return findings
    for edge in edges:
        ops = [str(cell_params[k].get(edge)) for k in cells]
        for op in sorted(set(ops)):
            has = np.array([o == op for o in ops])
            a, b = int((has & front).sum()), int((~has & front).sum())
            c, d = int((has & ~front).sum()), int((~has & ~front).sum())
            p = float(fisher_exact([[a, b], [c, d]])[1])
            log_or = math.log((a + 0.5) * (d + 0.5) / ((b + 0.5) * (c + 0.5)))
            se = math.sqrt(1 / (a + 0.5) + 1 / (b + 0.5) + 1 / (c + 0.5) + 1 / (d + 0.5))
            lo, hi = log_or - 1.96 * se, log_or + 1.96 * se
            share_front = a / max(1, a + b)
            share_all = (a + c) / max(1, a + b + c + d)
            text = (f"{op} on {edge} in {100 * share_front:.0f}% of front cells vs "
                    f"{100 * share_all:.0f}% of all evaluated cells, "
                    f"{_interval(log_or, lo, hi, 'log odds ratio')}")
            findings.append(Finding(
                "operation motifs", f"{op} on {edge}", log_or, lo, hi, "log odds ratio",
                p_value=p, claim=f"{'Enriched' if log_or > 0 else 'Depleted'} on the front: "
                f"{text}.", measured=f"{text}; this study cannot support a claim about it."))
    return findings


def _adjust(findings: list[Finding]) -> list[Finding]:
    """Benjamini-Hochberg across the tested findings; returns findings with verdicts."""
    from dataclasses import replace

    from scipy.stats import false_discovery_control

    tested = [i for i, f in enumerate(findings) if f.p_value is not None]
    if not tested:
        return findings
    adjusted = false_discovery_control([findings[i].p_value for i in tested], method="bh")
    out = list(findings)
    for i, q in zip(tested, adjusted, strict=True):
        f = out[i]
        # A claim needs the test and the interval to agree: a regression's t-test can pass on
        # an outlier while the bootstrap over trials still straddles zero.
        straddles = (math.isfinite(f.low) and math.isfinite(f.high)
                     and f.low <= 0.0 <= f.high)
        out[i] = replace(f, adjusted_p=float(q), supported=bool(q <= ALPHA)
                         and math.isfinite(f.estimate) and not straddles)
    return out


def _which(study: optuna.Study, table: _Table) -> list[str]:
    params = set(_searched(study, table.trials))
    out = ["all"]
    if {"num_layers", "num_heads", "patch_size"} & params:
        out.append("vit")
    if set(_SCALING) & params:
        out.append("convnet")
    if len(table.names) > 1:
        out.append("multi_objective")
    if any(np.isfinite(table.column(r)).sum() >= 5 for r in _ROBUST):
        out.append("robustness")
    if any(p.startswith("edge_") for p in params):
        out.append("nasbench201")
    return out


def study_insights(study: optuna.Study, *, seed: int = 0, n_boot: int = 1000,
                   importance: bool = True, importance_boot: int = 10) -> Insights:
    """Compute the findings of a finished study.

    Args:
        study: A finished study (COMPLETE trials are analysed; values must be finite).
        seed: Seed of every bootstrap and permutation: the same seed gives the same numbers.
        n_boot: Bootstrap resamples and permutations per test.
        importance: Compute fANOVA importances (slower: ``importance_boot`` refits per
            objective for the interval).
        importance_boot: Bootstrap refits of fANOVA for the importance intervals.

    Returns:
        :class:`Insights` with every finding and note; claims survive Benjamini-Hochberg at
        :data:`ALPHA` across all of the study's tests.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(direction="maximize")
        >>> study.set_metric_names(["accuracy"])
        >>> rng = __import__("random").Random(0)
        >>> d = optuna.distributions.FloatDistribution(0, 1)
        >>> study.add_trials([optuna.trial.create_trial(
        ...     params={"x": x}, distributions={"x": d}, value=rng.random())
        ...     for x in [rng.random() for _ in range(20)]])
        >>> study_insights(study, n_boot=200, importance=False).claims()
        []
    """
    table = _table(study)
    analyses = _which(study, table)
    rng = np.random.default_rng(seed)
    notes: list[str] = []
    name = getattr(study, "study_name", "study")
    if table.means:
        notes.append(f"{len(table.means)} trial(s) at their re-evaluated means "
                     "(neuromosaic reevaluate)")
    if len(table.trials) < 5:
        notes.append(f"{len(table.trials)} complete trials: too few to support any claim")
        return Insights(name, analyses, len(table.trials), [], notes)
    findings: list[Finding] = []
    if importance:
        findings += _importance(study, table, seed, importance_boot)
    findings += _marginal(study, table, _metrics_to_study(table), rng, n_boot)
    front = table.front(table.names)
    findings += _front_cost(table, front, rng, n_boot)
    if "vit" in analyses:
        findings += _vit(study, table, front, rng, n_boot, notes)
    if "convnet" in analyses:
        findings += _convnet(study, table, front, rng, n_boot, notes)
    if "multi_objective" in analyses:
        findings += _multi_objective(table, rng, n_boot)
    if "robustness" in analyses:
        findings += _robustness(table, rng, n_boot)
    if "nasbench201" in analyses:
        findings += _motifs(study, table, front)
    return Insights(name, analyses, len(table.trials), _adjust(findings), notes)


def _key(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def _mean_by_architecture(trials: Sequence[FrozenTrial], values: np.ndarray) -> dict[str, float]:
    """Mean finite value per distinct architecture (params), so a cell evaluated twice counts
    once in a rank correlation (NaN where none of its values is finite)."""
    groups: dict[str, list[float]] = {}
    for t, v in zip(trials, values, strict=True):
        groups.setdefault(_key(t.params), []).append(float(v))
    out = {}
    for k, vs in groups.items():
        finite = [v for v in vs if math.isfinite(v)]
        out[k] = float(np.mean(finite)) if finite else math.nan
    return out


def transfer_insights(source: optuna.Study, target: optuna.Study, *,
                      baseline: optuna.Study | None = None, seed: int = 0,
                      n_boot: int = 1000) -> Insights:
    """What transferred from a source study to a target study.

    Args:
        source: The source study (e.g. CIFAR-10).
        target: The target study (warm-started from the source).
        baseline: A cold-start study of the target task; when given, the number of target
            trials the transfer saved is measured (trials the baseline needed to reach its
            best accuracy minus trials the target needed to reach it).
        seed: Seed of the bootstrap and permutations.
        n_boot: Resamples per test.

    Returns:
        :class:`Insights` with the rank correlation of the distinct architectures both studies
        evaluated (a repeated cell counts once, at its mean), the source front
        points that stayed on the target front and, with a baseline, the trials saved.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> d = optuna.distributions.IntDistribution(0, 20)
        >>> def make(f):
        ...     s = optuna.create_study(direction="maximize")
        ...     s.set_metric_names(["accuracy"])
        ...     s.add_trials([optuna.trial.create_trial(params={"w": w}, distributions={"w": d},
        ...                   value=f(w)) for w in range(12)])
        ...     return s
        >>> found = transfer_insights(make(lambda w: w / 20), make(lambda w: w / 40), n_boot=200)
        >>> round(found.findings[0].estimate, 2), found.findings[0].supported
        (1.0, True)
    """
    rng = np.random.default_rng(seed)
    src, tgt = _table(source), _table(target)
    findings: list[Finding] = []
    notes: list[str] = []
    name = f"{getattr(source, 'study_name', 'source')} -> {getattr(target, 'study_name', 'target')}"
    if src.accuracy is None or tgt.accuracy is None:
        return Insights(name, ["transfer"], len(tgt.trials), [], ["no accuracy objective"])
    src_acc = _mean_by_architecture(src.trials, src.column(src.accuracy))
    tgt_acc = _mean_by_architecture(tgt.trials, tgt.column(tgt.accuracy))
    pairs = [(src_acc[k], v) for k, v in tgt_acc.items()
             if k in src_acc and math.isfinite(src_acc[k]) and math.isfinite(v)]
    if len(pairs) >= 5:
        x, y = np.array(pairs).T
        rho, lo, hi, p = _spearman_test(x, y, rng, n_boot)
        text = _interval(rho, lo, hi, "Spearman rho")
        findings.append(Finding(
            "rank transfer", "source vs target accuracy of shared architectures", rho, lo, hi,
            "Spearman rho", p_value=p,
            claim=f"Architectures ranked {'alike' if rho > 0 else 'oppositely'} on source and "
                  f"target ({len(pairs)} shared): {text}.",
            measured=f"{len(pairs)} shared architectures: {text}; this study pair cannot "
            "support a claim about it."))
    else:
        notes.append(f"{len(pairs)} architectures evaluated in both studies: fewer than 5, no "
                     "rank correlation")
    src_front = {_key(t.params) for t, f in zip(src.trials, src.front(src.names), strict=True)
                 if f}
    tgt_front = {_key(t.params) for t, f in zip(tgt.trials, tgt.front(tgt.names), strict=True)
                 if f}
    evaluated = src_front & {_key(t.params) for t in tgt.trials}
    if evaluated:
        stayed = len(evaluated & tgt_front)
        findings.append(Finding(
            "front transfer", "source front points on the target front", stayed, stayed,
            stayed, "points", measured=f"{stayed} of the {len(evaluated)} distinct source "
            f"front architectures evaluated on the target stayed on its front (of "
            f"{len(src_front)} on the source front; measured)."))
    if baseline is not None:
        base = _table(baseline)
        if base.accuracy and base.trials and tgt.trials:
            b = base.column(base.accuracy)
            goal = float(np.nanmax(b))
            need_base = int(np.nanargmax(b)) + 1
            t_acc = tgt.column(tgt.accuracy)
            hit = np.flatnonzero(t_acc >= goal)
            need_tgt = int(hit[0]) + 1 if hit.size else None
            if need_tgt is None:
                notes.append(f"the target never reached the cold start's best {_fmt(goal)}")
            else:
                saved = need_base - need_tgt
                findings.append(Finding(
                    "trials saved", "target trials saved by the transfer", saved, saved, saved,
                    "trials", measured=f"The cold start needed {need_base} trials to reach "
                    f"{_fmt(goal)}; the transferred study {need_tgt} ({saved} saved; one study "
                    "pair, measured)."))
    else:
        notes.append("trials saved: needs a cold-start study of the target (baseline)")
    return Insights(name, ["transfer"], len(tgt.trials), _adjust(findings), notes)
