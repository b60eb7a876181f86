"""Zero-cost proxies as study metrics: stored like other metrics, usable as objectives and
constraints, validated in study files."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import optuna
import pytest
import torch

import neuromosaic_optuna as nm
from neuromosaic_optuna.cli import main
from neuromosaic_optuna.config import ConfigError, StudyConfig, load_config
from neuromosaic_optuna.data import load_dataset
from neuromosaic_optuna.metrics import METRICS, PROXY_METRICS
from neuromosaic_optuna.models import BuildContext, get_builder
from neuromosaic_optuna.models.nasbench201 import EDGES, OPS, NASBench201Table
from neuromosaic_optuna.proxies import PROXIES, compute_proxies
from neuromosaic_optuna.record import metrics_of, status_of
from neuromosaic_optuna.units import format_metric

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "studies" / "quickstart.toml"
CACHE = ROOT / "benchmarks" / "data" / "nb201_proxies.csv"
_PARAMS = {"depth_multiplier": 0.5, "width_multiplier": 0.25, "se_ratio": 0.0}


def _smoke(**overrides: object) -> StudyConfig:
    return nm.load_study_file(QUICK, budget="smoke", overrides={
        "max_train_samples": 128, "resolution": 16, **overrides})


def test_proxies_are_score_metrics_to_maximize_known_before_training() -> None:
    assert PROXIES[:len(PROXY_METRICS)] == PROXY_METRICS
    for name in PROXY_METRICS:
        info = METRICS[name]
        assert (info.unit, info.direction, info.cost) == ("score", "maximize", True)
    assert format_metric("synflow", 1.234567e30) == "1.235e+30"


def test_stored_proxies_equal_compute_proxies_for_the_same_seed() -> None:
    config = _smoke(proxies=("naswot", "snip"), seed=3)
    # a bound no network reaches: the trial is rejected after profiling, never trained
    config = config.with_overrides(constraints=load_config({
        "name": "c", "architecture_type": "conv_net", "search_space": {"w": [1, 2]},
        "constraints": {"min_snip": 1e30}}).constraints)
    objective = nm.Objective(config, timing=False)
    study = nm.create_study(config, storage=None)
    study.enqueue_trial(_PARAMS)
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    stored = metrics_of(trial)
    assert status_of(trial) == "rejected" and trial.constraints["min_snip"] > 0
    assert "snip" in trial.user_attrs["reason"]

    x, y = objective.proxy_batch(16)
    val_x, _ = load_dataset("digits", resolution=16, seed=3).val.tensors
    assert len(x) == 64 and all((val_x == image).all((1, 2, 3)).any() for image in x)
    torch.manual_seed(3)
    model = get_builder("conv_net")(_PARAMS, BuildContext(
        num_classes=10, resolution=16, options=objective.model_options)).model
    expected = compute_proxies(model, x, y, names=["naswot", "snip"])
    assert {k: stored[k] for k in expected} == pytest.approx(expected, rel=1e-9)
    torch.manual_seed(4)  # another seed: other weights, other scores
    other = get_builder("conv_net")(_PARAMS, BuildContext(
        num_classes=10, resolution=16, options=objective.model_options)).model
    assert compute_proxies(other, x, y, names=["snip"])["snip"] != pytest.approx(stored["snip"])


def test_a_proxy_as_objective_and_as_constraint_in_a_smoke_study() -> None:
    config = _smoke(objectives=["accuracy", "naswot"], resolution=8,
                    constraints={"min_grad_norm": 1e-6})
    assert config.proxies == ("naswot", "grad_norm")  # named ones are measured
    assert config.directions == ["maximize", "maximize"]
    study = nm.create_study(config, storage=None)
    study.enqueue_trial(_PARAMS)
    study.enqueue_trial({**_PARAMS, "width_multiplier": 0.4})
    study.optimize(nm.Objective(config, timing=False), n_trials=2)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    for trial in study.trials:
        metrics = metrics_of(trial)
        assert trial.values[1] == metrics["naswot"] and math.isfinite(metrics["naswot"])
        assert trial.constraints == {"min_grad_norm": pytest.approx(1e-6 - metrics["grad_norm"])}
        assert status_of(trial) == "ok" and metrics["accuracy"] > 0
    assert study.best_trials


def test_tabular_proxies_match_the_benchmark_cache() -> None:
    with CACHE.open(newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["seed"] == "0")
    cell = NASBench201Table.cell(int(row["index"]))
    config = load_config({"name": "t", "architecture_type": "nasbench201",
                          "dataset": "cifar10", "search_space": {e: list(OPS) for e in EDGES},
                          "objectives": ["accuracy_mean", "synflow"]})
    study = nm.create_study(config, storage=None)
    study.enqueue_trial(cell)
    study.optimize(nm.Objective(config, timing=False), n_trials=1)
    assert study.trials[0].values[1] == pytest.approx(float(row["synflow"]), rel=1e-6)


@pytest.mark.parametrize(("proxies", "field"), [(["synflow", "zico"], "defaults.proxies[1]"),
                                                (["params"], "defaults.proxies[0]"),
                                                ("synflow", "defaults.proxies")])
def test_bad_proxy_names_are_one_line_config_errors(proxies: object, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config({"experiment": {"name": "b", "architecture_type": "conv_net",
                                    "search_space": {"w": [1, 2]}},
                     "defaults": {"proxies": proxies}})
    assert err.value.path == field
    assert "synflow, jacob_cov, naswot, grad_norm, snip" in str(err.value)


def test_bad_proxy_in_a_study_file_exits_2(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    study_file = tmp_path / "bad.toml"
    study_file.write_text('[experiment]\nname = "b"\narchitecture_type = "conv_net"\n'
                          'dataset = "digits"\n[experiment.search_space]\n'
                          'width_multiplier = [0.25, 0.5]\n[defaults]\n'
                          'proxies = ["synflow", "zen"]\n')
    db = tmp_path / "untouched.db"
    assert main(["run", str(study_file), "--storage", f"sqlite:///{db}", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "defaults.proxies[1]" in err[0] and "'zen'" in err[0]
    assert not db.exists()
