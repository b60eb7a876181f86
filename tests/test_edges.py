"""Killed runs, torn journals, full disks, leaked passwords and other edges (issue 22,
failures 2, 4 and 8). Each test drives the CLI: ``main([...])`` in-process where it can,
a subprocess where a signal, a file-size limit or a terminal is part of the case."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from test_fuzz_edges import _run, _snapshot, seed_study
from test_robust_input import main

from neuromosaic_optuna.storage import make_storage

ROOT = Path(__file__).resolve().parent.parent
QUICK = str(ROOT / "studies" / "quickstart.toml")

# NAS-Bench-201 lookups: trials take milliseconds, so a test measures the storage, not training.
NB201 = """
[experiment]
name = "nb"
architecture_type = "nasbench201"
objectives = ["accuracy"]
dataset = "cifar10"
max_trials = 3
[experiment.search_space]
edge_1_0 = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
edge_2_0 = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
edge_3_2 = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
"""

# A small conv net trained for a few seconds: long enough to be interrupted mid-trial.
CONV = """
[experiment]
name = "edges"
architecture_type = "conv_net"
objectives = ["accuracy", "flops"]
dataset = "digits"
max_trials = 2
[experiment.search_space]
width_multiplier = [0.25, 0.5]
[defaults]
resolution = 16
epochs = 3
batch_size = 64
max_train_samples = 384
[defaults.model_options]
convnet_stages = ["ds_r1_k3_s1_e1_c16", "ir_r1_k3_s2_e6_c24"]
[defaults.pruner]
name = "NopPruner"
"""


#: The same search with multi-fidelity successive halving (issue 18) instead of a pruner.
CONV_FIDELITY = CONV.replace('[defaults.pruner]\nname = "NopPruner"\n', "") + """[fidelity]
min = 1
reduction_factor = 3
"""


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    return lines[0]


def _cli(args: list[str], cwd: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("NEUROMOSAIC_STORAGE", None)
    try:
        return subprocess.run([sys.executable, "-m", "neuromosaic_optuna.cli", *args],
                              cwd=cwd, env=env, capture_output=True, text=True,
                              **kwargs)  # type: ignore
    except subprocess.TimeoutExpired as exc:  # a run that never ends fails on an assertion
        raise AssertionError(f"`neuromosaic {' '.join(args)}` did not end within "
                             f"{exc.timeout} s") from None


def _popen(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.Popen([sys.executable, "-m", "neuromosaic_optuna.cli", *args], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=make_storage(url)).get_trials()


def _wait_mid_trial(url: str, name: str, proc: subprocess.Popen[str]) -> optuna.trial.FrozenTrial:
    """The trial ``proc`` is training (its costs are stored just before training starts)."""
    deadline = time.time() + 120
    study = None
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
        if study is None:
            with contextlib.suppress(Exception):  # the study may not exist yet
                study = optuna.load_study(study_name=name, storage=make_storage(url))
            continue
        running = [t for t in study.get_trials(deepcopy=False)
                   if t.state == TrialState.RUNNING and "metrics" in t.user_attrs]
        if running:
            return running[0]
    raise AssertionError(f"no trial was ever mid-training (exit code {proc.poll()})")


def _exact(url: str, name: str, target: int) -> list[optuna.trial.FrozenTrial]:
    trials = _trials(url, name)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == target, [(t.number, t.state.name) for t in trials]
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    return trials


# --------------------------------------------------------------------------- failure 2

@pytest.mark.parametrize("study", [CONV, CONV_FIDELITY], ids=["plain", "fidelity"])
def test_sigkill_mid_trial_on_a_journal_file_is_retried_and_the_total_stays_exact(
        tmp_path: Path, study: str) -> None:
    (tmp_path / "conv.toml").write_text(study)
    url = str(tmp_path / "j.log")
    command = ["run", "conv.toml", "--storage", "j.log", "--n-trials", "1",
               "--heartbeat-interval", "1", "--no-progress"]
    victim = _popen(command, tmp_path)
    killed = _wait_mid_trial(url, "edges", victim)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)

    rerun = _cli(command, tmp_path, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    trials = _exact(url, "edges", 1)
    by_number = {t.number: t for t in trials}
    assert by_number[killed.number].state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == killed.params
    if study is CONV_FIDELITY:  # the retry was judged at the rungs and trained to the end
        assert sorted(retries[0].user_attrs["intermediate"]["accuracy"]) == ["1", "2", "3"]


def test_torn_last_line_of_a_journal_is_set_aside_and_no_trial_is_lost(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nb.toml").write_text(NB201)
    assert main(["run", "nb.toml", "--storage", "j.log", "--n-trials", "2",
                 "--no-progress"]) == 0
    journal = tmp_path / "j.log"
    lines = journal.read_bytes().splitlines(keepends=True)
    torn = lines[-1][:37]  # what a writer killed mid-record (or a full disk) leaves
    with journal.open("ab") as f:
        f.write(torn)

    code, out, err = _run(["run", "nb.toml", "--storage", "j.log", "--n-trials", "4",
                           "--no-progress"])
    assert code == 0, err
    trials = _exact(str(journal), "nb", 4)
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert journal.read_bytes().startswith(b"".join(lines))  # every old record kept
    for line in journal.read_bytes().splitlines():
        assert isinstance(json.loads(line), dict)
    kept = list(tmp_path.glob("j.log.torn-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == torn
    warnings = [r for r in caplog.records
                if r.levelname == "WARNING" and "incomplete record" in r.getMessage()]
    assert len(warnings) == 1, warnings
    # plain Optuna reads it too
    plain = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
        str(journal)))
    assert len(optuna.load_study(study_name="nb", storage=plain).trials) == 4


def _limit_file_size(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_full_disk_on_a_journal_leaves_whole_lines_and_the_run_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "nb.toml").write_text(NB201)
    # The crashed run cannot mark its trial failed (the disk is full): the resume finds it
    # stale after two heartbeat intervals and retries it.
    command = ["run", "nb.toml", "--storage", "j.log", "--n-trials", "12",
               "--heartbeat-interval", "1", "--no-progress"]
    full = _cli(command, tmp_path, timeout=120,
                preexec_fn=lambda: _limit_file_size(12_000))
    assert full.returncode == 2, full.stderr[-2000:]
    line = _one_error_line(full.stderr)
    assert line.startswith("neuromosaic: error: disk full"), line
    data = (tmp_path / "j.log").read_bytes()
    assert 0 < len(data) <= 12_000 and data.endswith(b"\n")  # whole lines or nothing
    for record in data.splitlines():
        json.loads(record)

    monkeypatch.chdir(tmp_path)
    code, _, err = _run(command)  # the disk has room again
    assert code == 0, err
    _exact(str(tmp_path / "j.log"), "nb", 12)


# --------------------------------------------------------------------------- failure 4

@pytest.mark.parametrize("command", ["run", "pareto", "worker"])
def test_password_with_an_unescaped_at_never_leaks(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   command: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NEUROMOSAIC_STORAGE", raising=False)
    url = "postgresql://nas:hunter@2xyz@127.0.0.1/db"
    code, out, err = _run([command, QUICK, "--storage", url])
    assert code == 2
    line = _one_error_line(err)
    assert "hunter" not in out + err and "2xyz" not in out + err
    assert "percent-encode" in line and "%40" in line
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- failure 8

@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with ``seed.db``: a small finished study named ``seed`` (no engine left open)."""
    monkeypatch.chdir(tmp_path)
    storage = make_storage("sqlite:///seed.db")
    seed_study(storage)
    storage.engine.dispose()  # type: ignore[attr-defined]
    return tmp_path


SEED_ARGS = ["--storage", "seed.db", "--study-name", "seed"]


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "folder"])
def test_study_file_that_is_no_regular_file_is_refused_at_once(tmp_path: Path,
                                                               kind: str) -> None:
    path = {"fifo": str(tmp_path / "study.toml"), "/dev/zero": "/dev/zero",
            "folder": str(tmp_path)}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    before = _snapshot(tmp_path)
    result = _cli(["run", path, "--storage", "x.db"], tmp_path, timeout=60)
    assert result.returncode == 2
    assert "not a regular file" in _one_error_line(result.stderr) or "folder" in result.stderr
    assert _snapshot(tmp_path) == before


def test_deeply_nested_study_file_is_one_line(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("deep.toml").write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    code, _, err = _run(["run", "deep.toml", "--storage", "x.db"])
    assert code == 2 and "nested more than" in _one_error_line(err)
    assert sorted(os.listdir()) == ["deep.toml"]


def test_sigterm_and_sigint_fail_the_running_trial_and_the_next_run_resumes_at_once(
        tmp_path: Path) -> None:
    (tmp_path / "conv.toml").write_text(CONV)
    url = str(tmp_path / "c.log")
    command = ["run", "conv.toml", "--storage", url, "--n-trials", "1",
               "--no-progress"]  # heartbeat 60 s: a trial left RUNNING blocks a resume 120 s
    stopped_numbers = []
    for signum in (signal.SIGTERM, signal.SIGINT):  # the second run resumes the first at once
        proc = _popen(command, tmp_path)
        running = _wait_mid_trial(url, "edges", proc)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + signum, err[-2000:]
        line = _one_error_line(err)
        assert f"interrupted by {signal.Signals(signum).name}" in line
        stopped = {t.number: t for t in _trials(url, "edges")}[running.number]
        assert stopped.state == TrialState.FAIL
        assert signal.Signals(signum).name in stopped.user_attrs["reason"]
        stopped_numbers.append(stopped.number)
    assert stopped_numbers[0] != stopped_numbers[1]
    rerun = _cli(command, tmp_path, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    trials = _exact(url, "edges", 1)
    # Nothing was left RUNNING: no trial had to turn stale (after 2 x 60 s) and be retried.
    assert not [t for t in trials if "failed_trial" in t.system_attrs]
    assert [t.number for t in trials if t.state == TrialState.FAIL] == stopped_numbers


def test_report_out_at_a_folder_or_bad_path_is_one_line(seeded: Path) -> None:
    (seeded / "out").mkdir()
    before = _snapshot(seeded)
    for out in ("out", "/dev/null/report.html", "/proc/nope/report.html"):
        code, _, err = _run(["report", QUICK, *SEED_ARGS, "--out", out])
        assert code == 2, err
        _one_error_line(err)
    for suffix in ("-wal", "-shm"):  # the in-process read left its connection's files
        Path(f"seed.db{suffix}").unlink(missing_ok=True)
    assert _snapshot(seeded) == before


def test_report_out_below_a_file_names_out(seeded: Path) -> None:
    Path("a-file").write_text("x")
    before = _snapshot(seeded)
    code, _, err = _run(["report", QUICK, *SEED_ARGS, "--out", "a-file/r.html"])
    assert code == 2, err
    line = _one_error_line(err)
    assert "--out" in line and "a-file" in line and "choose another file" in line
    for suffix in ("-wal", "-shm"):
        Path(f"seed.db{suffix}").unlink(missing_ok=True)
    assert _snapshot(seeded) == before


def test_report_on_a_full_disk_leaves_no_truncated_file(seeded: Path) -> None:
    result = _cli(["report", QUICK, *SEED_ARGS, "--out", "r.html"], seeded, timeout=120,
                  preexec_fn=lambda: _limit_file_size(64_000))
    assert result.returncode == 2, result.stderr[-2000:]
    assert _one_error_line(result.stderr).startswith("neuromosaic: error: disk full")
    assert not [p.name for p in seeded.iterdir() if "r.html" in p.name]


def test_dashboard_port_in_use_is_one_line_and_writes_nothing(seeded: Path) -> None:
    before = _snapshot(seeded)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = _run(["dashboard", QUICK, *SEED_ARGS, "--port", str(port)])
    assert code == 2
    assert "--port" in _one_error_line(err)
    assert _snapshot(seeded) == before


def test_broken_pipe_is_one_line(seeded: Path) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte (pareto | head -0)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "neuromosaic_optuna.cli", "pareto", QUICK,
                           *SEED_ARGS], cwd=seeded, env=env, stdout=write,
                          stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(write)
    assert proc.returncode == 2
    assert "closed" in _one_error_line(proc.stderr)


def test_emoji_study_name_on_an_ascii_terminal_is_one_line(seeded: Path) -> None:
    seeded_study = optuna.load_study(study_name="seed", storage="sqlite:///seed.db")
    optuna.copy_study(from_study_name="seed", from_storage="sqlite:///seed.db",
                      to_storage="sqlite:///seed.db", to_study_name="nas-\U0001f680")
    del seeded_study
    before = _snapshot(seeded)
    result = subprocess.run(
        [sys.executable, "-m", "neuromosaic_optuna.cli", "pareto", QUICK, "--storage",
         "seed.db", "--study-name", "nas-\U0001f680"], cwd=seeded, capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "ascii"},
        timeout=120)
    stderr = result.stderr.decode("ascii")
    assert result.returncode == 2, stderr
    assert "--study-name" in _one_error_line(stderr)
    assert result.stdout == b""
    assert _snapshot(seeded) == before


def test_empty_study_name_and_report_out_below_a_file_are_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from neuromosaic_optuna.cli import main

    (tmp_path / "a-file").write_text("x")
    url = f"sqlite:///{tmp_path / 'none.db'}"
    assert main(["pareto", "studies/quickstart.toml", "--storage", url, "--study-name", " "]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--study-name" in err[0] and "cannot be empty" in err[0]
    assert not (tmp_path / "none.db").exists()


def test_a_full_disk_inside_a_trial_is_not_logged_as_its_failure() -> None:
    """The disk fills while a trial stores its results: Optuna would log the trial's failure
    with a traceback (and could not store it anyway). The OSError leaves the worker instead;
    the trial stays RUNNING for a resume to retry, and nothing is logged."""
    import errno
    import logging

    from neuromosaic_optuna.study import open_slots, work

    study = optuna.create_study()
    open_slots(study, 2)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep(level=logging.WARNING)
    logging.getLogger("optuna").addHandler(keep)

    def objective(trial: optuna.trial.Trial) -> float:
        trial.suggest_float("x", 0, 1)
        raise OSError(errno.EFBIG, "File too large")

    try:
        with pytest.raises(OSError, match="File too large") as raised:
            work(study, objective)
    finally:
        logging.getLogger("optuna").removeHandler(keep)
    assert raised.value.errno == errno.EFBIG
    assert [r.getMessage() for r in records if "failed" in r.getMessage()] == []
    assert [t.state for t in study.trials] == [TrialState.RUNNING, TrialState.WAITING]
