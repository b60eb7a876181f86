"""The estimate of remaining training time printed after the first trained trial (issue 16)."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import create_trial

from neuromosaic_optuna.study import RemainingTime


def test_said_once_after_the_first_trained_trial(capsys: pytest.CaptureFixture[str]) -> None:
    study = optuna.create_study()
    callback = RemainingTime(10)
    rejected = create_trial(value=0.0, user_attrs={"metrics": {"train_time": 0.0}})
    study.add_trial(rejected)
    callback(study, study.trials[0])
    assert capsys.readouterr().err == ""
    for seconds in (12.0, 99.0):
        study.add_trial(create_trial(value=0.5, user_attrs={"metrics": {"train_time": seconds}}))
        callback(study, study.trials[-1])
    err = capsys.readouterr().err.strip().splitlines()
    # 2 of 10 finished when the first trained trial (12 s) ends: 8 left, 96 s = 1.6 min
    assert err == ["first trained trial: 12 s of training; about 1.6 min of training left "
                   "for 8 trial(s)"]
