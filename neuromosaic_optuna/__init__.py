"""neuromosaic_optuna: neural architecture search for vision models, as an Optuna plugin.

Users keep writing plain Optuna code and import our pieces::

    import neuromosaic_optuna as nm
    config = nm.load_study_file("studies/quickstart.toml")
    study = nm.create_study(config, storage="sqlite:///nas.db")
    study.optimize(nm.Objective(config), n_trials=10)

torch is imported only when a model is built, so the CLI and config errors answer fast.
"""

from neuromosaic_optuna.config import (
    ConfigError,
    Constraint,
    ObjectiveSpec,
    StudyConfig,
    load_config,
    load_study_file,
)
from neuromosaic_optuna.constraints import is_feasible
from neuromosaic_optuna.metrics import METRICS, MetricInfo
from neuromosaic_optuna.models import ArchitectureError, BuildContext, BuiltModel, register_model
from neuromosaic_optuna.objective import Objective
from neuromosaic_optuna.pareto import (
    ParetoInfo,
    hypervolume,
    knee_point,
    operating_point,
    pareto_front_mask,
    pareto_info,
    pareto_ranks,
)
from neuromosaic_optuna.plots import plot_search_progress
from neuromosaic_optuna.pruners import (
    ConstraintTrajectoryPruner,
    DivergencePruner,
    HypervolumeStagnationCallback,
    MultiObjectiveSuccessiveHalvingPruner,
    ParetoDominancePruner,
    epoch_hook_for,
    make_pruner,
    should_prune,
)
from neuromosaic_optuna.pruners import (
    report as report_intermediate,
)
from neuromosaic_optuna.samplers import make_sampler
from neuromosaic_optuna.space import SearchSpace
from neuromosaic_optuna.study import count_finished, create_study, run_study, run_workers
from neuromosaic_optuna.transfer import run_transfer
from neuromosaic_optuna.warmstart import WarmStartReport, warm_start

__version__ = "0.1.0"

__all__ = [
    "METRICS",
    "ConstraintTrajectoryPruner",
    "DivergencePruner",
    "HypervolumeStagnationCallback",
    "MultiObjectiveSuccessiveHalvingPruner",
    "ParetoDominancePruner",
    "ParetoInfo",
    "WarmStartReport",
    "epoch_hook_for",
    "hypervolume",
    "knee_point",
    "operating_point",
    "pareto_front_mask",
    "pareto_info",
    "pareto_ranks",
    "plot_search_progress",
    "report_intermediate",
    "run_transfer",
    "run_workers",
    "should_prune",
    "warm_start",
    "ArchitectureError",
    "BuildContext",
    "BuiltModel",
    "ConfigError",
    "Constraint",
    "MetricInfo",
    "Objective",
    "ObjectiveSpec",
    "SearchSpace",
    "StudyConfig",
    "__version__",
    "count_finished",
    "create_study",
    "is_feasible",
    "load_config",
    "load_study_file",
    "make_pruner",
    "make_sampler",
    "register_model",
    "run_study",
]
