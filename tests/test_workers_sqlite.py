"""Worker processes on storages without a database server: SQLite (BEGIN IMMEDIATE makes a
slot claim atomic) and Optuna's journal file. Trials are NAS-Bench-201 lookups, so the test
measures the coordination, not training."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import optuna
import pytest

from neuromosaic_optuna.config import load_config
from neuromosaic_optuna.study import run_workers

CONFIG = {
    "experiment": {"name": "nb201_workers", "architecture_type": "nasbench201",
                   "objectives": ["accuracy"], "dataset": "cifar10", "max_trials": 36,
                   "search_space": {f"edge_{a}_{b}": ["none", "skip_connect", "nor_conv_1x1",
                                                      "nor_conv_3x3", "avg_pool_3x3"]
                                    for a, b in ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1),
                                                 (3, 2))}},
}


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_three_workers_share_a_file_storage_exactly(kind: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}" if kind == "sqlite" else str(tmp_path / "w.log")
    config = load_config(CONFIG)
    study = run_workers(config, storage_url=url, workers=3,
                        storage_options={"heartbeat_interval": 5})
    loaded = optuna.load_study(study_name=study.study_name, storage=nm_storage(url))
    states = Counter(t.state.name for t in loaded.trials)
    assert states == {"COMPLETE": 36}, states
    numbers = [t.number for t in loaded.trials]
    assert sorted(numbers) == list(range(36))
    for t in loaded.trials:
        assert t.values[0] == t.user_attrs["metrics"]["accuracy"]


def nm_storage(url: str) -> optuna.storages.BaseStorage:
    from neuromosaic_optuna.storage import make_storage

    return make_storage(url)
