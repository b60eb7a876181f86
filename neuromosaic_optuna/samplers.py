"""Sampler choice for a study.

* one objective, or ``search_strategy = "weighted"``: Optuna's ``TPESampler``;
* two or more objectives, ``search_strategy = "pareto"`` (the default): Optuna's
  ``NSGAIISampler`` with the configured population size, mutation and crossover;
* any Optuna sampler class named in ``search_strategy`` or ``[sampler] name``, with the keyword
  arguments of ``[sampler]``.

Every sampler is seeded from the study's seed, so the same seed gives the same trials.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.samplers import BaseSampler

from neuromosaic_optuna.config import ConfigError, StudyConfig

__all__ = ["make_sampler"]

_NSGA_CROSSOVERS = ("BLXAlphaCrossover", "SBXCrossover", "SPXCrossover", "UNDXCrossover",
                    "UniformCrossover", "VSBXCrossover")


def _sampler_class(name: str, path: str) -> type[BaseSampler]:
    cls = getattr(optuna.samplers, name, None)
    if not (inspect.isclass(cls) and issubclass(cls, BaseSampler)):
        known = sorted(n for n in dir(optuna.samplers)
                       if n.endswith("Sampler") and n != "BaseSampler")
        raise ConfigError(path, f"unknown Optuna sampler {name!r}; choose one of: "
                          f"{', '.join(known)}")
    return cls


def _instantiate(cls: type[BaseSampler], kwargs: Mapping[str, Any], seed: int,
                 path: str) -> BaseSampler:
    params = inspect.signature(cls.__init__).parameters
    kwargs = dict(kwargs)
    if "crossover" in kwargs and isinstance(kwargs["crossover"], str):
        if kwargs["crossover"] not in _NSGA_CROSSOVERS:
            raise ConfigError(f"{path}.crossover", f"choose one of {', '.join(_NSGA_CROSSOVERS)}")
        kwargs["crossover"] = getattr(optuna.samplers.nsgaii, kwargs["crossover"])()
    for key in kwargs:
        if key not in params:
            raise ConfigError(f"{path}.{key}", f"{cls.__name__} takes no argument {key!r}")
    if "seed" in params and "seed" not in kwargs:
        kwargs["seed"] = seed
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(path, f"{cls.__name__} rejected its arguments: {exc}") from None


def make_sampler(config: StudyConfig) -> BaseSampler:
    """Build the sampler a study file asks for.

    Example:
        >>> from neuromosaic_optuna.config import load_config
        >>> cfg = load_config({"name": "x", "architecture_type": "conv_net",
        ...     "search_space": {"w": [1, 2]}, "objectives": ["accuracy", "flops"]})
        >>> type(make_sampler(cfg)).__name__
        'NSGAIISampler'
    """
    options = {k: v for k, v in config.sampler.items() if k != "name"}
    name = config.sampler.get("name")
    strategy = config.search_strategy
    if name is None and strategy not in (None, "pareto", "weighted"):
        name = strategy
    if name is not None:
        return _instantiate(_sampler_class(name, "sampler.name"), options, config.seed, "sampler")
    if len(config.directions) > 1:
        if config.population_size is not None:
            options.setdefault("population_size", config.population_size)
        return _instantiate(optuna.samplers.NSGAIISampler, options, config.seed, "sampler")
    return _instantiate(optuna.samplers.TPESampler, options, config.seed, "sampler")
