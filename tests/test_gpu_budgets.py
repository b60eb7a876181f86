"""Every study file has a ``gpu`` budget (issue 16, item 7) that loads, validates and builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from neuromosaic_optuna.config import load_study_file
from neuromosaic_optuna.models import is_tabular
from neuromosaic_optuna.objective import Objective

STUDIES = sorted((Path(__file__).resolve().parent.parent / "studies").glob("*.toml"))


def test_there_are_study_files() -> None:
    assert len(STUDIES) >= 7


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_gpu_budget_loads_and_validates(path: Path) -> None:
    config = load_study_file(path, budget="gpu")
    assert config.budget == "gpu"
    objective = Objective(config)
    objective._check_known_good()
    if is_tabular(config.architecture_type):
        assert config.max_trials >= 100  # the seed's target setting
        return
    objective._check_builder()  # every range end builds at the budget's resolution
    assert config.dataset == "cifar10"
    assert objective.input_resolution({}) <= 32  # CIFAR-10 at 32 px (or less, searched)
    if config.source_task is None:
        assert config.epochs * config.max_trials >= 100
    else:  # a transfer: the tasks' budget words set trials and epochs
        assert config.target_task is not None
        for task in (config.source_task, config.target_task):
            assert task["dataset"] == "cifar10"
        assert config.source_task["resolution"] < config.target_task["resolution"]


def test_transfer_studies_have_a_full_budget() -> None:
    for name in ("transfer_cifar10_to_imagenet", "transfer_digits"):
        config = load_study_file(Path(STUDIES[0]).parent / f"{name}.toml", budget="full")
        assert config.budget == "full"
    full = load_study_file(Path(STUDIES[0]).parent / "transfer_digits.toml", budget="full")
    assert full.architecture_type == "conv_net"  # trainable
    assert full.target_task is not None and full.target_task["dataset"] == "imagenet"
    assert full.source_task is not None and full.source_task["dataset"] == "cifar10"
