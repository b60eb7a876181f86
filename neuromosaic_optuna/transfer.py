"""The seed's transfer experiment: a small source study, a warm start, a large target study.

:func:`run_transfer` runs (or resumes) the source study of ``source_task`` (configured by
:func:`source_config`, sized by :func:`transfer_budgets`, named by :func:`source_study_name`),
warm-starts the target study from it with :func:`neuromosaic_optuna.warmstart.warm_start` and
runs the target. Compare the searches with :func:`neuromosaic_optuna.plots.search_progress`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from neuromosaic_optuna import _compat
from neuromosaic_optuna.config import BUDGET_WORDS, ConfigError, StudyConfig
from neuromosaic_optuna.warmstart import SourceLike, WarmStartReport, cost_profiler, warm_start
from neuromosaic_optuna.warmstart._sources import _resolve_source

__all__ = ["TransferResult", "run_transfer", "source_config", "source_study_name",
           "transfer_budgets"]


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
    :func:`~neuromosaic_optuna.warmstart.cost_profiler`), given slots up to its
    ``max_trials`` and run.

    Args:
        config: The target study's configuration (``transfer_strategy = "warm_start"``).
        storage: Storage of the target (and of the source unless named elsewhere); ``None``
            keeps both in memory.
        study_name: Target study name (default: ``study_name_for(config)``).
        source: An existing source study instead of running one.
        source_storage: Where a source given by name lives (default: ``storage``).
        n_trials: Target total of finished target trials (default ``max_trials``).
        selection: Warm-start selection (:data:`~neuromosaic_optuna.warmstart.SELECTIONS`).
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
                            proxy_fn=objective.proxy_scores if config.proxies else None,
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
