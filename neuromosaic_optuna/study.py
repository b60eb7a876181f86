"""Run a study file: create or load the Optuna study, then optimize until it has enough trials.

``max_trials`` (``--n-trials``) is the study's total of *finished* trials (COMPLETE and
PRUNED), however many runs it took: running the same command again resumes the study and
stops at that total. Failed trials (a diverged loss, a crashed worker) do not count, so they
are replaced.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from neuromosaic_optuna import _compat
from neuromosaic_optuna.config import ConfigError, StudyConfig
from neuromosaic_optuna.objective import Objective
from neuromosaic_optuna.pruners import STOPPED_ATTR, make_pruner
from neuromosaic_optuna.record import Timeline, status_of
from neuromosaic_optuna.samplers import make_sampler

__all__ = ["FINISHED_STATES", "FAILURE_STOP_ATTR", "IDENTITY_ATTR", "Interrupted",
           "MAX_FAILURES_IN_A_ROW", "RemainingTime", "TrialsFailedError", "count_finished",
           "create_study", "open_slots", "preflight", "raise_on_sigterm", "run_study",
           "run_workers", "study_identity", "study_name_for", "usable_cores", "work",
           "worker_threads"]

#: Trial states that count toward ``max_trials``.
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


def study_name_for(config: StudyConfig) -> str:
    """Default study name: the config's name, plus ``-<budget>`` when a budget is chosen."""
    return f"{config.name}-{config.budget}" if config.budget else config.name


def count_finished(study: optuna.Study) -> int:
    """Number of COMPLETE and PRUNED trials of ``study``."""
    return len(study.get_trials(deepcopy=False, states=FINISHED_STATES))


def create_study(config: StudyConfig, *, storage: str | BaseStorage | None = None,
                 study_name: str | None = None,
                 allow_changed_space: bool = False) -> optuna.Study:
    """Create, or load when it exists, the Optuna study for ``config``.

    The sampler and pruner come from the config; metric names are set; the known-good
    architectures of ``known_good`` are enqueued once (smart initialization). A study is one
    search space: its :func:`study_identity` is stored on it (user attribute
    :data:`IDENTITY_ATTR`), and a config with another identity is refused unless
    ``allow_changed_space`` (then the stored identity is replaced). A study stored without an
    identity (made by an older version) gets this config's.

    Args:
        config: The study configuration.
        storage: An Optuna storage or URL; ``None`` keeps the study in memory.
        study_name: Defaults to :func:`study_name_for`.
        allow_changed_space: Accept a config whose identity differs from the stored one.

    Raises:
        ConfigError: The named study exists with other objectives or another identity.

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
                                    pruner=pruner, directions=directions,
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
    _check_identity(study, config, allow_changed_space)
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


class Interrupted(BaseException):
    """The run was stopped by a signal (SIGINT, SIGTERM); the trial that was running has been
    marked FAIL with the reason, so the next run replaces it at once.

    A ``BaseException`` (like ``KeyboardInterrupt``) so that no ``except Exception`` and no
    Optuna trial loop swallows it. ``signum`` is the signal's number.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def raise_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Interrupted` and SIGINT ``KeyboardInterrupt``,
    so :func:`work` fails the running trial with the reason before the process ends (both are
    postponed while a journal record is being written); the previous handlers are restored
    afterwards. Outside the main thread
    it does nothing (Python delivers signals to the main thread only).

    Example:
        >>> with raise_on_sigterm():
        ...     pass
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    from neuromosaic_optuna.storage import defer_signal

    def _raise(signum: int, frame: Any) -> None:
        if defer_signal(_raise, signum, frame):  # inside a journal append: at its end
            return
        _SIGNALLED[:] = [signum]  # if the exception lands where it is swallowed (a __del__),
        if signum == signal.SIGINT:  # work() still stops before its next trial
            raise KeyboardInterrupt
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, _raise)
    previous_int = signal.signal(signal.SIGINT, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        _SIGNALLED.clear()


#: The signal received inside :func:`raise_on_sigterm`, if any.
_SIGNALLED: list[int] = []


def _fail_interrupted(study: optuna.Study, trial_id: int, signum: int) -> None:
    """Mark this worker's running trial FAIL with the signal as its reason."""
    import signal

    storage = _compat.storage_of(study)
    name = signal.Signals(signum).name
    try:
        if storage.get_trial(trial_id).state != TrialState.RUNNING:
            return
        storage.set_trial_user_attr(trial_id, "status", "failed")
        storage.set_trial_user_attr(trial_id, "reason", f"interrupted by {name}; the next run "
                                    "replaces it with a new slot")
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    except (optuna.exceptions.UpdateFinishedTrialError, KeyboardInterrupt, Interrupted):
        pass  # finished meanwhile, or a second signal: the heartbeat marks it stale instead


#: Study user attribute holding :func:`study_identity` of the config that made the study.
IDENTITY_ATTR = "identity"


def study_identity(config: StudyConfig) -> dict[str, Any]:
    """What makes a study one search: architecture type, the search space as Optuna
    distributions, the objectives and their directions, dataset, resolution and the builder
    options. Budget sizes (trials, epochs, samples), seeds and training settings are not part
    of it: a study can be resumed with more trials.

    Example:
        >>> import neuromosaic_optuna as nm
        >>> ident = study_identity(nm.load_study_file("studies/quickstart.toml"))
        >>> sorted(ident["search_space"])
        ['depth_multiplier', 'se_ratio', 'width_multiplier']
    """
    import json

    from optuna.distributions import distribution_to_json

    from neuromosaic_optuna.space import SearchSpace

    space = SearchSpace(config.search_space)
    identity = {
        "architecture_type": config.architecture_type,
        "search_space": {n: json.loads(distribution_to_json(d))
                         for n, d in space.distributions.items()},
        "objectives": [f"{n}:{d}" for n, d in zip(config.metric_names, config.directions,
                                                   strict=True)],
        "dataset": config.dataset,
        "resolution": config.resolution,
        "max_resolution": config.max_resolution,
        "model_options": {**config.model_options, "head_dim": config.head_dim},
    }
    return dict(json.loads(json.dumps(identity, sort_keys=True, default=str)))


def _identity_difference(stored: dict[str, Any], current: dict[str, Any]) -> str:
    """The first difference of two identities, in words."""
    for key in sorted(set(stored) | set(current)):
        old, new = stored.get(key), current.get(key)
        if old == new:
            continue
        if key == "search_space" and isinstance(old, dict) and isinstance(new, dict):
            added = sorted(set(new) - set(old))
            removed = sorted(set(old) - set(new))
            changed = sorted(n for n in set(old) & set(new) if old[n] != new[n])
            parts = ([f"adds {', '.join(added)}"] if added else []) + (
                [f"drops {', '.join(removed)}"] if removed else []) + (
                [f"changes the range of {', '.join(changed)}"] if changed else [])
            return "search_space " + "; ".join(parts)
        return f"{key} {_json_short(old)} -> {_json_short(new)}"
    return "nothing"


def _json_short(value: Any, limit: int = 80) -> str:
    """``value`` as compact JSON, cut to ``limit`` characters (for one-line messages)."""
    import json

    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _check_identity(study: optuna.Study, config: StudyConfig, allow_changed: bool) -> None:
    current = study_identity(config)
    stored = study.user_attrs.get(IDENTITY_ATTR)
    if isinstance(stored, dict) and stored != current and not allow_changed:
        raise ConfigError("--study-name", f"study {study.study_name!r} was made with another "
                          f"search: this file {_identity_difference(stored, current)}; use "
                          "another --study-name, or --allow-changed-space if the change is "
                          "intended")
    if stored != current:
        study.set_user_attr(IDENTITY_ATTR, current)


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


#: Consecutive failed trials (diverged ones included) after which a worker gives up: a bug
#: or a setting, not bad luck.
MAX_FAILURES_IN_A_ROW = 5

#: Study user attribute with the reason a run stopped on failing trials (see
#: :class:`TrialsFailedError`); the next run clears it and tries again.
FAILURE_STOP_ATTR = "failure_stop"


class TrialsFailedError(ConfigError):
    """A run stopped because its trials keep failing: :data:`MAX_FAILURES_IN_A_ROW` in a row,
    more failed trials than the slots the worker found (each failure opens a replacement, so
    this bounds the replacements), or an input error that only a trial could find (an
    unreadable image, an unwritable artifact folder). ``str()`` is one line with the likely
    cause; the reason is also stored on the study (:data:`FAILURE_STOP_ATTR`). The CLI exits
    with code 2."""


def _failure_message(trials: Sequence[FrozenTrial], config: StudyConfig | None,
                     why: str) -> tuple[str, str]:
    """(field, message) for a stop on ``trials`` (the failed ones, the last is the latest)."""
    last = trials[-1]
    reason = last.user_attrs.get("reason") or last.system_attrs.get("fail_reason") \
        or "see the trial's log"
    reason = str(reason).strip().splitlines()[0] if str(reason).strip() else "no reason"
    if all(t.user_attrs.get("status") == "diverged" for t in trials):
        settings = ""
        if config is not None:
            lr = config.search_space.get("learning_rate", config.learning_rate)
            wd = config.search_space.get("weight_decay", config.weight_decay)
            settings = (f" (learning_rate {_json_short(lr)}, weight_decay {_json_short(wd)}, "
                        f"optimizer {config.optimizer})")
        return "learning_rate", (f"{why} diverged (last: trial {last.number}: {reason}); the "
                                 f"learning rate or weight decay is likely too high{settings}: "
                                 "lower them")
    return "", f"{why} failed (last: trial {last.number}: {reason}); the run stops"


def _await_stragglers(study: optuna.Study) -> bool:
    """With heartbeats on, wait while other workers' trials run: a worker that died leaves a
    RUNNING trial that turns stale, fails, and is retried as a new WAITING trial. Returns True
    when a WAITING trial appeared (work on), False when nothing is left to wait for."""
    from optuna.storages import fail_stale_trials

    beat = getattr(_compat.storage_of(study), "get_heartbeat_interval", None)
    heartbeat_interval = beat() if callable(beat) else None
    if heartbeat_interval is None:
        return False
    interval = float(heartbeat_interval or 1)
    while True:
        states = {t.state for t in study.get_trials(deepcopy=False)}
        if TrialState.WAITING in states:
            return True
        if TrialState.RUNNING not in states:
            return False
        time.sleep(min(interval, 0.5))  # short: the study is done when the last one ends
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            fail_stale_trials(study)


def _lost_storage(exc: BaseException) -> bool:
    """True when ``exc`` comes from a lost database connection: a ``StorageInternalError``
    anywhere in its chain. Optuna's trial loop can mask one, e.g. with an
    ``UnboundLocalError`` or ``AssertionError`` raised in its ``finally`` when it could not
    record a trial's result."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, optuna.exceptions.StorageInternalError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _finished(study: optuna.Study, trial_id: int) -> bool:
    """Whether the storage has ``trial_id`` finished (False when it cannot be read)."""
    try:
        return _compat.storage_of(study).get_trial(trial_id).state.is_finished()
    except optuna.exceptions.StorageInternalError:
        return False


def _fail_lost_trial(study: optuna.Study, trial_id: int) -> None:
    """Mark this worker's trial FAIL (and open a slot in its place) when its result could not
    be stored because the database went away; nothing happens if it was recorded after all
    or another worker already failed it as stale."""
    storage = _compat.storage_of(study)
    trial = storage.get_trial(trial_id)
    if trial.state != TrialState.RUNNING:
        return
    storage.set_trial_user_attr(trial_id, "status", "failed")
    storage.set_trial_user_attr(trial_id, "reason", "the database connection was lost while "
                                "its result was stored; a new slot replaces it")
    if storage.set_trial_state_values(trial_id, TrialState.FAIL):
        _replace_failed(study, storage.get_trial(trial_id))


_DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


class _DiskFull(BaseException):
    """A full disk inside a trial. A ``BaseException``, so that Optuna's trial loop neither
    logs it as the trial's failure (with a traceback) nor tries to store anything more; the
    trial stays RUNNING and a resume retries it as stale. :func:`work` raises the OSError."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class _OneLineKnownFailures(logging.Filter):
    """Optuna logs a failed trial with its whole traceback. For the failures whose reason the
    trial stores and the run reports (divergence, an impossible architecture, bad input), the
    one-line message is enough: the traceback is dropped. Any other exception keeps it."""

    def filter(self, record: logging.LogRecord) -> bool:
        from neuromosaic_optuna.exceptions import ArchitectureError, DivergedError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (DivergedError, ArchitectureError, ConfigError)):
            record.exc_info = None
            record.exc_text = None
        return True


@contextlib.contextmanager
def _known_failures_in_one_line() -> Iterator[None]:
    handlers = list(logging.getLogger("optuna").handlers)
    quiet = _OneLineKnownFailures()
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)


def _write_timeline(timeline: Timeline, trial: optuna.trial.Trial) -> None:
    """Store the trial's timeline; a storage that cannot take it (lost, or the trial already
    failed as stale) loses only the timeline: the result's own write reports the problem."""
    with contextlib.suppress(optuna.exceptions.StorageInternalError,
                             optuna.exceptions.UpdateFinishedTrialError):
        timeline.write(trial)


def work(study: optuna.Study, objective: Callable[[optuna.trial.Trial], Any], *,
         callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
         show_progress_bar: bool = False) -> int:
    """Run the study's WAITING slots until none is left; return how many trials this ran.

    This is what every worker process does. It never creates a trial of its own: when
    ``study.ask()`` finds no WAITING trial, the worker stops (with heartbeats on, it first
    waits for the other workers' running trials, so it can take over a retry of a trial
    whose worker died). A trial that raises (or diverges) is recorded as FAIL and replaced by
    a new slot; a lost database connection is retried. The replacements are bounded: after
    :data:`MAX_FAILURES_IN_A_ROW` failed trials in a row, after more failed trials than the
    slots found at the start (at least :data:`MAX_FAILURES_IN_A_ROW`), or at once when a trial
    raises a :class:`ConfigError` (bad input only a trial could find), the worker stops with
    :class:`TrialsFailedError` and stores the reason on the study. Each trial stores its
    timeline (user attribute ``timeline``, read by
    :func:`neuromosaic_optuna.record.timeline_of`).
    """
    ran: list[int] = []
    failures: list[FrozenTrial] = []  # failed in a row
    failed_total: list[FrozenTrial] = []
    fatal: list[tuple[FrozenTrial | None, ConfigError]] = []
    in_flight: list[int] = []  # id of the trial this worker runs, until its result is stored
    max_failed = max(MAX_FAILURES_IN_A_ROW,
                     len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,))))
    if study.user_attrs.get(FAILURE_STOP_ATTR):  # an earlier run stopped; this one retries
        study.set_user_attr(FAILURE_STOP_ATTR, None)

    # The trial timeline's boundaries, wall clock: when this worker became free (its previous
    # trial stored as finished, or now) and the last claim of a slot (start, end).
    free_since = [time.time()]
    claimed: list[float] = []

    def on_claim(start: float, end: float) -> None:
        claimed[:] = [start, end]

    def timed(trial: optuna.trial.Trial) -> Any:
        timeline = Timeline()
        if claimed:
            start, end = claimed
            timeline.add("queue_wait", start - free_since[0])
            timeline.add("claim", end - start)
            timeline.add("sample", time.time() - end)  # the sampler's part of ``ask``
            claimed.clear()
        with timeline.current():
            try:
                values = objective(trial)
            except Exception:
                _write_timeline(timeline, trial)
                raise
        _write_timeline(timeline, trial)
        return values

    def tracked(trial: optuna.trial.Trial) -> Any:
        in_flight[:] = [_compat.trial_id(trial)]
        try:
            return timed(trial)
        except ConfigError as exc:  # bad input found only now: no other trial can do better
            fatal.append((None, exc))
            trial.set_user_attr("status", "failed")
            trial.set_user_attr("reason", str(exc))
            raise
        except OSError as exc:
            if exc.errno in _DISK_FULL:  # nothing more can be stored: leave Optuna's loop
                raise _DiskFull(exc) from None
            raise
        except (KeyboardInterrupt, Interrupted) as exc:
            # Fail the trial here, with the reason, and leave Optuna's loop by an exception
            # it does not catch (it would log a KeyboardInterrupt with its whole traceback).
            import signal

            signum = exc.signum if isinstance(exc, Interrupted) else int(signal.SIGINT)
            _fail_interrupted(study, _compat.trial_id(trial), signum)
            in_flight.clear()
            raise Interrupted(signum) from None

    def count(_: optuna.Study, trial: FrozenTrial) -> None:
        in_flight.clear()
        free_since[0] = (trial.datetime_complete.timestamp() if trial.datetime_complete
                         else time.time())
        ran.append(trial.number)
        if _SIGNALLED:
            raise Interrupted(_SIGNALLED[0])
        if trial.state == TrialState.FAIL:
            failures.append(trial)
            failed_total.append(trial)
            if fatal and fatal[-1][0] is None:
                fatal[-1] = (trial, fatal[-1][1])
            if fatal or len(failures) >= MAX_FAILURES_IN_A_ROW or len(failed_total) >= max_failed:
                study.stop()
        else:
            failures.clear()

    def stopping() -> bool:
        return bool(fatal) or len(failures) >= MAX_FAILURES_IN_A_ROW \
            or len(failed_total) >= max_failed

    storage_errors = 0
    try:
        # workers only ever run WAITING slots; known failures are logged in one line each
        with _compat.refuse_new_trials(study, _NoSlot), \
                _compat.time_claims(study, on_claim), _known_failures_in_one_line():
            while not stopping():
                try:
                    if in_flight:  # its result was lost with the connection: fail and replace it
                        _fail_lost_trial(study, in_flight[0])
                        in_flight.clear()
                    waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
                    try:
                        study.optimize(tracked, n_trials=max(waiting, 1), catch=(Exception,),
                                       callbacks=[count, _replace_failed, *callbacks],
                                       show_progress_bar=show_progress_bar and waiting > 0,
                                       gc_after_trial=False)
                    except _NoSlot:
                        if not _await_stragglers(study):
                            break
                except Exception as exc:
                    if in_flight and _finished(study, in_flight[0]):
                        # Its result could not be told because the trial was already finished:
                        # failed as stale by another worker (its heartbeats were lost with the
                        # connection) while it still ran; the retry is another slot. Go on.
                        in_flight.clear()
                        continue
                    if not _lost_storage(exc):
                        raise
                    storage_errors += 1  # the database went away; pool_pre_ping reconnects
                    if storage_errors > 30:
                        raise
                    time.sleep(1.0)
                if STOPPED_ATTR in study.user_attrs:  # a stopping callback ended the study
                    break
    except _DiskFull as exc:
        raise exc.error from None
    except (KeyboardInterrupt, Interrupted) as exc:  # outside the objective (e.g. sampling)
        import signal

        signum = exc.signum if isinstance(exc, Interrupted) else int(signal.SIGINT)
        if in_flight:
            _fail_interrupted(study, in_flight[0], signum)
        raise Interrupted(signum) from None
    if stopping():
        config = getattr(objective, "config", None)
        config = config if isinstance(config, StudyConfig) else None
        if fatal:
            trial, error = fatal[-1]
            field, message = error.path, error.message
            if trial is not None:
                message += f" (found by trial {trial.number})"
        elif len(failures) >= MAX_FAILURES_IN_A_ROW:
            field, message = _failure_message(failures, config,
                                              f"{len(failures)} trials in a row")
        else:
            field, message = _failure_message(failed_total, config,
                                              f"{len(failed_total)} trials of this run")
        study.set_user_attr(FAILURE_STOP_ATTR, {"field": field, "reason": message,
                                                "failed_trials": [t.number for t in failed_total]})
        raise TrialsFailedError(field, message)
    return len(ran)


def preflight(config: StudyConfig, objective: Objective | None = None) -> Objective:
    """Check everything that can be checked before the first trial, writing nothing: the
    sampler, the pruner and its stop rule are built once with their arguments, and
    :meth:`Objective.preflight` checks folders, the search space against the builder and the
    dataset. Returns the (checked) objective.

    Raises:
        ConfigError: One line naming the field and the fix.

    Example:
        >>> import neuromosaic_optuna as nm
        >>> cfg = nm.load_study_file("studies/quickstart.toml", budget="smoke")
        >>> type(preflight(cfg)).__name__
        'Objective'
    """
    from neuromosaic_optuna.pruners import stop_callback_for

    make_sampler(config)
    make_pruner(config)
    stop_callback_for(config)
    objective = objective or Objective(config)
    objective.preflight()
    return objective


def with_pruning(config: StudyConfig, study: optuna.Study, objective: Objective
                  ) -> list[Callable[[optuna.Study, FrozenTrial], None]]:
    """Install the config's per-epoch pruning hook on ``objective`` (once) and return the
    study-stopping callback of ``[pruner.stop]``, if any."""
    from neuromosaic_optuna.pruners import epoch_hook_for, stop_callback_for

    if not any(hasattr(hook, "pruner") for hook in objective.epoch_hooks):
        objective.epoch_hooks.append(epoch_hook_for(config, study))
    stop = stop_callback_for(config)
    return [stop] if stop is not None else []


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
    allow_changed_space: bool = False,
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
        allow_changed_space: See :func:`create_study`.

    Returns:
        The study.

    Example:
        >>> import neuromosaic_optuna as nm
        >>> cfg = nm.load_study_file("studies/quickstart.toml",
        ...                          overrides={"max_trials": 2, "epochs": 1})
        >>> study = nm.run_study(cfg)
        >>> count_finished(study)
        2
    """
    objective = objective or Objective(config, timing=timing)
    study = create_study(config, storage=storage, study_name=study_name,
                         allow_changed_space=allow_changed_space)
    target = n_trials if n_trials is not None else config.max_trials
    callbacks = [*callbacks, *with_pruning(config, study, objective),
                 RemainingTime(target)]
    # A second round covers trials that failed beyond the retry limit of a stale trial.
    for _ in range(2):
        if not open_slots(study, target) and count_finished(study) >= target:
            break
        work(study, objective, callbacks=callbacks, show_progress_bar=show_progress_bar)
        if STOPPED_ATTR in study.user_attrs:
            break
    return study


def usable_cores() -> int:
    """The CPU cores this process may run on: its affinity mask (taskset, SLURM's
    ``--cpus-per-task``, cgroup cpusets), which ``os.cpu_count()`` ignores; ``os.cpu_count()``
    where the platform has no affinity mask (macOS, Windows).

    Example:
        >>> import os
        >>> 1 <= usable_cores() <= (os.cpu_count() or 1)
        True
    """
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def worker_threads(threads: int) -> Iterator[None]:
    """Within the block, torch and the BLAS/OpenMP pools of numpy and scikit-learn (the
    sampler's surrogate) use at most ``threads`` threads; both are restored afterwards.

    Every worker of a shared machine runs in such a block: with the pools at their default
    (all cores), N workers start N x cores threads, and the sampler's small matrix products
    then wait on each other (measured on 2 cores: a suggestion took twice as long).

    Example:
        >>> import torch
        >>> before = torch.get_num_threads()
        >>> with worker_threads(1):
        ...     torch.get_num_threads()
        1
        >>> torch.get_num_threads() == before
        True
    """
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(previous)


def _worker_process(config: StudyConfig, storage_url: str, study_name: str | None,
                    threads: int, storage_options: dict[str, Any]) -> None:
    """Entry point of one worker process (spawned): run slots until none is left."""
    from neuromosaic_optuna.storage import make_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt, Interrupted, TrialsFailedError), \
            worker_threads(threads), raise_on_sigterm():  # the caller reports
        study = create_study(config, storage=make_storage(storage_url, **storage_options),
                             study_name=study_name)
        objective = Objective(config)
        callbacks = with_pruning(config, study, objective)
        work(study, objective, callbacks=callbacks)


class RemainingTime:
    """Optuna callback: after the first trial that trained (``train_time > 0``), print to
    stderr an estimate of the study's remaining training time (that trial's training time
    times the trials still to finish; rejected and pruned trials make it an upper bound).

    Example:
        >>> import optuna
        >>> study = optuna.create_study()
        >>> trial = optuna.trial.create_trial(value=0.5, user_attrs={"metrics": {
        ...     "train_time": 30.0}})
        >>> study.add_trial(trial)
        >>> RemainingTime(5).message(study, study.trials[0])
        'first trained trial: 30 s of training; about 2.0 min of training left for 4 trial(s)'
    """

    def __init__(self, target: int) -> None:
        self.target = target
        self.said = False

    def message(self, study: optuna.Study, trial: FrozenTrial) -> str | None:
        """The estimate after ``trial``, or None when it did not train."""
        seconds = float((trial.user_attrs.get("metrics") or {}).get("train_time") or 0.0)
        if seconds <= 0:
            return None
        left = max(0, self.target - count_finished(study))
        return (f"first trained trial: {seconds:.0f} s of training; about "
                f"{seconds * left / 60:.1f} min of training left for {left} trial(s)")

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.said:
            return
        text = self.message(study, trial)
        if text is not None:
            import sys

            self.said = True
            print(text, file=sys.stderr)


def place_workers(config: StudyConfig, workers: int,
                  devices: Sequence[str] | None = None) -> list[str]:
    """The device of each of ``workers`` workers: round-robin over ``devices`` when given;
    else, when the study's device is ``auto`` or ``cuda`` and this machine has several CUDA
    GPUs, round-robin over all of them; else the study's device for every worker.

    Example:
        >>> from neuromosaic_optuna.config import load_config
        >>> cfg = load_config({"name": "p", "architecture_type": "conv_net",
        ...                    "search_space": {"w": [1, 2]}, "device": "cpu"})
        >>> place_workers(cfg, 3, ["cuda:0", "cuda:1"])
        ['cuda:0', 'cuda:1', 'cuda:0']
        >>> place_workers(cfg, 2)
        ['cpu', 'cpu']
    """
    if not devices and config.device in ("auto", "cuda"):
        from neuromosaic_optuna.training import cuda_device_count

        count = cuda_device_count()
        if count > 1:
            devices = [f"cuda:{i}" for i in range(count)]
    if not devices:
        return [config.device] * workers
    return [devices[i % len(devices)] for i in range(workers)]


def run_workers(config: StudyConfig, *, storage_url: str, study_name: str | None = None,
                workers: int = 2, n_trials: int | None = None,
                storage_options: dict[str, Any] | None = None,
                objective: Objective | None = None,
                allow_changed_space: bool = False,
                devices: Sequence[str] | None = None) -> optuna.Study:
    """Run a study with ``workers`` processes sharing one storage; return the study.

    The slots are opened here, once; each worker claims WAITING slots until none is left,
    so the study ends with exactly ``n_trials`` finished trials. The calling process is one
    of the workers (it has torch and the dataset loaded already); ``workers - 1`` more are
    spawned. torch's (and the BLAS pools') threads are split between the workers
    (:func:`worker_threads`, :func:`usable_cores` ``// workers`` each,
    at least one; the caller's setting is restored afterwards). The storage must be one that
    several processes can share (PostgreSQL/MySQL, SQLite, a journal file).
    ``storage_options`` are :func:`neuromosaic_optuna.storage.make_storage` keywords
    (heartbeat interval, grace period, retries), the same in every process. ``objective``
    reuses the caller's :class:`Objective` (its dataset cache) in the calling process.
    No more processes are started than there are open slots: ``workers`` is capped at them.
    Workers are placed on devices by :func:`place_workers` (``devices``, e.g.
    ``["cuda:0", "cuda:1"]``); the calling process is worker 0.

    Example (not run as a doctest: it spawns processes)::

        from neuromosaic_optuna import load_study_file
        from neuromosaic_optuna.study import count_finished, run_workers
        config = load_study_file("studies/quickstart.toml")
        study = run_workers(config, storage_url="sqlite:///nas.db", workers=2)
        assert count_finished(study) == config.max_trials
    """
    import multiprocessing

    from neuromosaic_optuna.storage import make_storage

    options = dict(storage_options or {})
    study = create_study(config, storage=make_storage(storage_url, **options),
                         study_name=study_name, allow_changed_space=allow_changed_space)
    target = n_trials if n_trials is not None else config.max_trials
    threads = max(1, usable_cores() // workers)
    ctx = multiprocessing.get_context("spawn")
    placement = place_workers(config, workers, devices)
    objective = objective or Objective(config)
    if placement[0] != config.device:
        from neuromosaic_optuna.training import resolve_device

        objective.device = resolve_device(placement[0])
    callbacks = with_pruning(config, study, objective)
    for _ in range(2):  # a second round covers trials failed beyond the retry limit
        if not open_slots(study, target) and count_finished(study) >= target:
            break
        waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        workers = max(1, min(workers, waiting))  # never more processes than open slots
        procs = [ctx.Process(target=_worker_process,
                             args=(config.with_overrides(device=placement[i]), storage_url,
                                   study.study_name, threads, options),
                             name=f"neuromosaic-worker-{i}") for i in range(1, workers)]
        for p in procs:
            p.start()
        try:
            with worker_threads(threads):
                work(study, objective, callbacks=callbacks)
        except BaseException as exc:
            for p in procs:  # Ctrl-C reaches the whole group; a SIGTERM only this process
                if isinstance(exc, Interrupted) and p.is_alive():
                    p.terminate()  # each fails its running trial with the reason and stops
            for p in procs:
                p.join(timeout=30)
            raise
        for p in procs:
            p.join()
        if STOPPED_ATTR in study.user_attrs:
            break
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
        s = status_of(t)
        status[s] = status.get(s, 0) + 1
    return {"states": _states(trials), "status": status, "total": len(trials)}
