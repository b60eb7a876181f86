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


@pytest.mark.parametrize("flag,expected", [(["--threads", "1"], 1), ([], None)])
def test_the_worker_command_caps_its_thread_pools(flag: list[str], expected: int | None,
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # N `neuromosaic worker`s on one machine must not each start a pool of every core: the
    # trials run inside worker_threads(--threads, default the cores this process may use)
    import json

    import torch
    from threadpoolctl import threadpool_info

    from neuromosaic_optuna import study as study_module
    from neuromosaic_optuna.cli import main
    from neuromosaic_optuna.study import create_study, open_slots, usable_cores

    seen: list[tuple[int, list[int]]] = []

    def fake_work(study: optuna.Study, objective: object, **kwargs: object) -> int:
        seen.append((torch.get_num_threads(), [p["num_threads"] for p in threadpool_info()]))
        return 0

    url = f"sqlite:///{tmp_path / 'w.db'}"
    exp = CONFIG["experiment"]
    study_file = tmp_path / "s.toml"  # the same study as CONFIG (JSON strings are TOML ones)
    study_file.write_text("[experiment]\n" + "".join(
        f"{k} = {json.dumps(v)}\n" for k, v in exp.items() if k != "search_space")
        + "[experiment.search_space]\n" + "".join(
            f"{k} = {json.dumps(v)}\n" for k, v in exp["search_space"].items()))
    config = load_config(CONFIG)
    open_slots(create_study(config, storage=nm_storage(url)), 2)
    monkeypatch.setattr(study_module, "work", fake_work)
    before = torch.get_num_threads()
    assert main(["worker", str(study_file), "--storage", url, *flag]) == 0
    want = expected or usable_cores()
    assert seen and seen[0][0] == want
    assert all(n <= want for n in seen[0][1])  # numpy/scikit-learn BLAS pools too
    assert torch.get_num_threads() == before  # restored after the worker's trials


def test_the_worker_command_refuses_zero_threads(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from neuromosaic_optuna.cli import main

    code = main(["worker", str(tmp_path / "s.toml"), "--threads", "0"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "--threads" in err and "Traceback" not in err
