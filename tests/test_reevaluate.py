"""`neuromosaic reevaluate`: the front retrained with extra seeds (issue 20, noisy measurements)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from neuromosaic_optuna.cli import main
from neuromosaic_optuna.config import load_study_file
from neuromosaic_optuna.objective import Objective
from neuromosaic_optuna.record import REEVALUATION_ATTR, reevaluations
from neuromosaic_optuna.study import create_study

SMALL = {"depth_multiplier": 0.5, "width_multiplier": 0.25, "se_ratio": 0.0}
LARGE = {"depth_multiplier": 2.0, "width_multiplier": 1.5, "se_ratio": 0.25}


@pytest.mark.slow
def test_reevaluate_command_stores_runs_and_reports_a_changed_front(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = load_study_file("studies/quickstart.toml", budget="smoke")
    url = f"sqlite:///{tmp_path / 'r.db'}"
    study = create_study(config, storage=url)
    dists = Objective(config).space.distributions
    # trial 0: a lucky single run (0.95 at tiny FLOPs) that one smoke epoch cannot repeat;
    # trial 1: dominated by that lucky run, on the front once trial 0 is at its mean.
    study.add_trial(optuna.trial.create_trial(params=SMALL, distributions=dists,
                                              values=[0.95, 1e5]))
    study.add_trial(optuna.trial.create_trial(params=LARGE, distributions=dists,
                                              values=[0.8, 1e9]))
    assert main(["reevaluate", "studies/quickstart.toml", "--storage", url, "--budget",
                 "smoke", "--top", "1", "--seeds", "1"]) == 0
    out = capsys.readouterr().out
    assert "retraining trial 0 with seed 1000" in out
    stored = reevaluations(optuna.load_study(study_name=study.study_name, storage=url))
    assert list(stored) == [0]
    runs = stored[0]["runs"]
    assert stored[0]["seeds"] == [config.seed, 1000] and len(runs) == 2
    assert runs[0] == [0.95, 1e5]
    assert 0.0 <= runs[1][0] < 0.65  # one smoke epoch: far from the lucky 0.95
    assert stored[0]["mean"][0] == pytest.approx((0.95 + runs[1][0]) / 2)
    assert stored[0]["std"][0] == pytest.approx(abs(0.95 - runs[1][0]) / 2 ** 0.5)
    assert "the front changes once noise is accounted for: leaves -, joins [1]" in out
    # insights now read trial 0 at its mean
    assert main(["insights", "studies/quickstart.toml", "--storage", url, "--budget", "smoke",
                 "--bootstrap", "50"]) == 0
    assert "1 trial(s) at their re-evaluated means" in capsys.readouterr().out


def test_insights_read_reevaluated_means() -> None:
    from neuromosaic_optuna.insights import _table

    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["accuracy", "flops"])
    study.add_trials([optuna.trial.create_trial(values=[0.9, 1.0]),
                      optuna.trial.create_trial(values=[0.7, 2.0])])
    study.set_user_attr(REEVALUATION_ATTR, {"0": {"seeds": [0, 1], "runs": [[0.9, 1], [0.5, 1]],
                                                  "mean": [0.7, 1.0], "std": [0.28, 0.0]},
                                            "bad": {"mean": [1]}, "1": "garbage"})
    table = _table(study)
    assert table.column("accuracy").tolist() == [0.7, 0.7]
    assert table.front(["accuracy", "flops"]).tolist() == [True, False]


def test_reevaluate_rejects_bad_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    assert main(["reevaluate", "studies/quickstart.toml", "--storage", url, "--top", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--top" in err[0]
    assert not (tmp_path / "none.db").exists()
