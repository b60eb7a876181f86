"""Meta-learning warm starts: transfer from prior studies as enqueued trials.

:func:`warm_start` chooses trials of one or more *source* studies, maps their params into the
*target* study's search space and enqueues them there (``study.enqueue_trial``) with their
provenance; :func:`run_transfer` runs the seed's ``transfer_experiment`` (a small source study,
then a large warm-started target study); :func:`search_progress` and
:func:`plot_search_progress` compare searches with and without transfer.

Selection (``selection=``), per source, among its COMPLETE trials with status ``ok``:

* ``"pareto"``: by constrained Pareto rank over the source's objectives (or ``metrics``), then
  by crowding distance (spread along the front first);
* ``"best"``: by the first objective (or ``metrics[0]``), feasible trials first;
* ``"diverse"``: greedy max-min: the best trial, then repeatedly the trial farthest (in the
  target space) from those already chosen, among the ``3 * top_k`` best candidates;
* ``"surrogate"``: a random forest fitted to the source trials (params mapped into the target
  space) ranks every cell of the target space (all of it when it has at most 20,000 cells,
  else 4,096 random points plus the source trials) and the best *predicted* ones are
  enqueued, whether or not the source evaluated them. On NAS-Bench-201 CIFAR-10 ->
  ImageNet16-120 this beats enqueueing the source's best trials (``benchmarks/warmstart.py``);
  with fewer than 5 usable source trials it falls back to ``"pareto"``.

Mapping (:meth:`SearchSpace.map_params`): numbers are clipped and snapped to the target's
range and step, categoricals kept only if still a choice, params the target lacks dropped,
params the source lacks left to the sampler. Candidates are then deduplicated (after mapping,
also against every trial the target already has) and, when ``constraints`` and a
``profile_fn`` are given, profiled: those violating a cost constraint are skipped and counted.
The next candidates take their places, so up to ``top_k`` trials per source are enqueued.

Concurrency and idempotence: before enqueueing from a source, a process claims the pair
(target, source) by creating a *marker study* named
``<target>::warm_start::<source key>-<target study id>`` in the target's storage (an empty
study; it shows in study lists and keeps the claim). Study names are unique in every
Optuna storage (RDB: a unique index; journal: the log's order), so exactly one process wins;
the others wait until the winner marks the claim done (marker user attribute ``state``) and
enqueue nothing. Running the warm start again finds the marker and enqueues nothing. The
winner also records a summary in the target's user attribute ``warm_start:<key>``. If the
winner fails, it deletes its marker, so a later run retries (and skips what was enqueued).
Enqueued trials are WAITING trials: call :func:`~neuromosaic_optuna.study.open_slots` *after*
the warm start, and they take the place of slots, so the study still ends with exactly its
``max_trials`` finished trials.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.exceptions import DuplicatedStudyError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from neuromosaic_optuna import _compat
from neuromosaic_optuna.config import BUDGET_WORDS, ConfigError, Constraint, StudyConfig
from neuromosaic_optuna.constraints import cost_violations
from neuromosaic_optuna.metrics import METRICS
from neuromosaic_optuna.models import ArchitectureError
from neuromosaic_optuna.pareto import (
    crowding_distance,
    hypervolume_history,
    pareto_info,
    pareto_ranks,
    reference_point,
)
from neuromosaic_optuna.record import is_feasible, metric_names, metric_value, trained
from neuromosaic_optuna.space import SearchSpace, param_distance, param_features
from neuromosaic_optuna.storage import make_storage, mask_url

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from neuromosaic_optuna.objective import Objective

__all__ = [
    "SELECTIONS",
    "ProgressCurve",
    "SearchProgress",
    "TransferResult",
    "WarmStartReport",
    "cost_profiler",
    "plot_search_progress",
    "run_transfer",
    "search_progress",
    "source_config",
    "source_study_name",
    "transfer_budgets",
    "warm_start",
]

#: Accepted values of ``selection``.
SELECTIONS = ("pareto", "best", "diverse", "surrogate")

#: What a source may be: a study, ``(storage or URL, study name)``, or a study name.
SourceLike = optuna.Study | tuple[str | BaseStorage, str] | str

_ENUMERATE_MAX = 20_000
_RANDOM_CANDIDATES = 4_096
_MIN_SURROGATE_TRIALS = 5
_DIVERSE_POOL = 3


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class WarmStartReport:
    """What :func:`warm_start` did.

    Attributes:
        enqueued: One dict per enqueued trial: ``params`` (mapped) and its provenance (the
            same dict as the trial's user attribute ``warm_start``).
        claimed: Sources (``"<storage> <study>"``, password masked) this call warm-started.
        already_done: Sources warm-started before, by this or another process: nothing was
            enqueued from them.
        skipped_infeasible: Candidates that violate a cost constraint of the target.
        skipped_invalid: Candidates the profile function could not build.
        skipped_duplicate: Candidates equal (after mapping) to another candidate or to a trial
            the target already has.
        skipped_unmapped: Candidates with no param left after mapping.
    """

    enqueued: tuple[Mapping[str, Any], ...] = ()
    claimed: tuple[str, ...] = ()
    already_done: tuple[str, ...] = ()
    skipped_infeasible: int = 0
    skipped_invalid: int = 0
    skipped_duplicate: int = 0
    skipped_unmapped: int = 0

    @property
    def n_enqueued(self) -> int:
        """Number of trials enqueued by this call."""
        return len(self.enqueued)

    def summary(self) -> str:
        """One line for people (what the CLI prints).

        Example:
            >>> WarmStartReport(already_done=("sqlite:///nas.db cifar",)).summary()
            'warm start: nothing new (already done from sqlite:///nas.db cifar)'
        """
        skipped = ", ".join(f"{n} {what}" for n, what in (
            (self.skipped_infeasible, "violating a cost constraint"),
            (self.skipped_invalid, "not buildable"), (self.skipped_duplicate, "duplicate"),
            (self.skipped_unmapped, "with no param in the target space")) if n)
        parts = []
        if self.claimed:
            parts.append(f"enqueued {self.n_enqueued} trial(s) from {'; '.join(self.claimed)}"
                         + (f" (skipped {skipped})" if skipped else ""))
        if self.already_done:
            parts.append(f"{'nothing new' if not self.claimed else 'nothing'} (already done "
                         f"from {'; '.join(self.already_done)})")
        return "warm start: " + ("; ".join(parts) if parts else "no source")

    def merged(self, other: WarmStartReport) -> WarmStartReport:
        """The sum of two reports (one per source)."""
        return WarmStartReport(
            enqueued=self.enqueued + other.enqueued, claimed=self.claimed + other.claimed,
            already_done=self.already_done + other.already_done,
            skipped_infeasible=self.skipped_infeasible + other.skipped_infeasible,
            skipped_invalid=self.skipped_invalid + other.skipped_invalid,
            skipped_duplicate=self.skipped_duplicate + other.skipped_duplicate,
            skipped_unmapped=self.skipped_unmapped + other.skipped_unmapped)


# --------------------------------------------------------------------------- sources


class _Source(NamedTuple):
    study: optuna.Study
    label: str  # masked storage description, for people
    key: str  # stable hash identifying (storage, study name)


def _storage_label(storage: BaseStorage) -> tuple[str, str]:
    """``(label, identity)`` of a storage: a masked description and a key for hashing."""
    inner = _compat.unwrap_cached_storage(storage)
    url = getattr(inner, "url", None)
    if isinstance(url, str):
        return mask_url(url), mask_url(url)
    path = _compat.journal_file_path(inner)
    if path is not None:
        return f"journal:{path}", f"journal:{path}"
    return "memory", f"memory:{id(inner)}"


def _resolve_source(source: SourceLike, default_storage: str | BaseStorage) -> _Source:
    if isinstance(source, optuna.Study):
        study = source
    else:
        if isinstance(source, str):
            storage, name = default_storage, source
        elif isinstance(source, tuple) and len(source) == 2 and isinstance(source[1], str):
            storage, name = source
        else:
            raise TypeError("source: expected an optuna.Study, a (storage, study_name) pair or "
                            f"a study name, got {source!r}")
        if isinstance(storage, str):
            storage = make_storage(storage, heartbeat_interval=None)
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            label = _storage_label(storage)[0]
            raise ConfigError("source", f"no study {name!r} in {label}; run the source study "
                              "first or check the name") from None
    label, identity = _storage_label(_compat.storage_of(study))
    key = hashlib.sha1(f"{identity}\n{study.study_name}".encode()).hexdigest()[:16]
    return _Source(study, label, key)


def _as_sources(source: SourceLike | Sequence[SourceLike]) -> list[SourceLike]:
    if isinstance(source, (optuna.Study, str)):
        return [source]
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[1], str) \
            and isinstance(source[0], (str, BaseStorage)):
        return [(source[0], source[1])]
    return list(source)


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


def _diverse(candidates: list[_Candidate], k: int,
             dists: Mapping[str, BaseDistribution]) -> list[_Candidate]:
    """Greedy max-min selection; the first candidate (the best) is always chosen. Each
    chosen candidate records its distance to those chosen before it (``min_distance``)."""
    if not candidates:
        return []
    chosen = [candidates[0]._replace(extra={**candidates[0].extra, "min_distance": 1.0})]
    nearest = [param_distance(c.params, candidates[0].params, dists) for c in candidates]
    taken = {0}
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


# --------------------------------------------------------------------------- enqueueing


def _norm(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _key(params: Mapping[str, Any]) -> str:
    return json.dumps({k: _norm(v) for k, v in params.items()}, sort_keys=True, default=str)


def _existing_keys(study: optuna.Study) -> set[str]:
    """Params of every trial of ``study``, fixed params for WAITING ones (empty slots omitted)."""
    keys = set()
    for t in study.get_trials(deepcopy=False):
        params = t.params if t.state != TrialState.WAITING else t.system_attrs.get(
            "fixed_params", {})
        if params:
            keys.add(_key(params))
    return keys


def _ordered_candidates(table: _SourceTable, space: SearchSpace, selection: str,
                        seed: int) -> tuple[Iterable[_Candidate], bool]:
    """Candidates in order of preference and whether the list is a final choice (diverse)."""
    if selection == "surrogate":
        ranked = _surrogate_candidates(table, space, seed)
        if ranked is not None:
            return ranked, False
        selection = "pareto"
    if selection == "best":
        order = _best_order(table)
    else:
        order = _pareto_order(table.values, table.directions, table.feasible, table.violation)
    return [_Candidate(table.mapped[i], table.trials[i], {"rank": r})
            for r, i in enumerate(order)], selection == "diverse"


def _filter(candidates: Iterable[_Candidate], limit: int, seen: set[str],
            constraints: Sequence[Constraint], profile_fn: Callable[..., Mapping[str, float]]
            | None, space: SearchSpace, counts: dict[str, int]) -> list[_Candidate]:
    """The first ``limit`` candidates that are non-empty, new and feasible."""
    kept: list[_Candidate] = []
    for c in candidates:
        if len(kept) >= limit:
            break
        if not c.params:
            counts["unmapped"] += 1
            continue
        key = _key(c.params)
        if key in seen:
            counts["duplicate"] += 1
            continue
        seen.add(key)
        if constraints and profile_fn is not None and space.contains(c.params):
            try:
                metrics = profile_fn(dict(c.params))
            except ArchitectureError:
                counts["invalid"] += 1
                continue
            if cost_violations(constraints, metrics):
                counts["infeasible"] += 1
                continue
        kept.append(c)
    return kept


def _provenance(source: _Source, candidate: _Candidate, selection: str,
                dataset: Any) -> dict[str, Any]:
    trial = candidate.trial
    nearest = candidate.extra.get("nearest_source_trial")
    return {
        "source_storage": source.label,
        "source_study": source.study.study_name,
        "source_trial": trial.number if trial is not None else None,
        "source_values": list(trial.values) if trial is not None and trial.values else None,
        "source_dataset": dataset,
        "selection": selection,
        **{k: v for k, v in candidate.extra.items() if k != "nearest_source_trial"},
        **({"nearest_source_trial": nearest} if nearest is not None else {}),
    }


def _marker_name(target: optuna.Study, source: _Source) -> str:
    return f"{target.study_name}::warm_start::{source.key}-{_compat.study_id(target)}"


def _wait_until_done(storage: BaseStorage, marker: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            study_id = storage.get_study_id_from_name(marker)
            if storage.get_study_user_attrs(study_id).get("state") == "done":
                return
        except KeyError:  # the winner failed and released its claim
            raise RuntimeError(f"the process warm-starting from this source failed (marker "
                               f"study {marker!r} was removed); run the warm start again") \
                from None
        if time.monotonic() >= deadline:
            raise RuntimeError(f"another process claimed the warm start (marker study "
                               f"{marker!r}) and has not finished after {timeout:.0f} s; if it "
                               "died, delete that study (`optuna delete-study --study-name "
                               "...`) and run again")
        time.sleep(0.05)


def _warm_start_one(target: optuna.Study, source: _Source, *, space: SearchSpace, top_k: int,
                    selection: str, metrics: Sequence[str] | None,
                    constraints: Sequence[Constraint], profile_fn: Callable[..., Any] | None,
                    seed: int, wait_timeout: float) -> WarmStartReport:
    storage = _compat.storage_of(target)
    marker = _marker_name(target, source)
    try:
        optuna.create_study(study_name=marker, storage=storage, load_if_exists=False)
    except DuplicatedStudyError:
        _wait_until_done(storage, marker, wait_timeout)
        return WarmStartReport(already_done=(f"{source.label} {source.study.study_name}",))
    marker_id = storage.get_study_id_from_name(marker)
    try:
        storage.set_study_user_attr(marker_id, "state", "claimed")
        counts = {"infeasible": 0, "invalid": 0, "duplicate": 0, "unmapped": 0}
        table = _source_table(source.study, space, metrics)
        ordered, diverse = _ordered_candidates(table, space, selection, seed)
        seen = _existing_keys(target)
        pool = _DIVERSE_POOL * top_k if diverse else top_k
        chosen = _filter(ordered, pool, seen, constraints, profile_fn, space, counts)
        if diverse:
            chosen = _diverse(chosen, top_k, space.distributions)
        dataset = source.study.user_attrs.get("neuromosaic", {}).get("dataset")
        enqueued = []
        for candidate in chosen:
            provenance = _provenance(source, candidate, selection, dataset)
            target.enqueue_trial(candidate.params,
                                 user_attrs={"origin": "warm_start", "warm_start": provenance})
            enqueued.append({"params": dict(candidate.params), **provenance})
        summary = {"source_storage": source.label, "source_study": source.study.study_name,
                   "selection": selection, "top_k": top_k, "enqueued": len(enqueued),
                   **{f"skipped_{k}": v for k, v in counts.items()}}
        target.set_user_attr(f"warm_start:{source.key}", summary)
        storage.set_study_user_attr(marker_id, "state", "done")
    except BaseException:
        storage.delete_study(marker_id)  # release the claim so that a later run retries
        raise
    return WarmStartReport(
        enqueued=tuple(enqueued), claimed=(f"{source.label} {source.study.study_name}",),
        skipped_infeasible=counts["infeasible"], skipped_invalid=counts["invalid"],
        skipped_duplicate=counts["duplicate"], skipped_unmapped=counts["unmapped"])


def warm_start(
    target_study: optuna.Study,
    source: SourceLike | Sequence[SourceLike],
    *,
    space: SearchSpace,
    top_k: int = 10,
    selection: str = "pareto",
    metrics: Sequence[str] | None = None,
    constraints: Sequence[Constraint] | None = None,
    profile_fn: Callable[[dict[str, Any]], Mapping[str, float]] | None = None,
    source_storage: str | BaseStorage | None = None,
    seed: int = 0,
    wait_timeout: float = 120.0,
) -> WarmStartReport:
    """Enqueue the chosen trials of prior studies into ``target_study``, once.

    See the module docstring for selection, mapping, deduplication and the claim that makes
    this idempotent and safe when several processes call it at once.

    Args:
        target_study: The study to warm-start (any storage).
        source: One source or a list: an :class:`optuna.Study`, a ``(storage or URL, study
            name)`` pair, or a study name in ``source_storage``.
        space: The target's search space; every enqueued param is valid in it.
        top_k: Trials to enqueue per source (fewer if the source has fewer usable ones).
        selection: One of :data:`SELECTIONS`.
        metrics: Metrics to rank by instead of the source's objectives (read from
            ``trial.values`` or the user attribute ``metrics``).
        constraints: The target's constraints; cost constraints are checked with
            ``profile_fn`` on candidates that set every param of ``space``.
        profile_fn: ``params -> metrics`` without training (see :func:`cost_profiler`); may
            raise :class:`~neuromosaic_optuna.models.ArchitectureError`.
        source_storage: Storage of sources given by name; default: the target's storage.
        seed: Seed of the surrogate (same seed, same trials).
        wait_timeout: Seconds to wait for another process that claimed the same warm start.

    Returns:
        A :class:`WarmStartReport`.

    Raises:
        ValueError: An unknown ``selection``, ``top_k < 1``, or a source that is the target.
        ConfigError: A named source study does not exist.
        RuntimeError: Another process claimed the warm start and did not finish in time.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> space = SearchSpace({"x": [0, 10], "op": ["a", "b"]})
        >>> source = optuna.create_study(direction="maximize")
        >>> source.add_trials([optuna.trial.create_trial(
        ...     params={"x": x, "op": "c"}, value=x,
        ...     distributions={"x": optuna.distributions.IntDistribution(0, 20),
        ...                    "op": optuna.distributions.CategoricalDistribution(["c"])})
        ...     for x in (3, 15, 12)])
        >>> target = optuna.create_study(direction="maximize")
        >>> report = warm_start(target, source, space=space, top_k=2, selection="best")
        >>> [e["params"] for e in report.enqueued], report.skipped_duplicate
        ([{'x': 10}, {'x': 3}], 1)
        >>> warm_start(target, source, space=space).n_enqueued  # already done: nothing new
        0
    """
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {', '.join(SELECTIONS)}, got {selection!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    target_storage = _compat.storage_of(target_study)
    default_storage = source_storage if source_storage is not None else target_storage
    target_label = _storage_label(target_storage)[1]
    report = WarmStartReport()
    for item in _as_sources(source):
        resolved = _resolve_source(item, default_storage)
        if (resolved.study.study_name == target_study.study_name
                and _storage_label(_compat.storage_of(resolved.study))[1] == target_label):
            raise ValueError(f"source: study {target_study.study_name!r} is the target itself")
        report = report.merged(_warm_start_one(
            target_study, resolved, space=space, top_k=top_k, selection=selection,
            metrics=metrics, constraints=tuple(constraints or ()), profile_fn=profile_fn,
            seed=seed, wait_timeout=wait_timeout))
    return report


# --------------------------------------------------------------------------- profiling


def cost_profiler(config: StudyConfig, objective: Objective | None = None
                  ) -> Callable[[dict[str, Any]], dict[str, float]] | None:
    """A ``params -> cost metrics`` function for ``config``'s target, or None without cost
    constraints.

    Tabular backends look the costs up (on the study's dataset); other architectures are
    built and profiled (latency only when a constraint needs it), never trained.

    Args:
        config: The target study's configuration.
        objective: Reuse its dataset cache (built from ``config`` when omitted).

    Returns:
        The function, or None when ``config`` has no cost constraint.

    Example:
        >>> from neuromosaic_optuna.config import load_config
        >>> from neuromosaic_optuna.models.nasbench201 import EDGES, OPS
        >>> cfg = load_config({"name": "t", "architecture_type": "nasbench201",
        ...     "search_space": {e: list(OPS) for e in EDGES}, "dataset": "cifar10",
        ...     "constraints": {"max_params": "1M"}})
        >>> profile = cost_profiler(cfg)
        >>> profile(dict.fromkeys(EDGES, "nor_conv_3x3"))["params"]
        1531546.0
    """
    cost = [c for c in config.constraints if METRICS[c.metric].cost]
    if not cost:
        return None
    from neuromosaic_optuna.models import get_tabular, is_tabular

    if is_tabular(config.architecture_type):
        backend = get_tabular(config.architecture_type)

        def lookup(params: dict[str, Any]) -> dict[str, float]:
            metrics = backend.evaluate(params, dataset=config.dataset, seed=config.seed)
            return {k: float(v) for k, v in metrics.items() if k in METRICS and METRICS[k].cost}

        return lookup

    from neuromosaic_optuna.objective import Objective

    obj = objective or Objective(config)
    timing = any(c.metric in ("latency", "throughput") for c in cost)

    def profile(params: dict[str, Any]) -> dict[str, float]:
        from neuromosaic_optuna.profiling import profile_model

        built, _ = obj.build(params)  # the objective's build path (training params dropped)
        return dict(profile_model(built.model, built.input_size,
                                  latency_batch_size=config.latency_batch_size,
                                  timing=timing).as_dict())

    return profile


# --------------------------------------------------------------------------- transfer runner


@dataclass(frozen=True)
class TransferResult:
    """The two studies of a transfer run and what the warm start enqueued."""

    source: optuna.Study
    target: optuna.Study
    report: WarmStartReport


def transfer_budgets(config: StudyConfig) -> tuple[int, int]:
    """``(source_trials, source_epochs)`` of a transfer experiment.

    The budget words (``small``, ``medium``, ``large``; :data:`~neuromosaic_optuna.config.
    BUDGET_WORDS`) are relative sizes: the target study runs the study's own ``max_trials``
    and ``epochs`` (study file, budget preset, CLI flags), and the source gets the same
    amount scaled by ``source word / target word`` (at least 1). With the shipped
    ``studies/transfer_cifar10_to_imagenet.toml`` (cpu preset: 100 trials, the ``large``
    word) the source runs 30 trials (``small``); ``--budget smoke`` runs 6 and 20. On
    NAS-Bench-201 every result is a 200-epoch training run, so only trial counts matter.

    Example:
        >>> from neuromosaic_optuna.config import load_study_file
        >>> transfer_budgets(load_study_file("studies/transfer_cifar10_to_imagenet.toml"))[0]
        30
    """
    source = BUDGET_WORDS[str((config.source_task or {}).get("budget", "small"))]
    target = BUDGET_WORDS[str((config.target_task or {}).get("budget", "large"))]
    trials = max(1, round(config.max_trials * source["max_trials"] / target["max_trials"]))
    epochs = max(1, round(config.epochs * source["epochs"] / target["epochs"]))
    return trials, epochs


def _check_task_metric(config: StudyConfig, task: Mapping[str, Any] | None, path: str) -> None:
    metric = (task or {}).get("metric")
    if metric is not None and metric not in config.metric_names:
        raise ConfigError(f"{path}.metric", f"{metric!r} is not an objective of the study "
                          f"({', '.join(config.metric_names)}); add it to objectives")


def source_config(config: StudyConfig) -> StudyConfig:
    """The source study's configuration: the target's, on the source task's dataset and
    budget (:func:`transfer_budgets`), with seed ``seed + 1`` (with the target's seed, the
    target's sampler would replay the source's first random trials).

    Raises:
        ConfigError: The study has no ``source_task`` or its metric is not an objective.

    Example:
        >>> from neuromosaic_optuna.config import load_study_file
        >>> cfg = load_study_file("studies/transfer_cifar10_to_imagenet.toml")
        >>> src = source_config(cfg)
        >>> src.dataset, src.max_trials, cfg.dataset, cfg.max_trials
        ('cifar10', 30, 'imagenet', 100)
    """
    if not config.source_task:
        raise ConfigError("experiment.source_task", "missing; a transfer needs a source task "
                          "(dataset, metric, budget)")
    _check_task_metric(config, config.source_task, "experiment.source_task")
    _check_task_metric(config, config.target_task, "experiment.target_task")
    trials, epochs = transfer_budgets(config)
    task = config.source_task
    return config.with_overrides(
        dataset=str(task.get("dataset", config.dataset)),
        dataset_path=task.get("dataset_path", config.dataset_path),
        resolution=int(task.get("resolution", config.resolution)),
        max_trials=trials, epochs=epochs, seed=(config.seed + 1) % 2**32, source_task=None,
        target_task=None, transfer_strategy=None, known_good=())


def source_study_name(config: StudyConfig, target_name: str | None = None) -> str:
    """The source study's name: ``source_task.study_name``, else ``<target>-source``.

    Example:
        >>> from neuromosaic_optuna.config import load_study_file
        >>> source_study_name(load_study_file("studies/transfer_cifar10_to_imagenet.toml"))
        'transfer_cifar10_to_imagenet-cpu-source'
    """
    from neuromosaic_optuna.study import study_name_for

    named = (config.source_task or {}).get("study_name")
    return str(named) if named else f"{target_name or study_name_for(config)}-source"


def run_transfer(
    config: StudyConfig,
    *,
    storage: str | BaseStorage | None = None,
    study_name: str | None = None,
    source: SourceLike | None = None,
    source_storage: str | BaseStorage | None = None,
    n_trials: int | None = None,
    selection: str = "surrogate",
    top_k: int = 10,
    workers: int = 1,
    show_progress_bar: bool = False,
) -> TransferResult:
    """Run the seed's transfer experiment: source study, warm start, target study.

    Without ``source``, the source study (:func:`source_config`, named by
    :func:`source_study_name`, in ``source_task.storage`` or ``storage``) is run, or resumed
    up to its budget. With ``source`` (a study, ``(storage, name)`` or a name in
    ``source_storage``/``storage``) that existing study is used as it is. Then the target study
    is created (or loaded), warm-started once (cost constraints checked with
    :func:`cost_profiler`), given slots up to its ``max_trials`` and run.

    Args:
        config: The target study's configuration (``transfer_strategy = "warm_start"``).
        storage: Storage of the target (and of the source unless named elsewhere); ``None``
            keeps both in memory.
        study_name: Target study name (default: ``study_name_for(config)``).
        source: An existing source study instead of running one.
        source_storage: Where a source given by name lives (default: ``storage``).
        n_trials: Target total of finished target trials (default ``max_trials``).
        selection: Warm-start selection (:data:`SELECTIONS`).
        top_k: Trials to enqueue from the source.
        workers: Worker processes for each study (``storage`` must then be a URL that
            processes can share).
        show_progress_bar: Optuna's progress bar (single process).

    Returns:
        A :class:`TransferResult`.

    Raises:
        ConfigError: The config has no transfer strategy or source task, a task metric is not
            an objective, or a named source study does not exist.

    Example:
        >>> from neuromosaic_optuna.config import load_study_file
        >>> cfg = load_study_file("studies/transfer_cifar10_to_imagenet.toml", budget="smoke")
        >>> result = run_transfer(cfg)
        >>> from neuromosaic_optuna.study import count_finished
        >>> count_finished(result.source), count_finished(result.target), result.report.n_enqueued
        (6, 20, 10)
    """
    from neuromosaic_optuna.objective import Objective
    from neuromosaic_optuna.study import (
        create_study,
        open_slots,
        run_study,
        run_workers,
        study_name_for,
        work,
    )

    if config.transfer_strategy not in (None, "warm_start"):
        raise ConfigError("experiment.transfer_strategy", f"unknown strategy "
                          f"{config.transfer_strategy!r}; supported: \"warm_start\"")
    if workers > 1 and not isinstance(storage, str):
        raise ConfigError("--storage", "several workers need a storage URL they can share")
    target_name = study_name or study_name_for(config)
    if source is None:
        src_config = source_config(config)
        task = config.source_task or {}
        src_storage = task.get("storage") or (source_storage if source_storage is not None
                                              else storage)
        src_name = source_study_name(config, target_name)
        if workers > 1 and isinstance(src_storage, str):
            source_study = run_workers(src_config, storage_url=src_storage,
                                       study_name=src_name, workers=workers)
        else:
            source_study = run_study(src_config, storage=src_storage, study_name=src_name,
                                     show_progress_bar=show_progress_bar)
        source_ref: SourceLike = source_study
    else:
        _check_task_metric(config, config.target_task, "experiment.target_task")
        source_ref = source
    objective = Objective(config)
    target = create_study(config, storage=storage, study_name=target_name)
    total = n_trials if n_trials is not None else config.max_trials
    busy = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING,
                           TrialState.WAITING) for t in target.get_trials(deepcopy=False))
    report = WarmStartReport()
    if total > busy:  # room left: warm trials replace slots, the total stays exact
        report = warm_start(target, source_ref, space=objective.space,
                            top_k=min(top_k, total - busy), selection=selection,
                            constraints=config.constraints,
                            profile_fn=cost_profiler(config, objective),
                            source_storage=source_storage if source_storage is not None
                            else storage, seed=config.seed)
    if workers > 1:
        assert isinstance(storage, str)
        target = run_workers(config, storage_url=storage, study_name=target_name,
                             workers=workers, n_trials=total)
    else:
        open_slots(target, total)
        work(target, objective, show_progress_bar=show_progress_bar)
    resolved = (_resolve_source(source_ref, source_storage if source_storage is not None
                                else storage or _compat.storage_of(target)).study)
    return TransferResult(source=resolved, target=target, report=report)


# --------------------------------------------------------------------------- progress


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
