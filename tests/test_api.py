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
