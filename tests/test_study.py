"""End to end on the real path: study file → Optuna study with trained, profiled models."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState
from torch import nn

import neuromosaic_optuna as nm
from neuromosaic_optuna import training
from neuromosaic_optuna.config import load_config
from neuromosaic_optuna.models import BuildContext, BuiltModel, register_model
from neuromosaic_optuna.study import count_finished

ROOT = Path(__file__).resolve().parent.parent
QUICK = ROOT / "studies" / "quickstart.toml"


def _quick(**overrides: Any) -> nm.StudyConfig:
    return nm.load_study_file(QUICK, budget="smoke", overrides=overrides)


def test_quickstart_trials_store_metrics_architecture_and_values(tmp_path: Path) -> None:
    config = _quick(max_trials=2)
    storage = f"sqlite:///{tmp_path / 'q.db'}"
    study = nm.run_study(config, storage=storage)
    loaded = optuna.load_study(study_name=study.study_name, storage=storage)
    assert loaded.metric_names == ["accuracy", "flops"]
    trials = loaded.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 2
    for t in trials:
        m = t.user_attrs["metrics"]
        assert t.values == [m["accuracy"], m["flops"]]
        assert 0.0 <= m["accuracy"] <= 1.0 and 0.0 <= m["test_accuracy"] <= 1.0
        assert m["flops"] > 1e5 and m["params"] > 1e3
        assert m["latency"] > 0 and m["memory"] > 0 and m["throughput"] > 0
        assert m["params_utilization"] == pytest.approx(m["params"] / m["accuracy"])
        assert t.user_attrs["status"] == "ok"
        assert t.user_attrs["architecture"]["input_resolution"] == 32
        assert len(t.user_attrs["curve"]) == config.epochs


def test_rerun_resumes_and_stops_at_the_total(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'r.db'}"
    first = nm.run_study(_quick(max_trials=1), storage=storage)
    number0 = first.trials[0].number
    params0 = first.trials[0].params
    again = nm.run_study(_quick(max_trials=2), storage=storage)
    assert count_finished(again) == 2
    assert again.trials[0].number == number0 and again.trials[0].params == params0
    third = nm.run_study(_quick(max_trials=2), storage=storage)
    assert len(third.trials) == 2  # already complete: nothing new


def test_cost_constraint_violation_is_never_trained(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a constraint-violating architecture must not be trained")

    monkeypatch.setattr(training, "train_model", forbidden)
    config = load_config({
        "experiment": {"name": "tiny", "architecture_type": "conv_net",
                       "search_space": {"width_multiplier": [0.25, 0.5]},
                       "objectives": ["accuracy", "params"],
                       "constraints": {"max_params": "1K"}},
        "defaults": {"resolution": 16, "max_trials": 2, "epochs": 1}})
    study = nm.run_study(config)
    assert len(study.trials) == 2
    for t in study.trials:
        assert t.state == TrialState.COMPLETE
        assert t.user_attrs["status"] == "rejected"
        assert "max_params" in t.user_attrs["reason"]
        assert t.constraints["max_params"] == pytest.approx(
            t.user_attrs["metrics"]["params"] - 1000)
        assert t.constraints["max_params"] > 0
        assert t.values[0] == nm.objective.REJECTED_ACCURACY
        assert t.user_attrs["metrics"]["train_time"] == 0.0
    assert study.best_trials == []  # infeasible trials are never "best"


class _Diverging(nn.Module):
    def __init__(self, blow_up: bool) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 10)
        self.blow_up = blow_up

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x.mean(dim=(2, 3)))
        return out * float("nan") if self.blow_up else out


@register_model("test_diverging", overwrite=True)
def _diverging(params: Mapping[str, Any], ctx: BuildContext) -> BuiltModel:
    model = _Diverging(params["explode"] == "yes")
    return BuiltModel(model, (3, ctx.resolution, ctx.resolution), {"explode": params["explode"]})


def test_diverging_trial_fails_with_reason_and_study_continues() -> None:
    config = load_config({
        "name": "div", "architecture_type": "test_diverging",
        "search_space": {"explode": ["yes", "no"]}, "max_trials": 2})
    study = nm.create_study(config)
    study.enqueue_trial({"explode": "yes"})
    study.enqueue_trial({"explode": "no"})
    objective = nm.Objective(config, timing=False)
    study.optimize(objective, n_trials=2, catch=(training.DivergedError,))
    failed, ok = study.trials
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs["status"] == "diverged"
    assert "nan" in failed.user_attrs["reason"]
    assert ok.state == TrialState.COMPLETE and ok.user_attrs["status"] == "ok"


def test_plain_optuna_script_usage() -> None:
    config = _quick()
    objective = nm.Objective(config)
    study = optuna.create_study(directions=config.directions)
    study.set_metric_names(config.metric_names)
    study.optimize(objective, n_trials=1)
    assert study.trials[0].state == TrialState.COMPLETE
    assert set(study.trials[0].params) == {"depth_multiplier", "width_multiplier", "se_ratio"}


def test_lost_storage_is_recognised_through_masking_exceptions() -> None:
    from neuromosaic_optuna.study import _lost_storage

    def masked() -> None:
        # What Optuna's trial loop does when the database is down while it records a result:
        # the StorageInternalError is replaced by an UnboundLocalError raised in ``finally``.
        try:
            raise optuna.exceptions.StorageInternalError("connection refused")
        finally:
            raise UnboundLocalError("cannot access local variable 'updated_state'")

    with pytest.raises(UnboundLocalError) as info:
        masked()
    assert _lost_storage(info.value)
    assert _lost_storage(optuna.exceptions.StorageInternalError("x"))
    assert not _lost_storage(UnboundLocalError("a real bug"))
    try:
        try:
            raise ValueError("objective bug")
        except ValueError as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as exc:
        assert not _lost_storage(exc)


def _nasbench_config(name: str, max_trials: int) -> nm.StudyConfig:
    """A NAS-Bench-201 study: trials are table lookups, so a test measures coordination."""
    ops = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
    edges = ("edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2")
    return load_config({"name": name, "architecture_type": "nasbench201",
                        "objectives": ["accuracy"], "dataset": "cifar10",
                        "max_trials": max_trials, "search_space": dict.fromkeys(edges, ops)})


def test_a_result_lost_with_the_database_is_failed_and_replaced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from neuromosaic_optuna.storage import make_storage
    from neuromosaic_optuna.study import open_slots, work

    config = _nasbench_config("lost", 4)
    study = nm.create_study(config, storage=make_storage(f"sqlite:///{tmp_path / 'l.db'}"))
    open_slots(study, 4)
    backend = study._storage._backend  # type: ignore[attr-defined]
    original = backend.set_trial_state_values
    lost: list[int] = []

    def flaky(trial_id: int, state: TrialState, values: Any = None) -> bool:
        if state == TrialState.COMPLETE and len(lost) < 1 and trial_id > 0:
            lost.append(trial_id)  # the connection drops while the second result is stored
            raise optuna.exceptions.StorageInternalError("server closed the connection")
        return bool(original(trial_id, state, values))

    monkeypatch.setattr(backend, "set_trial_state_values", flaky)
    work(study, nm.Objective(config))
    trials = study.get_trials()
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) == 4
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    (failed,) = [t for t in trials if t.state == TrialState.FAIL]
    assert failed._trial_id == lost[0]
    assert failed.user_attrs["status"] == "failed"
    assert "connection was lost" in failed.user_attrs["reason"]
    replacement = [t for t in trials if t.user_attrs.get("replaces") == failed.number]
    assert len(replacement) == 1 and replacement[0].state == TrialState.COMPLETE


def test_a_trial_failed_as_stale_while_it_still_ran_does_not_stop_the_worker(
        tmp_path: Path) -> None:
    from neuromosaic_optuna.storage import make_storage
    from neuromosaic_optuna.study import open_slots, work

    config = _nasbench_config("stale", 3)
    study = nm.create_study(config, storage=make_storage(f"sqlite:///{tmp_path / 's.db'}"))
    open_slots(study, 3)
    inner = nm.Objective(config)
    taken: list[int] = []

    def objective(trial: optuna.trial.Trial) -> Any:
        if not taken:  # another worker fails it as stale (as fail_stale_trials does) and
            taken.append(trial.number)  # its retry callback opens a new WAITING trial
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            study.enqueue_trial({}, user_attrs={"slot": True})
        return inner(trial)

    work(study, objective)
    states = [t.state for t in study.get_trials()]
    assert states.count(TrialState.COMPLETE) == 3
    assert states.count(TrialState.FAIL) == 1 and study.trials[taken[0]].state == TrialState.FAIL
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
