"""The plain Optuna example script runs as a user would run it."""

from __future__ import annotations

import runpy
from pathlib import Path

import optuna
import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_plain_optuna_script(monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    module = runpy.run_path(str(ROOT / "examples" / "optuna_script.py"))
    study = module["main"](n_trials=2, budget="smoke")
    assert isinstance(study, optuna.Study)
    assert len(study.trials) == 1
    assert study.metric_names == ["accuracy", "flops"]
    warm = study.trials[0]
    assert warm.user_attrs["warm_start"]["source_trial"] in (0, 1)
    out = capsys.readouterr().out
    assert "MMACs" in out and "warm start: enqueued 1" in out
