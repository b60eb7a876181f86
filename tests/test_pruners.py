"""Early stopping on synthetic learning curves whose right answers are known by construction."""

from __future__ import annotations

import contextlib
import doctest
import math
import multiprocessing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from doctests import run_doctests
from optuna.pruners import BasePruner
from optuna.trial import TrialState
from torch import nn

import neuromosaic_optuna as nm
from neuromosaic_optuna import pruners
from neuromosaic_optuna.config import ConfigError, load_config
from neuromosaic_optuna.models import BuildContext, BuiltModel, register_model
from neuromosaic_optuna.pruners import (
    CombinedPruner,
    ConstraintTrajectoryPruner,
    DivergencePruner,
    HypervolumeStagnationCallback,
    MultiObjectiveSuccessiveHalvingPruner,
    ParetoDominancePruner,
    epoch_hook_for,
    intermediate_values,
    make_pruner,
    report,
    should_prune,
    stop_callback_for,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)
ROOT = Path(__file__).resolve().parent.parent

# Completed history (accuracy curve over 3 epochs, flops). Largest remaining gains among them:
# from step 1: 0.4 (A), from step 2: 0.1 (A, B, C all gain 0.1).
HISTORY: dict[str, tuple[float, list[float], bool]] = {
    "A": (1e6, [0.5, 0.8, 0.9], True),
    "B": (4e6, [0.6, 0.85, 0.95], True),
    "C": (0.5e6, [0.4, 0.6, 0.7], True),
    # Infeasible (e.g. violates max_latency): better than everything, but never on the front.
    "D": (1e5, [0.95, 0.97, 0.99], False),
}
# New trials and what ParetoDominancePruner(n_startup_trials=3) must do with them:
# X: optimistic 0.3 + 0.4 = 0.7 at 2e6, dominated by A (0.9, 1e6)        -> pruned at step 1
# Y: 0.95 / 0.95 at 2e6, nothing feasible dominates                      -> completes
# Z: 0.9 at 5e6, dominated by B (0.95, 4e6)                               -> pruned at step 1
# W: the cheapest feasible trial, never dominated                         -> completes
# V: step 1: 0.95 (not dominated); step 2: 0.75 + 0.1 = 0.85 < A's 0.9     -> pruned at step 2
# U: dominated only by the infeasible D (0.99, 1e5); it dominates no one -> completes
NEW: dict[str, tuple[float, list[float]]] = {
    "X": (2e6, [0.3, 0.5, 0.6]),
    "Y": (2e6, [0.55, 0.85, 0.92]),
    "Z": (5e6, [0.5, 0.8, 0.9]),
    "W": (0.4e6, [0.1, 0.2, 0.3]),
    "V": (2e6, [0.55, 0.75, 0.8]),
    "U": (0.45e6, [0.35, 0.55, 0.65]),
}
PRUNED_AT = {"X": 1, "Z": 1, "V": 2}


def _add_history(study: optuna.Study, history: Mapping[str, tuple[float, list[float], bool]]
                 ) -> None:
    for name, (flops, curve, feasible) in history.items():
        study.add_trial(optuna.trial.create_trial(
            values=[curve[-1], flops], params={"curve": name},
            distributions={"curve": optuna.distributions.CategoricalDistribution(
                sorted({*HISTORY, *NEW}))},
            user_attrs={"metrics": {"flops": flops}, "history": True, "intermediate": {
                "accuracy": {str(s): a for s, a in enumerate(curve, 1)}}},
            constraints={"max_latency": -1.0 if feasible else 1.0}))


def _mo_study(pruner: BasePruner, storage: Any = None, name: str | None = None
              ) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"], pruner=pruner,
                                storage=storage, study_name=name)
    study.set_metric_names(["accuracy", "flops"])
    return study


def curve_objective(trial: optuna.trial.Trial) -> tuple[float, float]:
    """A training loop over a synthetic curve: report each epoch, ask before the last."""
    name = trial.suggest_categorical("curve", sorted({*HISTORY, *NEW}))
    flops, curve = NEW[name]
    trial.set_user_attr("metrics", {"flops": flops})
    for step, acc in enumerate(curve, 1):
        report(trial, step, accuracy=acc, loss=1.0 / step)
        if step < len(curve) and should_prune(trial):
            raise optuna.TrialPruned(trial.user_attrs["reason"])
    return curve[-1], flops


def _run_new(study: optuna.Study, names: Sequence[str]) -> dict[str, optuna.trial.FrozenTrial]:
    for name in names:
        study.enqueue_trial({"curve": name})
    study.optimize(curve_objective, n_trials=len(names))
    return {t.params["curve"]: t for t in study.trials if "history" not in t.user_attrs}


def _pruned_at(trials: Mapping[str, optuna.trial.FrozenTrial], metric: str = "accuracy"
               ) -> dict[str, int]:
    return {n: max(intermediate_values(t, metric)) for n, t in trials.items()
            if t.state == TrialState.PRUNED}


# --------------------------------------------------------------------------- reporting


def test_report_stores_curves_in_mo_and_reports_in_so() -> None:
    mo = _mo_study(optuna.pruners.NopPruner())
    t = mo.ask()
    report(t, 1, accuracy=0.5, loss=2.0)
    report(t, 2, accuracy=0.75, loss=float("inf"))
    stored = mo.trials[0]
    assert stored.user_attrs["intermediate"] == {
        "accuracy": {"1": 0.5, "2": 0.75}, "loss": {"1": 2.0, "2": None}}
    assert intermediate_values(stored, "loss")[1] == 2.0
    assert math.isnan(intermediate_values(stored, "loss")[2])
    assert stored.intermediate_values == {}  # Optuna refuses MO reports; we never call it

    so = optuna.create_study(direction="minimize", pruner=optuna.pruners.NopPruner())
    so.set_metric_names(["loss"])
    t = so.ask()
    report(t, 3, accuracy=0.5, loss=0.25)
    assert so.trials[0].intermediate_values == {3: 0.25}  # the objective's metric by name
    so2 = optuna.create_study(direction="maximize")
    t = so2.ask()
    report(t, 1, loss=0.9, accuracy=0.6)
    assert so2.trials[0].intermediate_values == {1: 0.6}  # accuracy when names are unset


@pytest.mark.parametrize(("step", "metrics", "error"), [
    (-1, {"accuracy": 0.5}, ValueError), (1.5, {"accuracy": 0.5}, TypeError),
    (1, {}, ValueError), (1, {"accuracy": "high"}, TypeError),
])
def test_report_rejects_bad_input(step: Any, metrics: dict[str, Any], error: type) -> None:
    t = _mo_study(optuna.pruners.NopPruner()).ask()
    with pytest.raises(error):
        report(t, step, **metrics)


def test_fixed_trial_stores_and_never_prunes() -> None:
    t = optuna.trial.FixedTrial({})
    report(t, 1, accuracy=0.5)
    assert t.user_attrs["intermediate"] == {"accuracy": {"1": 0.5}}
    assert should_prune(t, DivergencePruner(max_value=0.0)) is False


def test_optuna_median_pruner_single_objective() -> None:
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(
        n_startup_trials=2, n_warmup_steps=0))
    study.set_metric_names(["accuracy"])
    curves = {0: [0.5, 0.6], 1: [0.7, 0.8], 2: [0.4, 0.9], 3: [0.65, 0.7]}
    verdicts = {}
    for i, curve in curves.items():
        t = study.ask()
        report(t, 1, accuracy=curve[0])
        verdicts[i] = should_prune(t)
        study.tell(t, curve[1])
    # Median at step 1 of trials 0, 1 is 0.6: trial 2 (0.4) is pruned; trial 3 (0.65) is not.
    assert verdicts == {0: False, 1: False, 2: True, 3: False}
    assert study.trials[2].user_attrs["reason"].startswith("MedianPruner at step 1")


def test_optuna_pruner_in_mo_study_warns_and_never_prunes() -> None:
    study = _mo_study(optuna.pruners.MedianPruner(n_startup_trials=0))
    t = study.ask()
    report(t, 1, accuracy=0.1)
    with pytest.warns(UserWarning, match="multi-objective"):
        assert should_prune(t) is False


# --------------------------------------------------------------------------- pruners


def test_pareto_dominance_prunes_exactly_the_dominated_trials() -> None:
    study = _mo_study(ParetoDominancePruner(n_startup_trials=3))
    _add_history(study, HISTORY)
    trials = _run_new(study, list(NEW))
    assert _pruned_at(trials) == PRUNED_AT
    for name, t in trials.items():
        if name in PRUNED_AT:
            assert t.values is None
            assert t.user_attrs["reason"].startswith(f"dominated at step {PRUNED_AT[name]}")
            assert t.user_attrs["metrics"] == {"flops": NEW[name][0]}
        else:
            assert t.state == TrialState.COMPLETE
    assert trials["X"].user_attrs["optimistic"] == {"accuracy": pytest.approx(0.7)}
    assert "by trial 0" in trials["X"].user_attrs["reason"]  # A
    assert "by trial 0" in trials["Z"].user_attrs["reason"]  # A (0.9, 1e6) and B both do
    assert trials["V"].user_attrs["optimistic"] == {"accuracy": pytest.approx(0.85)}
    best = {t.params["curve"] for t in study.best_trials}
    assert best == {"A", "B", "C", "Y", "W", "U"}  # never a pruned (nor infeasible) trial


def test_pareto_dominance_waits_for_startup_trials_and_unknown_costs() -> None:
    study = _mo_study(ParetoDominancePruner(n_startup_trials=5))  # only 4 in history
    _add_history(study, HISTORY)
    assert _pruned_at(_run_new(study, ["X"])) == {}
    study = _mo_study(ParetoDominancePruner(n_startup_trials=1))
    _add_history(study, HISTORY)
    t = study.ask({"curve": optuna.distributions.CategoricalDistribution(["X"])})
    report(t, 1, accuracy=0.0)  # no costs stored: flops unknown, so it may still be cheap
    assert should_prune(t) is False
    t.set_user_attr("metrics", {"flops": 2e6})
    assert should_prune(t) is True


def test_margin_makes_the_estimate_more_optimistic() -> None:
    study = _mo_study(ParetoDominancePruner(n_startup_trials=3, margin=0.25))
    _add_history(study, HISTORY)
    assert _pruned_at(_run_new(study, ["X", "Z", "V"])) == {"X": 2}  # 0.5 + 0.1 + 0.25 < 0.9


def test_pareto_dominance_single_objective_is_beat_the_best() -> None:
    study = optuna.create_study(direction="maximize",
                                pruner=ParetoDominancePruner(n_startup_trials=1))
    study.set_metric_names(["accuracy"])
    t = study.ask()
    for s, a in enumerate([0.5, 0.8, 0.9], 1):
        t.report(a, s)  # a plain Optuna trial: intermediate values only
    study.tell(t, 0.9)
    verdicts = []
    for curve in ([0.3, 0.5], [0.55, 0.7]):
        t = study.ask()
        report(t, 1, accuracy=curve[0])
        verdicts.append(t.should_prune())  # Optuna's own path calls our pruner
        study.tell(t, curve[1])
    assert verdicts == [True, False]  # 0.3 + 0.4 < 0.9 <= 0.55 + 0.4


def test_constraint_trajectory_prunes_unreachable_min_accuracy() -> None:
    pruner = ConstraintTrajectoryPruner(bounds={"min_accuracy": 0.8}, n_startup_trials=3)
    study = _mo_study(pruner)
    _add_history(study, HISTORY)
    # X: 0.3 + 0.4 < 0.8 at step 1. V: 0.55 + 0.4 ok; 0.75 + 0.1 = 0.85 ok -> completes.
    # W, U: 0.1 + 0.4, 0.35 + 0.4 < 0.8 at step 1. Z, Y: reachable at every step.
    trials = _run_new(study, list(NEW))
    assert _pruned_at(trials) == {"X": 1, "W": 1, "U": 1}
    assert trials["X"].user_attrs["constraint_margins"] == {"min_accuracy": pytest.approx(0.1)}
    assert trials["V"].user_attrs["constraint_margins"] == {
        "min_accuracy": pytest.approx(-0.05)}
    assert "min_accuracy = 0.8 is out of reach at step 1" in trials["W"].user_attrs["reason"]
    assert trials["X"].constraints == {}  # constraints are set once, by the objective


def test_constraint_trajectory_max_bound_on_a_falling_metric() -> None:
    study = _mo_study(optuna.pruners.NopPruner())
    for curve in ([2.0, 1.0, 0.5], [1.5, 1.2, 1.0]):  # largest fall from step 1: 1.5
        t = study.ask()
        for s, v in enumerate(curve, 1):
            report(t, s, loss=v)
        study.tell(t, [0.5, 1.0])
    pruner = ConstraintTrajectoryPruner(bounds={"max_loss": 1.0}, n_startup_trials=2)
    verdicts = []
    for first in (2.4, 2.6):
        t = study.ask()
        report(t, 1, loss=first)
        verdicts.append(should_prune(t, pruner))
    assert verdicts == [False, True]


def _rung_study() -> optuna.Study:
    return _mo_study(optuna.pruners.NopPruner())


def _at_rung(study: optuna.Study, acc: float, flops: float, tell: bool = True,
             step: int = 1) -> optuna.trial.Trial:
    t = study.ask()
    t.set_user_attr("metrics", {"flops": flops})
    report(t, step, accuracy=acc)
    if tell:
        study.tell(t, state=TrialState.PRUNED)  # reached the rung, then stopped
    return t


def test_mo_successive_halving_keeps_top_fraction_in_arrival_order() -> None:
    study = _rung_study()
    pruner = MultiObjectiveSuccessiveHalvingPruner(rungs=[1, 2], reduction_factor=2)
    verdicts = []
    # Equal flops: rank by accuracy. n at rung / keep: 1/1, 2/1, 3/1, 4/2, 5/2, 6/3.
    for acc in (0.5, 0.6, 0.4, 0.55, 0.52, 0.7):
        t = _at_rung(study, acc, 1e6, tell=False)
        verdicts.append(should_prune(t, pruner))
        study.tell(t, state=TrialState.PRUNED if verdicts[-1] else TrialState.COMPLETE,
                   values=None if verdicts[-1] else [acc, 1e6])
    assert verdicts == [False, False, True, False, True, False]
    assert study.trials[4].user_attrs["rung"] == {"step": 1, "ahead": 2, "keep": 2, "of": 5}


def test_mo_successive_halving_uses_pareto_rank_then_crowding() -> None:
    pruner = MultiObjectiveSuccessiveHalvingPruner(rungs=[1], reduction_factor=2)
    study = _rung_study()
    _at_rung(study, 0.5, 1e6)
    _at_rung(study, 0.9, 3e6)
    middle = _at_rung(study, 0.7, 2e6, tell=False)  # on the front, but least crowded
    assert should_prune(middle, pruner) is True
    study = _rung_study()
    _at_rung(study, 0.5, 1e6)
    _at_rung(study, 0.9, 3e6)
    extreme = _at_rung(study, 0.95, 4e6, tell=False)  # a boundary point: infinite crowding
    assert should_prune(extreme, pruner) is False
    study = _rung_study()
    _at_rung(study, 0.5, 1e6)
    dominated = _at_rung(study, 0.4, 2e6, tell=False)
    assert should_prune(dominated, pruner) is True
    # Not a rung step: never judged.
    study = _rung_study()
    _at_rung(study, 0.9, 1e6)
    off = _at_rung(study, 0.1, 2e6, tell=False, step=2)
    assert should_prune(off, pruner) is False


def test_mo_successive_halving_default_rungs_and_startup() -> None:
    pruner = MultiObjectiveSuccessiveHalvingPruner(min_resource=2, reduction_factor=3)
    assert [s for s in range(1, 60) if pruner.is_rung(s)] == [2, 6, 18, 54]
    study = _rung_study()
    _at_rung(study, 0.9, 1e6)
    late = MultiObjectiveSuccessiveHalvingPruner(rungs=[1], n_startup_trials=2)
    assert should_prune(_at_rung(study, 0.1, 2e6, tell=False), late) is False


def test_divergence_pruner_nan_growth_and_bound() -> None:
    study = _mo_study(optuna.pruners.NopPruner())
    cases = {
        "steady": ([2.0, 1.0, 9.0], DivergencePruner(), False),
        "explodes": ([2.0, 1.0, 15.0], DivergencePruner(), True),
        "nan": ([2.0, float("nan")], DivergencePruner(), True),
        "bound": ([2.0, 3.0], DivergencePruner(growth=None, max_value=2.5), True),
        "other metric": ([5.0, 500.0], DivergencePruner(metric="val_loss"), False),
    }
    for name, (losses, pruner, expected) in cases.items():
        t = study.ask()
        for s, v in enumerate(losses, 1):
            report(t, s, loss=v)
        assert should_prune(t, pruner) is expected, name
    reasons = [t.user_attrs.get("reason") for t in study.get_trials()]
    assert reasons[1] == "diverged: loss 15 at step 3 exceeds 10 x its best 1"
    assert reasons[2] == "diverged: loss is not finite at step 2"


def test_combined_pruner_first_reason_and_merged_attrs() -> None:
    study = _mo_study(CombinedPruner(pruners=[
        DivergencePruner(), ConstraintTrajectoryPruner(bounds={"min_accuracy": 0.8},
                                                       n_startup_trials=3)]))
    _add_history(study, HISTORY)
    trials = _run_new(study, ["X", "Y"])
    assert _pruned_at(trials) == {"X": 1}
    assert "constraint_margins" in trials["Y"].user_attrs


@pytest.mark.parametrize(("cls", "kwargs", "arg"), [
    (ParetoDominancePruner, {"n_startup_trials": 0}, "n_startup_trials"),
    (ParetoDominancePruner, {"n_warmup_steps": -1}, "n_warmup_steps"),
    (ParetoDominancePruner, {"margin": -0.1}, "margin"),
    (ConstraintTrajectoryPruner, {"bounds": {}}, "bounds"),
    (ConstraintTrajectoryPruner, {"bounds": {"accuracy": 0.9}}, "bounds"),
    (MultiObjectiveSuccessiveHalvingPruner, {"reduction_factor": 1}, "reduction_factor"),
    (MultiObjectiveSuccessiveHalvingPruner, {"rungs": [3, 2]}, "rungs"),
    (MultiObjectiveSuccessiveHalvingPruner, {"min_resource": 0}, "min_resource"),
    (DivergencePruner, {"growth": 1.0}, "growth"),
    (DivergencePruner, {"max_value": float("nan")}, "max_value"),
    (CombinedPruner, {"pruners": []}, "pruners"),
    (HypervolumeStagnationCallback, {"window": 0}, "window"),
    (HypervolumeStagnationCallback, {"min_improvement": -1.0}, "min_improvement"),
])
def test_constructor_arguments_are_checked(cls: type, kwargs: dict[str, Any], arg: str) -> None:
    with pytest.raises(ValueError, match=f"^{arg}"):
        cls(**kwargs)
    with pytest.raises(TypeError):
        cls(1)  # keyword-only


# --------------------------------------------------------------------------- samplers


def _half_pruned(trial: optuna.trial.Trial) -> tuple[float, float]:
    x = trial.suggest_float("x", 0.0, 1.0)
    y = trial.suggest_float("y", 0.0, 1.0)
    trial.set_user_attr("metrics", {"flops": 1.0 + y})
    for step in (1, 2):
        report(trial, step, accuracy=x * step / 2)
        if step < 2 and should_prune(trial):
            raise optuna.TrialPruned(trial.user_attrs["reason"])
    return x, 1.0 + y


@pytest.mark.parametrize("sampler", [
    optuna.samplers.NSGAIISampler(population_size=4, seed=1),
    optuna.samplers.TPESampler(n_startup_trials=4, seed=1),
])
def test_samplers_keep_working_after_pruned_trials(sampler: optuna.samplers.BaseSampler
                                                   ) -> None:
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler,
                                pruner=MultiObjectiveSuccessiveHalvingPruner(rungs=[1]))
    study.set_metric_names(["accuracy", "flops"])
    study.optimize(_half_pruned, n_trials=30)
    states = [t.state for t in study.trials]
    assert set(states) == {TrialState.COMPLETE, TrialState.PRUNED}
    assert states.count(TrialState.PRUNED) >= 5
    assert all(t.values is None and "reason" in t.user_attrs
               for t in study.trials if t.state == TrialState.PRUNED)
    assert study.best_trials and all(t.state == TrialState.COMPLETE for t in study.best_trials)
    late = [t.params["x"] for t in study.trials[-10:]]
    assert len(set(late)) > 1  # still proposing new points
    if isinstance(sampler, optuna.samplers.NSGAIISampler):
        generations = {t.system_attrs.get("NSGAIISampler:generation") for t in study.trials}
        assert max(g for g in generations if g is not None) >= 2


# --------------------------------------------------------------------------- study stopping


def test_hypervolume_stagnation_stops_and_prints(capsys: pytest.CaptureFixture[str]) -> None:
    points = [(0.5, 5.0), (0.7, 5.0), (0.8, 4.0), (0.9, 3.0)]  # then nothing better

    def objective(trial: optuna.trial.Trial) -> tuple[float, float]:
        return points[trial.number] if trial.number < len(points) else (0.6, 6.0)

    study = optuna.create_study(directions=["maximize", "minimize"])
    stop = HypervolumeStagnationCallback(window=3, min_improvement=0.01,
                                         reference_point=[0.0, 10.0])
    study.optimize(objective, n_trials=20, callbacks=[stop])
    # After trial 6, the last 3 trials (4, 5, 6) added nothing: stop there.
    assert len(study.trials) == 7
    assert study.user_attrs["stopped_by"]["trial"] == 6
    assert "hypervolume improved by 0.00% over the last 3 trials" in capsys.readouterr().out
    # Another worker's optimize loop on the same study stops after its next trial.
    again = optuna.load_study(study_name=study.study_name, storage=study._storage)
    again.optimize(objective, n_trials=5, callbacks=[stop])
    assert len(again.trials) == 8


def test_hypervolume_stagnation_keeps_an_improving_study() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    stop = HypervolumeStagnationCallback(window=2, min_improvement=0.01, verbose=False)
    study.optimize(lambda t: (0.1 + 0.05 * t.number, 5.0 - 0.1 * t.number), n_trials=12,
                   callbacks=[stop])
    assert len(study.trials) == 12 and "stopped_by" not in study.user_attrs


# --------------------------------------------------------------------------- config


def _config(pruner: Mapping[str, Any] | None, objectives: Sequence[str] = ("accuracy", "flops"),
            constraints: Mapping[str, Any] | None = None, epochs: int = 3) -> nm.StudyConfig:
    defaults: dict[str, Any] = {"epochs": epochs}
    if pruner is not None:
        defaults["pruner"] = dict(pruner)
    experiment: dict[str, Any] = {"name": "p", "architecture_type": "conv_net",
                                  "search_space": {"width_multiplier": [0.25, 0.5]},
                                  "objectives": list(objectives)}
    if constraints:
        experiment["constraints"] = dict(constraints)
    return load_config({"experiment": experiment, "defaults": defaults})


def test_make_pruner_default_and_names() -> None:
    default = make_pruner(_config(None))
    assert isinstance(default, CombinedPruner)
    assert [type(p).__name__ for p in default.pruners] == ["DivergencePruner",
                                                           pruners.DEFAULT_PRUNER]
    for name in ("ParetoDominancePruner", "MultiObjectiveSuccessiveHalvingPruner"):
        built = make_pruner(_config({"name": name, "divergence": False}))
        assert type(built).__name__ == name
    ct = make_pruner(_config({"name": "ConstraintTrajectoryPruner", "divergence": False},
                             constraints={"min_accuracy": 0.9, "max_params": "1M"}))
    assert isinstance(ct, ConstraintTrajectoryPruner)
    assert ct.bounds == {"min_accuracy": ("min", "accuracy", 0.9)}  # costs: checked pre-training
    div = make_pruner(_config({"name": "DivergencePruner", "growth": 5}))
    assert isinstance(div, DivergencePruner) and div.growth == 5.0
    sh = make_pruner(_config({"name": "MultiObjectiveSuccessiveHalvingPruner", "rungs": [1, 3],
                              "divergence": {"max_value": 50}}))
    assert isinstance(sh, CombinedPruner)
    guard, halving = sh.pruners
    assert isinstance(guard, DivergencePruner) and guard.max_value == 50.0
    assert isinstance(halving, MultiObjectiveSuccessiveHalvingPruner) and halving.rungs == [1, 3]
    assert isinstance(make_pruner(_config({"name": "NopPruner"})), optuna.pruners.NopPruner)
    so = make_pruner(_config({"name": "HyperbandPruner", "min_resource": 1},
                             objectives=["accuracy"]))
    assert isinstance(so, CombinedPruner)
    assert isinstance(so.pruners[1], optuna.pruners.HyperbandPruner)


@pytest.mark.parametrize(("table", "objectives", "constraints", "path"), [
    ({"name": "Nope"}, ("accuracy", "flops"), None, "pruner.name"),
    ({"n_startup_trials": 2}, ("accuracy", "flops"), None, "pruner.name"),
    ({"name": "MedianPruner"}, ("accuracy", "flops"), None, "pruner.name"),
    ({"name": "ParetoDominancePruner", "eta": 2}, ("accuracy", "flops"), None, "pruner.eta"),
    ({"name": "MultiObjectiveSuccessiveHalvingPruner", "reduction_factor": 1},
     ("accuracy", "flops"), None, "pruner.reduction_factor"),
    ({"name": "ConstraintTrajectoryPruner"}, ("accuracy", "flops"), {"max_params": "1M"},
     "pruner.bounds"),
    ({"name": "ParetoDominancePruner", "divergence": 3}, ("accuracy", "flops"), None,
     "pruner.divergence"),
    ({"name": "ParetoDominancePruner", "divergence": {"grow": 2}}, ("accuracy", "flops"), None,
     "pruner.divergence.grow"),
    ({"stop": {"patience": 3}}, ("accuracy", "flops"), None, "pruner.stop.patience"),
    ({"stop": {"window": 0}}, ("accuracy", "flops"), None, "pruner.stop"),
    ({"name": "MedianPruner", "n_startup": 1}, ("accuracy",), None, "pruner.n_startup"),
])
def test_make_pruner_config_errors(table: dict[str, Any], objectives: Sequence[str],
                                   constraints: dict[str, Any] | None, path: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_pruner(_config(table, objectives, constraints))
    assert info.value.path == path


def test_stop_callback_from_config() -> None:
    assert stop_callback_for(_config(None)) is None
    stop = stop_callback_for(_config({"stop": {"window": 4, "min_improvement": 0.05}}))
    assert isinstance(stop, HypervolumeStagnationCallback)
    assert (stop.window, stop.min_improvement, stop.min_trials) == (4, 0.05, 8)
    default = stop_callback_for(_config({"stop": True}))
    assert default is not None and default.window == 10


def test_epoch_hook_never_prunes_the_last_epoch() -> None:
    config = _config({"name": "DivergencePruner", "max_value": 0.0}, epochs=2)
    study = optuna.create_study(directions=["maximize", "minimize"])  # MedianPruner: ignored
    hook = epoch_hook_for(config, study)
    t = study.ask()
    with pytest.raises(optuna.TrialPruned, match="exceeds 0"):
        hook(t, 1, {"accuracy": 0.5, "loss": 1.0})
    t = study.ask()
    hook(t, 2, {"accuracy": 0.5, "loss": 1.0})  # last epoch: reported, not judged
    assert "reason" not in t.user_attrs
    with pytest.raises(ConfigError, match="objectives"):
        epoch_hook_for(config, optuna.create_study())


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.mean(dim=(2, 3)))


@register_model("test_pruners_tiny", overwrite=True)
def _tiny(params: Mapping[str, Any], ctx: BuildContext) -> BuiltModel:
    return BuiltModel(_Tiny(), (3, ctx.resolution, ctx.resolution), {"w": params["w"]})


def test_objective_keeps_curve_costs_and_reason_of_a_pruned_trial() -> None:
    config = load_config({
        "experiment": {"name": "tiny", "architecture_type": "test_pruners_tiny",
                       "search_space": {"w": [1, 2]}, "objectives": ["accuracy", "params"]},
        "defaults": {"resolution": 8, "epochs": 3, "max_train_samples": 128,
                     "pruner": {"name": "DivergencePruner", "max_value": 0.0}}})
    study = nm.create_study(config)
    objective = nm.Objective(config, timing=False)
    objective.epoch_hooks.append(epoch_hook_for(config, study))
    study.optimize(objective, n_trials=1)
    t = study.trials[0]
    assert t.state == TrialState.PRUNED and t.values is None
    assert t.user_attrs["status"] == "pruned"
    assert t.user_attrs["reason"].startswith("diverged: loss")
    assert len(t.user_attrs["curve"]) == 1
    assert t.user_attrs["metrics"]["params"] == 40 and t.user_attrs["metrics"]["flops"] > 0
    assert list(intermediate_values(t, "loss")) == [1]
    assert study.best_trials == []


# --------------------------------------------------------------------------- workers


def _storage(where: str) -> optuna.storages.BaseStorage | str:
    """A journal file path, or a database URL."""
    if "://" in where:
        return where
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(where))


def _worker(where: str, study_name: str) -> None:
    from neuromosaic_optuna.study import work

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=_storage(where),
                              pruner=ParetoDominancePruner(n_startup_trials=3))
    work(study, curve_objective)


def _storage_urls(tmp_path: Path, request: pytest.FixtureRequest) -> list[str]:
    # A journal file, not SQLite: SQLite ignores SELECT ... FOR UPDATE, so two processes can
    # both claim the same WAITING trial (Optuna's _pop_waiting_trial_id); the journal cannot.
    urls = [str(tmp_path / "journal.log")]
    with contextlib.suppress(pytest.FixtureLookupError):
        urls.append(request.getfixturevalue("postgresql_url"))
    return urls


@pytest.mark.slow
def test_pruning_with_two_worker_processes(tmp_path: Path,
                                           request: pytest.FixtureRequest) -> None:
    ctx = multiprocessing.get_context("spawn")
    for i, url in enumerate(_storage_urls(tmp_path, request)):
        name = f"pruning-workers-{i}-{tmp_path.name}"
        study = _mo_study(ParetoDominancePruner(n_startup_trials=3), _storage(url), name)
        _add_history(study, HISTORY)
        for curve in [*NEW, *NEW]:  # every curve twice: 12 slots for 2 processes
            study.enqueue_trial({"curve": curve}, user_attrs={"slot": True})
        procs = [ctx.Process(target=_worker, args=(url, name)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
            assert p.exitcode == 0
        trials = optuna.load_study(study_name=name, storage=_storage(url)).trials
        new = [t for t in trials if "history" not in t.user_attrs]
        assert len(new) == 12
        pruned = sorted((t.params["curve"], max(intermediate_values(t, "accuracy")))
                        for t in new if t.state == TrialState.PRUNED)
        assert pruned == sorted([*PRUNED_AT.items(), *PRUNED_AT.items()])
        assert all(t.state == TrialState.COMPLETE for t in new
                   if t.params["curve"] not in PRUNED_AT)


def test_docstring_examples_run() -> None:
    result = run_doctests(pruners, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 10 and result.failed == 0

