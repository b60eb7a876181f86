"""Issue 22, failures 1, 3, 5, 6, 7: runs that always end, one search space per study,
validation before the first trial, and commands that only read never write.

Each test drives ``main([...])`` in-process and asserts exit code 2, one line on stderr, no
traceback and, where nothing may be written, every pre-existing file's hash unchanged and
no new file. The fuzz families (study files, CLI flags, dataset folders) are in
``tests/test_fuzz_robust.py``.
"""

# Issue 22 acceptance, checked by running these tests against the code at 93fa139 (the tests
# copied into `git worktree add /tmp/old93 93fa139`): each fails there on an assertion and
# passes now. "raised X" = main() let X escape (a traceback), turned into an assertion by main.
#  1 diverge   test_diverging_trials_end_the_run_...        raised RuntimeError after 44 trials
#              test_a_real_run_whose_trials_all_diverge_... did not end within 300 s
#  2 journal   test_edges: test_torn_last_line_...          raised JSONDecodeError
#              test_edges: test_full_disk_on_a_journal_...  not exit 2, a traceback
#              test_edges: test_sigkill_mid_trial_...       rerun exit 0, trial 0 RUNNING
#  3 space     test_a_changed_search_space_is_refused_...   exit 0, other params added
#  4 password  test_edges: test_password_with_an_unescaped_at_never_leaks  "hunter" printed
#  5 limits    test_workers_are_capped_at_the_trials        100000 workers passed on
#              test_bad_input_...[huge_channels]            raised RuntimeError (5 trials)
#  6 in trials test_an_input_error_found_inside_a_trial_... raised RuntimeError (5 trials)
#              test_bad_input_...[sampler_argument]         raised RuntimeError (5 trials)
#              test_bad_input_...[unknown_param]            exit 0
#              test_unwritable_artifact_dir_...             raised RuntimeError (5 trials)
#  7 writes    test_read_only_commands_never_create_...     typo.db created
#              test_worker_with_a_mistyped_study_name_...   exit 0, a study created
#              test_transfer_from_a_missing_study_...       new.db created
#              test_bad_input_...[pruner_argument]          the line does not name the field
#  8 edges     test_edges: fifo / deep nesting / report --out / report on a full disk /
#              dashboard port / broken pipe / emoji name / SIGTERM+SIGINT; test_fuzz_edges:
#              damaged SQLite copies                        a hang (60 s), a traceback or
#                                                           exit 0 (dropped table)

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import optuna
import pytest
import tomli_w

from neuromosaic_optuna.cli import main as cli_main
from neuromosaic_optuna.config import ConfigError, load_config
from neuromosaic_optuna.study import create_study

BASE: dict[str, Any] = {
    "experiment": {
        "name": "robust", "architecture_type": "conv_net", "objectives": ["accuracy"],
        "dataset": "digits", "max_trials": 2,
        "search_space": {"depth_multiplier": [0.5, 1.0], "width_multiplier": [0.25, 0.5],
                         "se_ratio": [0.0, 0.25]},
    },
    "defaults": {"epochs": 1, "batch_size": 32, "max_train_samples": 64, "resolution": 16,
                 "model_options": {"convnet_stages": ["ds_r1_k3_s1_c8", "ir_r1_k3_s2_e2_c16"],
                                   "convnet_head_channels": 32}},
}


def main(argv: list[str]) -> int:
    """``cli.main(argv)``; an exception escaping it (a traceback for the user) fails the test on
    an assertion, as the code at 93fa139 does for failures 1 and 6."""
    try:
        return cli_main(argv)
    except Exception as exc:  # noqa: BLE001 (any escape is the failure under test)
        raise AssertionError(f"`neuromosaic {' '.join(argv[:1])}` raised "
                             f"{type(exc).__name__}: {str(exc)[:300]} (a traceback, not one "
                             "line and exit 2)") from exc


def snapshot(root: Path) -> dict[str, str]:
    """Hash of every file under ``root`` (the "no write" check: compare before and after)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()
            and not p.name.endswith(("-wal", "-shm"))}  # SQLite's WAL side files


def make_study(db: Path, data: dict[str, Any]) -> None:
    """A stored study made as the CLI makes it (WAL mode on), with no trials."""
    from neuromosaic_optuna.storage import make_storage

    storage = make_storage(f"sqlite:///{db}")
    create_study(load_config(data), storage=storage)
    # Close it now: a later garbage collection would checkpoint the WAL into the file (same
    # contents, other bytes) in the middle of a "nothing was written" check.
    storage.engine.dispose()


def write_study(path: Path, data: dict[str, Any]) -> Path:
    path.write_bytes(tomli_w.dumps(data).encode())
    return path


def variant(**defaults: Any) -> dict[str, Any]:
    import copy

    data = copy.deepcopy(BASE)
    for key, value in defaults.items():
        if key == "search_space":
            data["experiment"]["search_space"] = value
        else:
            data["defaults"][key] = value
    return data


def one_line_error(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("neuromosaic: error: ")
    return lines[0]


# ------------------------------------------------------------------ 1: runs always end


class _Costs:
    """A profile without measuring (the tests here are about what follows it)."""

    def as_dict(self) -> dict[str, float]:
        return {"params": 1e3, "flops": 1e5, "latency": 1e-3, "memory": 1e4,
                "throughput": 1e3}


@pytest.fixture(autouse=True)
def _no_timing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("neuromosaic_optuna.profiling.profile_model",
                        lambda *a, **k: _Costs())


def _diverging(calls: list[int]) -> Any:
    from neuromosaic_optuna.training import DivergedError

    def fake_train(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) > 40:  # the code at 93fa139 replaces diverged trials for ever
            raise RuntimeError("test bound: the run did not stop")
        raise DivergedError("loss is nan at epoch 1, step 5")

    return fake_train


def test_diverging_trials_end_the_run_with_one_line_naming_the_cause(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    calls: list[int] = []
    monkeypatch.setattr("neuromosaic_optuna.training.train_model", _diverging(calls))
    study_file = write_study(tmp_path / "s.toml", variant(learning_rate=10.0,
                                                          weight_decay=10.0, optimizer="sgd"))
    db = tmp_path / "d.db"
    code = main(["run", str(study_file), "--storage", f"sqlite:///{db}", "--n-trials", "2",
                 "--no-progress"])
    line = one_line_error(code, capsys.readouterr().err)
    assert "learning_rate" in line and "weight decay" in line and "diverged" in line
    assert len(calls) == 5  # MAX_FAILURES_IN_A_ROW, not 111
    from neuromosaic_optuna.study import FAILURE_STOP_ATTR  # here: the test collects at 93fa139

    study = optuna.load_study(study_name="robust", storage=f"sqlite:///{db}")
    stop = study.user_attrs[FAILURE_STOP_ATTR]
    assert "diverged" in stop["reason"] and len(stop["failed_trials"]) == 5


# Real training, no fakes: a learning rate and weight decay this high make the loss NaN within
# a few SGD steps on every architecture (8 steps an epoch here; the quickstart's smoke budget,
# 4 steps of one epoch, ends at a loss near 1e13 that is still finite, so its trials complete).
DIVERGING = """
[experiment]
name = "diverge"
architecture_type = "conv_net"
objectives = ["accuracy"]
dataset = "digits"
max_trials = 2
[experiment.search_space]
width_multiplier = [0.25, 0.5]
[defaults]
resolution = 16
epochs = 2
batch_size = 16
max_train_samples = 128
learning_rate = 10.0
weight_decay = 10.0
optimizer = "sgd"
[defaults.model_options]
convnet_stages = ["ds_r1_k3_s1_c8", "ir_r1_k3_s2_e2_c16"]
convnet_head_channels = 32
[budget.smoke]
max_trials = 2
epochs = 2
"""


def test_a_real_run_whose_trials_all_diverge_ends_with_exit_2_and_one_error_line(
        tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "div.toml").write_text(DIVERGING)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
           "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("NEUROMOSAIC_STORAGE", None)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "neuromosaic_optuna.cli", "run", "div.toml", "--budget",
             "smoke", "--n-trials", "2", "--storage", "sqlite:///d.db", "--no-progress"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:  # 93fa139: diverged trials are replaced for ever
        raise AssertionError("the run did not end within 300 s") from None
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("neuromosaic:")]
    assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]), result.stderr[-2000:]
    assert errors[0].startswith("neuromosaic: error: learning_rate: 5 trials in a row diverged")
    assert "Traceback" not in result.stderr, result.stderr[-2000:]  # per-trial lines: one each
    assert "learning_rate 10.0, weight_decay 10.0, optimizer sgd" in errors[0]
    trials = optuna.load_study(study_name="diverge-smoke",
                               storage=f"sqlite:///{tmp_path / 'd.db'}").trials
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert len(failed) == 5, [(t.number, t.state.name) for t in trials]  # not 111
    assert {t.user_attrs["status"] for t in failed} == {"diverged"}
    assert all(t.user_attrs["reason"].startswith("loss is nan") for t in failed)
    assert not [t for t in trials if t.state.name in ("COMPLETE", "RUNNING")]


def test_an_input_error_found_inside_a_trial_stops_at_once_with_the_reason_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    calls: list[int] = []

    def unreadable(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        raise ConfigError("dataset_path", "train/ant/3.png: not a readable image")

    monkeypatch.setattr("neuromosaic_optuna.training.train_model", unreadable)
    study_file = write_study(tmp_path / "s.toml", variant())
    db = tmp_path / "d.db"
    code = main(["run", str(study_file), "--storage", f"sqlite:///{db}", "--no-progress"])
    line = one_line_error(code, capsys.readouterr().err)
    assert "dataset_path" in line and "3.png" in line
    assert len(calls) == 1
    from neuromosaic_optuna.study import FAILURE_STOP_ATTR

    study = optuna.load_study(study_name="robust", storage=f"sqlite:///{db}")
    assert "3.png" in study.user_attrs[FAILURE_STOP_ATTR]["reason"]


# ------------------------------------------------------------------ 3: one search space


def test_a_changed_search_space_is_refused_under_the_same_study_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "d.db"
    make_study(db, variant())
    changed = variant(search_space={"depth_multiplier": [0.5, 1.0],
                                    "kernel_size": [3, 5]})
    study_file = write_study(tmp_path / "changed.toml", changed)
    before = snapshot(tmp_path)
    code = main(["run", str(study_file), "--storage", f"sqlite:///{db}", "--no-progress"])
    line = one_line_error(code, capsys.readouterr().err)
    assert "kernel_size" in line and "se_ratio" in line and "--study-name" in line
    assert "--allow-changed-space" in line
    assert snapshot(tmp_path) == before
    # The flag says the change is intended: the stored identity follows the file.
    from neuromosaic_optuna.study import IDENTITY_ATTR

    study = create_study(load_config(changed), storage=f"sqlite:///{db}",
                         allow_changed_space=True)
    assert "kernel_size" in study.user_attrs[IDENTITY_ATTR]["search_space"]


def test_an_old_study_without_identity_keeps_working(tmp_path: Path) -> None:
    from neuromosaic_optuna.study import IDENTITY_ATTR

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = optuna.create_study(study_name="robust", storage=url, direction="maximize")
    old.set_user_attr("neuromosaic", {"dataset": "digits"})
    study = create_study(load_config(variant()), storage=url)
    assert study.user_attrs[IDENTITY_ATTR]["dataset"] == "digits"


# ------------------------------------------------------------------ 5 and 6: preflight

PREFLIGHT_CASES = {
    "sampler_argument": (variant(sampler={"name": "TPESampler", "n_startup_trials": "many"}),
                         "sampler.n_startup_trials"),
    "pruner_argument": (variant(pruner={"name": "MedianPruner", "n_warmup_steps": "two"}),
                        "pruner.n_warmup_steps"),
    "unknown_param": (variant(search_space={"depth_multiplier": [0.5, 1.0],
                                            "widht_multiplier": [0.5, 1.0]}),
                      "search_space.widht_multiplier"),
    "negative_multiplier": (variant(search_space={"depth_multiplier": [-1.0, 1.0]}),
                            "search_space.depth_multiplier"),
    "bad_stage": (variant(model_options={"convnet_stages": ["ir_r1_k3_s2_e6_c24_zz9"]}),
                  "model_options"),
    "huge_repeats": (variant(model_options={"convnet_stages": ["ir_r999999_k3_s1_e6_c24"]}),
                     "model_options"),
    "huge_channels": (variant(model_options={"convnet_stages": ["ir_r1_k3_s1_e6_c9999999"]}),
                      "model_options"),
    "unknown_option": (variant(model_options={"convnet_stagez": ["ds_r1_k3_s1_c8"]}),
                       "model_options.convnet_stagez"),
    "known_good_unknown": (variant(known_good=[{"kernel": 3}]), "known_good[0].kernel"),
    "known_good_outside": (variant(known_good=[{"width_multiplier": 4.0}]),
                           "known_good[0].width_multiplier"),
    "smallest_over_max_params": (variant(constraints={"max_params": 10}),
                                 "constraints.max_params"),
}


@pytest.mark.parametrize("case", sorted(PREFLIGHT_CASES))
def test_bad_input_is_refused_before_the_first_trial_and_nothing_is_written(
        case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    data, field = PREFLIGHT_CASES[case]
    study_file = write_study(tmp_path / "s.toml", data)
    before = snapshot(tmp_path)
    code = main(["run", str(study_file), "--storage", f"sqlite:///{tmp_path / 'd.db'}",
                 "--no-progress"])
    line = one_line_error(code, capsys.readouterr().err)
    assert field in line
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


def test_unwritable_artifact_dir_is_refused_before_the_first_trial(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("not a folder")
    study_file = write_study(tmp_path / "s.toml", variant())
    before = snapshot(tmp_path)
    code = main(["run", str(study_file), "--storage", f"sqlite:///{tmp_path / 'd.db'}",
                 "--artifact-dir", str(tmp_path / "a-file" / "weights"), "--no-progress"])
    line = one_line_error(code, capsys.readouterr().err)
    assert "artifact" in line and "a-file" in line
    assert snapshot(tmp_path) == before


def test_workers_are_capped_at_the_trials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    seen: list[int] = []

    def fake_run_workers(config: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["workers"])
        raise ConfigError("--workers", "recorded")

    monkeypatch.setattr("neuromosaic_optuna.study.run_workers", fake_run_workers)
    study_file = write_study(tmp_path / "s.toml", variant())
    main(["run", str(study_file), "--storage", f"sqlite:///{tmp_path / 'd.db'}",
          "--n-trials", "300", "--workers", "100000", "--no-progress"])
    assert seen == [300]
    assert "more than the" in capsys.readouterr().err  # the CPU warning


# ------------------------------------------------------------------ 7: reading never writes


@pytest.mark.parametrize("command", [["pareto"], ["report"], ["dashboard"], ["robustness"]])
def test_read_only_commands_never_create_a_storage(
        command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    study_file = write_study(tmp_path / "s.toml", variant())
    code = main([*command, str(study_file), "--storage", f"sqlite:///{tmp_path / 'typo.db'}"])
    line = one_line_error(code, capsys.readouterr().err)
    assert "typo.db" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


def test_worker_with_a_mistyped_study_name_creates_no_study(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "d.db"
    make_study(db, variant())
    study_file = write_study(tmp_path / "s.toml", variant())
    before = snapshot(tmp_path)
    code = main(["worker", str(study_file), "--storage", f"sqlite:///{db}",
                 "--study-name", "robustt"])
    line = one_line_error(code, capsys.readouterr().err)
    assert "robustt" in line
    assert snapshot(tmp_path) == before
    assert optuna.get_all_study_names(f"sqlite:///{db}") == ["robust"]


def test_transfer_from_a_missing_study_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "d.db"
    make_study(db, variant())
    study_file = write_study(tmp_path / "s.toml", variant())
    before = snapshot(tmp_path)
    code = main(["transfer", "--from", "no-such-source", "--to", str(study_file),
                 "--storage", f"sqlite:///{db}", "--study-name", "target"])
    line = one_line_error(code, capsys.readouterr().err)
    assert "no-such-source" in line
    assert snapshot(tmp_path) == before
    code = main(["transfer", "--from", "x", "--to", str(study_file),
                 "--storage", f"sqlite:///{tmp_path / 'new.db'}"])
    one_line_error(code, capsys.readouterr().err)
    assert not (tmp_path / "new.db").exists()
