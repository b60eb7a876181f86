"""Parallel workers on PostgreSQL: throughput scaling and storage overhead per trial.

Starts a throwaway PostgreSQL 15 cluster on 127.0.0.1 (the test fixture's server, as the
``postgres`` user when run as root) and prints, from one run:

1. trials/hour of a fixed small search (the same enqueued conv_net architectures on digits,
   1 epoch each) with 1 worker using both cores and with 2 worker processes using one core
   each; the ratio is the scaling (goal >= 1.8x on 2 cores);
2. our storage overhead per trial in ms: the full neuromosaic path (slots, user attributes,
   constraints, metric writes) on NAS-Bench-201 lookups against a bare ``study.optimize``
   loop suggesting the same six categorical params on the same storage.

Run: ``python benchmarks/parallel.py [--trials 16]``
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from pg import PostgresServer  # noqa: E402

import neuromosaic_optuna as nm  # noqa: E402
from neuromosaic_optuna.config import load_config  # noqa: E402
from neuromosaic_optuna.study import count_finished, open_slots, run_workers  # noqa: E402

SEARCH = """
[experiment]
name = "parallel_bench"
architecture_type = "conv_net"
objectives = ["accuracy", "flops"]
dataset = "digits"
[experiment.search_space]
depth_multiplier = [0.5, 1.5]
width_multiplier = [0.5, 1.0]
se_ratio = [0.0, 0.25]
[defaults]
resolution = 32
epochs = 1
batch_size = 64
[defaults.model_options]
convnet_stages = ["ds_r1_k3_s1_e1_c16", "ir_r2_k3_s2_e6_c24", "ir_r2_k5_s2_e6_c40",
                  "ir_r2_k3_s1_e6_c80"]
convnet_head_channels = 256
"""

OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
EDGES = ["edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2"]


def _architectures(n: int) -> list[dict[str, float]]:
    rng = random.Random(0)
    return [{"depth_multiplier": round(rng.uniform(0.5, 1.5), 3),
             "width_multiplier": round(rng.uniform(0.5, 1.0), 3),
             "se_ratio": round(rng.uniform(0.0, 0.25), 3)} for _ in range(n)]


def _throughput(server: PostgresServer, config: nm.StudyConfig, workers: int,
                n: int) -> tuple[float, float]:
    """Trials/hour and the mean training seconds per trial."""
    import torch

    url = server.create_database(f"bench_{workers}w_{int(time.time())}")
    storage = nm.storage.make_storage(url)
    study = nm.create_study(config, storage=storage)
    for params in _architectures(n):
        study.enqueue_trial(params)
    started = time.perf_counter()
    if workers == 1:
        torch.set_num_threads(2)
        open_slots(study, n)
        nm.study.work(study, nm.Objective(config))
    else:
        run_workers(config, storage_url=url, workers=workers, n_trials=n)
    elapsed = time.perf_counter() - started
    assert count_finished(study) == n
    train = [t.user_attrs["metrics"]["train_time"] for t in study.get_trials()
             if t.state == optuna.trial.TrialState.COMPLETE]
    return n / elapsed * 3600, sum(train) / len(train)


def _overhead(server: PostgresServer, n: int) -> tuple[float, float]:
    from neuromosaic_optuna.models.nasbench201 import NASBench201Table

    table = NASBench201Table()
    config = load_config({"name": "overhead", "architecture_type": "nasbench201",
                          "objectives": ["accuracy"], "dataset": "cifar10",
                          "search_space": {e: OPS for e in EDGES}, "max_trials": n})
    url = server.create_database(f"overhead_{int(time.time())}")
    storage = nm.storage.make_storage(url)
    started = time.perf_counter()
    nm.run_study(config, storage=storage, study_name="ours")
    ours = (time.perf_counter() - started) / n

    def bare(trial: optuna.trial.Trial) -> float:
        params = {e: trial.suggest_categorical(e, OPS) for e in EDGES}
        return table.evaluate(params, dataset="cifar10", seed=trial.number)["accuracy"]

    study = optuna.create_study(storage=storage, study_name="bare", direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=0))
    started = time.perf_counter()
    study.optimize(bare, n_trials=n)
    plain = (time.perf_counter() - started) / n
    return ours * 1e3, plain * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--overhead-trials", type=int, default=100)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import neuromosaic_optuna.storage  # noqa: F401 - make nm.storage available

    path = ROOT / "benchmarks" / "_parallel.toml"
    path.write_text(SEARCH)
    try:
        config = nm.load_study_file(path)
    finally:
        path.unlink()
    with PostgresServer() as server:
        one, train_one = _throughput(server, config, 1, args.trials)
        two, train_two = _throughput(server, config, 2, args.trials)
        ours, plain = _overhead(server, args.overhead_trials)
    print(f"fixed search: {args.trials} conv_net trials on digits, 1 epoch each, PostgreSQL 15")
    print(f"1 worker x 2 threads : {one:8.0f} trials/hour")
    print(f"2 workers x 1 thread : {two:8.0f} trials/hour   scaling {two / one:.2f}x "
          "(goal >= 1.8x)")
    print(f"training s per trial : {train_one:.2f} with 2 threads, {train_two:.2f} with 1 thread "
          f"next to another worker: the ceiling for 2 workers here is "
          f"{2 * train_one / train_two:.2f}x")
    print(f"storage, per trial   : ours {ours:.1f} ms, bare Optuna loop {plain:.1f} ms, "
          f"overhead {ours - plain:+.1f} ms ({ours / plain:.2f}x) on "
          f"{args.overhead_trials} NAS-Bench-201 lookups")


if __name__ == "__main__":
    main()
