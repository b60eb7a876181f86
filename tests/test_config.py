"""Study files: the five seed dicts load verbatim, layers merge, bad input is one clear error."""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from neuromosaic_optuna.config import (
    ConfigError,
    load_config,
    load_study_file,
    parse_bytes,
    parse_count,
    parse_duration,
)
from neuromosaic_optuna.space import SearchSpace

ROOT = Path(__file__).resolve().parent.parent
SEED_FILE = ROOT.parent / "shared" / "seeds" / "000_eaa0338b471c7dfc.txt"

# The five dicts of the seed document, copied verbatim (Python syntax).
SEED_DICTS = {
    "experiment_config": {
        "name": "vit_search",
        "architecture_type": "vision_transformer",
        "search_space": {
            "num_layers": [4, 12],
            "num_heads": [4, 16],
            "mlp_ratio": [2.0, 4.0],
            "patch_size": [8, 16, 32]
        },
        "objectives": ["accuracy", "flops"],
        "dataset": "imagenet",
        "max_trials": 100
    },
    "efficient_net_space": {
        "name": "efficient_net_search",
        "architecture_type": "conv_net",
        "search_space": {
            "depth_multiplier": [0.5, 2.0],
            "width_multiplier": [0.5, 2.0],
            "resolution": [160, 320],
            "se_ratio": [0.0, 0.25]
        },
        "constraints": {
            "max_params": "10M",
            "max_latency": "100ms"
        }
    },
    "transfer_experiment": {
        "source_task": {
            "dataset": "cifar10",
            "metric": "accuracy",
            "budget": "small"
        },
        "target_task": {
            "dataset": "imagenet",
            "metric": "accuracy",
            "budget": "large"
        },
        "transfer_strategy": "warm_start"
    },
    "multi_objective_config": {
        "objectives": {
            "accuracy": {"weight": 1.0},
            "latency": {"weight": -0.5},
            "memory": {"weight": -0.3}
        },
        "constraints": {
            "max_params": "5M",
            "min_accuracy": 0.75
        },
        "search_strategy": "pareto"
    },
    "robustness_study": {
        "perturbations": {
            "input_noise": [0.1, 0.2, 0.3],
            "adversarial": ["fgsm", "pgd"],
            "corruption": ["gaussian", "shot", "impulse"]
        },
        "metrics": [
            "clean_accuracy",
            "corrupt_accuracy",
            "adversarial_accuracy"
        ]
    },
}

STUDY_OF = {
    "experiment_config": "vit_search.toml",
    "efficient_net_space": "efficient_convnets.toml",
    "transfer_experiment": "transfer_cifar10_to_imagenet.toml",
    "multi_objective_config": "multi_objective.toml",
    "robustness_study": "robustness.toml",
}


@pytest.mark.skipif(not SEED_FILE.exists(), reason="the design document is not beside the clone")
def test_seed_dicts_are_copied_verbatim_from_the_seed_document() -> None:
    text = SEED_FILE.read_text()
    found = {}
    for name in SEED_DICTS:
        m = re.search(rf"^{name} = (\{{.*?^\}})", text, re.S | re.M)
        assert m, name
        found[name] = ast.literal_eval(m.group(1))
    assert found == SEED_DICTS


@pytest.mark.parametrize("seed_name", sorted(SEED_DICTS))
def test_study_file_holds_the_seed_dict_verbatim(seed_name: str) -> None:
    config = load_study_file(ROOT / "studies" / STUDY_OF[seed_name])
    assert config.experiment == SEED_DICTS[seed_name]


@pytest.mark.parametrize("seed_name", sorted(SEED_DICTS))
def test_seed_dict_loads_bare_from_python(seed_name: str) -> None:
    """A bare seed dict completes with a defaults layer given as a dict."""
    defaults = {"name": "x", "architecture_type": "conv_net",
                "search_space": {"width_multiplier": [0.5, 2.0]}}
    config = load_config({"experiment": SEED_DICTS[seed_name], "defaults": defaults})
    assert config.experiment == SEED_DICTS[seed_name]


def test_vit_seed_distributions_and_objectives() -> None:
    config = load_study_file(ROOT / "studies/vit_search.toml", budget="full")
    dists = SearchSpace(config.search_space).distributions
    assert dists["num_layers"] == IntDistribution(4, 12)
    assert dists["num_heads"] == IntDistribution(4, 16)
    assert dists["mlp_ratio"] == FloatDistribution(2.0, 4.0)
    assert dists["patch_size"] == CategoricalDistribution([8, 16, 32])
    assert config.metric_names == ["accuracy", "flops"]
    assert config.directions == ["maximize", "minimize"]
    assert config.dataset == "imagenet" and config.max_trials == 100


def test_efficient_net_seed_distributions_and_constraints() -> None:
    config = load_study_file(ROOT / "studies/efficient_convnets.toml")
    dists = SearchSpace(config.search_space).distributions
    assert dists["depth_multiplier"] == FloatDistribution(0.5, 2.0)
    assert dists["resolution"] == IntDistribution(160, 320)
    assert dists["se_ratio"] == FloatDistribution(0.0, 0.25)
    bounds = {c.name: (c.metric, c.kind, c.bound) for c in config.constraints}
    assert bounds["max_params"] == ("params", "max", 10e6)
    assert bounds["max_latency"][:2] == ("latency", "max")
    assert math.isclose(bounds["max_latency"][2], 0.1)


def test_multi_objective_seed_weights_constraints_strategy() -> None:
    config = load_study_file(ROOT / "studies/multi_objective.toml")
    assert [(o.name, o.direction, o.weight) for o in config.objectives] == [
        ("accuracy", "maximize", 1.0), ("latency", "minimize", -0.5),
        ("memory", "minimize", -0.3)]
    assert config.search_strategy == "pareto"
    assert config.directions == ["maximize", "minimize", "minimize"]
    bounds = {c.name: (c.kind, c.bound) for c in config.constraints}
    assert bounds == {"max_params": ("max", 5e6), "min_accuracy": ("min", 0.75)}
    dists = SearchSpace(config.search_space).distributions
    assert dists["resolution"] == IntDistribution(160, 320, step=32)


def test_transfer_and_robustness_seed_fields() -> None:
    transfer = load_study_file(ROOT / "studies/transfer_cifar10_to_imagenet.toml")
    assert transfer.transfer_strategy == "warm_start"
    assert transfer.source_task == {"dataset": "cifar10", "metric": "accuracy", "budget": "small"}
    assert transfer.target_task["budget"] == "large"
    robust = load_study_file(ROOT / "studies/robustness.toml")
    assert robust.robustness_metrics == ("clean_accuracy", "corrupt_accuracy",
                                         "adversarial_accuracy")
    assert robust.perturbations["input_noise"] == [0.1, 0.2, 0.3]


def test_precedence_cli_over_budget_over_experiment_over_defaults() -> None:
    data = {
        "defaults": {"epochs": 1, "dataset": "digits", "max_trials": 5},
        "experiment": {"name": "p", "architecture_type": "conv_net", "max_trials": 50,
                       "dataset": "imagenet", "search_space": {"w": [1, 2]}},
        "budget": {"default": "cpu", "cpu": {"max_trials": 7, "dataset": "digits"},
                   "big": {"max_trials": 70}},
    }
    assert load_config(data).max_trials == 7
    assert load_config(data).dataset == "digits"
    assert load_config(data).epochs == 1
    assert load_config(data, budget="big").max_trials == 70
    assert load_config(data, budget="big").dataset == "imagenet"
    assert load_config(data, overrides={"max_trials": 3}).max_trials == 3


def test_units() -> None:
    assert parse_count("10M") == 10e6
    assert parse_count("1.5G") == 1.5e9
    assert parse_count("500K") == 500e3
    assert parse_count(1234) == 1234
    assert math.isclose(parse_duration("100ms"), 0.1)
    assert parse_duration("2s") == 2.0
    assert parse_bytes("1MiB") == 2**20
    for bad, parser in (("10X", parse_count), ("ten", parse_count), ("100", parse_duration),
                        ("-1M", parse_count), ("5 parsecs", parse_duration)):
        if bad == "100":
            continue  # a bare number string is not a duration; tested below
        with pytest.raises(ConfigError):
            parser(bad)
    with pytest.raises(ConfigError, match="unit"):
        parse_duration("100")


BASE = {"name": "b", "architecture_type": "conv_net", "search_space": {"w": [0.5, 2.0]}}


@pytest.mark.parametrize(("patch", "field"), [
    ({"colour": "red"}, "experiment.colour"),
    ({"max_trials": "many"}, "experiment.max_trials"),
    ({"max_trials": -3}, "experiment.max_trials"),
    ({"search_space": {"w": [2.0, 0.5]}}, "experiment.search_space.w"),
    ({"search_space": {"w": "wide"}}, "experiment.search_space.w"),
    ({"search_space": {"w": {"low": 1, "hgh": 2}}}, "experiment.search_space.w.hgh"),
    ({"constraints": {"max_params": "10 apples"}}, "experiment.constraints.max_params"),
    ({"constraints": {"max_wingspan": 3}}, "experiment.constraints.max_wingspan"),
    ({"constraints": {"min_accuracy": 75}}, "experiment.constraints.min_accuracy"),
    ({"objectives": ["accuracy", "beauty"]}, "experiment.objectives[1]"),
    ({"objectives": {"latency": {"weight": 0.5}}}, "experiment.objectives.latency.weight"),
    ({"architecture_type": 3}, "experiment.architecture_type"),
])
def test_bad_input_names_the_field(patch: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config({**BASE, **patch})
    assert str(err.value).startswith(field + ":"), str(err.value)
    assert "\n" not in str(err.value)


def test_unreadable_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[experiment\nname = 'x'")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_study_file(bad)
    with pytest.raises(ConfigError, match="no such study file"):
        load_study_file(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="unknown budget"):
        load_study_file(ROOT / "studies/vit_search.toml", budget="gpu-farm")
