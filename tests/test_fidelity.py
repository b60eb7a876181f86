"""``[fidelity]`` and asynchronous multi-objective successive halving (MO-ASHA)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from neuromosaic_optuna.cli import main
from neuromosaic_optuna.config import ConfigError, FidelitySpec, load_config
from neuromosaic_optuna.pruners import (
    CombinedPruner,
    MultiObjectiveSuccessiveHalvingPruner,
    make_pruner,
    report,
    rung_decision,
    should_prune,
)
from neuromosaic_optuna.record import RUNG, stopped_rung

MAXMIN = ["maximize", "minimize"]
EXPERIMENT = {"name": "mf", "architecture_type": "conv_net",
              "search_space": {"width_multiplier": [0.25, 0.5]},
              "objectives": ["accuracy", "flops"]}


def _cfg(fidelity: Any, **defaults: Any) -> Any:
    return load_config({"experiment": EXPERIMENT, "defaults": {"epochs": 9, **defaults},
                        "fidelity": fidelity})


# --------------------------------------------------------------------------- config

def test_fidelity_table_defaults_and_rungs() -> None:
    cfg = _cfg({})
    assert cfg.fidelity == FidelitySpec("epochs", 1, 9, 3)
    assert cfg.fidelity.rungs == (1, 3)
    cfg = _cfg({"min": 2, "max": 18, "reduction_factor": 2})
    assert cfg.epochs == 18 and cfg.fidelity.rungs == (2, 4, 8, 16)
    assert load_config({"experiment": EXPERIMENT}).fidelity is None
    # a budget with fewer epochs keeps them: max follows epochs, no rung below it
    smoke = load_config({"experiment": EXPERIMENT, "defaults": {"epochs": 9},
                         "budget": {"smoke": {"epochs": 1}}, "fidelity": {"min": 1}},
                        budget="smoke")
    assert smoke.epochs == 1 and smoke.fidelity.rungs == ()


@pytest.mark.parametrize(("table", "field", "text"), [
    ({"resource": "train_fraction"}, "fidelity.resource", "not implemented yet"),
    ({"resource": "steps"}, "fidelity.resource", "expected \"epochs\""),
    ({"min": 0}, "fidelity.min", "between 1 and"),
    ({"min": 1.5}, "fidelity.min", "expected an integer"),
    ({"max": 3, "min": 3}, "fidelity.max", "must exceed fidelity.min (3)"),
    ({"reduction_factor": 1}, "fidelity.reduction_factor", "between 2 and"),
    ({"eta": 3}, "fidelity.eta", "unknown key"),
    ("epochs", "fidelity", "expected a table"),
])
def test_fidelity_errors_are_one_line(table: Any, field: str, text: str) -> None:
    with pytest.raises(ConfigError) as err:
        _cfg(table)
    assert err.value.path == field, str(err.value)
    assert text in str(err.value) and "\n" not in str(err.value)


def test_fidelity_wires_the_successive_halving_pruner() -> None:
    cfg = load_config({"experiment": {**EXPERIMENT, "constraints": {"min_accuracy": 0.5}},
                       "defaults": {"epochs": 9}, "fidelity": {"reduction_factor": 3}})
    pruner = make_pruner(cfg)
    assert isinstance(pruner, CombinedPruner)  # divergence guard in front
    sh = pruner.pruners[-1]
    assert isinstance(sh, MultiObjectiveSuccessiveHalvingPruner)
    assert (sh.min_resource, sh.reduction_factor, sh.max_resource) == (1, 3, 9)
    assert [s for s in range(1, 20) if sh.is_rung(s)] == [1, 3]
    assert sh.bounds == {"min_accuracy": ("min", "accuracy", 0.5)}
    with pytest.raises(ConfigError, match=r"^pruner.name: MedianPruner conflicts"):
        make_pruner(_cfg({}, pruner={"name": "MedianPruner"}))
    with pytest.raises(ConfigError, match=r"^pruner.reduction_factor: set by \[fidelity\]"):
        make_pruner(_cfg({}, pruner={"reduction_factor": 2}))
    extra = make_pruner(_cfg({}, pruner={"n_startup_trials": 2, "divergence": False}))
    assert isinstance(extra, MultiObjectiveSuccessiveHalvingPruner)
    assert extra.n_startup_trials == 2


def test_fidelity_brackets_are_validated_and_wired() -> None:
    cfg = _cfg({"brackets": 3})
    assert cfg.fidelity.brackets == 3 and _cfg({}).fidelity.brackets == 1
    sh = make_pruner(_cfg({"brackets": 2}, pruner={"divergence": False}))
    assert isinstance(sh, MultiObjectiveSuccessiveHalvingPruner) and sh.brackets == 2
    for bad, text in ((0, "between 1 and"), (True, "expected an integer"),
                      ("3", "expected an integer")):
        with pytest.raises(ConfigError) as err:
            _cfg({"brackets": bad})
        assert err.value.path == "fidelity.brackets" and text in str(err.value)
    with pytest.raises(ConfigError) as err:  # rungs 1, 3 plus full fidelity 9: three levels
        _cfg({"brackets": 4, "max": 9})
    assert err.value.path == "fidelity.brackets"
    assert "at most 3 with min = 1, max = 9" in str(err.value)
    # a budget preset with fewer epochs keeps the study runnable: fewer brackets fit
    smoke = load_config({"experiment": EXPERIMENT, "defaults": {"epochs": 9},
                         "budget": {"smoke": {"epochs": 3}},
                         "fidelity": {"brackets": 3}}, budget="smoke")
    assert smoke.fidelity.rungs == (1,) and smoke.fidelity.brackets == 2
    with pytest.raises(ConfigError, match=r"^pruner.brackets: set by \[fidelity\]"):
        make_pruner(_cfg({}, pruner={"brackets": 2}))


def test_cli_rejects_a_bad_fidelity_table(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "s.toml"
    study.write_text('[experiment]\nname = "mf"\narchitecture_type = "conv_net"\n'
                     '[experiment.search_space]\nwidth_multiplier = [0.25, 0.5]\n'
                     '[fidelity]\nreduction_factor = 1\n')
    db = tmp_path / "no.db"
    assert main(["run", str(study), "--storage", f"sqlite:///{db}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fidelity.reduction_factor" in err[0]
    assert not db.exists()


# --------------------------------------------------------------------------- rung rule

def test_rung_decision_ranks_front_then_crowding() -> None:
    pts = [[0.70, 2e6], [0.50, 1e6], [0.90, 3e6], [0.40, 2e6]]
    d = rung_decision(pts, MAXMIN, reduction_factor=2)  # on the front, least crowded
    assert d == (False, 2, 2, 4, 0)
    assert rung_decision(pts, MAXMIN, reduction_factor=2, index=3) == (False, 3, 2, 4, 1)
    assert rung_decision(pts, MAXMIN, reduction_factor=2, index=1).promote is True
    # the first eta - 1 arrivals: only one that nothing beats continues
    assert rung_decision([[0.5, 1e6], [0.6, 1e6]], MAXMIN, reduction_factor=3).promote is False
    assert rung_decision([[0.6, 1e6], [0.5, 1e6]], MAXMIN, reduction_factor=3).promote is True


def test_rung_decision_ties_and_duplicates() -> None:
    # duplicates share one crowding distance: the same decision whatever the arrival order
    pts = [[0.7, 2e6], [0.5, 1e6], [0.9, 3e6], [0.7, 2e6], [0.3, 5e6]]
    a = rung_decision(pts, MAXMIN, reduction_factor=2, index=0)
    b = rung_decision(pts, MAXMIN, reduction_factor=2, index=3)
    assert a == b
    assert a.ahead == 2 and a.keep == 2 and not a.promote
    # exact ties favour the trial (as Optuna's SuccessiveHalvingPruner): all four continue
    tie = [[0.8, 1e6]] * 4
    assert all(rung_decision(tie, MAXMIN, reduction_factor=3, index=i).promote
               for i in range(4))


def test_rung_decision_constraints_and_non_finite_rank_last() -> None:
    # the cheapest trial is on the front but infeasible: it ranks after both feasible ones
    pts = [[0.55, 1e5], [0.9, 3e6], [0.8, 2e6], [0.2, 9e6]]
    viol = [0.1, 0.0, 0.0, math.nan]
    d = rung_decision(pts, MAXMIN, reduction_factor=2, violations=viol)
    assert d == (False, 2, 2, 4, -1)
    assert rung_decision(pts, MAXMIN, reduction_factor=2, violations=[0, 0, 0, 0]).promote
    # NaN violation (unmeasured) ranks after a measured one
    assert rung_decision(pts, MAXMIN, reduction_factor=2, violations=viol, index=3).ahead == 3
    # a diverged value ranks after everything, infeasible trials included
    pts = [[0.1, 1e5], [math.nan, 1e5], [0.3, 1e6]]
    assert rung_decision(pts, MAXMIN, reduction_factor=3, violations=[1, 0, 0]).ahead == 1
    assert rung_decision(pts, MAXMIN, reduction_factor=3, index=1).ahead == 2


# --------------------------------------------------------------------------- the pruner

def _study() -> optuna.Study:
    study = optuna.create_study(directions=MAXMIN)
    study.set_metric_names(["accuracy", "flops"])
    return study


def _curves(seed: int, n: int, epochs: int) -> list[tuple[np.ndarray, float]]:
    """Synthetic learning curves ``final * (1 - exp(-e / tau))`` (noisy, crossing) and costs."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        final, tau = rng.uniform(0.5, 0.95), rng.uniform(0.5, 4.0)
        e = np.arange(1, epochs + 1)
        acc = final * (1 - np.exp(-e / tau)) + rng.normal(0, 0.01, epochs)
        out.append((np.clip(acc, 0, 1), float(rng.choice([1e6, 2e6, 4e6]))))
    return out


def _run(study: optuna.Study, pruner: Any, curves: list[tuple[np.ndarray, float]],
         epochs: int) -> list[int]:
    """Train each curve in turn, asking the pruner after every epoch before the last; return
    the epochs each trial trained."""
    trained = []
    for acc, flops in curves:
        t = study.ask()
        t.set_user_attr("metrics", {"flops": flops})
        for e in range(1, epochs + 1):
            report(t, e, accuracy=float(acc[e - 1]))
            if e < epochs and should_prune(t, pruner):
                study.tell(t, state=TrialState.PRUNED)
                break
        else:
            study.tell(t, [float(acc[-1]), flops])
        trained.append(e)
    return trained


def _oracle_asha(values_by_trial: list[np.ndarray], rungs: tuple[int, ...], eta: int
                 ) -> list[int]:
    """Single-objective asynchronous SH written out independently (sequential arrivals)."""
    at_rung: dict[int, list[float]] = {r: [] for r in rungs}
    stopped = []
    for acc in values_by_trial:
        stop = len(acc)
        for r in rungs:
            value = float(acc[r - 1])
            at_rung[r].append(value)
            keep = max(1, len(at_rung[r]) // eta)
            if value < sorted(at_rung[r], reverse=True)[keep - 1]:
                stop = r
                break
        stopped.append(stop)
    return stopped


def test_equal_costs_reduce_to_single_objective_asha() -> None:
    curves = [(acc, 1e6) for acc, _ in _curves(seed=3, n=27, epochs=9)]
    pruner = MultiObjectiveSuccessiveHalvingPruner(min_resource=1, reduction_factor=3,
                                                   max_resource=9)
    study = _study()
    trained = _run(study, pruner, curves, 9)
    assert trained == _oracle_asha([c for c, _ in curves], (1, 3), 3)
    assert 3 <= trained.count(9) <= 13 and trained.count(1) >= 5  # it does stop trials
    for t, epochs in zip(study.trials, trained, strict=True):
        if epochs < 9:
            assert t.state == TrialState.PRUNED and stopped_rung(t) == epochs
            assert t.user_attrs["reason"].startswith(f"rung {epochs}:")
        else:
            assert t.state == TrialState.COMPLETE and stopped_rung(t) is None
            assert t.user_attrs[RUNG]["step"] == 3  # the last rung it passed


def test_brackets_rank_each_bracket_on_its_own_rungs() -> None:
    pruner = MultiObjectiveSuccessiveHalvingPruner(min_resource=1, reduction_factor=3,
                                                   max_resource=9, brackets=3)
    assert [pruner.bracket_of(n) for n in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert [[s for s in range(1, 12) if pruner.is_rung(s, b)] for b in range(3)] == [
        [1, 3], [3], []]
    explicit = MultiObjectiveSuccessiveHalvingPruner(rungs=[2, 4, 8], brackets=4)
    assert [s for s in range(1, 10) if explicit.is_rung(s, 2)] == [8]
    for kwargs in ({"brackets": 0}, {"brackets": 4, "max_resource": 9},
                   {"brackets": 3, "rungs": [1], "max_resource": 9}):
        with pytest.raises(ValueError, match=r"^brackets: "):
            MultiObjectiveSuccessiveHalvingPruner(**kwargs)
    # equal costs: each bracket is single-objective ASHA over its own trials and rungs
    curves = [(acc, 1e6) for acc, _ in _curves(seed=11, n=36, epochs=9)]
    study = _study()
    trained = _run(study, pruner, curves, 9)
    for b, rungs in enumerate(((1, 3), (3,), ())):
        mine = list(range(b, 36, 3))
        expected = _oracle_asha([curves[i][0] for i in mine], rungs, 3)
        assert [trained[i] for i in mine] == expected
    assert all(trained[i] == 9 for i in range(2, 36, 3))  # the full-fidelity bracket
    assert all(trained[i] in (3, 9) for i in range(1, 36, 3))
    assert trained.count(1) >= 4 and trained.count(3) >= 3
    stopped = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert stopped and all(t.user_attrs[RUNG]["bracket"] == t.number % 3 for t in stopped)
    assert all(f"(bracket {t.number % 3})" in t.user_attrs["reason"] for t in stopped)
    # the same curves with one bracket stop differently (trials of all brackets compete)
    assert _run(_study(), MultiObjectiveSuccessiveHalvingPruner(
        min_resource=1, reduction_factor=3, max_resource=9), curves, 9) != trained


def test_multi_objective_curves_keep_the_rung_front() -> None:
    curves = _curves(seed=5, n=30, epochs=9)
    pruner = MultiObjectiveSuccessiveHalvingPruner(min_resource=1, reduction_factor=3,
                                                   max_resource=9)
    study = _study()
    trained = _run(study, pruner, curves, 9)
    assert sum(trained) < 0.6 * 30 * 9  # stopping saves epochs
    for i, t in enumerate(study.trials):
        info = t.user_attrs[RUNG]
        assert (info["ahead"] < info["keep"]) == (t.state == TrialState.COMPLETE
                                                   or info["step"] < trained[i])
        # the stored decision is the rule applied to the trials that had reached the rung
        earlier = [c for c, _ in curves[:i + 1]]
        step = info["step"]
        pts = [[float(curves[i][0][step - 1]), curves[i][1]]]
        pts += [[float(a[step - 1]), curves[j][1]] for j, a in enumerate(earlier[:-1])
                if trained[j] >= step]
        d = rung_decision(pts, MAXMIN, reduction_factor=3)
        assert (d.ahead, d.keep, d.n) == (info["ahead"], info["keep"], info["of"])
    assert Counter(t.state for t in study.trials)[TrialState.COMPLETE] == trained.count(9)


def test_pruner_constraints_and_a_diverging_trial() -> None:
    pruner = MultiObjectiveSuccessiveHalvingPruner(rungs=[1], reduction_factor=2,
                                                   bounds={"min_accuracy": 0.6})
    study = _study()
    for acc, flops in ((0.9, 3e6), (0.8, 2e6)):
        t = study.ask()
        t.set_user_attr("metrics", {"flops": flops})
        report(t, 1, accuracy=acc)
        assert should_prune(t, pruner) is False  # two-point front: both extremes, a tie
        study.tell(t, state=TrialState.PRUNED)
    cheap = study.ask()  # non-dominated but below min_accuracy at the rung: ranks last
    cheap.set_user_attr("metrics", {"flops": 1e5})
    report(cheap, 1, accuracy=0.55)
    assert should_prune(cheap, pruner) is True
    assert "violates a constraint" in cheap.user_attrs["reason"]
    study.tell(cheap, state=TrialState.PRUNED)
    diverged = study.ask()
    diverged.set_user_attr("metrics", {"flops": 1e5})
    report(diverged, 1, accuracy=math.nan)
    assert should_prune(diverged, pruner) is True
    assert diverged.user_attrs["reason"] == "non-finite accuracy at rung 1"
    study.tell(diverged, state=TrialState.PRUNED)
    assert stopped_rung(study.trials[-1]) == 1
    # the diverged and the infeasible trial count at the rung, ranked last: n = 5, keep = 2
    late = study.ask()
    late.set_user_attr("metrics", {"flops": 2.5e6})
    report(late, 1, accuracy=0.95)
    assert should_prune(late, pruner) is False
    assert late.user_attrs[RUNG] == {"step": 1, "ahead": 0, "keep": 2, "of": 5}
    # between two front members: 2 rank ahead; the 6 trials at the rung (the stopped ones
    # included, as in ASHA) let 3 continue, so it does (of 4 it would be stopped)
    middle = study.ask()
    middle.set_user_attr("metrics", {"flops": 2.2e6})
    report(middle, 1, accuracy=0.85)
    assert should_prune(middle, pruner) is False
    assert middle.user_attrs[RUNG] == {"step": 1, "ahead": 2, "keep": 3, "of": 6}


def test_front_and_hypervolume_count_full_fidelity_trials_only() -> None:
    from neuromosaic_optuna.pareto import hypervolume, pareto_info

    study = _study()
    study.add_trial(optuna.trial.create_trial(values=[0.8, 2e6],
                                              user_attrs={"metrics": {"accuracy": 0.8,
                                                                      "flops": 2e6}}))
    # stopped at rung 1 with a better-looking early value and known metrics: never counted
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.PRUNED, user_attrs={RUNG: {"step": 1, "ahead": 3, "keep": 1, "of": 4},
                                             "intermediate": {"accuracy": {"1": 0.99}},
                                             "metrics": {"accuracy": 0.99, "flops": 1e5}}))
    for metrics in (None, ["accuracy", "flops"]):
        info = pareto_info(study, reference_point=[0.0, 4e6], metrics=metrics)
        assert info.trial_numbers.tolist() == [0] and info.front_trials == [0]
        assert info.knee_trial == 0
        assert info.hypervolume == pytest.approx(hypervolume([[0.8, 2e6]], MAXMIN, [0.0, 4e6]))
    assert [t.number for t in study.best_trials] == [0]
    assert stopped_rung(study.trials[1]) == 1


def test_pareto_command_shows_stopped_trials(capsys: pytest.CaptureFixture[str]) -> None:
    from neuromosaic_optuna.cli import _print_front

    study = _study()
    study.add_trial(optuna.trial.create_trial(values=[0.8, 2e6]))
    for step in (1, 1, 3):
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.PRUNED, user_attrs={RUNG: {"step": step, "ahead": 3, "keep": 1,
                                                        "of": 4}}))
    _print_front(study, _cfg({}))
    out = capsys.readouterr().out
    assert "1 of 1 completed trials" in out
    assert ("stopped early by successive halving (PRUNED, not on the front): 2 at epoch 1, "
            "1 at epoch 3") in out


# --------------------------------------------------------------------------- workers

WORKER_CONFIG = {
    "experiment": {"name": "mf_workers", "architecture_type": "conv_net",
                   "objectives": ["accuracy", "flops"], "dataset": "digits",
                   "search_space": {"width_multiplier": [0.25, 1.0],
                                    "depth_multiplier": [0.5, 1.0]}},
    "defaults": {"resolution": 16, "max_train_samples": 128, "batch_size": 64,
                 "epochs": 3, "seed": 1,
                 "model_options": {"convnet_stages": ["ds_r1_k3_s1_e1_c8",
                                                      "ir_r1_k3_s2_e2_c16"],
                                   "convnet_head_channels": 32}},
    "fidelity": {"min": 1, "reduction_factor": 3}}


def _workers_finish_exactly(url: str, n_trials: int) -> None:
    """Two worker processes (the database the only coordinator) end with exactly
    ``n_trials`` COMPLETE + PRUNED trials; every stopped trial stopped at rung 1 with one
    epoch trained, every complete one trained all three."""
    from neuromosaic_optuna.storage import make_storage
    from neuromosaic_optuna.study import run_workers

    config = load_config(WORKER_CONFIG)
    study = run_workers(config, storage_url=url, workers=2, n_trials=n_trials)
    loaded = optuna.load_study(study_name=study.study_name, storage=make_storage(url))
    states = Counter(t.state for t in loaded.trials)
    assert states[TrialState.COMPLETE] + states[TrialState.PRUNED] == n_trials, states
    assert len(loaded.trials) == n_trials
    for t in loaded.trials:
        curve = t.user_attrs["intermediate"]["accuracy"]
        if t.state == TrialState.PRUNED:
            assert stopped_rung(t) == 1 and sorted(curve) == ["1"], t.user_attrs
        else:
            assert t.state == TrialState.COMPLETE and sorted(curve) == ["1", "2", "3"]
            assert t.user_attrs[RUNG]["step"] == 1
    assert {t.number for t in loaded.best_trials} <= {
        t.number for t in loaded.trials if t.state == TrialState.COMPLETE}


def test_async_workers_on_sqlite_finish_exactly_the_requested_trials(tmp_path: Path) -> None:
    _workers_finish_exactly(f"sqlite:///{tmp_path / 'mf.db'}", 7)


def test_async_workers_on_postgresql_finish_exactly(postgresql_db_url: str) -> None:
    _workers_finish_exactly(postgresql_db_url, 5)


def test_async_workers_on_a_journal_file_finish_exactly(tmp_path: Path) -> None:
    _workers_finish_exactly(str(tmp_path / "mf.log"), 5)


def test_readme_fidelity_block_loads() -> None:
    import re

    import tomllib

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = next(b for b in re.findall(r"```toml\n(.*?)```", text, re.S) if "[fidelity]" in b)
    cfg = load_config({"experiment": EXPERIMENT, **tomllib.loads(block)})
    assert cfg.fidelity == FidelitySpec("epochs", 1, 9, 3) and cfg.fidelity.rungs == (1, 3)
