"""The public surface: names that moved keep working for one release, with a warning that names
the new import path, and return the very object of their new home."""

from __future__ import annotations

import importlib

import pytest

import neuromosaic_optuna.warmstart

WARMSTART_MOVED = {
    "TransferResult": "neuromosaic_optuna.transfer",
    "run_transfer": "neuromosaic_optuna.transfer",
    "source_config": "neuromosaic_optuna.transfer",
    "source_study_name": "neuromosaic_optuna.transfer",
    "transfer_budgets": "neuromosaic_optuna.transfer",
    "ProgressCurve": "neuromosaic_optuna.plots",
    "SearchProgress": "neuromosaic_optuna.plots",
    "plot_search_progress": "neuromosaic_optuna.plots",
    "search_progress": "neuromosaic_optuna.plots",
}


@pytest.mark.parametrize(("name", "home"), sorted(WARMSTART_MOVED.items()))
def test_names_moved_out_of_warmstart_warn_and_are_the_same_object(name: str, home: str) -> None:
    with pytest.warns(DeprecationWarning, match=rf"from {home} import {name}"):
        old = getattr(neuromosaic_optuna.warmstart, name)
    assert old is getattr(importlib.import_module(home), name)
    assert name not in neuromosaic_optuna.warmstart.__all__


def test_warmstart_keeps_its_own_names_without_warning(recwarn: pytest.WarningsRecorder) -> None:
    from neuromosaic_optuna.warmstart import (  # noqa: F401
        SELECTIONS,
        WarmStartReport,
        cost_profiler,
        warm_start,
    )

    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        neuromosaic_optuna.warmstart.nothing_here  # noqa: B018


TOP_LEVEL = ["CombinedPruner", "ConfigError", "Objective", "ParetoSampler", "StudyConfig",
             "__version__", "create_study", "hypervolume", "load_study_file", "make_pruner",
             "make_sampler", "pareto_info", "register_model", "run_study", "warm_start"]

TOP_LEVEL_MOVED = {  # former top-level name -> (new module, its name there)
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


def test_top_level_all_is_the_small_api() -> None:
    import neuromosaic_optuna as nm

    assert sorted(nm.__all__) == sorted(TOP_LEVEL)
    assert len(nm.__all__) == 15
    for name in nm.__all__:
        assert getattr(nm, name) is not None
    from neuromosaic_optuna.pruners import CombinedPruner
    from neuromosaic_optuna.samplers import ParetoSampler

    assert nm.CombinedPruner is CombinedPruner and nm.ParetoSampler is ParetoSampler


def test_every_former_top_level_name_is_covered() -> None:
    former = {  # the top-level __all__ before the API cut (93fa139 .. 550ccd3)
        "METRICS", "ConstraintTrajectoryPruner", "DivergencePruner",
        "HypervolumeStagnationCallback", "MultiObjectiveSuccessiveHalvingPruner",
        "ParetoDominancePruner", "ParetoInfo", "WarmStartReport", "epoch_hook_for",
        "hypervolume", "knee_point", "operating_point", "pareto_front_mask", "pareto_info",
        "pareto_ranks", "plot_search_progress", "report_intermediate", "run_transfer",
        "run_workers", "should_prune", "warm_start", "ArchitectureError", "BuildContext",
        "BuiltModel", "ConfigError", "Constraint", "MetricInfo", "Objective", "ObjectiveSpec",
        "SearchSpace", "StudyConfig", "__version__", "count_finished", "create_study",
        "is_feasible", "load_config", "load_study_file", "make_pruner", "make_sampler",
        "register_model", "run_study"}
    assert former - set(TOP_LEVEL) == set(TOP_LEVEL_MOVED)


@pytest.mark.parametrize(("name", "home"), sorted(TOP_LEVEL_MOVED.items()))
def test_removed_top_level_name_warns_and_is_its_new_home(name: str,
                                                           home: tuple[str, str]) -> None:
    import neuromosaic_optuna as nm

    module, attr = home
    with pytest.warns(DeprecationWarning, match=rf"use `from {module} import {attr}"):
        old = getattr(nm, name)
    assert old is getattr(importlib.import_module(module), attr)
    assert name not in nm.__all__


def test_subpackages_are_reachable_as_attributes_and_unknown_names_fail() -> None:
    import neuromosaic_optuna as nm

    assert nm.plots.plot_search_progress is importlib.import_module(
        "neuromosaic_optuna.plots").plot_search_progress
    assert nm.robustness.get_perturbation("fgsm").name == "fgsm"
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        nm.nothing_here  # noqa: B018
