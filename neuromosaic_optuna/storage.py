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
``JournalStorage`` has no heartbeat.

Every problem (unknown driver, malformed URL, unreachable server, wrong password, missing
database or folder) is one :class:`StorageError` raised by :func:`make_storage`, which connects
at once; its message is one line and never shows a password.
"""

from __future__ import annotations

import datetime
import os
import re
import shlex
import time
import warnings
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from neuromosaic_optuna.config import ConfigError

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


class StorageError(ConfigError):
    """The storage URL cannot be used. ``str(err)`` is one line, ``--storage: <what to do>``,
    with any password masked."""

    def __init__(self, message: str) -> None:
        super().__init__("--storage", message)


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
    if kind == "memory":
        return optuna.storages.InMemoryStorage()
    if kind == "journal":
        return _journal_storage(_journal_path(url))
    if kind == "sqlite":
        _check_sqlite_folder(url)
    kwargs = _engine_kwargs(url, kind, engine_kwargs)
    heartbeat: dict[str, Any] = {}
    if heartbeat_interval is not None:
        heartbeat = {"heartbeat_interval": heartbeat_interval,
                     "grace_period": grace_period or 2 * heartbeat_interval}
    with warnings.catch_warnings():  # heartbeat and its retry callback are "experimental"
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if heartbeat:
            heartbeat["heartbeat_stale_trial_callback"] = (
                optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry))
        for attempt in range(5):
            try:
                storage = _ResilientRDBStorage(url, engine_kwargs=kwargs, **heartbeat)
                if kind == "sqlite":
                    _serialize_sqlite(storage.engine)
                return storage
            except Exception as exc:  # noqa: BLE001 (every failure becomes one clean line)
                # Several processes opening a fresh database race to create Optuna's tables
                # ("already exists"); the loser simply opens them on the next attempt.
                if "already exists" in str(exc) and attempt < 4:
                    time.sleep(0.2 * (attempt + 1))
                    continue
                raise _connection_error(url, exc) from None
        raise AssertionError("unreachable")  # pragma: no cover


class _ResilientRDBStorage(optuna.storages.RDBStorage):
    """Optuna's ``RDBStorage`` whose heartbeat survives a lost database connection.

    Optuna's heartbeat thread ends at the first error of ``record_heartbeat``; a trial that
    keeps training would then look stale after the grace period (and be retried while it
    still runs), or never get a heartbeat at all. Here a failed beat is logged and the next
    one tries again, and a RUNNING trial that never got any heartbeat counts as stale once
    the grace period is over (see :meth:`_get_stale_trial_ids`).
    """

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        """Optuna's stale trials plus *orphans*: RUNNING trials without any heartbeat that
        started more than the grace period ago. A live worker records its first heartbeat
        right after claiming a trial (retrying while the database is away), so an orphan is a
        claim whose worker never learned of it (the connection dropped as the claim was
        committed) or died at once; Optuna never counts those as stale, and the study would
        wait for them forever."""
        stale = super()._get_stale_trial_ids(study_id)
        grace = self.grace_period or 2 * (self.heartbeat_interval or 60)
        try:
            from optuna.storages._rdb import models  # Optuna's own tables (private module)

            now = datetime.datetime.now()  # trials store the worker's local, naive time
            session = self.scoped_session()
            try:
                without_heartbeat = (session.query(models.TrialModel)
                                     .filter(models.TrialModel.state == TrialState.RUNNING)
                                     .filter(models.TrialModel.study_id == study_id)
                                     .filter(~models.TrialModel.heartbeats.any()).all())
                orphans = [int(t.trial_id) for t in without_heartbeat
                           if t.datetime_start is not None
                           and (now - t.datetime_start).total_seconds() > grace]
            finally:
                session.close()
        except (ImportError, AttributeError):  # a future Optuna changed its tables
            return stale
        return stale + [i for i in orphans if i not in stale]

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


def _journal_storage(path: Path) -> BaseStorage:
    from optuna.storages.journal import JournalFileBackend

    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise StorageError(f"the folder {folder} of the journal file {path} does not exist; "
                           "create it first")
    try:
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot open the journal file {path}: "
                           f"{_one_line(exc)}") from None


def _check_sqlite_folder(url: str) -> None:
    database = Path(str(_sqlite_database(url))).expanduser()
    folder = database.parent
    if not folder.is_dir():
        raise StorageError(f"the folder {folder} of the SQLite file {database} does not exist; "
                           "create it first or choose another path")
    if not database.exists() and not os.access(folder, os.W_OK | os.X_OK):
        raise StorageError(f"cannot create the SQLite file {database}: the folder {folder} "
                           "is not writable")


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
        hint = f"check the user name {parsed.username!r} and its password"
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


def _one_line(exc: BaseException, url: str | None = None) -> str:
    """The driver's own message (not SQLAlchemy's wrapper), on one line, without the password."""
    cause = getattr(exc, "orig", None) or exc
    text = " ".join(part.strip() for part in str(cause).splitlines() if part.strip())
    text = re.sub(r"\s*\(Background on this error at: [^)]*\)", "", text)
    text = text or type(cause).__name__
    if url is not None:
        from sqlalchemy.engine import make_url

        try:
            password = make_url(url).password
        except Exception:
            password = None
        if password:
            text = text.replace(str(password), "***")
        text = text.replace(url, mask_url(url))
    return text[:300]
