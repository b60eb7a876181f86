"""Run a study file: create or load the Optuna study, then optimize until it has enough trials.

``max_trials`` (``--n-trials``) is the study's total of *finished* trials (COMPLETE and
PRUNED), however many runs it took: running the same command again resumes the study and
stops at that total. Failed trials (a diverged loss, a crashed worker) do not count, so they
are replaced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from neuromosaic_optuna.config import ConfigError, StudyConfig
from neuromosaic_optuna.objective import Objective
from neuromosaic_optuna.pruners import make_pruner
from neuromosaic_optuna.samplers import make_sampler

__all__ = ["FINISHED_STATES", "count_finished", "create_study", "run_study", "study_name_for"]

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
    target = n_trials if n_trials is not None else config.max_trials
    from neuromosaic_optuna.training import DivergedError

    failures_in_a_row = 0
    while (remaining := target - count_finished(study)) > 0:
        before = len(study.trials)
        study.optimize(objective, n_trials=remaining, catch=(DivergedError,),
                       callbacks=list(callbacks), show_progress_bar=show_progress_bar,
                       gc_after_trial=False)
        new = study.get_trials(deepcopy=False)[before:]
        if new and all(t.state == TrialState.FAIL for t in new):
            failures_in_a_row += 1
            if failures_in_a_row >= 3:
                break  # every new trial fails: stop instead of looping forever
        else:
            failures_in_a_row = 0
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
