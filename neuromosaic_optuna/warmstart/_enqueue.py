"""Deduplicate, check costs, enqueue with provenance, and report: :func:`warm_start`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.exceptions import DuplicatedStudyError
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from neuromosaic_optuna import _compat
from neuromosaic_optuna.config import Constraint
from neuromosaic_optuna.constraints import cost_violations
from neuromosaic_optuna.models import ArchitectureError
from neuromosaic_optuna.space import SearchSpace
from neuromosaic_optuna.warmstart._claim import _marker_name, _wait_until_done
from neuromosaic_optuna.warmstart._selection import (
    _DIVERSE_POOL,
    SELECTIONS,
    ProxyFn,
    _Candidate,
    _diverse,
    _key,
    _ordered_candidates,
    _source_table,
)
from neuromosaic_optuna.warmstart._sources import (
    SourceLike,
    _as_sources,
    _resolve_source,
    _Source,
    _storage_label,
)

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
        notes: What a selection fell back to (e.g. ``"predictor"`` without proxies).
    """

    enqueued: tuple[Mapping[str, Any], ...] = ()
    claimed: tuple[str, ...] = ()
    already_done: tuple[str, ...] = ()
    skipped_infeasible: int = 0
    skipped_invalid: int = 0
    skipped_duplicate: int = 0
    skipped_unmapped: int = 0
    notes: tuple[str, ...] = ()

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
        parts.extend(dict.fromkeys(self.notes))
        return "warm start: " + ("; ".join(parts) if parts else "no source")

    def merged(self, other: WarmStartReport) -> WarmStartReport:
        """The sum of two reports (one per source)."""
        return WarmStartReport(
            enqueued=self.enqueued + other.enqueued, claimed=self.claimed + other.claimed,
            already_done=self.already_done + other.already_done,
            skipped_infeasible=self.skipped_infeasible + other.skipped_infeasible,
            skipped_invalid=self.skipped_invalid + other.skipped_invalid,
            skipped_duplicate=self.skipped_duplicate + other.skipped_duplicate,
            skipped_unmapped=self.skipped_unmapped + other.skipped_unmapped,
            notes=self.notes + other.notes)


# --------------------------------------------------------------------------- enqueueing


def _existing_keys(study: optuna.Study) -> set[str]:
    """Params of every trial of ``study``, fixed params for WAITING ones (empty slots omitted)."""
    keys = set()
    for t in study.get_trials(deepcopy=False):
        params = t.params if t.state != TrialState.WAITING else t.system_attrs.get(
            "fixed_params", {})
        if params:
            keys.add(_key(params))
    return keys


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


def _warm_start_one(target: optuna.Study, source: _Source, *, space: SearchSpace, top_k: int,
                    selection: str, metrics: Sequence[str] | None,
                    constraints: Sequence[Constraint], profile_fn: Callable[..., Any] | None,
                    proxy_fn: ProxyFn | None, seed: int, wait_timeout: float
                    ) -> WarmStartReport:
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
        ordered, exploit, note = _ordered_candidates(table, space, selection, seed, proxy_fn)
        seen = _existing_keys(target)
        pool = _DIVERSE_POOL * top_k if exploit is not None else top_k
        chosen = _filter(ordered, pool, seen, constraints, profile_fn, space, counts)
        if exploit is not None:
            chosen = _diverse(chosen, top_k, space.distributions,
                              exploit=round(exploit * top_k))
        dataset = source.study.user_attrs.get("neuromosaic", {}).get("dataset")
        enqueued = []
        for candidate in chosen:
            provenance = _provenance(source, candidate, selection, dataset)
            target.enqueue_trial(candidate.params,
                                 user_attrs={"origin": "warm_start", "warm_start": provenance})
            enqueued.append({"params": dict(candidate.params), **provenance})
        summary = {"source_storage": source.label, "source_study": source.study.study_name,
                   "selection": selection, "top_k": top_k, "enqueued": len(enqueued),
                   **{f"skipped_{k}": v for k, v in counts.items()},
                   **({"note": note} if note else {})}
        target.set_user_attr(f"warm_start:{source.key}", summary)
        storage.set_study_user_attr(marker_id, "state", "done")
    except BaseException:
        storage.delete_study(marker_id)  # release the claim so that a later run retries
        raise
    return WarmStartReport(
        enqueued=tuple(enqueued), claimed=(f"{source.label} {source.study.study_name}",),
        skipped_infeasible=counts["infeasible"], skipped_invalid=counts["invalid"],
        skipped_duplicate=counts["duplicate"], skipped_unmapped=counts["unmapped"],
        notes=(note,) if note else ())


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
    proxy_fn: ProxyFn | None = None,
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
        proxy_fn: ``params -> {proxy: score}`` of the untrained network, the features
            ``selection="predictor"`` adds to the encoding (e.g.
            :meth:`~neuromosaic_optuna.objective.Objective.proxy_scores`); without it the
            predictor ranks on the encoding alone and the report says so.
        source_storage: Storage of sources given by name; default: the target's storage.
        seed: Seed of the surrogate and the predictor (same seed, same trials).
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
            proxy_fn=proxy_fn, seed=seed, wait_timeout=wait_timeout))
    return report
