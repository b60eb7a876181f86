"""Storage URLs: which storage a run uses, how it is opened, and how it is shown.

Accepted forms (``--storage`` or ``$NEUROMOSAIC_STORAGE``; default ``sqlite:///neuromosaic.db``):

* ``sqlite:///relative.db``, ``sqlite:////absolute/path.db``: one file, shared by processes of
  one machine (they wait up to 60 s for the write lock). A bare path ending in ``.db``,
  ``.sqlite`` or ``.sqlite3`` means the same. ``sqlite:///:memory:`` keeps the study in this
  process only (an :class:`optuna.storages.InMemoryStorage`).
* ``postgresql://user:password@host:5432/db`` (psycopg 3, ``pip install "psycopg[binary]"``),
  ``mysql+pymysql://...`` or any other SQLAlchemy URL: an :class:`optuna.storages.RDBStorage`
  shared by many machines. Its connection pool pings connections before use and recycles
  them, so a run survives a database restart.
* A journal file: a bare path ending in ``.log`` or ``.jsonl`` (``runs/nas.log``), or the same
  path behind ``journal:///`` with SQLite's slash rule (``journal:///runs/nas.log`` is
  relative, ``journal:////tmp/nas.log`` absolute). An
  :class:`optuna.storages.JournalStorage` on a
  :class:`optuna.storages.journal.JournalFileBackend`: many processes on one machine (or one
  shared file system), no server.

RDB storages (SQLite included) get Optuna's heartbeat: a running trial records a heartbeat every
``heartbeat_interval`` seconds; a trial whose worker died (no heartbeat for ``grace_period``
seconds) is failed by the next worker that starts a trial, and
:class:`optuna.storages.RetryHeartbeatStaleTrialCallback` enqueues it again (same params,
system attr ``failed_trial`` = the old trial's number), at most ``max_retry`` times. Optuna 5's
``JournalStorage`` has no heartbeat; journal files get the same one from this module (a system
attr per beat, see :class:`_HeartbeatJournalStorage`), and their appends are whole lines or
nothing (a torn last line, from a full disk or a killed writer, is set aside with one warning
before the next write; see :class:`_SafeJournalFileBackend`).

A password must be percent-encoded in a URL (``@`` as ``%40``); a URL with more than one ``@``
before its host is refused without connecting, and no part of a password appears in any
message.

Every problem (unknown driver, malformed URL, unreachable server, wrong password, missing
database or folder) is one :class:`StorageError` raised by :func:`make_storage`, which connects
at once; its message is one line and never shows a password.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shlex
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.storages import BaseStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from neuromosaic_optuna import _compat
from neuromosaic_optuna._compat import OptunaCompatError, OrphanAwareRDBStorage, heartbeat_base
from neuromosaic_optuna.exceptions import StorageError

__all__ = [
    "ENV_VAR",
    "JOURNAL_SUFFIXES",
    "StorageError",
    "dashboard_command",
    "make_storage",
    "mask_url",
    "resolve_storage_url",
    "storage_file_missing",
]

#: The environment variable read when ``--storage`` is not given.
ENV_VAR = "NEUROMOSAIC_STORAGE"
#: A bare path with one of these suffixes is a journal file.
JOURNAL_SUFFIXES = (".log", ".jsonl")
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_JOURNAL_SCHEME = "journal:///"
_FORMS = ("expected sqlite:///FILE.db, postgresql://USER:PASSWORD@HOST:PORT/DB or a journal "
          "file ending in .log")

_Kind = Literal["memory", "sqlite", "rdb", "journal"]


# --------------------------------------------------------------------------- choosing

def resolve_storage_url(cli_value: str | None, *, default_path: str = "neuromosaic.db") -> str:
    """The storage URL of a run: the ``--storage`` value, else ``$NEUROMOSAIC_STORAGE``, else
    ``sqlite:///<default_path>`` (relative to the current directory).

    An empty value counts as not given. A bare SQLite file name (``nas.db``) becomes its
    ``sqlite:///`` URL; journal paths and URLs are returned as given.

    Args:
        cli_value: The ``--storage`` flag, ``None`` when absent.
        default_path: The SQLite file used when neither is set.

    Returns:
        The URL to pass to :func:`make_storage`.

    Example:
        >>> import os
        >>> os.environ.pop("NEUROMOSAIC_STORAGE", None) and None
        >>> resolve_storage_url(None)
        'sqlite:///neuromosaic.db'
        >>> resolve_storage_url("nas.db"), resolve_storage_url("runs/nas.log")
        ('sqlite:///nas.db', 'runs/nas.log')
    """
    for value in (cli_value, os.environ.get(ENV_VAR)):
        if value is not None and value.strip():
            return _normalize(value.strip())
    return f"sqlite:///{default_path}"


def _normalize(url: str) -> str:
    if "://" not in url and url.lower().endswith(_SQLITE_SUFFIXES):
        return f"sqlite:///{url}"
    return url


def _kind(url: str) -> _Kind:
    """Classify a (normalized) URL; raise StorageError for text that is no storage at all."""
    if url.startswith(_JOURNAL_SCHEME) or ("://" not in url
                                           and url.lower().endswith(JOURNAL_SUFFIXES)):
        return "journal"
    if "://" not in url:
        raise StorageError(f"{mask_url(url)!r} is not a storage URL; {_FORMS}")
    if url.split("://", 1)[0].split("+", 1)[0].lower() == "sqlite":
        database = _sqlite_database(url)
        return "memory" if database in (None, "", ":memory:") else "sqlite"
    return "rdb"


def _journal_path(url: str) -> Path:
    text = url[len(_JOURNAL_SCHEME):] if url.startswith(_JOURNAL_SCHEME) else url
    if not text:
        raise StorageError(f"{url!r} names no journal file; e.g. journal:///runs/nas.log")
    return Path(text).expanduser()


def _sqlite_database(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).database
    except Exception:
        raise StorageError(f"cannot parse {mask_url(url)}; {_FORMS}") from None


def storage_file_missing(url: str) -> Path | None:
    """The local file a SQLite URL or journal path names, when it does not exist (None for
    an existing file, a server database or memory). Commands that only read a study check
    this first, so a mistyped path never creates an empty database.

    Example:
        >>> storage_file_missing("sqlite:///no/such/nas.db")
        PosixPath('no/such/nas.db')
        >>> storage_file_missing("sqlite:///:memory:") is None
        True
    """
    url = _normalize(url)
    kind = _kind(url)
    if kind == "journal":
        path = _journal_path(url)
    elif kind == "sqlite":
        path = Path(str(_sqlite_database(url))).expanduser()
    else:
        return None
    return None if path.exists() else path


# --------------------------------------------------------------------------- showing

_USERINFO = re.compile(r"^([A-Za-z][\w+.\-]*://[^:/@?#]*):(.*)@", re.DOTALL)
_BARE_USERINFO = re.compile(r"^([^:/@?#\s]*):(.*)@", re.DOTALL)  # no scheme: "user:pw@host"
_KEY_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd)(\s*=\s*)([^&#\s]*)")


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``; safe on malformed text too.

    Parsable URLs are rendered by SQLAlchemy (``hide_password=True``). Any ``user:secret@``
    part is masked up to the last ``@`` (an unescaped ``@`` in a password hides the host
    rather than leak the rest of the password), and ``password=...`` query parameters or
    key-value pairs are masked as well.

    Args:
        url: A storage URL or path, possibly malformed.

    Returns:
        The text safe to print.

    Example:
        >>> mask_url("postgresql://nas:s3cret@db.lan:5432/studies")
        'postgresql://nas:***@db.lan:5432/studies'
        >>> mask_url("postgresql://nas:s3cret@db.lan:port/studies")  # port is not a number
        'postgresql://nas:***@db.lan:port/studies'
        >>> mask_url("sqlite:///nas.db")
        'sqlite:///nas.db'
    """
    text = url
    if url.count("@") == 1:
        from sqlalchemy.engine import make_url

        try:
            text = make_url(url).render_as_string(hide_password=True)
        except Exception:  # unparsable: the regular expressions below still mask it
            text = url
    scheme = _USERINFO if re.match(r"[A-Za-z][\w+.\-]*://", text) else _BARE_USERINFO
    text = scheme.sub(r"\1:***@", text)
    return _KEY_PASSWORD.sub(r"\1\2***", text)


def dashboard_command(url: str) -> str:
    """An ``optuna-dashboard`` command line for the storage, to print after a run.

    SQLite URLs are made absolute (the command works from any directory) and journal files
    are given as their absolute bare path (how optuna-dashboard recognises them). A URL with
    a password is never printed: optuna-dashboard reads its storage only from the command line
    (or a ``--from-config`` file), so the command expands ``$NEUROMOSAIC_STORAGE`` in the
    user's shell. When that variable does not hold this URL (it came from ``--storage``), a
    shell comment after the command says to set it first, showing the masked URL.

    Args:
        url: The storage URL of the run.

    Returns:
        The command, or a sentence when the storage is in memory.

    Example:
        >>> dashboard_command("sqlite:////tmp/nas.db")
        'optuna-dashboard sqlite:////tmp/nas.db'
        >>> dashboard_command("/tmp/nas run.log")
        "optuna-dashboard '/tmp/nas run.log'"
    """
    url = _normalize(url)
    kind = _kind(url)
    if kind == "memory":
        return ("(an in-memory study cannot be opened by optuna-dashboard; run with "
                "--storage sqlite:///neuromosaic.db to keep it)")
    if kind == "journal":
        return f"optuna-dashboard {shlex.quote(str(_journal_path(url).resolve()))}"
    from sqlalchemy.engine import make_url

    if kind == "sqlite":
        parsed = make_url(url)
        path = Path(str(parsed.database)).expanduser().resolve()
        query = url.split("?", 1)[1] if "?" in url else ""
        return "optuna-dashboard " + shlex.quote(
            f"{url.split('://', 1)[0]}:///{path}" + (f"?{query}" if query else ""))
    if mask_url(url) == url:  # nothing secret in it
        return f"optuna-dashboard {shlex.quote(url)}"
    command = f'optuna-dashboard "${ENV_VAR}"'
    if os.environ.get(ENV_VAR, "").strip() == url:
        return command
    return f"{command}  # after: export {ENV_VAR}='{mask_url(url)}' with the real password"


# --------------------------------------------------------------------------- opening

def make_storage(url: str, *, heartbeat_interval: int | None = 60,
                 grace_period: int | None = None, max_retry: int | None = 3,
                 engine_kwargs: dict[str, Any] | None = None) -> BaseStorage:
    """Open (and for databases, connect to) the storage named by ``url``.

    Args:
        url: A storage URL or journal path (forms in the module docstring).
        heartbeat_interval: Seconds between heartbeats of a running trial (RDB storages);
            ``None`` turns the heartbeat and the retry of stale trials off.
        grace_period: Seconds without heartbeat after which a running trial is stale;
            default ``2 * heartbeat_interval``.
        max_retry: How often a stale trial is enqueued again (``None``: without limit).
        engine_kwargs: Extra SQLAlchemy ``create_engine`` arguments (RDB storages), merged over
            the defaults (``pool_pre_ping``, ``pool_recycle``, connect timeouts).

    Returns:
        An Optuna storage to pass to ``optuna.create_study(storage=...)``.

    Raises:
        StorageError: The storage cannot be opened (one line, password masked).
        ValueError: A heartbeat argument is out of range.

    Example:
        >>> import optuna
        >>> storage = make_storage("sqlite:///:memory:")
        >>> optuna.create_study(storage=storage).optimize(lambda t: t.suggest_float("x", 0, 1),
        ...                                               n_trials=2)
    """
    if heartbeat_interval is not None and (not isinstance(heartbeat_interval, int)
                                           or heartbeat_interval < 1):
        raise ValueError(f"heartbeat_interval must be a positive integer or None, "
                         f"got {heartbeat_interval!r}")
    if grace_period is not None and (not isinstance(grace_period, int) or grace_period < 1):
        raise ValueError(f"grace_period must be a positive integer or None, got {grace_period!r}")
    if max_retry is not None and (not isinstance(max_retry, int) or max_retry < 0):
        raise ValueError(f"max_retry must be a non-negative integer or None, got {max_retry!r}")
    url = _normalize(url.strip())
    kind = _kind(url)
    if kind == "rdb":
        _check_userinfo(url)
    if kind == "memory":
        return optuna.storages.InMemoryStorage()
    heartbeat: dict[str, Any] = {}
    if heartbeat_interval is not None:
        with warnings.catch_warnings():  # the retry callback is "experimental"
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            heartbeat = {"heartbeat_interval": heartbeat_interval,
                         "grace_period": grace_period or 2 * heartbeat_interval,
                         "heartbeat_stale_trial_callback":
                             optuna.storages.RetryHeartbeatStaleTrialCallback(
                                 max_retry=max_retry)}
    if kind == "journal":
        return _journal_storage(_journal_path(url), heartbeat)
    if kind == "sqlite":
        _check_sqlite_folder(url)
        _check_sqlite_file(url)
    kwargs = _engine_kwargs(url, kind, engine_kwargs)
    with warnings.catch_warnings():  # the heartbeat is "experimental"
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for attempt in range(5):
            try:
                storage = _ResilientRDBStorage(url, engine_kwargs=kwargs, **heartbeat)
                if kind == "sqlite":
                    _serialize_sqlite(storage.engine)
                return storage
            except OptunaCompatError:  # an Optuna this code was not written for: say so
                raise
            except Exception as exc:  # noqa: BLE001 (every failure becomes one clean line)
                # Several processes opening a fresh database race to create Optuna's tables
                # ("already exists"); the loser simply opens them on the next attempt.
                if "already exists" in str(exc) and attempt < 4:
                    time.sleep(0.2 * (attempt + 1))
                    continue
                raise _connection_error(url, exc) from None
        raise AssertionError("unreachable")  # pragma: no cover


class _ResilientRDBStorage(OrphanAwareRDBStorage):
    """Optuna's ``RDBStorage`` whose heartbeat survives a lost database connection.

    Optuna's heartbeat thread ends at the first error of ``record_heartbeat``; a trial that
    keeps training would then look stale after the grace period (and be retried while it
    still runs), or never get a heartbeat at all. Here a failed beat is logged and the next
    one tries again, and a RUNNING trial that never got any heartbeat counts as stale once
    the grace period is over (:class:`neuromosaic_optuna._compat.OrphanAwareRDBStorage`).
    """

    def record_heartbeat(self, trial_id: int) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            super().record_heartbeat(trial_id)
        except (optuna.exceptions.StorageInternalError, SQLAlchemyError) as exc:
            optuna.logging.get_logger(__name__).warning(
                f"heartbeat of trial id {trial_id} not recorded ({exc.__class__.__name__}); "
                "retrying at the next beat")


def _serialize_sqlite(engine: Any) -> None:
    """Make every SQLite transaction take the write lock when it begins (BEGIN IMMEDIATE).

    SQLite ignores ``SELECT ... FOR UPDATE``, so two worker processes could both read the
    same WAITING trial and both run it. With ``BEGIN IMMEDIATE`` the claim (read the state,
    set RUNNING) is atomic; other processes wait up to the connect timeout. This is
    SQLAlchemy's documented recipe for pysqlite. The database also switches to WAL mode
    with ``synchronous=NORMAL`` (see the comment in the listener).
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        # Write-ahead log with synchronous=NORMAL: a commit costs no fsync (about 1 ms instead
        # of 25 ms here), readers never block the writer, and a crashed process loses nothing
        # committed; only a power loss may drop the last commits. Not for network file systems.
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened while creating the tables predate the listeners


# --------------------------------------------------------------------------- journal files

#: System attr of a RUNNING trial on a journal file: ``[trial_id, unix time]`` of its last
#: heartbeat (the id guards against the copy a retried trial inherits).
JOURNAL_HEARTBEAT_ATTR = "neuromosaic:heartbeat"


class _SafeJournalFileBackend(JournalFileBackend):
    """Optuna's ``JournalFileBackend`` whose appends are whole lines or nothing.

    Optuna writes a batch of records with one buffered ``write``; on a full disk (or a
    process killed while writing) the file can end in a torn line, and the next append would
    glue its records onto it, which makes the whole file unreadable. Here each append

    * first sets aside a torn tail (the bytes after the last newline) into
      ``<file>.torn-<UTC time>`` and cuts the file back to its last whole line, with one
      warning (readers never saw those bytes: Optuna skips an unterminated last line), and
    * writes its records with ``os.write`` at the end of the file, then ``fsync``; when a write
      fails (``ENOSPC``, ``EFBIG``) the file is cut back to its size before the append, so no
      partial record stays behind, and the error is raised.

    Both happen under Optuna's lock file, so concurrent processes stay consistent.
    """

    def __init__(self, file_path: str) -> None:
        from optuna.storages.journal import JournalFileSymlinkLock

        self._path = file_path
        self._lock_obj = JournalFileSymlinkLock(file_path)
        super().__init__(file_path, lock_obj=self._lock_obj)
        if _last_line_damaged(file_path):
            # Optuna skips an unparsable last line silently: the record it held (and any
            # glued onto a torn line by an older version) would be lost without a word.
            raise ValueError("the last line is not a JSON record")
        torn = _torn_tail_size(file_path)
        self._warned = bool(torn)
        if torn:
            optuna.logging.get_logger(__name__).warning(
                f"the journal file {file_path} ends in an incomplete record ({torn} bytes, "
                "from a run interrupted while writing; no finished record is lost): readers "
                f"skip it, and the next write moves it to {file_path}.torn-<UTC time>")

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        with signals_deferred():  # Ctrl-C inside Optuna's lock release would lose the signal
            self._append(logs)

    def _append(self, logs: list[dict[str, Any]]) -> None:
        data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs)
                + "\n").encode("utf-8")
        self._lock_obj.acquire()
        try:
            _set_aside_torn_tail(self._path, warn=not self._warned)
            self._warned = False
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND)
            try:
                size = os.fstat(fd).st_size
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                except BaseException:
                    os.ftruncate(fd, size)  # whole lines or nothing
                    raise
            finally:
                os.close(fd)
        finally:
            self._lock_obj.release()


#: Signal deferral of the main thread: nesting depth and a signal that arrived meanwhile.
_DEFERRED: dict[str, Any] = {"depth": 0, "pending": None}


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Within the block, a handler that calls :func:`defer_signal` first is postponed to the
    block's end (main thread only; other threads never run Python signal handlers). Journal
    appends use it: an exception raised inside Optuna's lock-file release replaces itself
    with a ``FileNotFoundError``, so the signal would be lost and the lock left behind.

    Example:
        >>> with signals_deferred():
        ...     pass
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _DEFERRED["depth"] += 1
    try:
        yield
    finally:
        _DEFERRED["depth"] -= 1
        pending = _DEFERRED["pending"]
        if pending is not None and _DEFERRED["depth"] == 0:
            _DEFERRED["pending"] = None
            handler, signum, frame = pending
            handler(signum, frame)


def defer_signal(handler: Any, signum: int, frame: Any) -> bool:
    """Called first by a signal handler: True when the signal was postponed (the handler
    returns at once and is called again when the :func:`signals_deferred` block ends)."""
    if _DEFERRED["depth"] > 0:
        _DEFERRED["pending"] = (handler, signum, frame)
        return True
    return False


def _torn_tail_size(path: str) -> int:
    """Bytes after the last newline of the file (0 when it ends in a whole line)."""
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        position = end
        while position > 0:
            step = min(65536, position)
            f.seek(position - step)
            chunk = f.read(step)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                return end - (position - step + newline + 1)
            position -= step
        return end


def _last_line_damaged(path: str) -> bool:
    """Whether the last newline-terminated line of the file is not a JSON object."""
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END) - _torn_tail_size(path)
        if end <= 0:
            return False
        start = max(0, end - (1 << 20))
        f.seek(start)
        chunk = f.read(end - start)
    body = chunk[:-1]
    newline = body.rfind(b"\n")
    if newline < 0 and start > 0:
        return False  # a record over 1 MB: leave it to Optuna's reader
    try:
        return not isinstance(json.loads(body[newline + 1:]), dict)
    except ValueError:
        return True


def _set_aside_torn_tail(path: str, *, warn: bool = True) -> None:
    """Move a torn last line into ``<path>.torn-<UTC time>`` and cut it from the file (with a
    warning unless this process warned about it when it opened the file)."""
    torn = _torn_tail_size(path)
    if not torn:
        return
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    keep = f"{path}.torn-{stamp}"
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(size - torn)
        tail = f.read()
        with open(keep, "xb") as copy:
            copy.write(tail)
            copy.flush()
            os.fsync(copy.fileno())
        f.truncate(size - torn)
        f.flush()
        os.fsync(f.fileno())
    log = optuna.logging.get_logger(__name__)
    (log.warning if warn else log.info)(
        f"the journal file {path} ended in an incomplete record ({torn} bytes, from a run "
        f"interrupted while writing); set aside in {keep}, no finished record was lost")


class _HeartbeatJournalStorage(optuna.storages.JournalStorage, heartbeat_base()):  # type: ignore[misc]
    """Optuna's ``JournalStorage`` with the heartbeat RDB storages have.

    A running trial records ``[trial_id, time]`` as system attr
    :data:`JOURNAL_HEARTBEAT_ATTR` every ``heartbeat_interval`` seconds (one short journal
    record); a RUNNING trial whose last beat (or, before its first beat, its start) is older
    than ``grace_period`` is stale. Optuna's trial loop then fails it and the retry callback
    enqueues it again, exactly as on SQLite or PostgreSQL.
    """

    def __init__(self, backend: JournalFileBackend, *, heartbeat_interval: int,
                 grace_period: int, stale_trial_callback: Any) -> None:
        super().__init__(backend)
        self._heartbeat_interval = heartbeat_interval
        self._grace_period = grace_period
        self._stale_trial_callback = stale_trial_callback

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self.set_trial_system_attr(trial_id, JOURNAL_HEARTBEAT_ATTR,
                                       [trial_id, time.time()])
        except Exception as exc:  # noqa: BLE001 (a finished trial or a full disk: beat again)
            # A full disk is reported once, in one line, by the write that the run itself
            # makes next; the heartbeat only says so in the debug log.
            log = optuna.logging.get_logger(__name__)
            (log.debug if isinstance(exc, OSError) else log.warning)(
                f"heartbeat of trial id {trial_id} not recorded ({exc.__class__.__name__}); "
                "retrying at the next beat")

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False,
                                         states=(TrialState.RUNNING,)):
            beat = trial.system_attrs.get(JOURNAL_HEARTBEAT_ATTR)
            if (isinstance(beat, list) and len(beat) == 2 and beat[0] == _compat.trial_id(trial)
                    and isinstance(beat[1], (int, float))):
                last = float(beat[1])
            elif trial.datetime_start is not None:
                last = trial.datetime_start.timestamp()
            else:
                continue
            if now - last > self._grace_period:
                stale.append(_compat.trial_id(trial))
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self._heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> Any:
        return self._stale_trial_callback


def _journal_storage(path: Path, heartbeat: dict[str, Any]) -> BaseStorage:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise StorageError(f"the folder {folder} of the journal file {path} does not exist; "
                           "create it first")
    if path.exists() and not path.is_file():
        raise StorageError(f"the journal file {path} is not a regular file; choose a file path")
    try:
        backend = _SafeJournalFileBackend(str(path))
        if heartbeat:
            return _HeartbeatJournalStorage(
                backend, heartbeat_interval=heartbeat["heartbeat_interval"],
                grace_period=heartbeat["grace_period"],
                stale_trial_callback=heartbeat["heartbeat_stale_trial_callback"])
        return optuna.storages.JournalStorage(backend)
    except OSError as exc:
        raise StorageError(f"cannot open the journal file {path}: "
                           f"{exc.strerror or _one_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 (a damaged record: JSON, keys, types, op codes)
        raise StorageError(f"cannot read the journal file {path}: {_damaged_line(path)} "
                           f"({exc.__class__.__name__}); restore it from a backup or remove "
                           "that line (a copy first)") from None


def _damaged_line(path: Path) -> str:
    """Where a journal file stops being a list of JSON records."""
    try:
        with open(path, "rb") as f:
            for number, line in enumerate(f, start=1):
                try:
                    record = json.loads(line)
                except ValueError:
                    return f"line {number} is not a JSON record"
                if not isinstance(record, dict) or "op_code" not in record:
                    return f"line {number} is not a journal record"
    except OSError as exc:
        return exc.strerror or exc.__class__.__name__
    return "a record does not fit the ones before it"


def _check_sqlite_folder(url: str) -> None:
    database = Path(str(_sqlite_database(url))).expanduser()
    folder = database.parent
    if not folder.is_dir():
        raise StorageError(f"the folder {folder} of the SQLite file {database} does not exist; "
                           "create it first or choose another path")
    if not database.exists() and not os.access(folder, os.W_OK | os.X_OK):
        raise StorageError(f"cannot create the SQLite file {database}: the folder {folder} "
                           "is not writable")


#: Tables every Optuna SQLite database has (checked once ``version_info`` shows it is one).
_OPTUNA_TABLES = ("studies", "study_directions", "study_user_attributes", "trials",
                  "trial_params", "trial_values", "trial_user_attributes",
                  "trial_system_attributes", "trial_intermediate_values", "trial_heartbeats",
                  "study_system_attributes", "alembic_version", "version_info")


def sqlite_study_names(url: str) -> list[str] | None:
    """The study names in an existing SQLite storage, read through a read-only connection
    (no engine, so no WAL checkpoint rewrites the file); None for other storages or when the
    names cannot be read this way (the caller then opens the storage as usual)."""
    import sqlite3
    from urllib.parse import quote

    database = _sqlite_database(url) if _kind(url) == "sqlite" else None
    if database is None or not Path(database).expanduser().is_file():
        return None
    path = quote(str(Path(database).expanduser().resolve()))
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
        try:
            return [str(r[0]) for r in connection.execute("SELECT study_name FROM studies")]
        finally:
            connection.close()
    except sqlite3.Error:
        return None


def _check_sqlite_file(url: str) -> None:
    """An existing SQLite file must be an intact Optuna database: its header, SQLite's
    ``PRAGMA quick_check`` (garbage in any page) and Optuna's tables. Opened read-only, so a
    damaged file is refused before anything is written to it (Optuna would recreate a dropped
    table empty and carry on)."""
    import sqlite3
    from urllib.parse import quote

    database = Path(str(_sqlite_database(url))).expanduser()
    if not database.exists():
        return
    if not database.is_file():
        raise StorageError(f"cannot open {database}: not a regular file; choose a file")
    fix = "restore it from a backup or choose another --storage"
    try:
        with open(database, "rb") as f:
            header = f.read(16)
    except OSError as exc:
        raise StorageError(f"cannot read the SQLite file {database}: "
                           f"{exc.strerror or exc.__class__.__name__}") from None
    if not header:
        return  # an empty file: SQLite makes it a database
    if header != b"SQLite format 3\x00":
        raise StorageError(f"cannot open {database}: it is not an SQLite database (its first "
                           f"bytes are not SQLite's); {fix}")
    try:
        # mode=rw never creates the file; and unlike a read-only connection, closing it
        # removes the -wal/-shm files it opened. A read-only file is checked read-only, and so
        # is one whose WAL holds data (closing a writer would checkpoint it into the file).
        wal = database.with_name(database.name + "-wal")
        writable = os.access(database, os.W_OK) and not (wal.exists() and wal.stat().st_size)
        mode = "rw" if writable else "ro"
        connection = sqlite3.connect(f"file:{quote(str(database.resolve()))}?mode={mode}",
                                     uri=True, timeout=60)
        try:
            problems = [str(row[0]) for row in
                        connection.execute("PRAGMA quick_check(3)").fetchall()]
            tables = {str(row[0]) for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open the SQLite file {database}: it is damaged "
                           f"({_one_line(exc)}); {fix}") from None
    if problems != ["ok"]:
        found = " ".join(" ".join(problems).split()).replace("*** in database main *** ", "")
        raise StorageError(f"cannot open the SQLite file {database}: it is damaged "
                           f"({found[:200]}); {fix}")
    missing = [t for t in _OPTUNA_TABLES if t not in tables]
    if missing and tables & set(_OPTUNA_TABLES):  # some of Optuna's tables, not all
        raise StorageError(f"cannot open the SQLite file {database}: it is damaged (Optuna's "
                           f"table(s) {', '.join(missing)} are missing); {fix}")


def _engine_kwargs(url: str, kind: _Kind, extra: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults per database, with ``extra`` merged over them (``connect_args`` key by key)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception as exc:  # ArgumentError, or ValueError for a port that is no number
        why = ("the port is not a number" if "invalid literal for int" in str(exc)
               else _one_line(exc, url))
        raise StorageError(f"cannot parse {mask_url(url)} ({why}); {_FORMS}") from None
    _check_driver(parsed, url)
    kwargs: dict[str, Any]
    if kind == "sqlite":  # concurrent processes wait for the write lock instead of failing
        kwargs = {"connect_args": {"timeout": 60}}
    else:  # survive a database restart (pings) and server-side idle timeouts (recycle)
        kwargs = {"pool_pre_ping": True, "pool_recycle": 1800}
        if parsed.get_backend_name() == "postgresql":
            kwargs["connect_args"] = {"connect_timeout": 10}
    extra = dict(extra or {})
    connect_args = {**kwargs.get("connect_args", {}), **extra.pop("connect_args", {})}
    kwargs.update(extra)
    if connect_args:
        kwargs["connect_args"] = connect_args
    return kwargs


def _check_driver(parsed: Any, url: str) -> None:
    """The SQLAlchemy dialect and its DBAPI module must be importable."""
    from sqlalchemy.exc import NoSuchModuleError

    name = parsed.drivername
    try:
        parsed.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise StorageError(f"unknown database dialect {name!r} in {mask_url(url)}; "
                           f"{_FORMS}") from None
    except ImportError as exc:
        module = getattr(exc, "name", None) or "its driver"
        if name == "postgresql+psycopg2":
            fix = ('use postgresql://... instead (psycopg 3: pip install "psycopg[binary]") '
                   "or pip install psycopg2-binary")
        elif parsed.get_backend_name() == "postgresql":
            fix = 'pip install "psycopg[binary]" and use postgresql://...'
        elif parsed.get_backend_name() == "mysql":
            fix = "pip install pymysql and use mysql+pymysql://..."
        else:
            fix = f"install the Python module {module}"
        raise StorageError(f"the driver of {name}:// is not installed (no module {module}); "
                           f"{fix}") from None


def _connection_error(url: str, exc: BaseException) -> StorageError:
    """One line from a failure to open an RDB storage, with a hint where the cause is known."""
    from sqlalchemy.engine import make_url

    reason = _one_line(exc, url)
    low = reason.lower()
    parsed = make_url(url)
    if "password authentication failed" in low or "access denied" in low:
        hint = (f"check the user name {parsed.username!r} and its password; "
                f"{PERCENT_ENCODE_HINT}")
    elif "database" in low and ("does not exist" in low or "unknown database" in low):
        hint = f"create the database {parsed.database!r} first (e.g. createdb) or fix its name"
    elif "unable to open database file" in low:
        hint = "the SQLite file's folder must exist and be writable"
    elif any(s in low for s in ("connection refused", "timeout", "timed out",
                                "could not connect", "can't connect", "resolve host",
                                "name or service not known", "could not translate")):
        hint = "is the database server running, and are host and port right?"
    else:
        hint = ""
    return StorageError(f"cannot open {mask_url(url)}: {reason}" + (f"; {hint}" if hint else ""))


#: What every message about a password says: how to write one that has special characters.
PERCENT_ENCODE_HINT = ("percent-encode special characters of the password (@ as %40, : as %3A, "
                       "/ as %2F, % as %25), e.g. python -c \"import urllib.parse; "
                       "print(urllib.parse.quote('PASSWORD', safe=''))\"")


def _check_userinfo(url: str) -> None:
    """Refuse a URL whose user name or password holds an unescaped ``@``.

    SQLAlchemy splits such a URL at the first ``@``, so the rest of the password would become
    part of the host name and reach the driver's error message (``failed to resolve host
    '2xyz@db.lan'``). The message names neither part.
    """
    if url.split("://", 1)[1].count("@") > 1:
        raise StorageError(f"{mask_url(url)} has more than one '@' before the host; "
                           f"{PERCENT_ENCODE_HINT}")


def _secret_fragments(url: str) -> list[str]:
    """Every text that may be (part of) the password of ``url``, longest first: the parsed
    password, its raw and decoded forms, and the pieces between unescaped ``@`` characters."""
    from urllib.parse import unquote

    fragments: set[str] = set()
    match = _USERINFO.match(url) or _BARE_USERINFO.match(url)
    if match:
        raw = match.group(2)
        for text in (raw, unquote(raw)):
            fragments.add(text)
            fragments.update(part for part in re.split(r"[@:/]", text) if len(part) >= 3)
    try:
        from sqlalchemy.engine import make_url

        password = make_url(url).password
    except Exception:  # noqa: BLE001 (an unparsable URL still has its regex fragments)
        password = None
    if password:
        fragments.add(str(password))
    for m in _KEY_PASSWORD.finditer(url):
        fragments.add(m.group(3))
    return sorted((f for f in fragments if f), key=len, reverse=True)


def _one_line(exc: BaseException, url: str | None = None) -> str:
    """The driver's own message (not SQLAlchemy's wrapper), on one line, without the password."""
    cause = getattr(exc, "orig", None) or exc
    text = " ".join(part.strip() for part in str(cause).splitlines() if part.strip())
    text = re.sub(r"\s*\(Background on this error at: [^)]*\)", "", text)
    text = text or type(cause).__name__
    if url is not None:
        text = text.replace(url, mask_url(url))
        for fragment in _secret_fragments(url):
            text = text.replace(fragment, "***")
    return text[:300]
