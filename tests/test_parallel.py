"""Shared studies on a real PostgreSQL: exact totals with several worker processes, a worker
killed mid-trial, a database restart mid-study, and no password in any output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from pg import PostgresServer

import neuromosaic_optuna as nm
from neuromosaic_optuna.objective import worker_id
from neuromosaic_optuna.storage import make_storage
from neuromosaic_optuna.study import open_slots, run_workers

pytestmark = pytest.mark.postgres

STUDY = """
[experiment]
name = "parallel"
architecture_type = "conv_net"
objectives = ["accuracy", "flops"]
dataset = "digits"
max_trials = 6
[experiment.search_space]
width_multiplier = [0.25, 0.5]
se_ratio = [0.0, 0.25]
[defaults]
resolution = 16
epochs = {epochs}
batch_size = 64
max_train_samples = {samples}
[defaults.model_options]
convnet_stages = ["ds_r1_k3_s1_e1_c16", "ir_r1_k3_s2_e6_c24"]
{pruner}
"""


def _study_file(tmp_path: Path, *, epochs: int = 1, samples: int = 256,
                prune: bool = True) -> Path:
    path = tmp_path / "parallel.toml"
    pruner = "" if prune else '[defaults.pruner]\nname = "NopPruner"'
    path.write_text(STUDY.format(epochs=epochs, samples=samples, pruner=pruner))
    return path


def _check_exact(url: str, name: str, target: int) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=url)
    trials = study.get_trials()
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == target
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    assert not [t for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING)]
    for t in finished:  # costs always; accuracy unless the default pruner stopped it early
        assert t.user_attrs["metrics"]["flops"] > 0
        if t.state == TrialState.COMPLETE:
            assert "accuracy" in t.user_attrs["metrics"]
        else:
            assert t.user_attrs["status"] in ("pruned", "invalid") and t.user_attrs["reason"]
    return trials


def test_three_workers_reach_exactly_the_requested_total(postgresql_db_url: str,
                                                          tmp_path: Path) -> None:
    # trials long enough (no pruning: every trial trains all its epochs) that the spawned
    # workers start while the caller still works
    # (about 15 s of training for one worker; a spawned worker starts in about 4 s)
    config = nm.load_study_file(_study_file(tmp_path, epochs=10, samples=1000, prune=False),
                                overrides={"max_trials": 10})
    study = run_workers(config, storage_url=postgresql_db_url, workers=3,
                        storage_options={"heartbeat_interval": 2})
    trials = _check_exact(postgresql_db_url, study.study_name, 10)
    assert len(trials) == 10  # no overshoot, no failure
    # the processes really shared the work, and the calling process is one of the workers
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) >= 2, workers
    assert worker_id() in workers


def test_worker_killed_mid_trial_is_failed_retried_and_total_stays_exact(
        postgresql_db_url: str, pg_server: PostgresServer, tmp_path: Path) -> None:
    study_file = _study_file(tmp_path, epochs=10, samples=1000)
    config = nm.load_study_file(study_file)
    storage = make_storage(postgresql_db_url, heartbeat_interval=1, grace_period=2)
    study = nm.create_study(config, storage=storage)
    open_slots(study, 4)
    cmd = [sys.executable, "-m", "neuromosaic_optuna.cli", "worker", str(study_file),
           "--storage", postgresql_db_url, "--heartbeat-interval", "1"]
    victim = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    running: list[optuna.trial.FrozenTrial] = []
    while time.time() < deadline and not running:
        time.sleep(0.1)
        # costs are stored just before training starts: the trial is then mid-flight
        running = [t for t in study.get_trials(states=(TrialState.RUNNING,))
                   if "metrics" in t.user_attrs]
    assert running, "the worker never started training a trial"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    killed = running[0]

    rescuer = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rescuer.returncode == 0, rescuer.stderr[-2000:]
    trials = _check_exact(postgresql_db_url, study.study_name, 4)
    by_number = {t.number: t for t in trials}
    assert by_number[killed.number].state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == killed.params
    password = pg_server.password
    assert password not in rescuer.stdout + rescuer.stderr
    assert "***" in rescuer.stdout


def test_database_restart_mid_study(postgresql_db_url: str, pg_server: PostgresServer,
                                    tmp_path: Path) -> None:
    config = nm.load_study_file(_study_file(tmp_path, epochs=2, samples=600),
                                overrides={"max_trials": 6})
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["study"] = run_workers(config, storage_url=postgresql_db_url, workers=2,
                                          storage_options={"heartbeat_interval": 1,
                                                           "grace_period": 3})
        except BaseException as exc:  # surfaced by the assertion below
            result["error"] = exc

    probe = optuna.storages.RDBStorage(postgresql_db_url,
                                       engine_kwargs={"pool_pre_ping": True})
    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.5)
        studies = probe.get_all_studies()
        if studies and any(t.state == TrialState.COMPLETE for t in
                           probe.get_all_trials(studies[0]._study_id, deepcopy=False)):
            break
    pg_server.restart()
    thread.join(timeout=600)
    assert not thread.is_alive()
    assert "error" not in result, result.get("error")
    _check_exact(postgresql_db_url, "parallel", 6)


def test_cli_run_with_workers_on_postgres_never_prints_the_password(
        postgresql_db_url: str, pg_server: PostgresServer, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from neuromosaic_optuna.cli import main

    monkeypatch.setenv("NEUROMOSAIC_STORAGE", postgresql_db_url)
    code = main(["run", str(_study_file(tmp_path)), "--workers", "2", "--n-trials", "3",
                 "--heartbeat-interval", "2"])
    out = capsys.readouterr()
    assert code == 0
    assert pg_server.password not in out.out + out.err
    assert "optuna-dashboard \"$NEUROMOSAIC_STORAGE\"" in out.out
    _check_exact(postgresql_db_url, "parallel", 3)
    bad = postgresql_db_url.replace(pg_server.password, "Wr0ngSecret")
    assert main(["run", str(_study_file(tmp_path)), "--storage", bad]) == 2
    err = capsys.readouterr().err
    assert "Wr0ngSecret" not in err and pg_server.password not in err
    assert len(err.strip().splitlines()) == 1 and "***" in err
