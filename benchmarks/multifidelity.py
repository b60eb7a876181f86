"""Multi-fidelity Pareto search replayed over a learning-curve table, in minutes.

The table (``benchmarks/learning_curves.py``) holds, per architecture of the quickstart space
on Fashion-MNIST, the validation accuracy after each epoch, the final test accuracy and the
FLOPs. A search arm proposes parameters as usual; each proposal is answered by the table row
nearest to it (normalised parameter distance, learning rate on a log scale), one epoch at a
time, and a pruner may stop it at any epoch. Every epoch "trained" counts, stopped trials'
included. Objectives are validation accuracy (maximise) and FLOPs (minimise); fronts are
*scored* on the rows' **test** accuracy (never seen by any decision), with one reference point
for every arm (the table's worst test accuracy and largest FLOPs, each 1% beyond).

Arms (each with ``--seeds`` seeds):

* ``full``: ``ParetoSampler``, every trial trained to full fidelity: ``--trials`` x max epochs
  is the budget ``B`` for every arm;
* ``mo-asha``: ``ParetoSampler`` + the pruner a ``[fidelity]`` table builds (asynchronous
  multi-objective successive halving, rungs ``1, 3, ...`` with ``reduction_factor`` 3, plus the
  divergence guard), i.e. :func:`neuromosaic_optuna.pruners.make_pruner`;
* ``mo-hyperband``: the same with ``[fidelity] brackets = 3`` (Hyperband-style brackets:
  bracket ``trial number % 3`` ranks from rung 1, 3 or never);
* ``mo-asha-shift``, ``mo-hyperband-shift``: those two with ``ParetoSampler(lower_rungs=
  "shift")`` (stopped trials' last values, shifted by the median gap to full fidelity, train
  its surrogate);
* ``dominance``: ``ParetoSampler`` + ``ParetoDominancePruner`` (the default pruner);
* ``random-asha``: ``RandomSampler`` with the same rungs;
* ``tpe-hyperband``: Optuna's ``TPESampler`` + ``HyperbandPruner`` on the scalarised objective
  ``accuracy - 0.1 * log10(flops / median flops)`` (one objective, as Optuna's pruners need);
* ``tpe-median``: ``TPESampler`` + Optuna's ``MedianPruner`` (its defaults) on that objective
  (the comparison the retired ``benchmarks/pruning.py`` made on digits).

The constraint-trajectory pruner has no arm: the replayed study has no constraint, so it
would never stop a trial.

Printed per arm, median [interquartile range] over seeds: the epochs needed to reach the
``full`` arm's final hypervolume (median over seeds; ``>B`` when not reached within ``B``), and
the hypervolume at 25%, 50% and 100% of ``B`` as a fraction of that target; then, per arm but
``full``, the goal of issue 18 (the target reached with at most ``B/3`` epochs and at least 97%
of it with ``B/2``, medians) as met or not.

Run: ``python benchmarks/multifidelity.py [--table benchmarks/data/fashion_mnist_curves.csv]
[--trials 30] [--seeds 10]``.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

import neuromosaic_optuna as nm
from neuromosaic_optuna.pareto import hypervolume
from neuromosaic_optuna.pruners import (
    MultiObjectiveSuccessiveHalvingPruner,
    ParetoDominancePruner,
    make_pruner,
    report,
    should_prune,
)
from neuromosaic_optuna.samplers import ParetoSampler
from neuromosaic_optuna.space import SearchSpace

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TABLE = ROOT / "benchmarks" / "data" / "fashion_mnist_curves.csv"
DIRECTIONS = ["maximize", "minimize"]
ETA = 3


@dataclass
class Table:
    """The learning-curve table: parameters, per-epoch validation accuracy, test, FLOPs."""

    names: list[str]
    params: np.ndarray  # (n, d) in the space's units
    val: np.ndarray  # (n, epochs)
    test: np.ndarray  # (n,)
    flops: np.ndarray  # (n,)

    @property
    def epochs(self) -> int:
        return int(self.val.shape[1])


def load_table(path: Path, names: list[str]) -> Table:
    """Rows with status ``ok`` and a full curve."""
    rows = []
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("status") != "ok":
                continue
            rows.append(row)
    if not rows:
        raise SystemExit(f"{path}: no finished rows yet")
    epochs = sorted(int(k.rsplit("_", 1)[1]) for k in rows[0] if k.startswith("val_acc_"))
    val = np.array([[float(r[f"val_acc_{e}"]) for e in epochs] for r in rows])
    return Table(names, np.array([[float(r[n]) for n in names] for r in rows]), val,
                 np.array([float(r["test_accuracy"]) for r in rows]),
                 np.array([float(r["flops"]) for r in rows]))


class Lookup:
    """Nearest table row to a proposal (each parameter scaled to [0, 1] by its distribution,
    log-scaled ones in log space)."""

    def __init__(self, table: Table, space: SearchSpace) -> None:
        self.table = table
        dists = space.distributions
        self.scale: list[Callable[[np.ndarray], np.ndarray]] = []
        for name in table.names:
            d = dists[name]
            lo, hi, log = float(d.low), float(d.high), bool(getattr(d, "log", False))
            if log:
                self.scale.append(lambda x, lo=lo, hi=hi: (np.log(x) - math.log(lo))
                                  / (math.log(hi) - math.log(lo)))
            else:
                self.scale.append(lambda x, lo=lo, hi=hi: (x - lo) / (hi - lo))
        self.points = self._norm(table.params)

    def _norm(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(x).astype(float)
        return np.stack([f(x[:, i]) for i, f in enumerate(self.scale)], axis=1)

    def row(self, params: dict[str, Any]) -> int:
        x = self._norm(np.array([[float(params[n]) for n in self.table.names]]))
        return int(np.argmin(((self.points - x) ** 2).sum(axis=1)))


def _score(table: Table, rows: list[int], ref: np.ndarray) -> float:
    if not rows:
        return 0.0
    pts = np.stack([table.test[rows], table.flops[rows]], axis=1)
    return float(hypervolume(pts, DIRECTIONS, ref))


def run_arm(arm: str, table: Table, lookup: Lookup, space: SearchSpace, config: Any, *,
            seed: int, budget: int, ref: np.ndarray,
            hyperband: Any = None) -> list[tuple[int, float]]:
    """One search until ``budget`` epochs; the (epochs used, hypervolume) after each trial."""
    max_epochs = table.epochs
    scalar = arm.startswith("tpe-")
    if arm == "random-asha":
        sampler: optuna.samplers.BaseSampler = optuna.samplers.RandomSampler(seed=seed)
    elif scalar:
        sampler = optuna.samplers.TPESampler(seed=seed)
    else:
        sampler = ParetoSampler(population_size=8, seed=seed,
                                lower_rungs="shift" if arm.endswith("-shift") else "off")
    pruner: optuna.pruners.BasePruner | None = {
        "full": None,
        "mo-asha": make_pruner(config),
        "mo-hyperband": make_pruner(hyperband) if hyperband is not None else None,
        "mo-asha-shift": make_pruner(config),
        "mo-hyperband-shift": make_pruner(hyperband) if hyperband is not None else None,
        "dominance": ParetoDominancePruner(),
        "random-asha": MultiObjectiveSuccessiveHalvingPruner(
            min_resource=1, reduction_factor=ETA, max_resource=max_epochs),
        "tpe-hyperband": optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max_epochs, reduction_factor=ETA),
        "tpe-median": optuna.pruners.MedianPruner(),
    }[arm]
    name = f"{arm}-{seed}"  # HyperbandPruner picks brackets by hashing the study name
    if scalar:
        study = optuna.create_study(direction="maximize", sampler=sampler, study_name=name,
                                    pruner=pruner or optuna.pruners.NopPruner())
    else:
        study = optuna.create_study(directions=DIRECTIONS, sampler=sampler, study_name=name)
        with warnings.catch_warnings(action="ignore"):
            study.set_metric_names(["accuracy", "flops"])
    median_flops = float(np.median(table.flops))
    used, complete, trace = 0, [], []
    while used < budget:
        trial = study.ask()
        r = lookup.row(space.suggest(trial))
        flops = float(table.flops[r])
        trial.set_user_attr("metrics", {"flops": flops})
        stopped = False
        for e in range(1, max_epochs + 1):
            acc = float(table.val[r, e - 1])
            used += 1
            if scalar:
                trial.report(acc - 0.1 * math.log10(flops / median_flops), e)
                stop = e < max_epochs and trial.should_prune()
            else:
                report(trial, e, accuracy=acc)
                stop = e < max_epochs and pruner is not None and should_prune(trial, pruner)
            if stop:
                stopped = True
                break
        if stopped:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            final = float(table.val[r, -1])
            study.tell(trial, final - 0.1 * math.log10(flops / median_flops) if scalar
                       else [final, flops])
            complete.append(r)
        trace.append((used, _score(table, complete, ref)))
    return trace


def hv_at(trace: list[tuple[int, float]], epochs: float) -> float:
    """Hypervolume after the last trial that ended within ``epochs``."""
    best = 0.0
    for used, hv in trace:
        if used <= epochs:
            best = hv
    return best


def epochs_to(trace: list[tuple[int, float]], target: float) -> float:
    for used, hv in trace:
        if hv >= target - 1e-12:
            return float(used)
    return math.inf


def _fmt(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:.3g}"


def _mq(values: list[float]) -> str:
    a = np.asarray(values, dtype=float)
    if np.isinf(np.median(a)):
        return ">B"
    q1, q3 = np.percentile(a, [25, 75], method="nearest")  # inf stays inf
    return f"{_fmt(float(np.median(a)))} [{_fmt(q1)}, {_fmt(q3)}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=DEFAULT_TABLE)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--arms", default="full,mo-asha,mo-hyperband,mo-asha-shift,"
                                          "mo-hyperband-shift,dominance,random-asha,"
                                          "tpe-hyperband,tpe-median")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from learning_curves import SPACE_EXTRA

    base = nm.load_study_file(ROOT / "studies" / "quickstart.toml")
    space_spec = {**base.search_space, **SPACE_EXTRA}
    space = SearchSpace(space_spec, path="search_space")
    table = load_table(args.table, sorted(space_spec))
    def _config(**fidelity: int) -> Any:
        return nm.load_config({
            "experiment": {"name": "mf", "architecture_type": "conv_net",
                           "objectives": ["accuracy", "flops"], "search_space": space_spec},
            "defaults": {"epochs": table.epochs},
            "fidelity": {"min": 1, "reduction_factor": ETA, **fidelity}})

    config, hyperband = _config(), _config(brackets=3)
    lookup = Lookup(table, space)
    span = np.array([table.test.max() - table.test.min(), table.flops.max() - table.flops.min()])
    ref = np.array([table.test.min() - 0.01 * span[0], table.flops.max() + 0.01 * span[1]])
    budget = args.trials * table.epochs
    print(f"table {args.table.name}: {len(table.test)} architectures x {table.epochs} epochs; "
          f"budget B = {args.trials} trials x {table.epochs} epochs = {budget} epochs; "
          f"{args.seeds} seeds; reference point (test accuracy {ref[0]:.4f}, "
          f"FLOPs {ref[1]:.4g})")
    best = _score(table, list(range(len(table.test))), ref)
    print(f"hypervolume of the whole table's front (test accuracy): {best:.6g}")
    arms = args.arms.split(",")
    traces: dict[str, list[list[tuple[int, float]]]] = {}
    for arm in arms:
        start = time.perf_counter()
        traces[arm] = [run_arm(arm, table, lookup, space, config, seed=s, budget=budget,
                               ref=ref, hyperband=hyperband) for s in range(args.seeds)]
        print(f"  ran {arm}: {time.perf_counter() - start:.1f} s", flush=True)
    if "full" not in traces:
        return 0
    target = float(np.median([t[-1][1] for t in traces["full"]]))
    print(f"target: the full arm's final hypervolume, median over seeds = {target:.6g} "
          f"({target / best:.1%} of the table's)")
    print(f"{'arm':<18} {'epochs to target':>24} {'HV@25%B':>22} {'HV@50%B':>22} "
          f"{'HV@100%B':>22}   (HV as a fraction of the target; median [IQR])")
    for arm in arms:
        ts = traces[arm]
        cells = [_mq([epochs_to(t, target) for t in ts])]
        cells += [_mq([hv_at(t, f * budget) / target for t in ts]) for f in (0.25, 0.5, 1.0)]
        print(f"{arm:<18} {cells[0]:>24} {cells[1]:>22} {cells[2]:>22} {cells[3]:>22}")
    print(f"goal (target within B/3 = {budget / 3:.0f} epochs and >= 97% of it at B/2, "
          f"medians):")
    for arm in arms:
        if arm == "full":
            continue
        reach = float(np.median([epochs_to(t, target) for t in traces[arm]]))
        half = float(np.median([hv_at(t, 0.5 * budget) for t in traces[arm]])) / target
        met = reach <= budget / 3 and half >= 0.97
        print(f"  {arm:<18} target in {_fmt(reach)} epochs, {half:.1%} at B/2 -> "
              f"{'MET' if met else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
