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


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.inference_mode():
        correct = sum(int((model(x[i:i + 512]).argmax(1) == y[i:i + 512]).sum())
                      for i in range(0, len(x), 512))
    model.train()
    return correct / len(x)


def bare_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int,
              batch_size: int, lr: float, weight_decay: float, seed: int,
              val: tuple[torch.Tensor, torch.Tensor] | None = None,
              test: tuple[torch.Tensor, torch.Tensor] | None = None) -> float:
    """Train with nothing but torch (plus, when given, the same per-epoch validation and final
    test evaluation a NAS trial needs); return seconds."""
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
        if val is not None:
            _accuracy(model, *val)
    if test is not None:
        _accuracy(model, *test)
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
            kwargs = dict(epochs=config.epochs, batch_size=config.batch_size,
                          lr=config.learning_rate, weight_decay=config.weight_decay,
                          seed=config.seed + trial.number)
            bare = bare_loop(built.model, x, y, **kwargs)  # type: ignore[arg-type]
            torch.manual_seed(config.seed * 100_003 + trial.number)
            fresh = get_builder(config.architecture_type)(
                trial.params, BuildContext(splits.num_classes, res,
                                           options=objective.model_options)).model
            bare_eval = bare_loop(fresh, x, y, val=splits.val.tensors,  # type: ignore[arg-type]
                                  test=splits.test.tensors, **kwargs)
            rows.append((trial.number, wall + setup / args.trials, bare, bare_eval,
                         trial.user_attrs["metrics"].get("train_time", float("nan"))))
            print(f"measured trial {trial.number}: wall {rows[-1][1]:.2f}s, bare {bare:.2f}s, "
                  f"bare+eval {bare_eval:.2f}s", flush=True)

    print(f"{'trial':>5} {'trial wall s':>12} {'bare loop s':>11} {'bare+eval s':>11} "
          f"{'our loop s':>10} {'vs bare':>8} {'vs bare+eval':>12}")
    ratios, ratios_eval = [], []
    for number, wall, bare, bare_eval, ours in rows:
        ratios.append((wall - bare) / bare)
        ratios_eval.append((wall - bare_eval) / bare_eval)
        print(f"{number:>5} {wall:>12.3f} {bare:>11.3f} {bare_eval:>11.3f} {ours:>10.3f} "
              f"{ratios[-1]:>8.1%} {ratios_eval[-1]:>12.1%}")
    total_wall = sum(r[1] for r in rows)
    print(f"\noverhead outside training (config, sampling, build, profiling, storage), vs a "
          f"bare loop with the same per-epoch validation and test evaluation: median "
          f"{statistics.median(ratios_eval):.1%}, overall "
          f"{total_wall / sum(r[3] for r in rows) - 1:.1%}  (goal <= 5%)")
    print(f"everything but the optimizer steps, vs a bare loop without any evaluation: median "
          f"{statistics.median(ratios):.1%}, overall "
          f"{total_wall / sum(r[2] for r in rows) - 1:.1%}")


if __name__ == "__main__":
    main()
