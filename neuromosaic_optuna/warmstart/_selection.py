"""Which source trials to enqueue: Pareto rank, best, diverse, a surrogate's ranking, or a
performance predictor's (encoding + zero-cost proxies) ranking."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from neuromosaic_optuna.pareto import crowding_distance, pareto_info, pareto_ranks
from neuromosaic_optuna.record import metrics_of, trained
from neuromosaic_optuna.space import SearchSpace, param_distance, param_features

#: Accepted values of ``selection``.
SELECTIONS = ("pareto", "best", "diverse", "surrogate", "predictor")

#: ``params -> {proxy: score}`` of the untrained network (e.g.
#: :meth:`~neuromosaic_optuna.objective.Objective.proxy_scores`).
ProxyFn = Callable[[dict[str, Any]], Mapping[str, float]]

_ENUMERATE_MAX = 20_000
_RANDOM_CANDIDATES = 4_096
_MIN_SURROGATE_TRIALS = 5
_DIVERSE_POOL = 3
#: Candidates the encoding-only predictor passes on to be scored with proxies.
_SHORTLIST = 40
#: Weight of the predictor's uncertainty in its optimistic bound ``mean + beta * std``
#: (0: the mean. Regret of the ten enqueued cells on seeds 0-3, the method-choosing seeds
#: of ``benchmarks/warmstart.py``, median: 0.28 points at 0, 0.83 at 0.5; four seeds, with
#: the proxies predictor alone ranking the shortlist, before ``_BLEND``).
_BETA = 0.0
#: Weight of the encoding + proxies predictor in the shortlist's ranking (the rest: the
#: encoding-only predictor's mean), a blend that hedges the proxies' noise.
_BLEND = 0.5
#: Share of ``top_k`` the predictor takes in its ranking's order; the rest is spread (greedy
#: max-min distance) over the next best of ``_DIVERSE_POOL * top_k``.
_PREDICTOR_EXPLOIT = 1.0


# --------------------------------------------------------------------------- candidates


class _Candidate(NamedTuple):
    params: dict[str, Any]  # mapped into the target space
    trial: FrozenTrial | None  # the source trial (None for surrogate proposals)
    extra: dict[str, Any]  # selection-specific provenance


class _SourceTable(NamedTuple):
    trials: list[FrozenTrial]
    mapped: list[dict[str, Any]]
    values: np.ndarray  # (n, m) in the metrics' own directions
    directions: list[str]
    names: list[str]
    feasible: np.ndarray
    violation: np.ndarray


def _source_table(study: optuna.Study, space: SearchSpace,
                  metrics: Sequence[str] | None) -> _SourceTable:
    """Usable source trials: COMPLETE, status ``ok``, with every metric; in trial order."""
    info = pareto_info(study, metrics=metrics)
    by_number = {t.number: t for t in study.get_trials(deepcopy=False,
                                                       states=(TrialState.COMPLETE,))}
    keep = [i for i, n in enumerate(info.trial_numbers)
            if trained(by_number[int(n)])]
    trials = [by_number[int(info.trial_numbers[i])] for i in keep]
    return _SourceTable(trials=trials, mapped=[space.map_params(t.params) for t in trials],
                        values=info.values[keep].reshape(len(keep), len(info.metric_names)),
                        directions=list(info.directions), names=list(info.metric_names),
                        feasible=info.feasible[keep], violation=info.violation[keep])


def _pareto_order(values: np.ndarray, directions: Sequence[str], feasible: np.ndarray,
                  violation: np.ndarray) -> list[int]:
    """Row order: constrained Pareto rank, then crowding distance (most isolated first), then
    row number. With one objective this is a plain sort, feasible rows first."""
    n = values.shape[0]
    if n == 0:
        return []
    if values.shape[1] == 1:
        sign = -1.0 if directions[0] == "maximize" else 1.0
        return sorted(range(n), key=lambda i: (not feasible[i], violation[i],
                                               sign * values[i, 0], i))
    ranks = pareto_ranks(values, directions, feasible=feasible, violation=violation)
    crowd = np.zeros(n)
    by_rank = np.argsort(ranks, kind="stable")
    _, starts = np.unique(ranks[by_rank], return_index=True)
    for rows in np.split(by_rank, starts[1:]):
        crowd[rows] = crowding_distance(values[rows]) if rows.size > 2 else np.inf
    return sorted(range(n), key=lambda i: (ranks[i], -crowd[i], i))


def _best_order(table: _SourceTable) -> list[int]:
    return _pareto_order(table.values[:, :1], table.directions[:1], table.feasible,
                         table.violation)


def _diverse(candidates: list[_Candidate], k: int, dists: Mapping[str, BaseDistribution],
             exploit: int = 1) -> list[_Candidate]:
    """Greedy max-min selection after the first ``exploit`` candidates (the best, always
    chosen, in order). Each chosen candidate records its distance to those chosen before it
    (``min_distance``)."""
    if not candidates:
        return []
    exploit = max(1, min(exploit, k, len(candidates)))
    chosen = [candidates[0]._replace(extra={**candidates[0].extra, "min_distance": 1.0})]
    nearest = [param_distance(c.params, candidates[0].params, dists) for c in candidates]
    taken = {0}
    for pick in range(1, exploit):
        c = candidates[pick]
        taken.add(pick)
        chosen.append(c._replace(extra={**c.extra, "min_distance": round(nearest[pick], 6)}))
        for i, other in enumerate(candidates):
            nearest[i] = min(nearest[i], param_distance(other.params, c.params, dists))
    while len(chosen) < min(k, len(candidates)):
        # Farthest from the chosen set; ties go to the better (earlier) candidate.
        pick = max((i for i in range(len(candidates)) if i not in taken),
                   key=lambda i: (nearest[i], -i))
        taken.add(pick)
        c = candidates[pick]
        chosen.append(c._replace(extra={**c.extra, "min_distance": round(nearest[pick], 6)}))
        for i, other in enumerate(candidates):
            nearest[i] = min(nearest[i], param_distance(other.params, c.params, dists))
    return chosen


# --------------------------------------------------------------------------- surrogate


def _known_space(mapped: Sequence[Mapping[str, Any]],
                 dists: Mapping[str, BaseDistribution]) -> dict[str, BaseDistribution]:
    """The target params some mapped source trial sets (the others stay with the sampler)."""
    seen = set().union(*(m.keys() for m in mapped)) if mapped else set()
    return {name: dist for name, dist in dists.items() if name in seen}


def _grid_values(dist: BaseDistribution) -> list[Any] | None:
    """Every value of a finite distribution, or None for a continuous one."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution):
        if dist.log:
            return list(range(dist.low, dist.high + 1))
        return list(range(dist.low, dist.high + 1, dist.step))
    assert isinstance(dist, FloatDistribution)
    if dist.step is None:
        return None
    n = int(round((dist.high - dist.low) / dist.step))
    return [min(dist.low + i * dist.step, dist.high) for i in range(n + 1)]


def _candidate_grid(dists: Mapping[str, BaseDistribution], extra: Sequence[Mapping[str, Any]],
                    rng: np.random.Generator) -> list[dict[str, Any]]:
    """All cells of a finite space of at most ``_ENUMERATE_MAX`` cells, else random points
    plus ``extra`` (the mapped source trials)."""
    names = list(dists)
    grids = [_grid_values(dists[n]) for n in names]
    sizes = [len(g) if g is not None else math.inf for g in grids]
    size = math.prod(sizes) if sizes else 1
    if size <= _ENUMERATE_MAX:
        return [dict(zip(names, combo, strict=True))
                for combo in itertools.product(*(g or [] for g in grids))]
    points: list[dict[str, Any]] = [dict(p) for p in extra]
    for _ in range(_RANDOM_CANDIDATES):
        point: dict[str, Any] = {}
        for name, grid in zip(names, grids, strict=True):
            dist = dists[name]
            if grid is not None:
                point[name] = grid[int(rng.integers(len(grid)))]
            else:
                assert isinstance(dist, FloatDistribution)
                u = float(rng.random())
                point[name] = (math.exp(math.log(dist.low) + u * math.log(dist.high / dist.low))
                               if dist.log else dist.low + u * (dist.high - dist.low))
        points.append(point)
    return points


def _surrogate_candidates(table: _SourceTable, space: SearchSpace,
                          seed: int) -> Iterator[_Candidate] | None:
    """Candidates ranked by random-forest predictions fitted on the source trials."""
    usable = [i for i, m in enumerate(table.mapped) if m and table.feasible[i]]
    if len(usable) < _MIN_SURROGATE_TRIALS:
        return None
    from sklearn.ensemble import RandomForestRegressor

    dists = _known_space([table.mapped[i] for i in usable], space.distributions)
    x_train = param_features([table.mapped[i] for i in usable], dists)
    rng = np.random.default_rng(seed)
    grid = _candidate_grid(dists, [table.mapped[i] for i in usable], rng)
    x_grid = param_features(grid, dists)
    predicted = np.column_stack([
        RandomForestRegressor(n_estimators=200, random_state=seed, n_jobs=1)
        .fit(x_train, table.values[usable, j]).predict(x_grid)
        for j in range(table.values.shape[1])])
    order = _pareto_order(predicted, table.directions, np.ones(len(grid), dtype=bool),
                          np.zeros(len(grid)))
    exact = {_key(table.mapped[i]): i for i in usable}

    def ranked() -> Iterator[_Candidate]:  # lazy: provenance only for what is used
        for row in order:
            params = grid[row]
            source_row = exact.get(_key(params))
            extra: dict[str, Any] = {"predicted_values": [round(float(v), 6)
                                                          for v in predicted[row]],
                                     "fitted_on": len(usable)}
            if source_row is None:
                near = min(usable, key=lambda i: param_distance(params, table.mapped[i], dists))
                extra["nearest_source_trial"] = table.trials[near].number
            yield _Candidate(params, table.trials[source_row] if source_row is not None
                             else None, extra)

    return ranked()


def _source_proxies(table: _SourceTable, rows: Sequence[int], names: Sequence[str],
                    proxy_fn: ProxyFn) -> list[dict[str, float]]:
    """Proxy scores of source rows: the trial's own stored ones when it measured them all,
    else computed from its (mapped) network."""
    out = []
    for i in rows:
        stored = metrics_of(table.trials[i])
        if names and all(n in stored for n in names):
            out.append({n: (float(stored[n]) if stored[n] is not None else -math.inf)
                        for n in names})
        else:
            out.append(_safe_proxies(proxy_fn, table.mapped[i]))
    return out


def _safe_proxies(proxy_fn: ProxyFn, params: Mapping[str, Any]) -> dict[str, float]:
    """``proxy_fn(params)``; no scores (missing features) when the cell cannot be built."""
    from neuromosaic_optuna.models import ArchitectureError

    try:
        return dict(proxy_fn(dict(params)))
    except ArchitectureError:
        return {}


def _predictor_candidates(table: _SourceTable, space: SearchSpace, seed: int,
                          proxy_fn: ProxyFn | None) -> tuple[Iterator[_Candidate], str] | None:
    """Candidates ranked by :class:`~neuromosaic_optuna.predictor.PerformancePredictor`.

    Two stages: a predictor on the encoding alone, fitted on the source trials, screens the
    target space (as ``"surrogate"`` enumerates it) down to :data:`_SHORTLIST` cells by its
    optimistic bound; with ``proxy_fn``, those cells and the source trials are scored by
    their proxies, a second predictor on encoding + proxies is fitted, and the shortlist is
    re-ranked by the blend of both predictors (``_BLEND``) plus ``_BETA`` times its spread.
    Only the source's measured values and the networks' own proxies are read. Returns None
    with fewer than 5 usable source trials, else the ranking and the features used
    (``"encoding+proxies"`` or ``"encoding"``).
    """
    usable = [i for i, m in enumerate(table.mapped) if m and table.feasible[i]]
    dists = _known_space([table.mapped[i] for i in usable], space.distributions)
    usable = [i for i in usable if all(n in table.mapped[i] for n in dists)]  # whole cells
    if len(usable) < _MIN_SURROGATE_TRIALS:
        return None
    from neuromosaic_optuna.predictor import PerformancePredictor, architecture_features

    sign = 1.0 if table.directions[0] == "maximize" else -1.0
    y = (sign * table.values[usable, 0]).tolist()
    mapped = [table.mapped[i] for i in usable]
    grid = _candidate_grid(dists, mapped, np.random.default_rng(seed))
    coarse = PerformancePredictor(seed=seed).fit(param_features(mapped, dists), y)
    mean, std = coarse.predict(param_features(grid, dists))
    order = [int(i) for i in np.argsort(-(mean + _BETA * std), kind="stable")]
    features = "encoding"
    if proxy_fn is not None:
        short = order[:_SHORTLIST]
        first = _safe_proxies(proxy_fn, mapped[0])
        names = sorted(first)
        source_scores = [first, *_source_proxies(table, usable[1:], names, proxy_fn)]
        if names:
            short_scores = [_safe_proxies(proxy_fn, grid[i]) for i in short]
            fine = PerformancePredictor(seed=seed).fit(
                architecture_features(mapped, dists, source_scores, names), y)
            mean_s, std_s = fine.predict(architecture_features(
                [grid[i] for i in short], dists, short_scores, names))
            mean[short] = _BLEND * mean_s + (1.0 - _BLEND) * mean[short]
            std[short] = _BLEND * std_s + (1.0 - _BLEND) * std[short]
            rerank = np.argsort(-(mean[short] + _BETA * std[short]), kind="stable")
            order = [short[int(i)] for i in rerank] + order[_SHORTLIST:]
            features = "encoding+proxies"
    exact = {_key(table.mapped[i]): i for i in usable}

    def ranked() -> Iterator[_Candidate]:
        for row in order:
            params = grid[row]
            source_row = exact.get(_key(params))
            extra: dict[str, Any] = {"predicted": round(float(sign * mean[row]), 6),
                                     "predicted_std": round(float(std[row]), 6),
                                     "fitted_on": len(usable), "features": features}
            yield _Candidate(params, table.trials[source_row] if source_row is not None
                             else None, extra)

    return ranked(), features


def _norm(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _key(params: Mapping[str, Any]) -> str:
    return json.dumps({k: _norm(v) for k, v in params.items()}, sort_keys=True, default=str)


def _ordered_candidates(table: _SourceTable, space: SearchSpace, selection: str,
                        seed: int, proxy_fn: ProxyFn | None = None
                        ) -> tuple[Iterable[_Candidate], float | None, str | None]:
    """Candidates in order of preference; None, or the share of ``top_k`` taken in order
    before the rest is spread (:func:`_diverse` over ``_DIVERSE_POOL * top_k`` candidates);
    and a note when the selection fell back to something else."""
    if selection == "predictor":
        result = _predictor_candidates(table, space, seed, proxy_fn)
        if result is not None:
            ranked_by_predictor, features = result
            note = None if features == "encoding+proxies" else (
                "predictor: no proxy function, so it ranked on the cell encoding alone "
                "(give proxy_fn, or set proxies in the study file)")
            return (ranked_by_predictor,
                    None if _PREDICTOR_EXPLOIT >= 1.0 else _PREDICTOR_EXPLOIT, note)
        return (*_ordered_candidates(table, space, "pareto", seed)[:2],
                f"predictor: fewer than {_MIN_SURROGATE_TRIALS} usable source trials, so it "
                "fell back to pareto")
    if selection == "surrogate":
        ranked = _surrogate_candidates(table, space, seed)
        if ranked is not None:
            return ranked, None, None
        selection = "pareto"
    if selection == "best":
        order = _best_order(table)
    else:
        order = _pareto_order(table.values, table.directions, table.feasible, table.violation)
    return [_Candidate(table.mapped[i], table.trials[i], {"rank": r})
            for r, i in enumerate(order)], 0.0 if selection == "diverse" else None, None
