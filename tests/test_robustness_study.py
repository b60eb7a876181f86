"""Case study 5 through the product: the seed's robustness_study runs, robustness metrics are
objectives, trained weights become artifacts, and `neuromosaic robustness` re-evaluates them."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from neuromosaic_optuna.cli import main

ROOT = Path(__file__).resolve().parent.parent
STUDY = str(ROOT / "studies" / "robustness.toml")


def test_robustness_study_front_artifacts_and_reevaluation(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    db = f"sqlite:///{tmp_path / 'robust.db'}"
    assert main(["run", STUDY, "--budget", "smoke", "--storage", db, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Pareto front of 'robustness_study-smoke'" in out and "hypervolume" in out
    study = optuna.load_study(study_name="robustness_study-smoke", storage=db)
    assert study.metric_names == ["accuracy", "adversarial_accuracy"]
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 2
    for t in done:
        m = t.user_attrs["metrics"]
        assert t.values[1] == m["adversarial_accuracy"]
        assert m["corruption_resistance"] == pytest.approx(
            m["corrupt_accuracy"] / m["clean_accuracy"] if m["clean_accuracy"] else 0.0)
        assert m["adversarial_robustness"] == pytest.approx(
            m["adversarial_accuracy"] / m["clean_accuracy"] if m["clean_accuracy"] else 0.0)
        details = t.user_attrs["robustness"]["details"]
        assert {"noise@0.1", "fgsm@0.0313725", "gaussian@5"} <= set(details)
        assert (tmp_path / "neuromosaic-artifacts").is_dir()
        assert t.user_attrs["weights_artifact"]
    best = done[0]
    assert main(["robustness", STUDY, "--budget", "smoke", "--storage", db,
                 "--trials", str(best.number)]) == 0
    table = capsys.readouterr().out
    assert f"\n{best.number} " in table or f"\n{best.number}  " in table
    stored = optuna.load_study(study_name="robustness_study-smoke",
                               storage=db).user_attrs[f"robustness:{best.number}"]
    # the re-evaluation of the saved weights reproduces the numbers measured after training
    assert stored["metrics"]["clean_accuracy"] == pytest.approx(
        best.user_attrs["metrics"]["clean_accuracy"])
    assert stored["metrics"]["adversarial_accuracy"] == pytest.approx(
        best.user_attrs["metrics"]["adversarial_accuracy"])


def test_robustness_objective_without_its_perturbation_group_is_a_config_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (ROOT / "studies" / "robustness.toml").read_text().replace(
        'adversarial = ["fgsm", "pgd"]', "adversarial = []")
    path = tmp_path / "r.toml"
    path.write_text(text)
    assert main(["run", str(path), "--storage", f"sqlite:///{tmp_path / 'x.db'}"]) == 2
    err = capsys.readouterr().err
    assert "perturbations" in err and "adversarial" in err
