"""The trial record: one reader for every module, and one meaning of feasibility (NaN included)."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.trial import create_trial

from neuromosaic_optuna import record
from neuromosaic_optuna.constraints import is_feasible as constraints_is_feasible
from neuromosaic_optuna.pareto import pareto_info
from neuromosaic_optuna.pruners import ParetoDominancePruner, report, should_prune
from neuromosaic_optuna.report import study_note

NAN = float("nan")


def _nan_constraint(**kwargs: object) -> optuna.trial.FrozenTrial:
    """A trial whose constraint is NaN. Optuna 5.1's ``set_constraint`` refuses NaN, but the
    old list format (``constraints_func`` of plain Optuna scripts) still stores one."""
    return create_trial(system_attrs={"constraints": [NAN]}, **kwargs)  # type: ignore[arg-type]


def _study_with_nan_constraint() -> optuna.Study:
    """Trial 0 dominates everything but its constraint is NaN (could not be measured)."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["accuracy", "flops"])
    study.add_trials([
        _nan_constraint(values=[0.99, 1e5], user_attrs={"metrics": {"flops": 1e5}}),
        create_trial(values=[0.80, 2e6], system_attrs={"constraints": [-0.5]},
                     user_attrs={"metrics": {"flops": 2e6}}),
        create_trial(values=[0.70, 1e6], system_attrs={"constraints": [-0.1]},
                     user_attrs={"metrics": {"flops": 1e6}}),
    ])
    return study


def test_nan_constraint_is_infeasible_everywhere() -> None:
    study = _study_with_nan_constraint()
    nan_trial = study.trials[0]
    assert record.is_feasible(nan_trial) is False
    assert constraints_is_feasible(nan_trial) is False
    assert record.violation(nan_trial) == math.inf
    assert record.violated_constraints(nan_trial).keys() == {"0"}

    info = pareto_info(study)
    assert info.feasible.tolist() == [False, True, True]
    assert info.front_trials == [1, 2]
    assert info.violation[0] == math.inf

    # Optuna's own view agrees: best_trials skips the NaN trial.
    assert sorted(t.number for t in study.best_trials) == [1, 2]

    # The study note counts it as a violation.
    assert "0: 1 trial" in study_note(study)


def test_pruner_ignores_a_nan_constraint_trial_on_the_front() -> None:
    """The NaN trial would dominate a running trial if it counted as feasible."""
    study = _study_with_nan_constraint()
    trial = study.ask()
    trial.set_user_attr("metrics", {"flops": 1.5e6})
    report(trial, 1, accuracy=0.95)
    # Feasible front: (0.80, 2e6), (0.70, 1e6): a 0.95-accurate trial at 1.5e6 is not dominated.
    assert should_prune(trial, ParetoDominancePruner()) is False


def test_metric_value_reads_values_then_metrics() -> None:
    t = create_trial(values=[0.9, 2.0], user_attrs={"metrics": {"latency": 0.01, "x": True,
                                                                 "memory": None, "loss": NAN}})
    names = ["accuracy", "flops"]
    assert record.metric_value(t, "accuracy", names) == 0.9
    assert record.metric_value(t, "flops", names) == 2.0
    assert record.metric_value(t, "loss", names) is None  # NaN is missing
    assert record.metric_value(t, "latency", names) == 0.01
    assert record.metric_value(t, "x", names) is None  # booleans are not numbers
    assert record.metric_value(t, "memory", names) is None


def test_status_generation_and_robustness_readers() -> None:
    t = create_trial(value=1.0, user_attrs={"status": "rejected", "reason": "too big"},
                     system_attrs={"NSGAIISampler:generation": 3})
    assert record.status_of(t) == "rejected" and record.reason_of(t) == "too big"
    assert record.trained(t) is False
    assert record.generation_of(t) == 3
    assert record.status_of(create_trial(state=optuna.trial.TrialState.PRUNED)) == "pruned"
    r = create_trial(value=1.0, user_attrs={"robustness": {
        "metrics": {"noise_accuracy": 0.5}, "details": {"noise@0.1": 0.6, "corrupt:g": 0.1}}})
    assert record.robustness_details(r) == {"noise@0.1": 0.6}
    assert record.robustness_metric(r, "noise_accuracy") == 0.5


def test_write_result_round_trip() -> None:
    study = optuna.create_study()
    trial = study.ask()
    record.write_result(trial, {"accuracy": 0.5, "params": np.float64(2.0), "bad": math.inf},
                        {"depth": 3}, "pruned", "stopped", [0.1234567, 0.5], worker="h:1")
    frozen = study.trials[0]
    assert record.metrics_of(frozen) == {"accuracy": 0.5, "params": 2.0, "bad": None}
    assert record.architecture_of(frozen) == {"depth": 3}
    assert (record.status_of(frozen), record.reason_of(frozen)) == ("pruned", "stopped")
    assert frozen.user_attrs["curve"] == [0.123457, 0.5]
    assert frozen.user_attrs["worker"] == "h:1"


@pytest.mark.parametrize("value,feasible", [(-1.0, True), (0.0, True), (1e-9, False),
                                            (NAN, False), (math.inf, False)])
def test_feasibility_boundaries(value: float, feasible: bool) -> None:
    t = create_trial(value=1.0, system_attrs={"constraints": [value]})
    assert record.is_feasible(t) is feasible
    assert (record.violation(t) == 0.0) is feasible
