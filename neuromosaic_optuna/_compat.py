"""Every reach into Optuna's (and optuna-dashboard's) private internals, in one place.

Optuna promises nothing about names that start with ``_``. Each one this package needs is
reached here, through a guard: when an Optuna release renames or removes it, the guard raises
:class:`OptunaCompatError` at first use (never a silent fallback that changes results),
naming the missing piece, the installed version and the versions this code was written
against. ``pyproject.toml`` pins ``optuna>=5.0,<6``; the tests run against 5.0.0 and the
newest 5.x.

The module sits at the bottom of the import graph: it imports only the standard library,
numpy, Optuna and (lazily) optuna-dashboard. One section per Optuna area, so that sections
added later (by another change) merge by concatenation.

Example:
    >>> import optuna
    >>> study = optuna.create_study()
    >>> study.add_trial(optuna.trial.create_trial(value=1.0))
    >>> trial_id(study.trials[0]) == trial_id(study.trials[0])
    True
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import importlib
import inspect
from collections.abc import Callable, Container, Iterator
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "CLAIM_SPREAD",
    "OPTUNA_WRITTEN_AGAINST",
    "OptunaCompatError",
    "OrphanAwareRDBStorage",
    "compute_hypervolume",
    "distribution_contains",
    "fast_non_domination_rank",
    "generation_key_suffix",
    "journal_file_path",
    "latest_frozen_trial",
    "refuse_new_trials",
    "time_claims",
    "sampler_rng",
    "search_space_transform",
    "storage_of",
    "study_id",
    "study_snapshot",
    "trial_handle",
    "trial_id",
    "unwrap_cached_storage",
]

#: The Optuna releases every reach below was checked against.
OPTUNA_WRITTEN_AGAINST = "optuna 5.0/5.1"


class OptunaCompatError(RuntimeError):
    """An Optuna internal this package relies on is missing or has changed.

    Example:
        >>> str(OptunaCompatError("optuna.Study._storage")).split(";")[0]  # doctest: +ELLIPSIS
        'optuna.Study._storage is missing from the installed optuna ...'
    """

    def __init__(self, what: str, *, package: str = "optuna",
                 written_against: str = OPTUNA_WRITTEN_AGAINST) -> None:
        self.what = what
        super().__init__(
            f"{what} is missing from the installed {package} {_version(package)}; "
            f"neuromosaic_optuna was written against {written_against}: install a version in "
            f"that range (pip install 'optuna>=5.0,<6') or update neuromosaic_optuna/_compat.py")


def _version(package: str) -> str:
    if package == "optuna":
        return str(optuna.__version__)
    try:
        return str(importlib.import_module(package.replace("-", "_")).__version__)
    except (ImportError, AttributeError):
        return "(version unknown)"


def _attr(obj: Any, name: str, owner: str) -> Any:
    """``obj.<name>``, or :class:`OptunaCompatError` naming ``<owner>.<name>``."""
    try:
        return getattr(obj, name)
    except AttributeError:
        raise OptunaCompatError(f"{owner}.{name}") from None


def _private(module: str, name: str) -> Any:
    """``from <module> import <name>``, or :class:`OptunaCompatError` naming both."""
    try:
        found = importlib.import_module(module)
    except ImportError:
        raise OptunaCompatError(f"module {module}") from None
    return _attr(found, name, module)


# =========================================================================== study and trial


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage a study reads and writes (Optuna's ``Study._storage``; for an RDB storage
    the caching wrapper around it).

    Example:
        >>> import optuna
        >>> isinstance(storage_of(optuna.create_study()), optuna.storages.BaseStorage)
        True
    """
    storage = _attr(study, "_storage", "optuna.Study")
    if not isinstance(storage, BaseStorage):
        raise OptunaCompatError("optuna.Study._storage (a BaseStorage)")
    return storage


def study_id(study: optuna.Study) -> int:
    """The storage's id of a study (Optuna's ``Study._study_id``).

    Example:
        >>> import optuna
        >>> isinstance(study_id(optuna.create_study()), int)
        True
    """
    return int(_attr(study, "_study_id", "optuna.Study"))


def trial_id(trial: FrozenTrial | optuna.trial.Trial) -> int:
    """The storage's id of a trial (``_trial_id``; unlike ``number``, unique across studies).

    Example:
        >>> import optuna
        >>> trial_id(optuna.trial.create_trial(value=1.0)) is not None
        True
    """
    owner = "optuna.trial.FrozenTrial" if isinstance(trial, FrozenTrial) else "optuna.Trial"
    return int(_attr(trial, "_trial_id", owner))


def latest_frozen_trial(trial: optuna.trial.Trial) -> FrozenTrial:
    """A running trial's current record, as ``Trial.should_prune`` gives it to the pruner
    (``Trial._get_latest_trial``)."""
    return _attr(trial, "_get_latest_trial", "optuna.Trial")()


def trial_handle(study: optuna.Study, trial: FrozenTrial) -> optuna.trial.Trial:
    """A :class:`optuna.Trial` for an existing (e.g. finished) trial, for APIs such as
    ``optuna_dashboard.save_note`` that take one.

    Built with Optuna's public ``Trial(study, trial_id)`` on a copy of the study whose sampler
    is a plain ``RandomSampler``, so that the study's own sampler sees no ``before_trial``
    call (ours would write the trial's generation).

    Example:
        >>> import optuna
        >>> study = optuna.create_study()
        >>> study.add_trial(optuna.trial.create_trial(value=1.0))
        >>> trial_handle(study, study.trials[0]).number
        0
    """
    quiet = copy.copy(study)
    quiet.sampler = optuna.samplers.RandomSampler(seed=0)
    return optuna.trial.Trial(quiet, trial_id(trial))


@contextlib.contextmanager
def refuse_new_trials(study: optuna.Study, error: type[Exception]) -> Iterator[None]:
    """Within the block, ``study.ask()`` (hence ``study.optimize``) raises ``error`` instead of
    creating a new trial when no WAITING trial is left; enqueueing still works.

    Optuna has no public switch for this: the storage's ``create_new_trial`` is replaced on
    the live storage object (``study.ask`` calls it without a template trial exactly when it
    found no WAITING trial) and restored on exit.

    Example:
        >>> import optuna
        >>> class NoSlot(Exception): ...
        >>> study = optuna.create_study()
        >>> with refuse_new_trials(study, NoSlot):
        ...     study.enqueue_trial({})
        ...     first = study.ask().number
        ...     try:
        ...         study.ask()
        ...     except NoSlot:
        ...         print("refused")
        refused
        >>> study.ask().number
        1
    """
    storage = storage_of(study)
    create_new_trial = _attr(storage, "create_new_trial", type(storage).__name__)
    if "template_trial" not in inspect.signature(create_new_trial).parameters:
        raise OptunaCompatError(f"{type(storage).__name__}.create_new_trial(template_trial=)")

    def slots_only(study_id: int, template_trial: FrozenTrial | None = None) -> int:
        if template_trial is None:
            raise error
        return create_new_trial(study_id, template_trial)

    storage.create_new_trial = slots_only  # type: ignore[method-assign]
    try:
        yield
    finally:
        del storage.create_new_trial


#: How many of the oldest WAITING trials a claim chooses among (see :func:`time_claims`).
CLAIM_SPREAD = 16


@contextlib.contextmanager
def time_claims(study: optuna.Study, on_claim: Callable[[float, float], None], *,
                seed: int | None = None) -> Iterator[None]:
    """Within the block, ``study.ask()`` claims a WAITING trial the way Optuna does (the
    oldest first), except that after losing a race for one to another worker it goes on at
    a random one of the next :data:`CLAIM_SPREAD`; ``on_claim(start, end)`` is called with
    the wall-clock times (``time.time()``) the claim began and ended (nothing when no
    WAITING trial was left).

    Optuna's own claim has every worker try the WAITING trials in queue order: with N
    workers asking at once, the losers of the oldest all race for the next one, and so on,
    each attempt waiting on a row lock (or a journal record). Spreading the losers keeps a
    worker without rivals in queue order (the same seed, the same trials) and a claim atomic
    (the storage sets WAITING to RUNNING once).

    Optuna has no hook for this: ``Study._pop_waiting_trial_id`` (what ``ask`` calls to
    take a WAITING trial) is replaced on the live study object and restored on exit.

    Example:
        >>> import optuna
        >>> study = optuna.create_study()
        >>> claims = []
        >>> with time_claims(study, lambda start, end: claims.append(end >= start)):
        ...     study.enqueue_trial({})
        ...     _ = study.ask()
        >>> claims
        [True]
    """
    import random
    import time

    _attr(study, "_pop_waiting_trial_id", "Study")  # what is replaced must exist
    storage = storage_of(study)
    rng = random.Random(seed)

    def pop() -> int | None:
        start = time.time()
        waiting = storage.get_all_trials(study_id(study), deepcopy=False,
                                         states=(TrialState.WAITING,))
        order = list(range(len(waiting)))
        position = 0
        while position < len(order):
            candidate = waiting[order[position]]
            try:
                claimed = storage.set_trial_state_values(trial_id(candidate),
                                                         state=TrialState.RUNNING)
            except optuna.exceptions.UpdateFinishedTrialError:
                claimed = False
            if claimed:
                on_claim(start, time.time())
                return trial_id(candidate)
            rest = order[position + 1:]  # lost a race: go on at a random one of the next
            jump = rng.randrange(min(len(rest), CLAIM_SPREAD)) if rest else 0
            order[position + 1:] = rest[jump:] + rest[:jump]
            position += 1
        return None

    study._pop_waiting_trial_id = pop  # type: ignore[method-assign]
    try:
        yield
    finally:
        del study._pop_waiting_trial_id


# =========================================================================== storages


def unwrap_cached_storage(storage: BaseStorage) -> BaseStorage:
    """The storage behind Optuna's caching layer (``_CachedStorage._backend``), or
    ``storage`` itself when it is not wrapped.

    Example:
        >>> import optuna
        >>> study = optuna.create_study(storage="sqlite:///:memory:")
        >>> type(unwrap_cached_storage(storage_of(study))).__name__
        'RDBStorage'
    """
    cached = _attr(optuna.storages, "_CachedStorage", "optuna.storages")
    if not isinstance(storage, cached):
        return storage
    inner = _attr(storage, "_backend", "optuna.storages._CachedStorage")
    if not isinstance(inner, BaseStorage):
        raise OptunaCompatError("optuna.storages._CachedStorage._backend (a BaseStorage)")
    return inner


def journal_file_path(storage: BaseStorage) -> str | None:
    """The log file of a journal storage on a ``JournalFileBackend``
    (``JournalStorage._backend._file_path``); ``None`` for any other storage.

    Example:
        >>> import optuna, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "j.log")
        >>> backend = optuna.storages.journal.JournalFileBackend(path)
        >>> journal_file_path(optuna.storages.JournalStorage(backend)) == path
        True
    """
    storage = unwrap_cached_storage(storage)
    if not isinstance(storage, JournalStorage):
        return None
    backend = _attr(storage, "_backend", "optuna.storages.JournalStorage")
    if not isinstance(backend, JournalFileBackend):
        return None
    return str(_attr(backend, "_file_path", "optuna.storages.journal.JournalFileBackend"))


def _require_stale_trial_hook() -> Any:
    """Check what :class:`OrphanAwareRDBStorage` overrides and queries; return Optuna's
    ``TrialModel``."""
    _attr(RDBStorage, "_get_stale_trial_ids", "optuna.storages.RDBStorage")
    heartbeat = _private("optuna.storages._heartbeat", "BaseHeartbeat")
    _attr(heartbeat, "_get_stale_trial_ids", "optuna.storages._heartbeat.BaseHeartbeat")
    model = _private("optuna.storages._rdb.models", "TrialModel")
    from sqlalchemy import orm  # an Optuna dependency; relationships exist once configured

    orm.configure_mappers()
    for column in ("trial_id", "study_id", "state", "datetime_start", "heartbeats"):
        _attr(model, column, "optuna.storages._rdb.models.TrialModel")
    return model


class OrphanAwareRDBStorage(RDBStorage):
    """Optuna's ``RDBStorage`` whose stale trials include *orphans*: RUNNING trials without
    any heartbeat that started more than the grace period ago.

    Optuna's ``fail_stale_trials`` asks the private ``_get_stale_trial_ids``, which only
    counts trials whose last heartbeat is too old. A live worker records its first heartbeat
    right after claiming a trial, so an orphan is a claim whose worker never learned of it
    (the connection dropped as the claim was committed) or died at once; Optuna never counts
    those as stale, and the study would wait for them forever. Constructing one checks that
    the hook and Optuna's tables are still there (:class:`OptunaCompatError` otherwise).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _require_stale_trial_hook()
        super().__init__(*args, **kwargs)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        stale: list[int] = super()._get_stale_trial_ids(study_id)
        model = _require_stale_trial_hook()
        grace = self.grace_period or 2 * (self.heartbeat_interval or 60)
        now = datetime.datetime.now()  # trials store the worker's local, naive time
        session = self.scoped_session()
        try:
            without_heartbeat = (session.query(model)
                                 .filter(model.state == TrialState.RUNNING)
                                 .filter(model.study_id == study_id)
                                 .filter(~model.heartbeats.any()).all())
            orphans = [int(t.trial_id) for t in without_heartbeat
                       if t.datetime_start is not None
                       and (now - t.datetime_start).total_seconds() > grace]
        finally:
            session.close()
        return stale + [i for i in orphans if i not in stale]


# =========================================================================== samplers


def sampler_rng(sampler: optuna.samplers.NSGAIISampler) -> np.random.RandomState:
    """NSGA-II's own random state (``NSGAIISampler._rng.rng``), shared with its crossover and
    mutation, so that a subclass's extra draws keep one seeded stream.

    Example:
        >>> import optuna
        >>> sampler = optuna.samplers.NSGAIISampler(seed=1)
        >>> int(sampler_rng(sampler).randint(100)) == int(
        ...     sampler_rng(optuna.samplers.NSGAIISampler(seed=1)).randint(100))
        True
    """
    lazy = _attr(sampler, "_rng", "optuna.samplers.NSGAIISampler")
    rng = _attr(lazy, "rng", "optuna.samplers.NSGAIISampler._rng")
    if not isinstance(rng, np.random.RandomState):
        raise OptunaCompatError("optuna.samplers.NSGAIISampler._rng.rng (a RandomState)")
    return rng


def generation_key_suffix() -> str:
    """The ending of the trial system attribute in which a genetic sampler stores a trial's
    generation (``<SamplerClass>:generation``, from ``BaseGASampler._get_generation_key``).

    Example:
        >>> generation_key_suffix()
        ':generation'
    """
    sampler_cls = optuna.samplers.NSGAIISampler
    key = _attr(sampler_cls, "_get_generation_key", "optuna.samplers.NSGAIISampler")()
    suffix = ":generation"
    if key != sampler_cls.__name__ + suffix:
        raise OptunaCompatError(f"the generation attribute 'NSGAIISampler{suffix}' (found "
                                f"{key!r}) of optuna.samplers.NSGAIISampler")
    return suffix


def search_space_transform(search_space: dict[str, BaseDistribution], **kwargs: Any) -> Any:
    """Optuna's ``_SearchSpaceTransform`` of ``search_space`` (parameters to a numeric row:
    log and 0-1 scaling, one-hot categoricals; ``transform``/``untransform``), with its
    keyword arguments (``transform_log``, ``transform_step``, ``transform_0_1``).

    Example:
        >>> import optuna
        >>> space = {"x": optuna.distributions.FloatDistribution(0.0, 10.0)}
        >>> search_space_transform(space, transform_0_1=True).transform({"x": 5.0}).tolist()
        [0.5]
    """
    transform_cls = _private("optuna._transform", "_SearchSpaceTransform")
    return transform_cls(search_space, **kwargs)


# =========================================================================== distributions


def distribution_contains(dist: BaseDistribution, internal: float) -> bool:
    """Whether an internal representation (``dist.to_internal_repr(value)``) lies in the
    distribution, steps included (``BaseDistribution._contains``).

    Example:
        >>> import optuna
        >>> d = optuna.distributions.IntDistribution(0, 10, step=2)
        >>> distribution_contains(d, 4.0), distribution_contains(d, 5.0)
        (True, False)
    """
    return bool(_attr(dist, "_contains", type(dist).__name__)(internal))


# =========================================================================== multi-objective


def fast_non_domination_rank(loss_values: np.ndarray) -> np.ndarray:
    """Optuna's non-dominated sorting ranks of minimization rows, 0 for the front
    (``optuna.study._multi_objective._fast_non_domination_rank``).

    Example:
        >>> fast_non_domination_rank(np.array([[1.0, 2.0], [2.0, 1.0], [2.0, 2.0]])).tolist()
        [0, 0, 1]
    """
    rank = _private("optuna.study._multi_objective", "_fast_non_domination_rank")
    return np.asarray(rank(loss_values))


def compute_hypervolume(loss_values: np.ndarray, reference_point: np.ndarray) -> float:
    """Optuna's hypervolume of minimization rows against a reference point
    (``optuna._hypervolume.compute_hypervolume``).

    Example:
        >>> compute_hypervolume(np.array([[1.0, 2.0], [2.0, 1.0]]), np.array([3.0, 3.0]))
        3.0
    """
    compute: Callable[..., float] = _private("optuna._hypervolume", "compute_hypervolume")
    return float(compute(loss_values, reference_point))


# =========================================================================== journal files
# Crash-safe journal files with our own heartbeat (neuromosaic_optuna.storage): Optuna's
# JournalStorage has no heartbeat, but Optuna's trial loop (``fail_stale_trials`` before each
# trial, a heartbeat thread while it runs) serves any storage that also subclasses the private
# ``BaseHeartbeat``, as ``RDBStorage`` does.

#: The Optuna version the "journal files" reaches were written and tested against.
JOURNAL_WRITTEN_AGAINST = "5.0.0"


def _journal_reach(module: str, attribute: str) -> object:
    """``module.attribute``, or an ImportError naming it and both Optuna versions."""
    import importlib

    import optuna

    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError):
        raise ImportError(
            f"neuromosaic_optuna needs {module}.{attribute} (written against optuna "
            f"{JOURNAL_WRITTEN_AGAINST}); optuna {optuna.__version__} has changed it: "
            "install optuna 5.0 or update neuromosaic_optuna/_compat.py") from None


def heartbeat_base() -> type:
    """Optuna's private ``BaseHeartbeat`` (``optuna.storages._heartbeat``): a storage that
    subclasses it and returns an interval from ``get_heartbeat_interval()`` gets Optuna's
    heartbeat thread and stale-trial check in ``Study.optimize``.

    Example:
        >>> heartbeat_base().__name__
        'BaseHeartbeat'
    """
    base = _journal_reach("optuna.storages._heartbeat", "BaseHeartbeat")
    assert isinstance(base, type)
    for method in ("record_heartbeat", "_get_stale_trial_ids", "get_heartbeat_interval",
                   "get_heartbeat_stale_trial_callback"):
        if not hasattr(base, method):
            raise ImportError(
                f"neuromosaic_optuna needs optuna.storages._heartbeat.BaseHeartbeat.{method} "
                f"(written against optuna {JOURNAL_WRITTEN_AGAINST}); the installed optuna "
                "has changed it")
    return base


# =========================================================================== study snapshots
# One suggestion of a genetic sampler asks the storage for all trials and the study's system
# attributes again and again (Optuna's ``BaseGASampler.get_parent_population`` once per NSGA-II
# child, and ``ParetoSampler`` builds dozens of children per suggestion): a read-only snapshot
# answers those reads from one read each, for the duration of one sampler call.

#: The storage writes a snapshot reflects in its cached trials (the rest drop the cache).
_REFLECTED_TRIAL_WRITES = {"set_trial_system_attr": "system_attrs",
                           "set_trial_user_attr": "user_attrs"}


class _SnapshotStorage(BaseStorage):
    """A storage view of one study that answers ``get_all_trials`` and
    ``get_study_system_attrs`` from one read of each.

    Every write goes through to ``backend``. Trial system and user attributes and study system
    attributes written through the view are reflected in what it has cached; a write repeated
    with the same value is not sent again; any other write (new trial, state, params, ...)
    drops the cache, so the next read reads again. Other studies' reads pass through.
    """

    def __init__(self, backend: BaseStorage, study_id: int,
                 trials: list[FrozenTrial] | None) -> None:
        self.backend = backend
        self.study_id = study_id
        self.trials = None if trials is None else list(trials)
        self.study_system_attrs: dict[str, Any] | None = None
        self.written: dict[tuple[str, int, str], Any] = {}

    # -- reads answered from the snapshot

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        if study_id != self.study_id:
            return self.backend.get_all_trials(study_id, deepcopy=deepcopy, states=states)
        if self.trials is None:
            self.trials = list(self.backend.get_all_trials(study_id, deepcopy=False))
        found = [t for t in self.trials if states is None or t.state in states]
        return copy.deepcopy(found) if deepcopy else found

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        if study_id != self.study_id:
            return self.backend.get_study_system_attrs(study_id)
        if self.study_system_attrs is None:
            self.study_system_attrs = dict(self.backend.get_study_system_attrs(study_id))
        return dict(self.study_system_attrs)

    # -- writes reflected in the snapshot

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self.backend.set_study_system_attr(study_id, key, value)
        if study_id == self.study_id and self.study_system_attrs is not None:
            self.study_system_attrs[key] = copy.deepcopy(value)

    def _set_trial_attr(self, method: str, target: int, key: str, value: Any) -> None:
        written = (method, target, key)
        if written in self.written and self.written[written] == value:
            return  # this view's last write of the attribute, repeated: already stored
        getattr(self.backend, method)(target, key, value)
        self.written[written] = copy.deepcopy(value)
        field = _REFLECTED_TRIAL_WRITES[method]
        for i, trial in enumerate(self.trials or ()):
            if trial_id(trial) == target:  # a new record, as storages make one
                updated = copy.copy(trial)
                setattr(updated, field, {**getattr(trial, field), key: copy.deepcopy(value)})
                self.trials[i] = updated  # type: ignore[index]

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._set_trial_attr("set_trial_system_attr", trial_id, key, value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._set_trial_attr("set_trial_user_attr", trial_id, key, value)

    # -- other writes: through, and the snapshot is read again afterwards

    def _changed(self) -> None:
        self.trials = None
        self.study_system_attrs = None

    def create_new_study(self, directions: Any, study_name: str | None = None) -> int:
        self._changed()
        return self.backend.create_new_study(directions, study_name)

    def delete_study(self, study_id: int) -> None:
        self._changed()
        self.backend.delete_study(study_id)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self.backend.set_study_user_attr(study_id, key, value)

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        self._changed()
        return self.backend.create_new_trial(study_id, template_trial)

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                        distribution: BaseDistribution) -> None:
        self._changed()
        self.backend.set_trial_param(trial_id, param_name, param_value_internal, distribution)

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Any = None) -> bool:
        self._changed()
        return self.backend.set_trial_state_values(trial_id, state, values)

    def set_trial_intermediate_value(self, trial_id: int, step: int,
                                     intermediate_value: float) -> None:
        self._changed()
        self.backend.set_trial_intermediate_value(trial_id, step, intermediate_value)

    # -- other reads: through

    def get_study_id_from_name(self, study_name: str) -> int:
        return self.backend.get_study_id_from_name(study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self.backend.get_study_name_from_id(study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self.backend.get_study_directions(study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self.backend.get_study_user_attrs(study_id)

    def get_all_studies(self) -> list[Any]:  # FrozenStudy (private module)
        return self.backend.get_all_studies()

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self.backend.get_trial(trial_id)


@contextlib.contextmanager
def study_snapshot(study: optuna.Study) -> Iterator[optuna.Study]:
    """Within the block, a view of ``study`` whose reads of all trials and of the study's
    system attributes are answered from one read each: the trials Optuna already read for
    the current trial (``Study._thread_local.cached_all_trials``, the per-``ask`` cache that
    ``Study._get_trials(use_cache=True)`` fills), else one ``get_all_trials``.

    Meant for one sampler hook (``before_trial``, ``infer_relative_search_space``,
    ``sample_relative``), whose reads Optuna's genetic samplers repeat
    (``get_parent_population`` once per child). Writes go through to the study's storage and
    are reflected in the view (see ``_SnapshotStorage``). The view is a shallow copy of the
    study with ``Study._storage`` replaced (its ``Study._thread_local`` shared); a view given
    again is returned as it is. Not for use across threads.

    Example:
        >>> import optuna
        >>> study = optuna.create_study()
        >>> study.add_trial(optuna.trial.create_trial(value=1.0))
        >>> with study_snapshot(study) as view:
        ...     first = [t.value for t in view.get_trials()]  # read here, once
        ...     study.add_trial(optuna.trial.create_trial(value=2.0))  # not through the view
        ...     [t.value for t in view.get_trials()]
        ...     storage_of(view).set_study_system_attr(study_id(view), "k", 1)
        ...     storage_of(view).get_study_system_attrs(study_id(view))["k"]
        [1.0]
        1
        >>> len(study.trials), storage_of(study).get_study_system_attrs(study_id(study))["k"]
        (2, 1)
    """
    storage = storage_of(study)
    if isinstance(storage, _SnapshotStorage):
        yield study
        return
    local = _attr(study, "_thread_local", "optuna.Study")
    if not hasattr(local, "cached_all_trials"):
        raise OptunaCompatError("optuna.Study._thread_local.cached_all_trials")
    _attr(study, "_get_trials", "optuna.Study")
    view = copy.copy(study)  # (Study.__setstate__ gives the copy a thread-local of its own)
    view._thread_local = local  # the per-ask cache, shared
    view._storage = _SnapshotStorage(storage, study_id(study), local.cached_all_trials)
    yield view
