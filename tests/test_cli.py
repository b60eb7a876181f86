"""The `neuromosaic` command: results table, exit codes, one-line errors, nothing stored."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from neuromosaic_optuna.cli import main

ROOT = Path(__file__).resolve().parent.parent
QUICK = str(ROOT / "studies" / "quickstart.toml")

GOOD = """
[experiment]
name = "cli"
architecture_type = "conv_net"
objectives = ["accuracy", "flops"]
dataset = "digits"
[experiment.search_space]
width_multiplier = [0.25, 0.5]
"""

BAD_CASES = {
    "unknown key": (GOOD + "colour = 'red'\n", "experiment.search_space.colour"),
    "unknown top key": (GOOD.replace('name = "cli"', 'nmae = "cli"'), "experiment.nmae"),
    "wrong type": (GOOD.replace('dataset = "digits"', "dataset = 3"), "experiment.dataset"),
    "bad unit": (GOOD + "[experiment.constraints]\nmax_params = '10 zillion'\n",
                 "experiment.constraints.max_params"),
    "low > high": (GOOD.replace("[0.25, 0.5]", "[0.5, 0.25]"),
                   "experiment.search_space.width_multiplier"),
    "unknown architecture": (GOOD.replace('"conv_net"', '"hypernet"'),
                             "experiment.architecture_type"),
    "unreadable toml": ("[experiment\nname = 1", "not valid TOML"),
    "unknown dataset": (GOOD.replace('"digits"', '"mnist"'), "dataset"),
}


def test_run_prints_table_and_storage_opens_with_plain_optuna(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "cli.db"
    code = main(["run", QUICK, "--budget", "smoke", "--storage", f"sqlite:///{db}",
                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Pareto front of 'quickstart-smoke'" in out and "knee: trial" in out
    assert "hypervolume:" in out and "accuracy" in out and "flops" in out
    assert f"optuna-dashboard sqlite:///{db}" in out
    study = optuna.load_study(study_name="quickstart-smoke", storage=f"sqlite:///{db}")
    assert study.metric_names == ["accuracy", "flops"]
    assert len(study.trials) == 2
    assert all("metrics" in t.user_attrs for t in study.trials)


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
        case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text, field = BAD_CASES[case]
    study_file = tmp_path / "bad.toml"
    study_file.write_text(text)
    db = tmp_path / "untouched.db"
    code = main(["run", str(study_file), "--storage", f"sqlite:///{db}", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert field in lines[0]
    assert "Traceback" not in err
    assert not db.exists()


def test_bad_flags_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", QUICK, "--n-trials", "zero"]) == 2
    assert main(["run", QUICK, "--budget", "gpu-farm"]) == 2
    assert main(["fly"]) == 2
    err = capsys.readouterr().err
    assert "--n-trials" in err and "gpu-farm" in err


def test_existing_study_is_not_damaged_by_bad_config(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'keep.db'}"
    assert main(["run", QUICK, "--budget", "smoke", "--storage", db, "--n-trials", "1",
                 "--no-progress"]) == 0
    before = optuna.load_study(study_name="quickstart-smoke", storage=db).trials
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace("[0.25, 0.5]", "[0.5, 0.25]"))
    assert main(["run", str(bad), "--storage", db, "--study-name", "quickstart-smoke"]) == 2
    after = optuna.load_study(study_name="quickstart-smoke", storage=db).trials
    assert [(t.number, t.values) for t in before] == [(t.number, t.values) for t in after]


def test_console_script_help_and_version_answer_without_torch() -> None:
    code = ("import sys; from neuromosaic_optuna.cli import main; "
            "import neuromosaic_optuna.cli; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
    res = subprocess.run([sys.executable, "-m", "neuromosaic_optuna.cli", "--version"],
                         capture_output=True, text=True)
    assert res.returncode == 0 and "neuromosaic 0.1.0" in res.stdout
    res = subprocess.run([sys.executable, "-m", "neuromosaic_optuna.cli", "run",
                          "no/such/file.toml"], capture_output=True, text=True,
                         env={**os.environ})
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "no such study file" in res.stderr


def test_pareto_report_and_studies_commands(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'p.db'}"
    assert main(["run", QUICK, "--budget", "smoke", "--storage", db, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["pareto", QUICK, "--budget", "smoke", "--storage", db,
                 "--operating-point", "flops<=1G", "--operating-point", "params<=1"]) == 0
    out = capsys.readouterr().out
    assert "knee: trial" in out and "hypervolume" in out
    assert "operating point flops<=1e+09: trial" in out or "operating point flops" in out
    assert "params<=1: no feasible trial meets it" in out
    assert main(["pareto", QUICK, "--budget", "smoke", "--storage", db,
                 "--operating-point", "latency<=fast"]) == 2
    assert "--operating-point" in capsys.readouterr().err
    html = tmp_path / "r.html"
    assert main(["report", QUICK, "--budget", "smoke", "--storage", db, "--out",
                 str(html)]) == 0
    text = html.read_text()
    assert "quickstart-smoke" in text and "<script src=\"http" not in text
    assert main(["report", QUICK, "--storage", db, "--study-name", "nope"]) == 2
    assert "no study 'nope'" in capsys.readouterr().err
    assert main(["studies"]) == 0
    listing = capsys.readouterr().out
    for name in ("quickstart.toml", "vit_search.toml", "efficient_convnets.toml",
                 "multi_objective.toml", "robustness.toml",
                 "transfer_cifar10_to_imagenet.toml"):
        assert name in listing


def test_transfer_command_warm_starts_from_an_existing_study(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study_file = str(ROOT / "studies" / "transfer_cifar10_to_imagenet.toml")
    db = f"sqlite:///{tmp_path / 't.db'}"
    assert main(["run", study_file, "--budget", "smoke", "--storage", db,
                 "--no-progress"]) == 0
    capsys.readouterr()
    source = "transfer_cifar10_to_imagenet-smoke-source"
    assert main(["transfer", "--from", source, "--to", study_file, "--budget", "smoke",
                 "--storage", db, "--study-name", "second-target", "--top-k", "5",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "warm start: enqueued 5" in out
    target = optuna.load_study(study_name="second-target", storage=db)
    assert len(target.trials) == 20
    warm = [t for t in target.trials if "warm_start" in str(t.user_attrs)]
    assert len(warm) == 5
