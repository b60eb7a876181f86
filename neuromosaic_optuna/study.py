"""Run a study file: create or load the Optuna study, then optimize until it has enough trials.

``max_trials`` (``--n-trials``) is the study's total of *finished* trials (COMPLETE and
PRUNED), however many runs it took: running the same command again resumes the study and
stops at that total. Failed trials (a diverged loss, a crashed worker) do not count, so they
are replaced.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from neuromosaic_optuna.config import ConfigError, StudyConfig
from neuromosaic_optuna.objective import Objective
from neuromosaic_optuna.pruners import make_pruner
from neuromosaic_optuna.samplers import make_sampler

__all__ = ["FINISHED_STATES", "count_finished", "create_study", "open_slots", "run_study",
           "run_workers", "study_name_for", "work"]

#: Trial states that count toward ``max_trials``.
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


def study_name_for(config: StudyConfig) -> str:
    """Default study name: the config's name, plus ``-<budget>`` when a budget is chosen."""
    return f"{config.name}-{config.budget}" if config.budget else config.name


def count_finished(study: optuna.Study) -> int:
    """Number of COMPLETE and PRUNED trials of ``study``."""
    return len(study.get_trials(deepcopy=False, states=FINISHED_STATES))


def create_study(config: StudyConfig, *, storage: str | BaseStorage | None = None,
                 study_name: str | None = None) -> optuna.Study:
    """Create, or load when it exists, the Optuna study for ``config``.

    The sampler and pruner come from the config; metric names are set; the known-good
    architectures of ``known_good`` are enqueued once (smart initialization).

    Args:
        config: The study configuration.
        storage: An Optuna storage or URL; ``None`` keeps the study in memory.
        study_name: Defaults to :func:`study_name_for`.

    Raises:
        ConfigError: The named study exists with other objectives.

    Example:
        >>> import neuromosaic_optuna as nm
        >>> cfg = nm.load_study_file("studies/quickstart.toml")
        >>> study = nm.create_study(cfg)
        >>> study.metric_names
        ['accuracy', 'flops']
    """
    name = study_name or study_name_for(config)
    sampler = make_sampler(config)
    pruner = make_pruner(config)
    directions = [optuna.study.StudyDirection[d.upper()] for d in config.directions]
    try:
        study = optuna.create_study(storage=storage, study_name=name, sampler=sampler,
                                    pruner=pruner, directions=config.directions,
                                    load_if_exists=True)
    except ValueError as exc:  # e.g. directions of an existing study differ
        raise ConfigError("--study-name", f"cannot use study {name!r}: {exc}") from None
    if list(study.directions) != directions:
        raise ConfigError("--study-name", f"study {name!r} exists with other objectives "
                          f"({[d.name.lower() for d in study.directions]}); choose another "
                          "name with --study-name")
    if study.metric_names is None:
        with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in practice
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(config.metric_names)
    elif list(study.metric_names) != config.metric_names:
        raise ConfigError("--study-name", f"study {name!r} exists with metrics "
                          f"{study.metric_names}; this config has {config.metric_names}")
    if "neuromosaic" not in study.user_attrs:
        study.set_user_attr("neuromosaic", {
            "experiment": dict(config.experiment), "budget": config.budget,
            "architecture_type": config.architecture_type, "dataset": config.dataset,
            "objectives": config.metric_names,
            "constraints": {c.name: c.raw for c in config.constraints},
        })
        for params in config.known_good:
            study.enqueue_trial(dict(params), user_attrs={"origin": "known_good"},
                                skip_if_exists=True)
    return study


class _NoSlot(Exception):
    """Raised inside ``study.ask()`` when no WAITING slot is left for this worker."""


def open_slots(study: optuna.Study, target: int) -> int:
    """Enqueue empty WAITING trials ("slots") so that finished + running + waiting = target.

    Workers only ever run slots (:func:`work`), so however many processes share the study,
    it ends with exactly ``target`` finished trials. A slot is an enqueued trial without fixed
    params: the sampler chooses all of them when a worker claims it (RDB storages hand out a
    WAITING trial to one worker only, under a row lock). Returns the number of slots added.

    Example:
        >>> import optuna
        >>> study = optuna.create_study()
        >>> open_slots(study, 3), open_slots(study, 3)
        (3, 0)
    """
    trials = study.get_trials(deepcopy=False)
    busy = sum(t.state in (*FINISHED_STATES, TrialState.WAITING, TrialState.RUNNING)
               for t in trials)
    need = max(0, target - busy)
    for _ in range(need):
        study.enqueue_trial({}, user_attrs={"slot": True})
    return need


def _replace_failed(study: optuna.Study, trial: FrozenTrial) -> None:
    """A failed trial does not count: open a fresh slot in its place (stale trials killed
    with their worker are replaced by the heartbeat's retry callback instead)."""
    if trial.state == TrialState.FAIL:
        study.enqueue_trial({}, user_attrs={"slot": True, "replaces": trial.number})


def work(study: optuna.Study, objective: Callable[[optuna.trial.Trial], Any], *,
         callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
         show_progress_bar: bool = False) -> int:
    """Run the study's WAITING slots until none is left; return how many trials this ran.

    This is what every worker process does. It never creates a trial of its own: when
    ``study.ask()`` finds no WAITING trial, the worker stops.
    """
    from neuromosaic_optuna.training import DivergedError

    storage = study._storage
    create_new_trial = storage.create_new_trial

    def slots_only(study_id: int, template_trial: FrozenTrial | None = None) -> int:
        if template_trial is None:
            raise _NoSlot
        return create_new_trial(study_id, template_trial)

    ran: list[int] = []

    def count(_: optuna.Study, trial: FrozenTrial) -> None:
        ran.append(trial.number)

    storage.create_new_trial = slots_only  # type: ignore[method-assign]
    try:
        while True:
            waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
            try:
                study.optimize(objective, n_trials=max(waiting, 1), catch=(DivergedError,),
                               callbacks=[count, _replace_failed, *callbacks],
                               show_progress_bar=show_progress_bar and waiting > 0,
                               gc_after_trial=False)
            except _NoSlot:
                break
    finally:
        del storage.create_new_trial
    return len(ran)


def run_study(
    config: StudyConfig,
    *,
    storage: str | BaseStorage | None = None,
    study_name: str | None = None,
    n_trials: int | None = None,
    objective: Objective | None = None,
    show_progress_bar: bool = False,
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
    timing: bool = True,
) -> optuna.Study:
    """Optimize until the study has ``n_trials`` finished trials (default: ``max_trials``).

    Args:
        config: The study configuration.
        storage: An Optuna storage or URL; ``None`` keeps the study in memory.
        study_name: Defaults to :func:`study_name_for`.
        n_trials: Target total of finished trials.
        objective: Reuse an :class:`Objective` (its dataset cache); built when omitted.
        show_progress_bar: Show Optuna's tqdm progress bar.
        callbacks: Passed to :meth:`optuna.Study.optimize`.
        timing: Measure latency/throughput (see :class:`Objective`).

    Returns:
        The study.

    Example:
        >>> import neuromosaic_optuna as nm
        >>> cfg = nm.load_study_file("studies/quickstart.toml",
        ...                          overrides={"max_trials": 2, "epochs": 1})
        >>> study = nm.run_study(cfg)
        >>> nm.count_finished(study)
        2
    """
    objective = objective or Objective(config, timing=timing)
    study = create_study(config, storage=storage, study_name=study_name)
    open_slots(study, n_trials if n_trials is not None else config.max_trials)
    work(study, objective, callbacks=callbacks, show_progress_bar=show_progress_bar)
    return study


def _worker_process(config: StudyConfig, storage_url: str, study_name: str | None,
                    threads: int) -> None:
    """Entry point of one worker process (spawned): run slots until none is left."""
    import torch

    from neuromosaic_optuna.storage import make_storage

    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = create_study(config, storage=make_storage(storage_url), study_name=study_name)
    with contextlib.suppress(KeyboardInterrupt):
        work(study, Objective(config))


def run_workers(config: StudyConfig, *, storage_url: str, study_name: str | None = None,
                workers: int = 2, n_trials: int | None = None) -> optuna.Study:
    """Run a study with ``workers`` processes sharing one storage; return the study.

    The slots are opened here, once; each process claims WAITING slots until none is left,
    so the study ends with exactly ``n_trials`` finished trials. torch's threads are split
    between the processes (``cpu_count // workers`` each, at least one). The storage must be
    one that several processes can share (PostgreSQL/MySQL, SQLite, a journal file).
    """
    import multiprocessing
    import os

    from neuromosaic_optuna.storage import make_storage

    study = create_study(config, storage=make_storage(storage_url), study_name=study_name)
    open_slots(study, n_trials if n_trials is not None else config.max_trials)
    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker_process, args=(config, storage_url, study.study_name,
                                                       threads), name=f"neuromosaic-worker-{i}")
             for i in range(workers)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.join(timeout=30)
        raise
    return study


def best_or_front(study: optuna.Study) -> list[FrozenTrial]:
    """Best trial (single objective) or Pareto-optimal feasible trials, as Optuna sees them."""
    if len(study.directions) == 1:
        try:
            return [study.best_trial]
        except ValueError:
            return []
    return sorted(study.best_trials, key=lambda t: t.values[0],
                  reverse=study.directions[0] == optuna.study.StudyDirection.MAXIMIZE)


def _states(trials: Iterable[FrozenTrial]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    return counts


def summary_counts(study: optuna.Study) -> dict[str, Any]:
    """Counts of trials per state and per neuromosaic status."""
    trials = study.get_trials(deepcopy=False)
    status: dict[str, int] = {}
    for t in trials:
        s = str(t.user_attrs.get("status", t.state.name.lower()))
        status[s] = status.get(s, 0) + 1
    return {"states": _states(trials), "status": status, "total": len(trials)}
