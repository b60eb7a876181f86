"""neuromosaic_optuna: neural architecture search for vision models, as an Optuna plugin.

Users keep writing plain Optuna code and import our pieces::

    import neuromosaic_optuna as nm
    config = nm.load_study_file("studies/quickstart.toml")
    study = nm.create_study(config, storage="sqlite:///nas.db")
    study.optimize(nm.Objective(config), n_trials=10)

The top level holds the names a study script needs; everything else lives in its subpackage,
the way Optuna keeps ``optuna.samplers`` and ``optuna.pruners``:

* :mod:`neuromosaic_optuna.pruners`: the pruners, ``epoch_hook_for``, ``report``,
  ``should_prune``;
* :mod:`neuromosaic_optuna.pareto`: ranks, fronts, knees, operating points, hypervolumes;
* :mod:`neuromosaic_optuna.plots`: every figure, search progress included;
* :mod:`neuromosaic_optuna.robustness`: the perturbation registry, attacks, scores;
* :mod:`neuromosaic_optuna.warmstart` and :mod:`neuromosaic_optuna.transfer`: warm starts and
  the transfer experiment;
* :mod:`neuromosaic_optuna.config`, :mod:`~neuromosaic_optuna.space`,
  :mod:`~neuromosaic_optuna.models`, :mod:`~neuromosaic_optuna.metrics`,
  :mod:`~neuromosaic_optuna.study`: study files, search spaces, builders, the metric
  catalogue, the study runner.

Names that used to be here (``nm.SearchSpace``, ``nm.count_finished``, ...) still resolve for
one release and emit a :class:`DeprecationWarning` naming their new import path.

torch is imported only when a model is built, so the CLI and config errors answer fast.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from neuromosaic_optuna.config import StudyConfig, load_study_file
from neuromosaic_optuna.exceptions import ConfigError
from neuromosaic_optuna.models import register_model
from neuromosaic_optuna.objective import Objective
from neuromosaic_optuna.pareto import hypervolume, pareto_info
from neuromosaic_optuna.pruners import CombinedPruner, make_pruner
from neuromosaic_optuna.samplers import ParetoSampler, make_sampler
from neuromosaic_optuna.study import create_study, run_study
from neuromosaic_optuna.warmstart import warm_start

__version__ = "0.1.0"

__all__ = [
    "CombinedPruner",
    "ConfigError",
    "Objective",
    "ParetoSampler",
    "StudyConfig",
    "__version__",
    "create_study",
    "hypervolume",
    "load_study_file",
    "make_pruner",
    "make_sampler",
    "pareto_info",
    "register_model",
    "run_study",
    "warm_start",
]

#: Former top-level names, for one release: name -> (module, attribute there).
_MOVED: dict[str, tuple[str, str]] = {
    "ArchitectureError": ("neuromosaic_optuna.models", "ArchitectureError"),
    "BuildContext": ("neuromosaic_optuna.models", "BuildContext"),
    "BuiltModel": ("neuromosaic_optuna.models", "BuiltModel"),
    "Constraint": ("neuromosaic_optuna.config", "Constraint"),
    "ObjectiveSpec": ("neuromosaic_optuna.config", "ObjectiveSpec"),
    "load_config": ("neuromosaic_optuna.config", "load_config"),
    "is_feasible": ("neuromosaic_optuna.constraints", "is_feasible"),
    "METRICS": ("neuromosaic_optuna.metrics", "METRICS"),
    "MetricInfo": ("neuromosaic_optuna.metrics", "MetricInfo"),
    "ParetoInfo": ("neuromosaic_optuna.pareto", "ParetoInfo"),
    "knee_point": ("neuromosaic_optuna.pareto", "knee_point"),
    "operating_point": ("neuromosaic_optuna.pareto", "operating_point"),
    "pareto_front_mask": ("neuromosaic_optuna.pareto", "pareto_front_mask"),
    "pareto_ranks": ("neuromosaic_optuna.pareto", "pareto_ranks"),
    "ConstraintTrajectoryPruner": ("neuromosaic_optuna.pruners", "ConstraintTrajectoryPruner"),
    "DivergencePruner": ("neuromosaic_optuna.pruners", "DivergencePruner"),
    "HypervolumeStagnationCallback": ("neuromosaic_optuna.pruners",
                                      "HypervolumeStagnationCallback"),
    "MultiObjectiveSuccessiveHalvingPruner": ("neuromosaic_optuna.pruners",
                                              "MultiObjectiveSuccessiveHalvingPruner"),
    "ParetoDominancePruner": ("neuromosaic_optuna.pruners", "ParetoDominancePruner"),
    "epoch_hook_for": ("neuromosaic_optuna.pruners", "epoch_hook_for"),
    "report_intermediate": ("neuromosaic_optuna.pruners", "report"),
    "should_prune": ("neuromosaic_optuna.pruners", "should_prune"),
    "SearchSpace": ("neuromosaic_optuna.space", "SearchSpace"),
    "count_finished": ("neuromosaic_optuna.study", "count_finished"),
    "run_workers": ("neuromosaic_optuna.study", "run_workers"),
    "WarmStartReport": ("neuromosaic_optuna.warmstart", "WarmStartReport"),
    "plot_search_progress": ("neuromosaic_optuna.plots", "plot_search_progress"),
    "run_transfer": ("neuromosaic_optuna.transfer", "run_transfer"),
}

#: Subpackages reachable as attributes (``nm.plots``) without importing them first.
_SUBMODULES = frozenset({"cli", "config", "constraints", "data", "exceptions", "metrics",
                         "models", "objective", "pareto", "plots", "profiling", "pruners",
                         "record", "report", "robustness", "samplers", "space", "storage",
                         "study", "training", "transfer", "units", "warmstart"})


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        module, attr = _MOVED[name]
        spelled = attr if attr == name else f"{attr} as {name}"
        warnings.warn(f"neuromosaic_optuna.{name} is deprecated and leaves the top level in "
                      f"the next release; use `from {module} import {spelled}`",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(module), attr)
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
