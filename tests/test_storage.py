"""Storage URLs against real storages: a throwaway PostgreSQL, SQLite files, journal files.

No mocks: wrong passwords, closed ports, killed workers and database restarts really happen.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState
from pg import PostgresServer

from neuromosaic_optuna.config import ConfigError
from neuromosaic_optuna.storage import (
    ENV_VAR,
    StorageError,
    dashboard_command,
    make_storage,
    mask_url,
    resolve_storage_url,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _quadratic(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -1.0, 1.0)
    return x * x


def _assert_clean_error(err: StorageError, *, secret: str | None = None) -> None:
    text = str(err)
    assert text.startswith("--storage: ")
    assert "\n" not in text
    assert err.__cause__ is None  # no chained traceback: raised directly or `from None`
    assert err.__context__ is None or err.__suppress_context__
    if secret is not None:
        assert secret not in text


# --------------------------------------------------------------------------- choosing the URL

def test_resolve_order_flag_then_env_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_storage_url(None) == "sqlite:///neuromosaic.db"
    assert resolve_storage_url(None, default_path="other.db") == "sqlite:///other.db"
    monkeypatch.setenv(ENV_VAR, "postgresql://nas@db.lan/studies")
    assert resolve_storage_url(None) == "postgresql://nas@db.lan/studies"
    assert resolve_storage_url("sqlite:///flag.db") == "sqlite:///flag.db"
    assert resolve_storage_url("  ") == "postgresql://nas@db.lan/studies"  # blank = not given
    monkeypatch.setenv(ENV_VAR, "")
    assert resolve_storage_url(None) == "sqlite:///neuromosaic.db"
    assert resolve_storage_url("runs/nas.log") == "runs/nas.log"
    assert resolve_storage_url("nas.db") == "sqlite:///nas.db"


# --------------------------------------------------------------------------- masking

@pytest.mark.parametrize(("url", "masked"), [
    ("postgresql://nas:s3cret@db.lan:5432/studies", "postgresql://nas:***@db.lan:5432/studies"),
    ("mysql+pymysql://nas:s3cret@db.lan/studies", "mysql+pymysql://nas:***@db.lan/studies"),
    ("postgresql://nas:p@ss@db.lan/studies", "postgresql://nas:***@db.lan/studies"),
    ("postgresql://nas:s3c/ret@db.lan/studies", "postgresql://nas:***@db.lan/studies"),
    ("postgresql://nas:s3cret@db.lan:port/studies", "postgresql://nas:***@db.lan:port/studies"),
    ("nas:s3cret@db.lan", "nas:***@db.lan"),
    ("postgresql://db.lan/st?password=s3cret&sslmode=require",
     "postgresql://db.lan/st?password=***&sslmode=require"),
    ("host=db.lan user=nas password=s3cret", "host=db.lan user=nas password=***"),
    ("postgresql://nas@db.lan/studies", "postgresql://nas@db.lan/studies"),
    ("sqlite:///:memory:", "sqlite:///:memory:"),
    ("runs/nas.log", "runs/nas.log"),
])
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=4, max_size=24))
def test_mask_url_never_shows_any_password(password: str) -> None:
    for template in ("postgresql://nas:{}@db.lan:5432/studies", "foo://nas:{}@db.lan:x/y"):
        url = template.format(password)
        if password not in template.replace("{}", "***"):
            assert password not in mask_url(url)


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize(("url", "needle"), [
    ("postgresql+psycopg2://nas:s3cret@127.0.0.1/studies", 'pip install "psycopg[binary]"'),
    ("foo://nas:s3cret@127.0.0.1/studies", "unknown database dialect 'foo'"),
    ("nonsense", "is not a storage URL"),
    ("postgresql://nas:s3cret@127.0.0.1:port/studies", "the port is not a number"),
    ("sqlite:////no/such/folder/nas.db", "folder /no/such/folder"),
    ("/no/such/folder/nas.log", "folder /no/such/folder"),
])
def test_unusable_urls_raise_one_clean_line(url: str, needle: str) -> None:
    with pytest.raises(StorageError) as info:
        make_storage(url)
    assert needle in str(info.value)
    assert isinstance(info.value, ConfigError) and info.value.path == "--storage"
    _assert_clean_error(info.value, secret="s3cret")


def test_unwritable_sqlite_file_raises(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(StorageError, match="does not exist"):
        make_storage(f"sqlite:///{not_a_folder}/nas.db")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not an SQLite file" * 100)
    with pytest.raises(StorageError, match="cannot open") as info:
        make_storage(f"sqlite:///{garbage}")
    _assert_clean_error(info.value)


def test_bad_heartbeat_arguments_name_the_argument() -> None:
    with pytest.raises(ValueError, match="heartbeat_interval"):
        make_storage("sqlite:///:memory:", heartbeat_interval=0)
    with pytest.raises(ValueError, match="grace_period"):
        make_storage("sqlite:///:memory:", grace_period=-1)
    with pytest.raises(ValueError, match="max_retry"):
        make_storage("sqlite:///:memory:", max_retry=-1)


# --------------------------------------------------------------------------- dashboard

def test_dashboard_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert dashboard_command("sqlite:///nas.db") == f"optuna-dashboard sqlite:///{tmp_path}/nas.db"
    assert dashboard_command("runs/nas.log") == f"optuna-dashboard {tmp_path}/runs/nas.log"
    assert dashboard_command("postgresql://nas@db.lan/st") == \
        "optuna-dashboard postgresql://nas@db.lan/st"
    url = "postgresql://nas:s3cret@db.lan/st"
    command = dashboard_command(url)
    assert "s3cret" not in command and command.startswith('optuna-dashboard "$NEUROMOSAIC_STORAGE"')
    assert "postgresql://nas:***@db.lan/st" in command  # a comment: set the variable first
    monkeypatch.setenv(ENV_VAR, url)
    assert dashboard_command(url) == 'optuna-dashboard "$NEUROMOSAIC_STORAGE"'
    assert "in-memory" in dashboard_command("sqlite:///:memory:")


# --------------------------------------------------------------------------- SQLite, memory

def test_sqlite_storage_has_heartbeat_and_wait_timeout(tmp_path: Path) -> None:
    storage = make_storage(f"sqlite:///{tmp_path / 'nas.db'}", heartbeat_interval=5)
    assert isinstance(storage, optuna.storages.RDBStorage)
    assert storage.get_heartbeat_interval() == 5 and storage.grace_period == 10
    assert isinstance(storage.get_heartbeat_stale_trial_callback(),
                      optuna.storages.RetryHeartbeatStaleTrialCallback)
    assert storage.engine_kwargs["connect_args"]["timeout"] == 60
    study = optuna.create_study(storage=storage, study_name="s")
    study.optimize(_quadratic, n_trials=3)
    assert len(optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'nas.db'}")
               .trials) == 3
    assert isinstance(make_storage("sqlite:///:memory:"), optuna.storages.InMemoryStorage)


# --------------------------------------------------------------------------- journal files

def _journal_worker(path: str, n_trials: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="j", storage=make_storage(path))
    study.optimize(_quadratic, n_trials=n_trials,
                   callbacks=[lambda s, t: s.set_user_attr(f"pid-{os.getpid()}", True)])


def test_journal_file_shared_by_two_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "nas.log")
    optuna.create_study(storage=make_storage(path), study_name="j")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_journal_worker, args=(path, 4)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0]
    study = optuna.load_study(study_name="j", storage=make_storage(f"journal:///{path}"))
    assert sorted(t.number for t in study.trials) == list(range(8))
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert len([k for k in study.user_attrs if k.startswith("pid-")]) == 2


# --------------------------------------------------------------------------- PostgreSQL

@pytest.mark.postgres
def test_postgresql_study_runs(postgresql_db_url: str) -> None:
    storage = make_storage(postgresql_db_url)
    assert isinstance(storage, optuna.storages.RDBStorage)
    assert storage.engine_kwargs["pool_pre_ping"] is True
    assert storage.get_heartbeat_interval() == 60 and storage.grace_period == 120
    study = optuna.create_study(storage=storage, study_name="pg", directions=["minimize"] * 2)
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_int("w", 1, 8)), n_trials=3)
    loaded = optuna.load_study(study_name="pg", storage=postgresql_db_url)
    assert [t.state for t in loaded.trials] == [TrialState.COMPLETE] * 3
    assert [t.params for t in loaded.trials] == [t.params for t in study.trials]


@pytest.mark.postgres
def test_postgresql_wrong_password(pg_server: PostgresServer) -> None:
    url = pg_server.url(password="Wr0ngPassw0rd")
    with pytest.raises(StorageError) as info:
        make_storage(url)
    text = str(info.value)
    assert mask_url(url) in text and "***" in text
    assert "password authentication failed" in text
    _assert_clean_error(info.value, secret="Wr0ngPassw0rd")


@pytest.mark.postgres
def test_postgresql_missing_database_and_closed_port(pg_server: PostgresServer) -> None:
    with pytest.raises(StorageError, match="create the database 'no_such_db'") as info:
        make_storage(pg_server.url("no_such_db"))
    _assert_clean_error(info.value, secret=pg_server.password)
    with socket_closed_port() as port:
        url = pg_server.url().replace(f":{pg_server.port}/", f":{port}/")
        start = time.monotonic()
        with pytest.raises(StorageError, match="Connection refused") as info:
            make_storage(url)
        assert time.monotonic() - start < 5
    _assert_clean_error(info.value, secret=pg_server.password)
    assert mask_url(url) in str(info.value)


class socket_closed_port:  # noqa: N801 (used as a context manager, reads like a function)
    """A local port that nobody listens on while the block runs (bound, never listening)."""

    def __enter__(self) -> int:
        import socket

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        return int(self._sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self._sock.close()


@pytest.mark.postgres
def test_pool_survives_database_restart(pg_server: PostgresServer,
                                        postgresql_db_url: str) -> None:
    study = optuna.create_study(storage=make_storage(postgresql_db_url), study_name="r")
    control = optuna.create_study(
        storage=make_storage(postgresql_db_url, engine_kwargs={"pool_pre_ping": False}),
        study_name="control")
    study.optimize(_quadratic, n_trials=2)
    control.optimize(_quadratic, n_trials=2)
    pg_server.restart(mode="immediate")  # a crash: every pooled connection is dead
    study.optimize(_quadratic, n_trials=2)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    with pytest.raises(optuna.exceptions.StorageInternalError):  # without pings: broken
        control.optimize(_quadratic, n_trials=1)


_SLEEPER = """
import sys, time, optuna
from neuromosaic_optuna.storage import make_storage
study = optuna.load_study(study_name="hb", storage=make_storage(sys.argv[1],
                          heartbeat_interval=1, grace_period=2))
def objective(trial):
    trial.suggest_int("width", 1, 64)
    print("running", flush=True)
    time.sleep(300)
    return 0.0
study.optimize(objective, n_trials=1)
"""


@pytest.mark.postgres
def test_killed_worker_trial_is_failed_and_retried(postgresql_db_url: str) -> None:
    storage = make_storage(postgresql_db_url, heartbeat_interval=1, grace_period=2, max_retry=3)
    study = optuna.create_study(storage=storage, study_name="hb")
    worker = subprocess.Popen([sys.executable, "-c", _SLEEPER, postgresql_db_url],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "running"
        time.sleep(1.5)  # at least one heartbeat recorded
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    dead = study.trials[0]
    assert dead.state == TrialState.RUNNING
    deadline = time.monotonic() + 15
    while study.trials[0].state == TrialState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.5)
        optuna.storages.fail_stale_trials(study)
    trials = study.trials
    assert trials[0].state == TrialState.FAIL
    assert len(trials) == 2 and trials[1].state == TrialState.WAITING
    assert trials[1].system_attrs["failed_trial"] == dead.number
    study.optimize(lambda t: float(t.suggest_int("width", 1, 64)), n_trials=1)
    retried = study.trials[1]
    assert retried.state == TrialState.COMPLETE
    assert retried.params == dead.params and retried.value == dead.params["width"]


def test_heartbeat_survives_a_lost_connection(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # Optuna's heartbeat thread ends at the first error; ours logs it and beats again.
    storage = make_storage(f"sqlite:///{tmp_path / 'h.db'}", heartbeat_interval=1)
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    calls: list[int] = []

    def down(self: optuna.storages.RDBStorage, trial_id: int) -> None:
        calls.append(trial_id)
        raise optuna.exceptions.StorageInternalError("server closed the connection")

    with monkeypatch.context() as m:
        m.setattr(optuna.storages.RDBStorage, "record_heartbeat", down)
        storage.record_heartbeat(trial._trial_id)  # does not raise
    assert calls == [trial._trial_id]
    storage.record_heartbeat(trial._trial_id)  # the connection is back: recorded
    assert storage._get_stale_trial_ids(study._study_id) == []


def test_a_claim_without_any_heartbeat_turns_stale_after_the_grace_period(
        tmp_path: Path) -> None:
    # A claim whose worker never learned of it (the connection dropped as it was committed)
    # has no heartbeat at all; Optuna alone would leave it RUNNING forever.
    storage = make_storage(f"sqlite:///{tmp_path / 'o.db'}", heartbeat_interval=1,
                           grace_period=1)
    study = optuna.create_study(storage=storage)
    study.enqueue_trial({"x": 0.5})
    orphan = study.ask()  # RUNNING, no heartbeat recorded
    alive = study.ask()
    assert storage._get_stale_trial_ids(study._study_id) == []  # too young to judge
    time.sleep(1.6)
    storage.record_heartbeat(alive._trial_id)  # a live worker keeps beating
    assert storage._get_stale_trial_ids(study._study_id) == [orphan._trial_id]
    optuna.storages.fail_stale_trials(study)
    states = {t.number: t.state for t in study.get_trials()}
    assert states[orphan.number] == optuna.trial.TrialState.FAIL
    assert states[alive.number] == optuna.trial.TrialState.RUNNING
    retries = [t for t in study.get_trials() if t.system_attrs.get("failed_trial") == 0]
    assert len(retries) == 1 and retries[0].state == optuna.trial.TrialState.WAITING
