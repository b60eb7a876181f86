"""What early stopping saves on a real search: epochs, wall time and hypervolume.

One digits study (the quickstart's EfficientNet-style conv_net space, accuracy vs FLOPs, a
``min_accuracy`` constraint, NSGA-II, seed 0) is run with the same seed and trial budget under:

* no pruning (the baseline);
* each of our pruners (:mod:`neuromosaic_optuna.pruners`, default arguments, with the default
  divergence check);
* the accuracy-only version of the study (TPE) without pruning and with Optuna's
  ``MedianPruner`` (its defaults), whose ratios are taken against the accuracy-only run.

Printed per run: finished trials (pruned ones), total epochs trained, wall time and the final
hypervolume of the feasible COMPLETE trials in (accuracy, FLOPs), each as a ratio to its
baseline. The hypervolume reference point is the same for every run: the ``"nadir"`` rule of
:func:`neuromosaic_optuna.pareto.reference_point` over the feasible trials of all runs, so that
the region above the accuracy constraint is what counts (a reference accuracy of 0 would make
every run score about the same).

Costs must be known while a trial trains (user attribute ``metrics`` set before the first
epoch) for ``ParetoDominancePruner`` and for the FLOPs column of the successive-halving ranks.

Run: ``python benchmarks/pruning.py [--trials 16] [--epochs 6]`` (one torch thread).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from optuna.trial import TrialState

import neuromosaic_optuna as nm
from neuromosaic_optuna.config import load_config
from neuromosaic_optuna.constraints import is_feasible
from neuromosaic_optuna.pareto import hypervolume, reference_point
from neuromosaic_optuna.pruners import epoch_hook_for, intermediate_values
from neuromosaic_optuna.training import DivergedError

ROOT = Path(__file__).resolve().parent.parent
DIRECTIONS = ["maximize", "minimize"]


@dataclass
class Run:
    """What one search measured."""

    label: str
    baseline: str
    complete: int
    pruned: int
    epochs: int
    wall: float
    points: np.ndarray


VARIANTS: list[tuple[str, str, list[str], dict[str, Any]]] = [
    ("no pruning", "no pruning", ["accuracy", "flops"], {"name": "NopPruner"}),
    ("ParetoDominancePruner", "no pruning", ["accuracy", "flops"],
     {"name": "ParetoDominancePruner"}),
    ("ConstraintTrajectoryPruner", "no pruning", ["accuracy", "flops"],
     {"name": "ConstraintTrajectoryPruner"}),
    ("MultiObjectiveSuccessiveHalvingPruner", "no pruning", ["accuracy", "flops"],
     {"name": "MultiObjectiveSuccessiveHalvingPruner"}),
    ("DivergencePruner", "no pruning", ["accuracy", "flops"], {"name": "DivergencePruner"}),
    ("accuracy only, no pruning", "accuracy only, no pruning", ["accuracy"],
     {"name": "NopPruner"}),
    ("accuracy only, MedianPruner", "accuracy only, no pruning", ["accuracy"],
     {"name": "MedianPruner"}),
]


def study_config(objectives: list[str], pruner: Mapping[str, Any], args: argparse.Namespace
                 ) -> nm.StudyConfig:
    """The quickstart study at a small budget, with a ``min_accuracy`` constraint."""
    base = nm.load_study_file(ROOT / "studies" / "quickstart.toml")
    return load_config({
        "experiment": {**dict(base.experiment), "objectives": objectives,
                       "constraints": {"min_accuracy": args.min_accuracy}},
        "defaults": {"resolution": args.resolution, "epochs": args.epochs,
                     "batch_size": 32, "learning_rate": 0.01, "seed": 0,
                     "max_train_samples": args.train_samples,
                     "population_size": base.population_size,
                     "model_options": dict(base.model_options), "pruner": dict(pruner)},
    })


def run(label: str, baseline: str, config: nm.StudyConfig, n_trials: int) -> Run:
    """One search; the pruning hook is added unless the objective already has one."""
    study = nm.create_study(config)
    objective = nm.Objective(config, timing=False)
    objective.preflight()
    if not any(getattr(h, "pruner", None) is not None for h in objective.epoch_hooks):
        objective.epoch_hooks.append(epoch_hook_for(config, study))
    started = time.perf_counter()
    study.optimize(objective, n_trials=n_trials, catch=(DivergedError,))
    wall = time.perf_counter() - started
    trials = study.get_trials(deepcopy=False)
    epochs = sum(len(intermediate_values(t, "accuracy")) for t in trials)
    points = np.asarray([[t.user_attrs["metrics"]["accuracy"], t.user_attrs["metrics"]["flops"]]
                         for t in trials if t.state == TrialState.COMPLETE and is_feasible(t)],
                        dtype=float).reshape(-1, 2)
    return Run(label, baseline, sum(t.state == TrialState.COMPLETE for t in trials),
               sum(t.state == TrialState.PRUNED for t in trials), epochs, wall, points)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--resolution", type=int, default=8)
    parser.add_argument("--train-samples", type=int, default=640)
    parser.add_argument("--min-accuracy", type=float, default=0.9)
    parser.add_argument("--only", nargs="*", help="labels of the variants to run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    runs: list[Run] = []
    for label, baseline, objectives, pruner in VARIANTS:
        if args.only and label not in args.only and label != baseline:
            continue
        runs.append(run(label, baseline, study_config(objectives, pruner, args), args.trials))
        r = runs[-1]
        print(f"  ran {label}: {r.epochs} epochs in {r.wall:.0f} s", flush=True)

    everything = np.vstack([r.points for r in runs])
    ref = (reference_point(everything, DIRECTIONS, rule="nadir") if everything.size
           else np.asarray([0.0, 1.0]))
    hv = {r.label: hypervolume(r.points, DIRECTIONS, ref) if r.points.size else 0.0
          for r in runs}
    by_label = {r.label: r for r in runs}
    print(f"\n{args.trials} trials x {args.epochs} epochs, digits {args.resolution}px, "
          f"{args.train_samples} training images, min_accuracy {args.min_accuracy}, seed 0; "
          f"hypervolume reference (accuracy, MACs) = ({ref[0]:.4f}, {ref[1]:.4g})")
    header = (f"{'run':40s} {'done/pruned':>11s} {'epochs':>7s} {'saved':>6s} {'wall s':>7s} "
              f"{'wall':>6s} {'HV':>8s} {'HV':>6s}")
    print(header)
    print("-" * len(header))
    for r in runs:
        base = by_label[r.baseline]
        ratio_hv = hv[r.label] / hv[base.label] if hv[base.label] > 0 else float("nan")
        print(f"{r.label:40s} {r.complete:>5d}/{r.pruned:<5d} {r.epochs:>7d} "
              f"{1 - r.epochs / base.epochs:>6.0%} {r.wall:>7.0f} {r.wall / base.wall:>6.2f} "
              f"{hv[r.label]:>8.4g} {ratio_hv:>6.1%}")
    print("\nsaved = 1 - epochs / baseline epochs; wall and HV are ratios to the baseline "
          "(accuracy-only runs: to the accuracy-only run without pruning).")


if __name__ == "__main__":
    main()
