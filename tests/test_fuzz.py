"""Fuzz the study-file loader and the CLI with a generated corpus of malformed configs.

Every case must end with exit code 2, exactly one line on stderr naming a field, no
traceback, and nothing written to the storage. The corpus is generated from a seed (so a
failure reproduces) by applying one always-invalid mutation to a valid study.
"""

from __future__ import annotations

import copy
import math
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from neuromosaic_optuna.cli import main

N_CASES = 320

VALID: dict[str, Any] = {
    "description": "fuzz base",
    "experiment": {
        "name": "fuzz",
        "architecture_type": "conv_net",
        "objectives": ["accuracy", "flops"],
        "dataset": "digits",
        "max_trials": 3,
        "search_space": {"depth_multiplier": [0.5, 2.0], "width_multiplier": [0.5, 2.0],
                         "resolution": [160, 320], "se_ratio": [0.0, 0.25]},
        "constraints": {"max_params": "10M", "max_latency": "100ms"},
    },
    "defaults": {"epochs": 1, "batch_size": 32, "learning_rate": 0.01, "seed": 0},
    "budget": {"default": "cpu", "cpu": {"max_trials": 2, "epochs": 1}},
}

NUMERIC_FIELDS = [("experiment", "max_trials"), ("defaults", "epochs"),
                  ("defaults", "batch_size"), ("defaults", "learning_rate"),
                  ("defaults", "seed"), ("budget", "cpu", "max_trials"),
                  ("budget", "cpu", "epochs")]
STRING_FIELDS = [("experiment", "name"), ("experiment", "architecture_type"),
                 ("experiment", "dataset"), ("description",)]
TABLES = [("experiment",), ("defaults",), ("budget", "cpu"), ("experiment", "search_space"),
          ("experiment", "constraints"), ()]
WEIRD_TEXT = ["", " ", "ünïcødé", "日本語", "🙂" * 3, "a" * 500, "\t", "--flag", "../../etc",
              "1e999", "DROP TABLE trials;", "\\x00"]


def _get(d: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        d = d[key]
    return d


def _set(d: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    _get(d, path[:-1])[path[-1]] = value


def _wrong_type_for_number(rng: random.Random) -> Any:
    return rng.choice(["three", [1, 2], {"x": 1}, True, "10M!", "", "∞"])


def _bad_number(rng: random.Random) -> Any:
    return rng.choice([-1, 0, -10**9, 10**15, math.nan, math.inf, -math.inf, -0.5, 2**40])


def _mutations() -> list[Callable[[dict[str, Any], random.Random], str]]:
    def unknown_key(d: dict[str, Any], rng: random.Random) -> str:
        table = rng.choice(TABLES)
        key = rng.choice(["colour", "max_trails", "epoch", "ünknown", "x" * 60, "🙂",
                          "search space", "Objectives"]) + str(rng.randint(0, 99))
        _get(d, table)[key] = rng.choice([1, "a", [1], {"deep": {"er": 1}}])
        return ".".join(table + (key,)) if table else key

    def wrong_number_type(d: dict[str, Any], rng: random.Random) -> str:
        path = rng.choice(NUMERIC_FIELDS)
        _set(d, path, _wrong_type_for_number(rng))
        return ".".join(path)

    def bad_number(d: dict[str, Any], rng: random.Random) -> str:
        path = rng.choice(NUMERIC_FIELDS)
        value = _bad_number(rng)
        if path[-1] == "seed" and isinstance(value, int) and 0 <= value < 2**32:
            value = -1
        if path[-1] == "learning_rate" and isinstance(value, int) and value == 2**40:
            value = -1
        _set(d, path, value)
        return ".".join(path)

    def wrong_string(d: dict[str, Any], rng: random.Random) -> str:
        path = rng.choice(STRING_FIELDS)
        _set(d, path, rng.choice([3, 2.5, [1], {"a": "b"}, True, "", " ", "x" * 300]))
        return ".".join(path)

    def bad_space(d: dict[str, Any], rng: random.Random) -> str:
        name = rng.choice(list(d["experiment"]["search_space"]))
        value = rng.choice([[2.0, 0.5], [], [1], "wide", {"low": 1}, {"low": 2, "high": 1},
                            {"choices": []}, {"low": 0, "high": 1, "log": True},
                            {"low": 1, "high": 2, "stp": 1}, [math.nan, 1.0],
                            {"choices": [1, 1]}, {"low": "a", "high": "b"}, True, 7])
        d["experiment"]["search_space"][name] = value
        return f"experiment.search_space.{name}"

    def bad_constraint(d: dict[str, Any], rng: random.Random) -> str:
        key = rng.choice(["max_params", "max_latency", "min_accuracy", "max_memory",
                          "max_wingspan", "min_x", "params"])
        value = rng.choice(["10 apples", "ms", "-5M", "1.2.3G", -1, [1], "🙂", math.nan,
                            {"v": 1}, True])
        if key == "max_latency" and rng.random() < 0.3:
            value = "100"  # a duration needs a unit
        if key == "min_accuracy" and rng.random() < 0.3:
            value = rng.choice([1.5, 75, "0.75"])  # a fraction in [0, 1], as a number
        d["experiment"]["constraints"][key] = value
        return f"experiment.constraints.{key}"

    def deep_nesting(d: dict[str, Any], rng: random.Random) -> str:
        deep: Any = 1
        for _ in range(rng.randint(12, 40)):
            deep = {"n": deep}
        d["defaults"]["sampler"] = {"name": "TPESampler", "opts": deep}
        return "defaults.sampler"

    def missing_required(d: dict[str, Any], rng: random.Random) -> str:
        key = rng.choice(["architecture_type", "search_space"])
        del d["experiment"][key]
        return f"experiment.{key}"

    def bad_objectives(d: dict[str, Any], rng: random.Random) -> str:
        d["experiment"]["objectives"] = rng.choice([
            [], ["beauty"], ["accuracy", "accuracy"], "accuracy", 3,
            {"latency": {"weight": 0.5}}, {"accuracy": {"weight": -1.0}},
            {"accuracy": {"wieght": 1.0}}, {"accuracy": 1.0}, [1, 2]])
        return "experiment.objectives"

    def bad_budget(d: dict[str, Any], rng: random.Random) -> str:
        choice = rng.randint(0, 3)
        if choice == 0:
            d["budget"]["default"] = "gpu-farm"
            return "budget.default"
        if choice == 1:
            d["budget"]["cpu"]["search_space"] = {"x": [1, 2]}
            return "budget.cpu.search_space"
        if choice == 2:
            d["budget"]["cpu"] = rng.choice([3, "cpu", [1]])
            return "budget.cpu"
        d["budget"]["cpu"]["head_dim"] = rng.choice([0, -4, "four", 10**6])
        return "budget.cpu.head_dim"

    def bad_top_level(d: dict[str, Any], rng: random.Random) -> str:
        key = rng.choice(["experimnet", "default", "budgets", "studies", "🙂"])
        d[key] = {"name": "x"}
        return key

    return [unknown_key, wrong_number_type, bad_number, wrong_string, bad_space,
            bad_constraint, deep_nesting, missing_required, bad_objectives, bad_budget,
            bad_top_level]


def _corpus() -> list[tuple[int, dict[str, Any], str]]:
    rng = random.Random(20261129)
    mutations = _mutations()
    cases = []
    for i in range(N_CASES):
        data = copy.deepcopy(VALID)
        field = mutations[i % len(mutations)](data, rng)
        cases.append((i, data, field))
    return cases


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_bytes(tomli_w.dumps(data, multiline_strings=False).encode())


def test_corpus_is_large_and_varied() -> None:
    cases = _corpus()
    assert len(cases) >= 300
    assert len({c[2] for c in cases}) > 40


def test_every_malformed_config_is_one_line_exit_2_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "never.db"
    failures = []
    for i, data, field in _corpus():
        study_file = tmp_path / f"case{i}.toml"
        _write(study_file, data)
        code = main(["run", str(study_file), "--storage", f"sqlite:///{db}", "--no-progress"])
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        top = field.split(".")[0]
        ok = (code == 2 and len(lines) == 1 and "Traceback" not in captured.err
              and lines[0].startswith("neuromosaic: error: ")
              and (top in lines[0] or field.split(".")[-1] in lines[0]))
        if not ok:
            failures.append((i, field, code, captured.err[-300:]))
        assert not db.exists(), f"case {i} ({field}) touched the storage"
    assert not failures, failures[:5]


@pytest.mark.parametrize("case", [0, 5, 13, 29, 42])
def test_malformed_configs_in_real_subprocesses(case: int, tmp_path: Path) -> None:
    i, data, field = _corpus()[case]
    study_file = tmp_path / "case.toml"
    _write(study_file, data)
    db = tmp_path / "never.db"
    res = subprocess.run([sys.executable, "-m", "neuromosaic_optuna.cli", "run",
                          str(study_file), "--storage", f"sqlite:///{db}"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert not db.exists()
