"""Study files: the seed's dicts verbatim, completed by defaults and budget presets.

A study file (TOML) has three layers, merged with the precedence
**CLI flags > chosen budget > experiment > defaults**::

    description = "one line for `neuromosaic studies`"

    [experiment]            # one of the seed's dicts, verbatim (same keys, TOML syntax)
    name = "efficient_net_search"
    architecture_type = "conv_net"
    [experiment.search_space]
    depth_multiplier = [0.5, 2.0]
    [experiment.constraints]
    max_params = "10M"

    [defaults]              # completes what the fragment lacks
    objectives = ["accuracy", "flops"]
    dataset = "digits"

    [budget]
    default = "cpu"         # preset used when --budget is not given
    [budget.cpu]            # may override only BUDGET_KEYS
    max_trials = 12
    epochs = 3

The same structure loads from a Python dict with :func:`load_config`. Every error is a
:class:`ConfigError` whose message starts with the field path, e.g.
``experiment.search_space.depth_multiplier: expected [low, high] or a list of choices``.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from neuromosaic_optuna.exceptions import ConfigError
from neuromosaic_optuna.metrics import METRICS, PROXY_METRICS
from neuromosaic_optuna.robustness._registry import GROUPS, check_perturbations
from neuromosaic_optuna.units import (
    finite_number,
    parse_bytes,
    parse_count,
    parse_duration,
    parse_metric_value,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "BUDGET_KEYS",
    "BUDGET_WORDS",
    "ConfigError",
    "Constraint",
    "FidelitySpec",
    "ObjectiveSpec",
    "StudyConfig",
    "load_config",
    "load_study_file",
    "parse_bytes",
    "parse_count",
    "parse_duration",
]


# --------------------------------------------------------------------------- units

#: ``budget = "small" | "large"`` in the seed's transfer experiment, as trials and epochs.
BUDGET_WORDS: dict[str, dict[str, int]] = {
    "small": {"max_trials": 30, "epochs": 2},
    "medium": {"max_trials": 60, "epochs": 4},
    "large": {"max_trials": 100, "epochs": 8},
}


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class ObjectiveSpec:
    """One objective: a metric name, its direction and (in the weighted form) its weight."""

    name: str
    direction: str
    weight: float | None = None


@dataclass(frozen=True)
class Constraint:
    """A hard constraint ``metric <= bound`` (``max_``) or ``metric >= bound`` (``min_``).

    ``bound`` is in the metric's base unit (seconds, bytes, counts, fractions); ``raw`` keeps
    what the study file said, for messages.
    """

    name: str
    metric: str
    kind: str
    bound: float
    raw: Any

    def violation(self, value: float) -> float:
        """Optuna's convention: ``<= 0`` is feasible; the value is the signed margin."""
        return value - self.bound if self.kind == "max" else self.bound - value


@dataclass(frozen=True)
class FidelitySpec:
    """The ``[fidelity]`` table: how far a trial is trained before each early-stopping rung.

    Attributes:
        resource: What grows from rung to rung; ``"epochs"`` (trials are stopped early, never
            restarted).
        min: The first rung.
        max: Full fidelity: what a trial that is never stopped trains (the study's ``epochs``).
        reduction_factor: ``eta``: at each rung only the top ``1 / eta`` continue.
        brackets: Hyperband-style brackets, 1 to ``len(rungs) + 1``: bracket ``s`` ranks
            trials from the ``s``-th rung on (1: plain successive halving).

    Example:
        >>> FidelitySpec(min=1, max=9, reduction_factor=3).rungs
        (1, 3)
    """

    resource: str = "epochs"
    min: int = 1
    max: int = 3
    reduction_factor: int = 3
    brackets: int = 1

    @property
    def rungs(self) -> tuple[int, ...]:
        """``min * reduction_factor ** k`` below ``max``: where trials are ranked."""
        out, r = [], self.min
        while r < self.max:
            out.append(r)
            r *= self.reduction_factor
        return tuple(out)


@dataclass(frozen=True)
class StudyConfig:
    """A fully merged study configuration. Build it with :func:`load_config`."""

    name: str
    architecture_type: str
    search_space: Mapping[str, Any]
    objectives: tuple[ObjectiveSpec, ...]
    constraints: tuple[Constraint, ...] = ()
    dataset: str = "digits"
    dataset_path: str | None = None
    max_trials: int = 20
    epochs: int = 3
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    device: str = "auto"
    precision: str = "auto"
    augmentation: str | None = None
    device_data: float = 4 * 2**30
    latency_device: str | None = None
    seed: int = 0
    resolution: int = 32
    max_resolution: int | None = None
    head_dim: int = 16
    model_options: Mapping[str, Any] = field(default_factory=dict)
    artifact_dir: str | None = None
    max_train_samples: int | None = None
    latency_batch_size: int = 1
    search_strategy: str | None = None
    sampler: Mapping[str, Any] = field(default_factory=dict)
    pruner: Mapping[str, Any] = field(default_factory=dict)
    population_size: int | None = None
    known_good: tuple[Mapping[str, Any], ...] = ()
    source_task: Mapping[str, Any] | None = None
    target_task: Mapping[str, Any] | None = None
    transfer_strategy: str | None = None
    perturbations: Mapping[str, Any] | None = None
    robustness_metrics: tuple[str, ...] = ()
    proxies: tuple[str, ...] = ()
    fidelity: FidelitySpec | None = None
    description: str = ""
    budget: str | None = None
    experiment: Mapping[str, Any] = field(default_factory=dict)
    source: str | None = None

    @property
    def directions(self) -> list[str]:
        """Optuna directions, one per objective (one ``maximize`` for the weighted form)."""
        if self.is_weighted:
            return ["maximize"]
        return [o.direction for o in self.objectives]

    @property
    def metric_names(self) -> list[str]:
        """Names for ``study.set_metric_names``."""
        return ["weighted_score"] if self.is_weighted else [o.name for o in self.objectives]

    @property
    def is_weighted(self) -> bool:
        """True when the objectives are scalarized (``search_strategy = "weighted"``)."""
        return self.search_strategy == "weighted"

    def with_overrides(self, **overrides: Any) -> StudyConfig:
        """Return a copy with fields replaced (used for CLI flags)."""
        return replace(self, **overrides)


# --------------------------------------------------------------------------- schema

#: Keys the seed's dicts use; allowed in ``[experiment]`` (and everywhere else).
SEED_KEYS = frozenset({
    "name", "architecture_type", "search_space", "objectives", "dataset", "max_trials",
    "constraints", "search_strategy", "source_task", "target_task", "transfer_strategy",
    "perturbations", "metrics",
})
#: Keys a ``[budget.<name>]`` preset may override.
BUDGET_KEYS = frozenset({
    "max_trials", "epochs", "dataset", "dataset_path", "resolution", "max_resolution",
    "head_dim", "max_flops", "batch_size", "max_train_samples", "population_size",
    "learning_rate", "latency_batch_size", "source_task", "target_task", "model_options",
    "device", "precision", "augmentation", "device_data", "latency_device",
})
#: Keys that every layer of a study file may set, ``[experiment]`` included.
ANY_LAYER_KEYS = frozenset({"device", "precision"})
#: Environment variable that chooses the device (below ``--device``, above the study file).
DEVICE_ENV = "NEUROMOSAIC_DEVICE"
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:[0-9]{1,3})?)$")
#: Every key of the merged configuration.
ALL_KEYS = SEED_KEYS | BUDGET_KEYS | frozenset({
    "weight_decay", "optimizer", "seed", "sampler", "pruner", "known_good", "description",
    "artifact_dir", "proxies",
})

_TOP_LEVEL = frozenset({"experiment", "defaults", "budget", "description", "fidelity"})
_FIDELITY_RESOURCES = ("epochs",)
_FIDELITY_PLANNED = ("train_fraction", "resolution")
_OPTIMIZERS = ("adamw", "adam", "sgd")
_ARCH_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


def _expect_table(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(path, f"expected a table, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(path, f"keys must be strings, got {key!r}")
    return value


def _expect_str(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(path, f"expected a non-empty string, got {value!r}")
    if len(value) > 200:
        raise ConfigError(path, "is longer than 200 characters")
    return value


def _expect_int(value: Any, path: str, *, low: int = 1, high: int = 10**9) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, f"expected an integer, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(path, f"must be between {low} and {high}, got {value}")
    return value


def _expect_float(value: Any, path: str, *, low: float = 0.0, high: float = math.inf,
                  open_low: bool = False) -> float:
    number = finite_number(value, path)
    if number < low or (open_low and number == low) or number > high:
        bound = f"> {low}" if open_low else f">= {low}"
        raise ConfigError(path, f"must be {bound}" + (f" and <= {high}" if high < math.inf else "")
                          + f", got {value!r}")
    return number


def _check_space_entry(value: Any, path: str) -> None:
    """Shape check only; :mod:`space` turns the entry into a distribution."""
    hint = ("expected [low, high] or a list of choices, or a table {low, high, step, log} / "
            "{choices}")
    if isinstance(value, Mapping):
        allowed = {"low", "high", "step", "log", "choices"}
        unknown = set(value) - allowed
        if unknown:
            raise ConfigError(f"{path}.{sorted(unknown)[0]}", f"unknown key; allowed: "
                              f"{', '.join(sorted(allowed))}")
        if "choices" in value:
            if set(value) != {"choices"}:
                raise ConfigError(path, "a {choices} table takes no low/high/step/log")
            _check_choices(value["choices"], f"{path}.choices")
            return
        if "low" not in value or "high" not in value:
            raise ConfigError(path, "a range table needs both low and high")
        low = finite_number(value["low"], f"{path}.low")
        high = finite_number(value["high"], f"{path}.high")
        if low > high:
            raise ConfigError(path, f"low > high ({value['low']} > {value['high']}); swap them")
        if "step" in value:
            _expect_float(value["step"], f"{path}.step", open_low=True)
        if "log" in value:
            if not isinstance(value["log"], bool):
                raise ConfigError(f"{path}.log", f"expected true or false, got {value['log']!r}")
            if value["log"] and low <= 0:
                raise ConfigError(path, "log = true needs low > 0")
            if value["log"] and "step" in value:
                raise ConfigError(path, "log = true cannot be combined with step")
        return
    if not isinstance(value, list) or len(value) < 2:
        raise ConfigError(path, hint)
    if len(value) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                               for v in value):
        low, high = (finite_number(v, path) for v in value)
        if low > high:
            raise ConfigError(path, f"low > high ({value[0]} > {value[1]}); swap them")
        return
    _check_choices(value, path)


def _check_choices(value: Any, path: str) -> None:
    if not isinstance(value, list) or not value:
        raise ConfigError(path, "expected a non-empty list of choices")
    for i, v in enumerate(value):
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{path}[{i}]", f"expected a finite number, got {v!r}")
        if v is not None and not isinstance(v, (bool, int, float, str)):
            raise ConfigError(f"{path}[{i}]", "choices must be numbers, strings or booleans")
    if len({(type(v), v) for v in value}) != len(value):
        raise ConfigError(path, "choices must be distinct")


def _validate_value(key: str, value: Any, path: str) -> Any:  # noqa: C901 - one branch per key
    if key in ("name", "architecture_type", "dataset", "dataset_path", "transfer_strategy",
               "description", "artifact_dir"):
        text = _expect_str(value, path)
        if key == "architecture_type" and not _ARCH_NAME.match(text):
            raise ConfigError(path, f"not a valid architecture name: {text!r}")
        return text
    if key == "search_space":
        table = _expect_table(value, path)
        if not table:
            raise ConfigError(path, "is empty; give at least one parameter")
        for name, entry in table.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ConfigError(f"{path}.{name}", "parameter names are identifiers")
            _check_space_entry(entry, f"{path}.{name}")
        return dict(table)
    if key == "objectives":
        return _parse_objectives(value, path)
    if key == "constraints":
        table = _expect_table(value, path)
        return {k: _parse_constraint(k, v, f"{path}.{k}") for k, v in table.items()}
    if key in ("max_trials",):
        return _expect_int(value, path, high=1_000_000)
    if key in ("epochs",):
        return _expect_int(value, path, high=10_000)
    if key in ("batch_size", "latency_batch_size"):
        return _expect_int(value, path, high=65_536)
    if key in ("resolution", "max_resolution"):
        return _expect_int(value, path, low=8, high=4096)
    if key == "head_dim":
        return _expect_int(value, path, high=4096)
    if key == "max_train_samples":
        return _expect_int(value, path, high=100_000_000)
    if key == "population_size":
        return _expect_int(value, path, low=2, high=100_000)
    if key == "seed":
        return _expect_int(value, path, low=0, high=2**32 - 1)
    if key == "max_flops":
        return parse_count(value, path)
    if key in ("learning_rate",):
        return _expect_float(value, path, open_low=True, high=10.0)
    if key == "weight_decay":
        return _expect_float(value, path, high=10.0)
    if key == "device":
        if not isinstance(value, str) or not _DEVICE.match(value.strip().lower()):
            raise ConfigError(path, f"expected auto, cpu, cuda, cuda:N or mps, got {value!r}")
        return value.strip().lower()
    if key == "device_data":
        return parse_bytes(value, path)
    if key == "latency_device":
        if not isinstance(value, str) or not _DEVICE.match(value.strip().lower()):
            raise ConfigError(path, f"expected auto, cpu, cuda, cuda:N or mps, got {value!r}")
        return value.strip().lower()
    if key == "augmentation":
        if value not in ("none", "standard"):
            raise ConfigError(path, f"expected none or standard, got {value!r}")
        return value
    if key == "precision":
        if value not in ("auto", "bf16", "fp16", "fp32"):
            raise ConfigError(path, f"expected auto, bf16, fp16 or fp32, got {value!r}")
        return value
    if key == "optimizer":
        if value not in _OPTIMIZERS:
            raise ConfigError(path, f"expected one of {', '.join(_OPTIMIZERS)}, got {value!r}")
        return value
    if key == "search_strategy":
        text = _expect_str(value, path)
        if text not in ("pareto", "weighted") and not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*",
                                                                    text):
            raise ConfigError(path, "expected \"pareto\", \"weighted\" or an Optuna sampler "
                              f"class name, got {text!r}")
        return text
    if key == "model_options":
        table = dict(_expect_table(value, path))
        _check_plain_data(table, path)
        return table
    if key in ("sampler", "pruner"):
        table = dict(_expect_table(value, path))
        if "name" in table:
            _expect_str(table["name"], f"{path}.name")
        _check_plain_data(table, path)
        return table
    if key in ("source_task", "target_task"):
        return _parse_task(value, path)
    if key == "perturbations":
        table = _expect_table(value, path)
        _check_plain_data(table, path)
        try:
            check_perturbations(table)
        except ValueError as exc:
            field, _, fix = str(exc).partition(": ")
            if field.startswith("perturbations"):
                raise ConfigError(path + field.removeprefix("perturbations"), fix) from None
            raise ConfigError(path, str(exc)) from None
        return dict(table)
    if key == "metrics":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(path, "expected a list of metric names")
        for i, name in enumerate(value):
            if name not in METRICS:
                raise ConfigError(f"{path}[{i}]", f"unknown metric {name!r}")
        return tuple(value)
    if key == "proxies":
        return _parse_proxies(value, path)
    if key == "known_good":
        if not isinstance(value, list):
            raise ConfigError(path, "expected a list of parameter tables")
        for i, item in enumerate(value):
            _check_plain_data(_expect_table(item, f"{path}[{i}]"), f"{path}[{i}]")
        return tuple(dict(v) for v in value)
    raise ConfigError(path, "unknown key")  # pragma: no cover - guarded by ALL_KEYS


def _parse_proxies(value: Any, path: str) -> tuple[str, ...]:
    """``proxies = ["synflow", "naswot"]``: zero-cost proxies measured on every trial."""
    allowed = ", ".join(PROXY_METRICS)
    if not isinstance(value, (list, tuple)):
        raise ConfigError(path, f"expected a list of proxy names among {allowed}")
    for i, name in enumerate(value):
        if name not in PROXY_METRICS:
            hint = (" (measured on every trial anyway)" if name in ("params", "flops") else "")
            raise ConfigError(f"{path}[{i}]", f"unknown proxy {name!r}{hint}; choose from "
                              f"{allowed}")
    return tuple(dict.fromkeys(value))


def _check_plain_data(value: Any, path: str, depth: int = 0) -> None:
    if depth > 8:
        raise ConfigError(path, "is nested too deeply (more than 8 levels)")
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(path, f"keys must be strings, got {k!r}")
            _check_plain_data(v, f"{path}.{k}", depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_plain_data(v, f"{path}[{i}]", depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(path, f"expected a finite number, got {value!r}")
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise ConfigError(path, f"unsupported value of type {type(value).__name__}")


#: Metrics measured on the test split: stored and reported, never an objective or constraint
#: (search decisions read validation data only).
REPORTED_ONLY = frozenset({"test_accuracy"})


def _searchable(name: str, path: str) -> None:
    if name in REPORTED_ONLY:
        raise ConfigError(path, f"{name} is measured on the test split and only reported; "
                          "optimise or constrain the validation metric 'accuracy' instead")


def _parse_objectives(value: Any, path: str) -> tuple[ObjectiveSpec, ...]:
    if isinstance(value, list):
        if not value:
            raise ConfigError(path, "needs at least one objective")
        specs = []
        for i, name in enumerate(value):
            if not isinstance(name, str):
                raise ConfigError(f"{path}[{i}]", f"expected a metric name, got {name!r}")
            if name not in METRICS:
                raise ConfigError(f"{path}[{i}]", f"unknown metric {name!r}; known: "
                                  f"{', '.join(sorted(METRICS))}")
            _searchable(name, f"{path}[{i}]")
            specs.append(ObjectiveSpec(name, METRICS[name].direction))
    elif isinstance(value, Mapping):
        if not value:
            raise ConfigError(path, "needs at least one objective")
        specs = []
        for name, entry in value.items():
            p = f"{path}.{name}"
            if name not in METRICS:
                raise ConfigError(p, f"unknown metric {name!r}; known: "
                                  f"{', '.join(sorted(METRICS))}")
            _searchable(name, p)
            entry = _expect_table(entry, p)
            unknown = set(entry) - {"weight"}
            if unknown:
                raise ConfigError(f"{p}.{sorted(unknown)[0]}", "unknown key; allowed: weight")
            if "weight" not in entry:
                raise ConfigError(p, "needs a weight, e.g. {weight = 1.0}")
            weight = finite_number(entry["weight"], f"{p}.weight")
            direction = METRICS[name].direction
            if weight == 0 or (weight > 0) != (direction == "maximize"):
                sign = "positive" if direction == "maximize" else "negative"
                raise ConfigError(f"{p}.weight", f"{name} is to {direction[:-1]}e, so its weight "
                                  f"must be {sign}, got {weight}")
            specs.append(ObjectiveSpec(name, direction, weight))
    else:
        raise ConfigError(path, "expected a list of metric names or a table "
                          "{metric = {weight = w}}")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(path, "lists a metric twice")
    return tuple(specs)


def _parse_constraint(key: str, value: Any, path: str) -> Constraint:
    m = re.fullmatch(r"(max|min)_([a-z_]+)", key)
    if m is None or m.group(2) not in METRICS:
        raise ConfigError(path, "unknown constraint; write max_<metric> or min_<metric> with a "
                          f"metric among: {', '.join(sorted(METRICS))}")
    kind, metric = m.group(1), m.group(2)
    _searchable(metric, path)
    return Constraint(key, metric, kind, parse_metric_value(metric, value, path), value)


def _parse_task(value: Any, path: str) -> dict[str, Any]:
    table = dict(_expect_table(value, path))
    allowed = {"dataset", "metric", "budget", "study_name", "storage", "dataset_path",
               "resolution"}
    for k, v in table.items():
        if k not in allowed:
            raise ConfigError(f"{path}.{k}", f"unknown key; allowed: {', '.join(sorted(allowed))}")
        if k == "resolution":
            _expect_int(v, f"{path}.{k}", low=8, high=4096)
        else:
            _expect_str(v, f"{path}.{k}")
    if "metric" in table and table["metric"] not in METRICS:
        raise ConfigError(f"{path}.metric", f"unknown metric {table['metric']!r}")
    if "budget" in table and table["budget"] not in BUDGET_WORDS:
        raise ConfigError(f"{path}.budget", f"expected one of {', '.join(BUDGET_WORDS)}, got "
                          f"{table['budget']!r}")
    return table


# --------------------------------------------------------------------------- loading


def load_study_file(path: str | Path, *, budget: str | None = None,
                    overrides: Mapping[str, Any] | None = None) -> StudyConfig:
    """Read a TOML study file and merge it into a :class:`StudyConfig`.

    Args:
        path: The study file.
        budget: Name of a ``[budget.<name>]`` preset; default: the file's ``budget.default``.
        overrides: CLI-level values (e.g. ``{"max_trials": 5, "seed": 1}``), applied last.

    Raises:
        ConfigError: The file is missing, not TOML, or not a valid study.

    Example:
        >>> cfg = load_study_file("studies/quickstart.toml", overrides={"max_trials": 3})
        >>> cfg.max_trials
        3
    """
    p = Path(path)
    text = _read_study_text(p)
    _check_nesting(text, str(path))
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    except RecursionError:  # pragma: no cover (the nesting check comes first)
        raise ConfigError(str(path), "nested too deeply") from None
    return load_config(data, budget=budget, overrides=overrides, source=str(p))


#: The largest study file read (bytes); shipped ones are under 5 KB.
MAX_STUDY_FILE_BYTES = 1_000_000
#: The deepest nesting of arrays and inline tables in a study file (shipped ones use 3).
MAX_STUDY_FILE_NESTING = 32


def _read_study_text(p: Path) -> str:
    """The file's text, read only when it is a regular file of at most
    :data:`MAX_STUDY_FILE_BYTES` (a FIFO, a device such as ``/dev/zero`` or a directory would
    block or never end)."""
    import stat

    try:
        # O_NONBLOCK: opening a FIFO without a writer returns at once instead of blocking.
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ConfigError(str(p), "no such study file; `neuromosaic studies` lists the "
                          "shipped ones") from None
    except OSError as exc:
        raise ConfigError(str(p), f"cannot read the study file "
                          f"({exc.strerror or exc.__class__.__name__})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise ConfigError(str(p), f"the study file is {kind}; give the path of a .toml file")
        if info.st_size > MAX_STUDY_FILE_BYTES:
            raise ConfigError(str(p), f"the study file has {info.st_size} bytes, more than "
                              f"{MAX_STUDY_FILE_BYTES}; is it the right file?")
        data = os.read(fd, MAX_STUDY_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(str(p), f"cannot read the study file "
                          f"({exc.strerror or exc.__class__.__name__})") from None
    finally:
        os.close(fd)
    if len(data) > MAX_STUDY_FILE_BYTES:  # it grew while we read it
        raise ConfigError(str(p), f"the study file has more than {MAX_STUDY_FILE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(str(p), f"the study file is not UTF-8 text (byte {exc.start}); save "
                          "it as UTF-8") from None


def _check_nesting(text: str, where: str) -> None:
    """Refuse arrays/inline tables nested deeper than :data:`MAX_STUDY_FILE_NESTING`
    (``tomllib`` recurses once per level and ends in ``RecursionError`` near 1,000).
    Brackets inside strings and comments are skipped; ``[table]`` headers count one level."""
    depth = deepest = 0
    quote = ""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if quote:
            if c == "\\" and quote[0] == '"':
                i += 2
                continue
            if text.startswith(quote, i):
                i += len(quote)
                quote = ""
                continue
        elif c in "\"'":
            quote = c * 3 if text.startswith(c * 3, i) else c
            i += len(quote)
            continue
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_STUDY_FILE_NESTING:
                raise ConfigError(where, f"arrays or tables nested more than "
                                  f"{MAX_STUDY_FILE_NESTING} deep; a study file needs at "
                                  "most a few levels")
        elif c in "]}":
            depth = max(0, depth - 1)
        i += 1


def load_config(data: Mapping[str, Any], *, budget: str | None = None,
                overrides: Mapping[str, Any] | None = None,
                source: str | None = None) -> StudyConfig:
    """Merge a study dict (the TOML structure) into a :class:`StudyConfig`.

    A dict without ``experiment``/``defaults``/``budget`` tables is taken as a bare
    experiment, so a seed dict can be passed as it is.

    Args:
        data: The study structure, or a bare seed dict.
        budget: Name of a budget preset to apply.
        overrides: Values applied last (CLI flags).
        source: Where the data came from, for messages.

    Raises:
        ConfigError: On unknown keys, wrong types, bad units or inconsistent values.

    Example:
        >>> cfg = load_config({"experiment": {
        ...     "name": "demo", "architecture_type": "conv_net",
        ...     "search_space": {"width_multiplier": [0.5, 2.0]},
        ...     "objectives": ["accuracy", "flops"]}})
        >>> cfg.directions
        ['maximize', 'minimize']
    """
    data = _expect_table(data, "")
    if not (set(data) & _TOP_LEVEL):
        data = {"experiment": data}
    for key in data:
        if key not in _TOP_LEVEL:
            raise ConfigError(key, "unknown top-level key; a study file has [experiment], "
                              "[defaults], [budget], [fidelity] and description")
    layers: list[tuple[str, Mapping[str, Any], frozenset[str]]] = []
    if "defaults" in data:
        layers.append(("defaults", _expect_table(data["defaults"], "defaults"), ALL_KEYS))
    experiment = _expect_table(data.get("experiment", {}), "experiment")
    layers.append(("experiment", experiment, SEED_KEYS | ANY_LAYER_KEYS))

    budgets = _expect_table(data.get("budget", {}), "budget")
    presets = {k: v for k, v in budgets.items() if k != "default"}
    chosen = budget
    if chosen is None and "default" in budgets:
        chosen = _expect_str(budgets["default"], "budget.default")
        if chosen not in presets:
            raise ConfigError("budget.default", f"names no preset; presets: "
                              f"{', '.join(presets) or 'none'}")
    if chosen is not None:
        if chosen not in presets:
            raise ConfigError("--budget", f"unknown budget {chosen!r}; this study has: "
                              f"{', '.join(presets) or 'none'}")
        layers.append((f"budget.{chosen}", _expect_table(presets[chosen], f"budget.{chosen}"),
                       BUDGET_KEYS))
    for name, preset in presets.items():  # validate presets that are not chosen, too
        if name != chosen:
            _merge_layer({}, f"budget.{name}", _expect_table(preset, f"budget.{name}"),
                         BUDGET_KEYS)
    env_device = os.environ.get(DEVICE_ENV, "").strip()
    if env_device and not (overrides or {}).get("device"):
        layers.append((f"${DEVICE_ENV}", {"device": env_device}, ANY_LAYER_KEYS))
    if overrides:
        layers.append(("--", {k: v for k, v in overrides.items() if v is not None}, ALL_KEYS))

    merged: dict[str, Any] = {}
    for layer_name, layer, allowed in layers:
        _merge_layer(merged, layer_name, layer, allowed)
    description = merged.get("description", "")
    if "description" in data:
        description = _expect_str(data["description"], "description")
    if "fidelity" in data:
        merged["fidelity"] = _parse_fidelity(data["fidelity"], merged)
    return _build(merged, experiment=dict(experiment), budget=chosen, source=source,
                  description=description)


def _parse_fidelity(value: Any, merged: dict[str, Any]) -> FidelitySpec:
    """The ``[fidelity]`` table; ``max`` defaults to the merged ``epochs`` (so budget presets
    keep their epochs) and, when given, becomes it (full fidelity is what an unstopped trial
    trains)."""
    table = _expect_table(value, "fidelity")
    allowed = ("resource", "min", "max", "reduction_factor", "brackets")
    for key in table:
        if key not in allowed:
            raise ConfigError(f"fidelity.{key}", f"unknown key; allowed: {', '.join(allowed)}")
    resource = table.get("resource", "epochs")
    if resource in _FIDELITY_PLANNED:
        raise ConfigError("fidelity.resource", f"{resource!r} is not implemented yet; use "
                          "\"epochs\" (trials stopped early at rungs)")
    if resource not in _FIDELITY_RESOURCES:
        raise ConfigError("fidelity.resource", f"expected \"epochs\", got {resource!r}")
    low = _expect_int(table.get("min", 1), "fidelity.min", low=1, high=100_000)
    eta = _expect_int(table.get("reduction_factor", 3), "fidelity.reduction_factor", low=2,
                      high=1000)
    if "max" in table:
        high = _expect_int(table["max"], "fidelity.max", low=1, high=100_000)
        if high <= low:
            raise ConfigError("fidelity.max", f"must exceed fidelity.min ({low}), got {high}")
        merged["epochs"] = high
        merged.setdefault("_origin", {})["epochs"] = "fidelity.max"
    else:  # a budget with few epochs (smoke) may leave no rung below max: nothing is stopped
        high = int(merged.get("epochs", StudyConfig.epochs))
    brackets = _expect_int(table.get("brackets", 1), "fidelity.brackets", low=1, high=1000)
    levels = len(FidelitySpec(str(resource), low, high, eta).rungs) + 1
    if brackets > levels:
        if "max" in table:
            raise ConfigError("fidelity.brackets", f"at most {levels} with min = {low}, max = "
                              f"{high} and reduction_factor = {eta} (the rungs plus full "
                              f"fidelity), got {brackets}")
        brackets = levels  # a budget preset with fewer epochs: fewer brackets fit
    return FidelitySpec(str(resource), low, high, eta, brackets)


def _merge_layer(merged: dict[str, Any], layer_name: str, layer: Mapping[str, Any],
                 allowed: frozenset[str]) -> None:
    for key, value in layer.items():
        path = (layer_name if layer_name.startswith("$") else f"{layer_name}.{key}"
                if layer_name != "--" else f"--{key.replace('_', '-')}")
        if key not in allowed:
            where = {"experiment": "the seed's keys", "defaults": "study keys"}.get(
                layer_name, "budget keys")
            raise ConfigError(path, f"unknown key; allowed here ({where}): "
                              f"{', '.join(sorted(allowed))}")
        parsed = _validate_value(key, value, path)
        if key == "constraints" and "constraints" in merged:
            parsed = {**merged["constraints"], **parsed}
        merged[key] = parsed
        merged.setdefault("_origin", {})[key] = path


def _build(merged: dict[str, Any], *, experiment: dict[str, Any], budget: str | None,
           source: str | None, description: str) -> StudyConfig:
    origin = merged.pop("_origin", {})
    merged.setdefault("name", Path(source).stem if source else "neuromosaic_study")
    for key in ("architecture_type", "search_space"):
        if key not in merged:
            raise ConfigError(f"experiment.{key}", "missing; set it in [experiment] or "
                              "complete the fragment in [defaults]")
    constraints = dict(merged.pop("constraints", {}))
    if "max_flops" in merged:
        flops = merged.pop("max_flops")
        constraints.setdefault("max_flops", Constraint("max_flops", "flops", "max", flops, flops))
    objectives = merged.pop("objectives", (ObjectiveSpec("accuracy", "maximize"),))
    strategy = merged.get("search_strategy")
    weighted = any(o.weight is not None for o in objectives)
    if strategy == "weighted" and not weighted:
        raise ConfigError(origin.get("search_strategy", "search_strategy"),
                          "\"weighted\" needs objectives with weights, e.g. "
                          "{accuracy = {weight = 1.0}, latency = {weight = -0.5}}")
    for c in constraints.values():
        if c.metric in ("accuracy",) and c.kind == "max":
            raise ConfigError(origin.get("constraints", "constraints") + f".{c.name}",
                              "an upper bound on accuracy is not a useful constraint")
    perturbations = merged.get("perturbations")
    if perturbations is not None:
        needed = {m: g.key for g in GROUPS.values() for m in (g.metric, g.ratio) if m}
        asked = [o.name for o in objectives] + [c.metric for c in constraints.values()]
        for metric in asked:
            group = needed.get(metric)
            if group and not perturbations.get(group):
                raise ConfigError(origin.get("perturbations", "perturbations"),
                                  f"{metric} is an objective or constraint, so perturbations "
                                  f"needs a non-empty {group!r} list")
    metrics = merged.pop("metrics", ())
    # A proxy named as an objective or constraint is measured even when ``proxies`` omits it.
    named = [o.name for o in objectives] + [c.metric for c in constraints.values()]
    merged["proxies"] = tuple(dict.fromkeys(
        [*merged.get("proxies", ()), *(n for n in named if n in PROXY_METRICS)]))
    kwargs: dict[str, Any] = {k: v for k, v in merged.items() if k != "description"}
    return StudyConfig(
        objectives=tuple(objectives),
        constraints=tuple(constraints.values()),
        robustness_metrics=tuple(metrics),
        known_good=tuple(kwargs.pop("known_good", ())),
        description=description,
        budget=budget,
        experiment=experiment,
        source=source,
        **kwargs,
    )
