"""Time a trial spends outside training, as a fraction of a bare torch training loop.

For each of N quickstart-sized trials (run through the real path: study file, Optuna
sampling, model build, profiling with latency timing, training, storage writes on SQLite),
the same architecture is rebuilt and trained by a bare torch loop (same data tensors, batch
size, optimizer, schedule and epochs), once with nothing else and once with the per-epoch
validation and final test evaluation a NAS trial needs. Printed figures:

    overhead = (trial wall time - bare loop time) / bare loop time

The architectures are the ones the quickstart's sampler proposes first (drawn from a scratch
study with the same seed, then enqueued, so sampling still runs). Trials and bare loops are
interleaved with alternating order (torch's kernel caches favour whichever runs second on
new shapes), so machine noise and cache warm-up hit both. The study's one-time setup
(config, storage, sampler, dataset load) is printed separately, as a share of a full
quickstart.

Run: ``python benchmarks/overhead.py [--trials 8] [--epochs 4]``
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import optuna
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


def _presample(config: nm.StudyConfig, objective: nm.Objective, n: int) -> list[dict]:
    """The parameters the quickstart's own sampler proposes first (its Latin-hypercube
    generation), drawn from a scratch in-memory study with the same seed."""
    scratch = nm.create_study(config, storage=None)
    out = []
    for _ in range(n):
        trial = scratch.ask()
        out.append(objective.space.suggest(trial))
        scratch.tell(trial, state=optuna.trial.TrialState.FAIL)
    return out


def _bare_arms(config: nm.StudyConfig, objective: nm.Objective, params: dict,
               number: int) -> tuple[float, float]:
    """Seconds of the bare loop without and with evaluation, for trial ``number``'s model."""
    res = objective.input_resolution(params)
    splits = objective.dataset(res)
    x, y = splits.train.tensors

    def fresh_model() -> nn.Module:
        torch.manual_seed(config.seed * 100_003 + number)
        return get_builder(config.architecture_type)(
            params, BuildContext(splits.num_classes, res, options=objective.model_options)).model

    kwargs = dict(epochs=config.epochs, batch_size=config.batch_size, lr=config.learning_rate,
                  weight_decay=config.weight_decay, seed=config.seed + number)
    bare = bare_loop(fresh_model(), x, y, **kwargs)  # type: ignore[arg-type]
    bare_eval = bare_loop(fresh_model(), x, y, val=splits.val.tensors,  # type: ignore[arg-type]
                          test=splits.test.tensors, **kwargs)
    return bare, bare_eval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=None, help="default: the quickstart's")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        overrides = {"max_trials": args.trials}
        if args.epochs:
            overrides["epochs"] = args.epochs
        config = nm.load_study_file(ROOT / "studies/quickstart.toml", overrides=overrides)
        objective = nm.Objective(config)
        study = nm.create_study(config, storage=f"sqlite:///{tmp}/overhead.db")
        objective.preflight()  # loads the dataset, as ``neuromosaic run`` does before trials
        setup = time.perf_counter() - t0
        quickstart_trials = nm.load_study_file(ROOT / "studies/quickstart.toml").max_trials
        rows = []
        for i, params in enumerate(_presample(config, objective, args.trials)):
            study.enqueue_trial(params)
            number = len(study.trials)
            # Order-balanced: torch's kernel caches make whichever runs first on new shapes
            # slower, so odd trials run the bare loops first and even trials run them last.
            if i % 2:
                bare, bare_eval = _bare_arms(config, objective, params, number)
            start = time.perf_counter()
            study.optimize(objective, n_trials=1)
            wall = time.perf_counter() - start
            if not i % 2:
                bare, bare_eval = _bare_arms(config, objective, params, number)
            trial = study.trials[-1]
            rows.append((trial.number, wall, bare, bare_eval,
                         trial.user_attrs["metrics"].get("train_time", float("nan"))))
            print(f"measured trial {trial.number} ({'bare loops first' if i % 2 else 'trial first'}"
                  f"): wall {wall:.2f}s, bare {bare:.2f}s, bare+eval {bare_eval:.2f}s",
                  flush=True)

    print(f"{'trial':>5} {'trial wall s':>12} {'bare loop s':>11} {'bare+eval s':>11} "
          f"{'our loop s':>10} {'vs bare':>8} {'vs bare+eval':>12}")
    ratios, ratios_eval = [], []
    for number, wall, bare, bare_eval, ours in rows:
        ratios.append((wall - bare) / bare)
        ratios_eval.append((wall - bare_eval) / bare_eval)
        print(f"{number:>5} {wall:>12.3f} {bare:>11.3f} {bare_eval:>11.3f} {ours:>10.3f} "
              f"{ratios[-1]:>8.1%} {ratios_eval[-1]:>12.1%}")
    total_wall = sum(r[1] for r in rows)
    print(f"\nstudy setup (config, storage, sampler, dataset load), once per study: {setup:.2f}s "
          f"= {setup / (total_wall / len(rows) * quickstart_trials):.1%} of a "
          f"{quickstart_trials}-trial quickstart at these trial times (not in the figures below)")
    print(f"overhead outside training (config, sampling, build, profiling, storage), vs a "
          f"bare loop with the same per-epoch validation and test evaluation: median "
          f"{statistics.median(ratios_eval):.1%}, overall "
          f"{total_wall / sum(r[3] for r in rows) - 1:.1%}  (goal <= 5%)")
    print(f"everything but the optimizer steps, vs a bare loop without any evaluation: median "
          f"{statistics.median(ratios):.1%}, overall "
          f"{total_wall / sum(r[2] for r in rows) - 1:.1%}")


if __name__ == "__main__":
    main()
