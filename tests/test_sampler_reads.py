"""One suggestion of the Pareto sampler reads the study's trials and system attributes once.

Optuna's genetic-sampler code (``BaseGASampler.get_parent_population``) reads all trials and
the study's system attributes for every NSGA-II child, and ``ParetoSampler`` builds dozens of
children per suggestion; ``_compat.study_snapshot`` answers those reads from one read each.
Measured here: from ``study.ask()`` through the last suggestion of a trial past generation 1,
36 reads of all trials and 32 of the study's system attributes without the snapshot; with it,
one of each (plus ``ask``'s own read of the WAITING trials), and the same parameters.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from neuromosaic_optuna import _compat
from neuromosaic_optuna.samplers import ParetoSampler
from neuromosaic_optuna.storage import make_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

POPULATION = 4
#: Storage methods whose calls are counted.
READS = ("get_all_trials", "get_study_system_attrs")


def _objective(trial: optuna.trial.Trial) -> tuple[float, float]:
    """Deterministic, on a mixed space, with a constraint (feasible when x <= 0.8)."""
    x = trial.suggest_float("x", 0.0, 1.0)
    n = trial.suggest_int("n", 1, 4)
    op = trial.suggest_categorical("op", ["a", "b", "c"])
    trial.set_constraint("x_at_most_0.8", x - 0.8)
    return x + 0.05 * n, (1.0 - x) ** 2 + {"a": 0.0, "b": 0.3, "c": 0.1}[op] + 0.1 / n


def _storage(kind: str, tmp_path: Path) -> Any:
    if kind == "memory":
        return None
    if kind == "journal":
        return make_storage(str(tmp_path / "journal.log"), heartbeat_interval=None)
    return make_storage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat_interval=None)


@contextlib.contextmanager
def _without_snapshot() -> Iterator[None]:
    """``study_snapshot`` replaced by the study itself: every read goes to the storage."""
    @contextlib.contextmanager
    def plain(study: optuna.Study) -> Iterator[optuna.Study]:
        yield study

    original = _compat.study_snapshot
    _compat.study_snapshot = plain  # type: ignore[assignment]
    try:
        yield
    finally:
        _compat.study_snapshot = original  # type: ignore[assignment]


def _run(storage: Any, n_trials: int, *, seed: int = 0
         ) -> tuple[optuna.Study, list[collections.Counter[str]]]:
    """An ask-and-tell study; for each trial, the reads from ``ask`` to its last suggestion
    (``get_all_trials`` split into ``full`` and ``waiting``, what ``ask`` claims from)."""
    study = optuna.create_study(directions=["minimize", "minimize"], storage=storage,
                                sampler=ParetoSampler(population_size=POPULATION, seed=seed))
    backend = _compat.storage_of(study)
    counts: collections.Counter[str] = collections.Counter()
    for name in READS:
        original = getattr(backend, name)

        def counted(*args: Any, _original: Any = original, _name: str = name,
                    **kwargs: Any) -> Any:
            key = _name
            if _name == "get_all_trials":
                key += ":waiting" if kwargs.get("states") == (TrialState.WAITING,) else ":full"
            counts[key] += 1
            return _original(*args, **kwargs)

        setattr(backend, name, counted)
    per_trial = []
    for _ in range(n_trials):
        counts.clear()
        trial = study.ask()
        values = _objective(trial)
        per_trial.append(collections.Counter(counts))
        study.tell(trial, values)
    return study, per_trial


@pytest.mark.parametrize("kind", ["memory", "journal", "sqlite"])
def test_one_read_per_suggestion(kind: str, tmp_path: Path) -> None:
    study, per_trial = _run(_storage(kind, tmp_path), 5 * POPULATION)
    generations = [t.user_attrs["generation"] for t in study.trials]
    assert generations == [g for g in range(5) for _ in range(POPULATION)]
    later = per_trial[2 * POPULATION:]  # generations 2.. (children of a cached parent set)
    assert [c["get_all_trials:full"] for c in later] == [1] * len(later)
    assert [c["get_all_trials:waiting"] for c in later] == [1] * len(later)
    assert [c["get_study_system_attrs"] for c in later] == [1] * len(later)
    # The first trial of each generation also stores the generation's diversity and parents.
    assert max(c["get_all_trials:full"] + c["get_all_trials:waiting"]
               for c in per_trial) <= 2
    assert max(c["get_study_system_attrs"] for c in per_trial) <= 1


def test_without_the_snapshot_a_suggestion_reads_dozens_of_times(tmp_path: Path) -> None:
    """What the snapshot saves (and that the counters count): one read per NSGA-II child."""
    with _without_snapshot():
        _, per_trial = _run(None, 3 * POPULATION)
    later = per_trial[2 * POPULATION:]
    assert min(c["get_all_trials:full"] for c in later) > 30
    assert min(c["get_study_system_attrs"] for c in later) > 30


def _record(study: optuna.Study) -> list[tuple[Any, ...]]:
    return [(t.number, t.state, t.params, t.values, t.user_attrs.get("generation"),
             sorted(t.system_attrs.items())) for t in study.trials]


@pytest.mark.parametrize("kind", ["memory", "journal"])
def test_same_params_with_and_without_the_snapshot(kind: str, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with_snapshot, _ = _run(_storage(kind, tmp_path / "a"), 4 * POPULATION, seed=7)
    with _without_snapshot():
        without, _ = _run(_storage(kind, tmp_path / "b"), 4 * POPULATION, seed=7)
    assert max(t.user_attrs["generation"] for t in with_snapshot.trials) == 3
    assert _record(with_snapshot) == _record(without)
    assert (_compat.storage_of(with_snapshot).get_study_system_attrs(
        _compat.study_id(with_snapshot)) == _compat.storage_of(without).get_study_system_attrs(
        _compat.study_id(without)))
    assert with_snapshot.user_attrs == without.user_attrs
    assert len({tuple(sorted(t.params.items())) for t in with_snapshot.trials}) == 4 * POPULATION
