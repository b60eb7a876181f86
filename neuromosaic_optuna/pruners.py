"""Early stopping: Optuna's own pruners chosen from a study file's ``[pruner]`` table.

``[pruner] name = "MedianPruner"`` (any class of :mod:`optuna.pruners`) with its keyword
arguments, e.g. ``n_warmup_steps = 1``. Without a ``[pruner]`` table a study does not prune
(``NopPruner``), so every trial trains for its full budget.
"""

from __future__ import annotations

import inspect

import optuna
from optuna.pruners import BasePruner

from neuromosaic_optuna.config import ConfigError, StudyConfig

__all__ = ["make_pruner"]


def make_pruner(config: StudyConfig) -> BasePruner:
    """Build the pruner a study file asks for.

    Example:
        >>> from neuromosaic_optuna.config import load_config
        >>> cfg = load_config({"defaults": {"pruner": {"name": "MedianPruner",
        ...     "n_warmup_steps": 1}}, "experiment": {"name": "x",
        ...     "architecture_type": "conv_net", "search_space": {"w": [1, 2]}}})
        >>> type(make_pruner(cfg)).__name__
        'MedianPruner'
    """
    options = dict(config.pruner)
    name = options.pop("name", None)
    if name is None:
        if options:
            raise ConfigError("pruner.name", "missing; name an Optuna pruner, e.g. MedianPruner")
        return optuna.pruners.NopPruner()
    cls = getattr(optuna.pruners, name, None)
    if not (inspect.isclass(cls) and issubclass(cls, BasePruner)):
        known = sorted(n for n in dir(optuna.pruners) if n.endswith("Pruner") and n != "BasePruner")
        raise ConfigError("pruner.name", f"unknown pruner {name!r}; choose one of: "
                          f"{', '.join(known)}")
    accepted = inspect.signature(cls.__init__).parameters
    for key in options:
        if key not in accepted:
            raise ConfigError(f"pruner.{key}", f"{name} takes no argument {key!r}")
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError("pruner", f"{name} rejected its arguments: {exc}") from None
