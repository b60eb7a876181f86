"""``ParetoSampler(lower_rungs=...)``: what trials stopped at a lower rung teach the surrogate."""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from neuromosaic_optuna.samplers import ParetoSampler

SPACE = {"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(0.0, 1.0)}
GEN = "ParetoSampler:generation"


def _curve(x: float, y: float) -> tuple[float, float, float]:
    """Accuracy after epochs 1 and 3 and at full fidelity (9) of a synthetic architecture."""
    final = 0.5 + 0.4 * x - 0.1 * y
    return final - 0.2, final - 0.05, final


def _study(*, pruned: bool, sampler: ParetoSampler, at: tuple[float, float] = (0.45, 0.95),
           early: float = 0.2) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.set_metric_names(["accuracy", "flops"])
    for i, (x, y) in enumerate([(0.1, 0.2), (0.3, 0.9), (0.5, 0.4), (0.7, 0.6), (0.9, 0.1),
                                (0.2, 0.5)]):
        a1, a3, final = _curve(x, y)
        flops = 1e6 * (1 + 3 * x)
        study.add_trial(create_trial(
            values=[final, flops], params={"x": x, "y": y}, distributions=SPACE,
            user_attrs={"intermediate": {"accuracy": {"1": a1, "3": a3, "9": final}},
                        "metrics": {"flops": flops}},
            system_attrs={GEN: i // 4}))
    if pruned:
        # stopped after epoch 1 (accuracy ``early``); its FLOPs are known before training
        study.add_trial(create_trial(
            state=TrialState.PRUNED, params={"x": at[0], "y": at[1]}, distributions=SPACE,
            user_attrs={"intermediate": {"accuracy": {"1": early}},
                        "metrics": {"flops": 1e6 * (1 + 3 * at[0])},
                        "rung": {"step": 1, "ahead": 3, "keep": 2, "of": 6}},
            system_attrs={GEN: 1}))
    return study


def _proposal(lower_rungs: str, *, pruned: bool, **where: Any) -> dict[str, Any]:
    sampler = ParetoSampler(population_size=4, seed=3, lower_rungs=lower_rungs,
                            min_distance=0.0)
    study = _study(pruned=pruned, sampler=sampler, **where)
    trial = study.ask(SPACE)
    return dict(trial.params)


def test_shift_adds_the_median_gap_to_full_fidelity() -> None:
    sampler = ParetoSampler(population_size=4, seed=0, lower_rungs="shift")
    study = _study(pruned=True, sampler=sampler)
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    kept, loss = sampler._lower_rung_points(study, trials, done, SPACE)
    gap = statistics.median(t.values[0] - t.user_attrs["intermediate"]["accuracy"]["1"]
                            for t in done)
    assert gap == pytest.approx(0.2)
    assert [t.number for t in kept] == [6]
    # losses: accuracy negated (maximised), FLOPs from the metrics known before training
    np.testing.assert_allclose(loss, [[-(0.2 + gap), 1e6 * (1 + 3 * 0.45)]])
    off = ParetoSampler(population_size=4, seed=0)
    assert off._lower_rung_points(study, trials, done, SPACE)[0] == []


def test_a_stopped_trial_without_a_known_gap_or_cost_is_left_out() -> None:
    sampler = ParetoSampler(population_size=4, seed=0, lower_rungs="shift")
    study = _study(pruned=False, sampler=sampler)
    for curve, metrics in (({"2": 0.3}, {"flops": 1e6}),  # no COMPLETE trial reported epoch 2
                           ({"1": 0.3}, {}),  # FLOPs unknown
                           ({}, {"flops": 1e6})):  # no curve at all
        study.add_trial(create_trial(
            state=TrialState.PRUNED, params={"x": 0.6, "y": 0.6}, distributions=SPACE,
            user_attrs={"intermediate": {"accuracy": curve}, "metrics": metrics}))
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sampler._lower_rung_points(study, trials, done, SPACE)[0] == []


def test_a_stopped_trial_changes_the_proposal_only_when_enabled() -> None:
    chosen = _proposal("off", pruned=False)
    assert _proposal("shift", pruned=False) == chosen
    # a trial stopped early, with a poor value, right where the sampler would go next
    at = (round(chosen["x"], 2), round(chosen["y"], 2))
    assert _proposal("off", pruned=True, at=at, early=0.05) == chosen
    moved = _proposal("shift", pruned=True, at=at, early=0.05)
    assert np.hypot(moved["x"] - at[0], moved["y"] - at[1]) > 0.1


def test_lower_rungs_never_proposes_a_tried_architecture() -> None:
    grid = {"w": CategoricalDistribution([1, 2, 3]), "d": CategoricalDistribution([1, 2, 3])}
    sampler = ParetoSampler(population_size=4, seed=1, lower_rungs="shift", min_distance=0.0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.set_metric_names(["accuracy", "flops"])
    cells = [(w, d) for w in (1, 2, 3) for d in (1, 2, 3)]
    for i, (w, d) in enumerate(cells[:6]):
        final = 0.5 + 0.1 * w + 0.05 * d
        study.add_trial(create_trial(
            values=[final, w * d * 1e6], params={"w": w, "d": d}, distributions=grid,
            user_attrs={"intermediate": {"accuracy": {"1": final - 0.2, "9": final}},
                        "metrics": {"flops": w * d * 1e6}}, system_attrs={GEN: i // 4}))
    for w, d in cells[6:8]:
        study.add_trial(create_trial(
            state=TrialState.PRUNED, params={"w": w, "d": d}, distributions=grid,
            user_attrs={"intermediate": {"accuracy": {"1": 0.9}},
                        "metrics": {"flops": w * d * 1e6}}, system_attrs={GEN: 1}))
    trial = study.ask(grid)
    assert (trial.params["w"], trial.params["d"]) == cells[8]


def test_lower_rungs_is_checked() -> None:
    with pytest.raises(ValueError, match=r"^lower_rungs: expected one of off, shift"):
        ParetoSampler(lower_rungs="raw")


def test_study_files_set_lower_rungs_in_the_sampler_table() -> None:
    from neuromosaic_optuna.config import ConfigError, load_config
    from neuromosaic_optuna.samplers import make_sampler

    experiment = {"name": "x", "architecture_type": "conv_net", "search_space": {"w": [1, 2]},
                  "objectives": ["accuracy", "flops"]}
    sampler = make_sampler(load_config({"experiment": experiment,
                                        "defaults": {"sampler": {"lower_rungs": "shift"}}}))
    assert isinstance(sampler, ParetoSampler) and sampler._lower_rungs == "shift"
    assert make_sampler(load_config({"experiment": experiment}))._lower_rungs == "off"
    with pytest.raises(ConfigError, match="lower_rungs: expected one of off, shift"):
        make_sampler(load_config({"experiment": experiment,
                                  "defaults": {"sampler": {"lower_rungs": "raw"}}}))


@pytest.mark.parametrize("surrogate", ["gp", "forest"])
def test_lower_rungs_with_proxy_features_and_every_surrogate(surrogate: str) -> None:
    # stopped trials need the proxy columns too: the encodings they join have them
    calls: list[dict[str, Any]] = []

    def proxies(params: dict[str, Any]) -> dict[str, float]:
        calls.append(params)
        return {"size": params["x"] + params["y"]}

    sampler = ParetoSampler(population_size=4, seed=3, lower_rungs="shift", min_distance=0.0,
                            surrogate=surrogate, proxies=proxies)
    study = _study(pruned=True, sampler=sampler)
    params = study.ask(SPACE).params
    assert 0.0 <= params["x"] <= 1.0 and 0.0 <= params["y"] <= 1.0
    assert {"x": 0.45, "y": 0.95} in calls  # the stopped trial's proxies were computed
