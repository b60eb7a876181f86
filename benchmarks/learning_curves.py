"""Build the learning-curve table that ``benchmarks/multifidelity.py`` replays.

A fixed, seeded set of architectures of the quickstart study's space
(``studies/quickstart.toml``: EfficientNet-style conv nets, depth, width and SE ratio) is
trained once each to full fidelity on a stratified Fashion-MNIST subset, through the project's
own :class:`~neuromosaic_optuna.objective.Objective` (same builder, FLOPs counter, training
loop with its warm-up + cosine schedule over ``--epochs``, so a row's epoch-``k`` accuracy is
what a stopping-type pruner sees at rung ``k``). Architectures are drawn by Optuna's
``RandomSampler`` with ``--seed``; the learning rate is searched too (log-uniform), so curves
cross.

One CSV row per architecture, appended and flushed as soon as it is trained (a partial table
is usable; rerunning resumes after the rows already written): ``arch`` (trial number), the
params, ``flops``, ``params``, ``val_acc_1`` ... ``val_acc_<epochs>`` (validation accuracy
after each epoch), ``test_accuracy`` (after the last epoch, never used for decisions),
``seconds_per_epoch`` (the objective's ``train_time`` / epochs, one torch thread; on a
shared machine it includes waiting for the CPU) and
``status`` (``ok`` or ``diverged``; a diverged row's accuracies after the divergence are
empty).

Run (about an hour for 200 rows on one core of the 2-core CI machine kind)::

    nice -n 19 python benchmarks/learning_curves.py --rows 200 --epochs 9 \\
        --out benchmarks/data/fashion_mnist_curves.csv
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

import neuromosaic_optuna as nm
from neuromosaic_optuna.data import stratified_subset
from neuromosaic_optuna.exceptions import DivergedError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "data" / "fashion_mnist_curves.csv"
SPACE_EXTRA = {"learning_rate": {"low": 1e-3, "high": 2e-2, "log": True}}


def study_config(args: argparse.Namespace) -> Any:
    """The quickstart study on Fashion-MNIST, at the table's fidelity and subset sizes."""
    base = nm.load_study_file(ROOT / "studies" / "quickstart.toml")
    space = {**base.search_space, **SPACE_EXTRA}
    return base.with_overrides(
        dataset="fashion_mnist", dataset_path=args.dataset_path, resolution=args.resolution,
        epochs=args.epochs, max_train_samples=args.train, seed=args.seed, search_space=space,
        pruner={"name": "NopPruner"}, device="cpu", precision="fp32", augmentation="none")


def _columns(space: dict[str, Any], epochs: int) -> list[str]:
    return (["arch", *sorted(space), "flops", "params"]
            + [f"val_acc_{e}" for e in range(1, epochs + 1)]
            + ["test_accuracy", "seconds_per_epoch", "status"])


def _done(out: Path) -> int:
    if not out.exists():
        return 0
    with out.open(newline="") as fh:
        return sum(1 for _ in csv.DictReader(fh))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--train", type=int, default=400, help="stratified training images")
    parser.add_argument("--val", type=int, default=400, help="stratified validation images")
    parser.add_argument("--test", type=int, default=1000, help="stratified test images")
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset-path", default=None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = study_config(args)
    objective = nm.Objective(config, timing=False)  # latency is not in the table
    splits = objective.dataset(args.resolution)
    splits.val = stratified_subset(splits.val, args.val, seed=args.seed)
    splits.test = stratified_subset(splits.test, args.test, seed=args.seed + 1)
    sampler = optuna.samplers.RandomSampler(seed=args.seed)
    study = optuna.create_study(directions=config.directions, sampler=sampler)
    with warnings.catch_warnings(action="ignore"):
        study.set_metric_names(config.metric_names)
    columns = _columns(dict(config.search_space), args.epochs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = _done(args.out)
    if done == 0:
        with args.out.open("w", newline="") as fh:
            csv.writer(fh).writerow(columns)
    for number in range(args.rows):
        trial = study.ask()
        # every architecture is drawn, so row k is the same whether resumed or not
        params = objective.space.suggest(trial)
        if number < done:
            study.tell(trial, state=TrialState.PRUNED)
            continue
        start = time.perf_counter()
        status = "ok"
        try:
            study.tell(trial, objective(trial))
        except DivergedError:
            status = "diverged"
            study.tell(trial, state=TrialState.FAIL)
        except optuna.TrialPruned:
            status = "pruned"
            study.tell(trial, state=TrialState.PRUNED)
        seconds = time.perf_counter() - start
        frozen = study.trials[-1]
        metrics = frozen.user_attrs.get("metrics", {})
        curve = list(frozen.user_attrs.get("curve", []))
        if status == "ok":
            status = str(frozen.user_attrs.get("status", "ok"))
        row: dict[str, Any] = {"arch": number, **params,
                               "flops": metrics.get("flops"), "params": metrics.get("params"),
                               "test_accuracy": metrics.get("test_accuracy"),
                               "seconds_per_epoch": round(
                                   float(metrics.get("train_time") or seconds) / args.epochs, 3),
                               "status": status}
        for e in range(1, args.epochs + 1):
            value = curve[e - 1] if e <= len(curve) else None
            row[f"val_acc_{e}"] = (None if value is None or not math.isfinite(value)
                                   else round(float(value), 5))
        with args.out.open("a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=columns).writerow(row)
        print(f"{number + 1}/{args.rows} {status} flops={row['flops']} "
              f"val={row[f'val_acc_{args.epochs}']} test={row['test_accuracy']} "
              f"{row['seconds_per_epoch']} s/epoch", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
