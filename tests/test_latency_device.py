"""Costs on a declared device (issue 16, item 4): ``latency_device``, a latency cache keyed by
device, FLOPs and params independent of the device."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from neuromosaic_optuna import profiling
from neuromosaic_optuna.config import ConfigError, load_config
from neuromosaic_optuna.objective import Objective
from neuromosaic_optuna.profiling import clear_latency_cache, measure_latency, profile_model

_EXP = {"name": "l", "architecture_type": "conv_net",
        "search_space": {"width_multiplier": [0.25, 0.5]}}


def test_latency_device_key() -> None:
    assert load_config({"experiment": _EXP}).latency_device is None
    cfg = load_config({"experiment": _EXP, "defaults": {"latency_device": "CPU"}})
    assert cfg.latency_device == "cpu"
    assert load_config({"experiment": _EXP, "defaults": {"latency_device": "cuda:1"}}
                       ).latency_device == "cuda:1"
    with pytest.raises(ConfigError, match="latency_device.*expected auto, cpu"):
        load_config({"experiment": _EXP, "defaults": {"latency_device": "tpu"}})


def test_missing_latency_device_is_one_line_before_any_trial() -> None:
    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    cfg = load_config({"experiment": _EXP, "defaults": {"latency_device": "cuda:7",
                                                        "device": "cpu"}})
    objective = Objective(cfg, timing=False)
    assert objective.device == torch.device("cpu")
    with pytest.raises(ConfigError) as err:
        objective.preflight()
    assert str(err.value).startswith("latency_device: cuda:7 is not available")
    assert "\n" not in str(err.value)
    default = Objective(load_config({"experiment": _EXP, "defaults": {"device": "cpu"}}))
    assert default.latency_device == default.device  # default: the training device


def test_latency_cache_is_keyed_by_device() -> None:
    clear_latency_cache()
    model = nn.Conv2d(3, 4, 3)
    cpu = measure_latency(model, (3, 8, 8), warmup=0, repeats=2, cache_key="k", device="cpu")
    assert ("k", (3, 8, 8), 1, "cpu") in profiling._LATENCY_CACHE
    profiling._LATENCY_CACHE[("k", (3, 8, 8), 1, "cuda:0")] = 123.0  # as if timed on a GPU
    # a cache hit for cuda:0 returns without touching a device; cpu keeps its own entry
    assert measure_latency(model, (3, 8, 8), cache_key="k", device="cuda:0") == 123.0
    assert measure_latency(model, (3, 8, 8), cache_key="k", device="cpu") == cpu != 123.0
    assert measure_latency(model, (3, 8, 8), cache_key="k") == cpu  # model's device: cpu
    clear_latency_cache()


def test_flops_and_params_do_not_change_with_latency_device() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 8 * 8, 10))
    here = profile_model(model, (3, 8, 8), timing=False)
    cpu = profile_model(model, (3, 8, 8), timing=False, device="cpu")
    assert (here.flops, here.params, here.memory) == (cpu.flops, cpu.params, cpu.memory)
    assert here.flops == 3 * 8 * 9 * 64 + 512 * 10 and here.params == 224 + 5130
    metrics = {}
    for spec in (None, "cpu"):
        defaults = {"device": "cpu", "epochs": 1, "max_train_samples": 32}
        if spec:
            defaults["latency_device"] = spec
        objective = Objective(load_config({"experiment": _EXP, "defaults": defaults}),
                              timing=False)
        built, _ = objective.build({"width_multiplier": 0.25})
        p = profile_model(built.model, built.input_size, timing=False,
                          device=objective.latency_device)
        metrics[spec] = (p.flops, p.params)
    assert metrics[None] == metrics["cpu"] and metrics[None][0] > 0
