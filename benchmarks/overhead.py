"""Time a trial spends outside training, as a fraction of a bare torch training loop.

For each of N quickstart-sized trials (run through the real path: study file, Optuna
sampling, model build, profiling with latency timing, training, storage writes on SQLite),
the same architecture is rebuilt and trained by a bare torch loop (same data tensors, batch
size, optimizer, schedule and epochs, no validation, no callbacks). Printed figures:

    overhead = (trial wall time - bare loop time) / bare loop time

with the study's creation (config load, storage, sampler) spread over the trials. Both are
measured in the same run, interleaved, so machine noise hits both.

Run: ``python benchmarks/overhead.py [--trials 6] [--epochs 4]``
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import neuromosaic_optuna as nm
from neuromosaic_optuna.models import BuildContext, get_builder
from neuromosaic_optuna.training import _warmup_cosine

ROOT = Path(__file__).resolve().parent.parent


def bare_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int,
              batch_size: int, lr: float, weight_decay: float, seed: int) -> float:
    """Train with nothing but torch; return seconds."""
    started = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _warmup_cosine(steps))
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=None, help="default: the quickstart's")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        overrides = {"max_trials": args.trials}
        if args.epochs:
            overrides["epochs"] = args.epochs
        config = nm.load_study_file(ROOT / "studies/quickstart.toml", overrides=overrides)
        objective = nm.Objective(config)
        study = nm.create_study(config, storage=f"sqlite:///{tmp}/overhead.db")
        setup = time.perf_counter() - t0
        rows = []
        for _ in range(args.trials):
            start = time.perf_counter()
            study.optimize(objective, n_trials=1)
            wall = time.perf_counter() - start
            trial = study.trials[-1]
            res = objective.input_resolution(trial.params)
            splits = objective.dataset(res)
            torch.manual_seed(config.seed * 100_003 + trial.number)
            built = get_builder(config.architecture_type)(
                trial.params, BuildContext(splits.num_classes, res,
                                           options=objective.model_options))
            x, y = splits.train.tensors
            bare = bare_loop(built.model, x, y, epochs=config.epochs,
                             batch_size=config.batch_size, lr=config.learning_rate,
                             weight_decay=config.weight_decay, seed=config.seed + trial.number)
            rows.append((trial.number, wall + setup / args.trials, bare,
                         trial.user_attrs["metrics"].get("train_time", float("nan"))))

    print(f"{'trial':>5} {'trial wall s':>12} {'bare loop s':>11} {'our loop s':>10} "
          f"{'overhead':>9}")
    ratios = []
    for number, wall, bare, ours in rows:
        ratio = (wall - bare) / bare
        ratios.append(ratio)
        print(f"{number:>5} {wall:>12.3f} {bare:>11.3f} {ours:>10.3f} {ratio:>8.1%}")
    total_wall = sum(r[1] for r in rows)
    total_bare = sum(r[2] for r in rows)
    print(f"\nmedian overhead per trial: {statistics.median(ratios):.1%}; "
          f"overall (sum of trial walls / sum of bare loops - 1): "
          f"{total_wall / total_bare - 1:.1%}  (goal <= 5%)")
    print("overhead = config + sampling + model build + profiling (FLOPs, memory, latency) + "
          "per-epoch validation + test evaluation + storage writes")


if __name__ == "__main__":
    main()
