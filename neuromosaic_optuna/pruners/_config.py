"""The pruner a study file asks for (``[pruner]``), its stop callback and the per-epoch hook."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.pruners import BasePruner, NopPruner

from neuromosaic_optuna._factory import instantiate, named_class
from neuromosaic_optuna.config import ConfigError, StudyConfig
from neuromosaic_optuna.metrics import METRICS
from neuromosaic_optuna.pruners._base import EpochHook
from neuromosaic_optuna.pruners._combined import CombinedPruner
from neuromosaic_optuna.pruners._constraint_trajectory import ConstraintTrajectoryPruner
from neuromosaic_optuna.pruners._curves import report
from neuromosaic_optuna.pruners._decide import _decide
from neuromosaic_optuna.pruners._divergence import DivergencePruner
from neuromosaic_optuna.pruners._dominance import ParetoDominancePruner
from neuromosaic_optuna.pruners._stagnation import HypervolumeStagnationCallback
from neuromosaic_optuna.pruners._successive_halving import MultiObjectiveSuccessiveHalvingPruner

#: Pruner used when a study file has no ``[pruner]`` table (see the module docstring).
DEFAULT_PRUNER = "ParetoDominancePruner"


_OURS: dict[str, type[BasePruner]] = {
    cls.__name__: cls for cls in (ParetoDominancePruner, ConstraintTrajectoryPruner,
                                  MultiObjectiveSuccessiveHalvingPruner, DivergencePruner)
}


_EXTRA_KEYS = ("name", "divergence", "stop")


def _reported_bounds(config: StudyConfig) -> dict[str, float]:
    return {c.name: c.bound for c in config.constraints if not METRICS[c.metric].cost}


def _stop_options(config: StudyConfig) -> dict[str, Any] | None:
    stop = config.pruner.get("stop")
    if stop is None or stop is False:
        return None
    if stop is True:
        return {}
    if not isinstance(stop, Mapping):
        raise ConfigError("pruner.stop", f"expected a table {{window, min_improvement}} or "
                          f"true, got {stop!r}")
    return dict(stop)


def make_pruner(config: StudyConfig) -> BasePruner:
    """Build the pruner a study file asks for (see the module docstring).

    ``name`` is one of our pruners or any class of :mod:`optuna.pruners`, with its keyword
    arguments. :class:`ConstraintTrajectoryPruner` takes its ``bounds`` from the study's
    constraints on trained metrics (e.g. ``min_accuracy``) unless given. ``divergence`` (default
    true; a table gives :class:`DivergencePruner` arguments) adds a divergence check in front,
    through :class:`CombinedPruner`. Without a ``[pruner]`` table: :data:`DEFAULT_PRUNER`.

    Raises:
        ConfigError: Unknown pruner or argument, an invalid value, a single-objective Optuna
            pruner in a multi-objective study, or a constraint pruner without bounds.

    Example:
        >>> from neuromosaic_optuna.config import load_config
        >>> cfg = load_config({"defaults": {"pruner": {"name": "MedianPruner",
        ...     "n_warmup_steps": 1, "divergence": False}}, "experiment": {"name": "x",
        ...     "architecture_type": "conv_net", "search_space": {"w": [1, 2]}}})
        >>> type(make_pruner(cfg)).__name__
        'MedianPruner'
    """
    options = {k: v for k, v in config.pruner.items() if k not in _EXTRA_KEYS}
    name = config.pruner.get("name")
    if config.fidelity is not None:
        name = _fidelity_options(config, name, options)
    if name is None:
        if options:
            raise ConfigError("pruner.name", "missing; name a pruner, e.g. "
                              "ParetoDominancePruner or MedianPruner")
        name = DEFAULT_PRUNER
    cls = named_class(name, own=_OURS, module=optuna.pruners, base=BasePruner,
                      path="pruner.name", kind="pruner")
    if (len(config.directions) > 1 and cls not in _OURS.values()
            and not issubclass(cls, NopPruner)):
        raise ConfigError("pruner.name", f"{name} judges one objective; this study has "
                          f"{len(config.directions)}: use one of {', '.join(_OURS)}")
    if cls is ConstraintTrajectoryPruner and "bounds" not in options:
        bounds = _reported_bounds(config)
        if not bounds:
            raise ConfigError("pruner.bounds", "ConstraintTrajectoryPruner needs a constraint "
                              "on a trained metric (e.g. min_accuracy) or pruner.bounds")
        options["bounds"] = bounds
    pruner = instantiate(cls, options, "pruner", field_errors=True)
    stop = _stop_options(config)
    if stop is not None:
        _build_stop(stop)
    divergence = config.pruner.get("divergence", True)
    if isinstance(pruner, (NopPruner, DivergencePruner)) or divergence is False:
        return pruner
    if divergence is True:
        divergence = {}
    if not isinstance(divergence, Mapping):
        raise ConfigError("pruner.divergence", f"expected true, false or a table of "
                          f"DivergencePruner arguments, got {divergence!r}")
    guard = instantiate(DivergencePruner, dict(divergence), "pruner.divergence",
                        field_errors=True)
    return CombinedPruner(pruners=[guard, pruner])


def _fidelity_options(config: StudyConfig, name: Any, options: dict[str, Any]) -> str:
    """``[fidelity]`` runs :class:`MultiObjectiveSuccessiveHalvingPruner` at its rungs, judging
    the study's constraints at each rung; ``[pruner]`` may only add that pruner's arguments."""
    fidelity = config.fidelity
    assert fidelity is not None
    ours = MultiObjectiveSuccessiveHalvingPruner.__name__
    if name is not None and name != ours:
        raise ConfigError("pruner.name", f"{name} conflicts with [fidelity], which stops trials "
                          f"with {ours}; drop pruner.name or the [fidelity] table")
    for key in ("rungs", "min_resource", "reduction_factor", "max_resource", "brackets"):
        if key in options:
            raise ConfigError(f"pruner.{key}", "set by [fidelity] (min, max, reduction_factor, "
                              "brackets); drop it from [pruner]")
    options.update(min_resource=fidelity.min, reduction_factor=fidelity.reduction_factor,
                   max_resource=fidelity.max, brackets=fidelity.brackets)
    options.setdefault("bounds", {c.name: c.bound for c in config.constraints})
    return ours


def _build_stop(options: Mapping[str, Any]) -> HypervolumeStagnationCallback:
    accepted = inspect.signature(HypervolumeStagnationCallback).parameters
    for key in options:
        if key not in accepted:
            raise ConfigError(f"pruner.stop.{key}", f"HypervolumeStagnationCallback takes no "
                              f"argument {key!r}; it takes {', '.join(accepted)}")
    try:
        return HypervolumeStagnationCallback(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError("pruner.stop", str(exc)) from None


def stop_callback_for(config: StudyConfig) -> HypervolumeStagnationCallback | None:
    """The study-stopping callback of ``[pruner.stop]``, or None when the table is absent.

    Example:
        >>> from neuromosaic_optuna.config import load_config
        >>> cfg = load_config({"defaults": {"pruner": {"stop": {"window": 5}}},
        ...     "experiment": {"name": "x", "architecture_type": "conv_net",
        ...     "search_space": {"w": [1, 2]}}})
        >>> stop_callback_for(cfg).window
        5
    """
    stop = _stop_options(config)
    if stop is None:
        return None
    return _build_stop(stop)


def epoch_hook_for(config: StudyConfig, study: optuna.Study) -> EpochHook:
    """The per-epoch hook a study's :class:`~neuromosaic_optuna.objective.Objective` runs.

    ``hook(trial, epoch, metrics)`` reports ``metrics`` (:func:`report`) and, before the last
    epoch (``config.epochs``), asks the config's pruner (:func:`make_pruner`, not
    ``study.pruner``, so a study made by plain ``optuna.create_study`` prunes as configured)
    and raises :class:`optuna.TrialPruned` with the reason when it says stop. A trial is never
    pruned after its last epoch: it completes and the sampler learns from its values. The
    hook's ``pruner`` attribute is that pruner (so callers can tell whether one is installed).

    Args:
        config: The study configuration.
        study: The study the hook's trials belong to.

    Raises:
        ConfigError: The ``[pruner]`` table is invalid, or the study's number of objectives
            differs from the config's.

    Example:
        >>> from neuromosaic_optuna.config import load_config
        >>> cfg = load_config({"defaults": {"epochs": 3}, "experiment": {"name": "x",
        ...     "architecture_type": "conv_net", "search_space": {"w": [1, 2]},
        ...     "objectives": ["accuracy", "flops"]}})
        >>> study = optuna.create_study(directions=cfg.directions)
        >>> hook = epoch_hook_for(cfg, study)
        >>> trial = study.ask()
        >>> hook(trial, 1, {"accuracy": 0.4, "loss": 1.5})
        >>> trial.user_attrs["intermediate"]["accuracy"]
        {'1': 0.4}
    """
    pruner = make_pruner(config)
    if len(study.directions) != len(config.directions):
        raise ConfigError("objectives", f"the study has {len(study.directions)} objectives, "
                          f"the config {len(config.directions)}")
    last_epoch = config.epochs

    def hook(trial: optuna.trial.Trial, epoch: int, metrics: dict[str, float]) -> None:
        report(trial, epoch, **metrics)
        if epoch >= last_epoch or isinstance(pruner, NopPruner):
            return
        verdict = _decide(trial, pruner)
        if verdict.prune:
            raise optuna.TrialPruned(verdict.reason)

    hook.pruner = pruner  # type: ignore[attr-defined]
    return hook
