"""Hypervolume reached after a fixed number of trials: our default Pareto strategy vs Optuna's.

Samplers compared (each seeded with the run's seed):

* ``neuromosaic default``: what ``search_strategy = "pareto"`` builds (``make_sampler``):
  :class:`~neuromosaic_optuna.samplers.ParetoSampler`, population from the trial budget;
* ``Optuna 5 default (TPE)``: ``TPESampler()``, Optuna 5's default multi-objective sampler;
* ``NSGA-II as shipped``: ``NSGAIISampler()`` (population 50);
* ``random``: ``RandomSampler()``;
* ``Optuna 5 GPSampler``: ``GPSampler()`` (multi-objective Gaussian-process sampler, about a
  second per trial, so it runs on the first ``--gp-seeds`` (5) seeds only);
* ablations of our default (``--ablations``): plain NSGA-II with our population size,
  ``ParetoSampler`` without surrogate screening, without the front neighbours, and with a
  random instead of a Latin-hypercube first generation.

Two problems:

(a) NAS-Bench-201 through the tabular backend (``architecture_type = "nasbench201"``):
    ImageNet16-120, objectives validation accuracy (max) and params (min), ``--trials`` trials
    (100) and ``--seeds`` seeds (20). The samplers see one recorded training run's accuracy
    per trial (the study seed + trial number chooses it: evaluation noise); the score is the
    hypervolume of the *run-averaged* accuracies and params of the cells a study evaluated,
    as a fraction of the hypervolume of the table's true front (all 15,625 cells), with the
    reference point accuracy 0.30 and 1.1 x the largest model's params.
(b) Digits with real training (``--parts b``): the quickstart study's space (depth, width and
    SE ratio of a small EfficientNet-style net) at 16x16 pixels with 400 training images,
    accuracy vs FLOPs, ``--digits-trials`` (20) trials of ``--digits-epochs`` (2) epochs,
    ``--digits-seeds`` (20) seeds, one torch thread. NSGA-II as shipped is not rerun when
    its first generation (50) covers the budget: it then samples exactly RandomSampler's
    trials. No true front exists, so the score is the hypervolume (validation accuracy, FLOPs;
    reference point accuracy 0.5 and 1.1 x the largest FLOPs seen) as a fraction of the
    hypervolume of all trials of all runs together.
(c) The weighted strategy (``--parts c``): NAS-Bench-201 ImageNet16-120 with the weighted
    objectives accuracy (weight 1.0) and params (weight -0.05), ``--trials`` trials,
    ``--seeds`` seeds. Score: the regret of the best run-averaged ``weighted_score`` found, as
    a fraction of the gap between the table's best and its median cell (0 is the optimum).

Printed per sampler: median and interquartile range of the score, the median relative to
random search's, and the wall time per trial.

Run: ``python benchmarks/multiobjective.py [--parts abc] [--seeds 20] [--first-seed 0]
[--trials 100] [--gp-seeds 5] [--ablations]`` (measured on the 2-core machine: a with
ablations and c together about 11 minutes; b about 25 minutes, one torch thread; GPSampler's
5 seeds of a not yet timed at 100 trials: 3.3 s per trial at 20 trials on a loaded machine).
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
from optuna.samplers import BaseSampler, GPSampler, NSGAIISampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

from neuromosaic_optuna.config import StudyConfig, load_config, load_study_file
from neuromosaic_optuna.models.nasbench201 import EDGES, OPS, NASBench201Table
from neuromosaic_optuna.objective import Objective
from neuromosaic_optuna.pareto import hypervolume
from neuromosaic_optuna.samplers import ParetoSampler, default_population_size, make_sampler

ROOT = Path(__file__).resolve().parent.parent
DIRECTIONS = ["maximize", "minimize"]
SamplerFactory = Callable[[StudyConfig], BaseSampler]
GP_NAME = "Optuna 5 GPSampler"


def samplers(ablations: bool) -> dict[str, SamplerFactory]:
    """Name -> factory building a seeded sampler for a config."""
    table: dict[str, SamplerFactory] = {
        "neuromosaic default": make_sampler,
        "Optuna 5 default (TPE)": lambda c: TPESampler(seed=c.seed),
        "NSGA-II as shipped (pop 50)": lambda c: NSGAIISampler(seed=c.seed),
        "random": lambda c: RandomSampler(seed=c.seed),
        GP_NAME: lambda c: GPSampler(seed=c.seed),
    }
    if ablations:
        pop = default_population_size
        table.update({
            "  NSGA-II, our population": lambda c: NSGAIISampler(
                seed=c.seed, population_size=pop(c.max_trials)),
            "  ours without screening": lambda c: ParetoSampler(
                seed=c.seed, population_size=pop(c.max_trials), screening=False),
            "  ours without front neighbours": lambda c: ParetoSampler(
                seed=c.seed, population_size=pop(c.max_trials), focus=False),
            "  ours with a random start": lambda c: ParetoSampler(
                seed=c.seed, population_size=pop(c.max_trials), initial_design="random"),
        })
    return table


def run(config: StudyConfig, factory: SamplerFactory,
        objective: Objective) -> tuple[list[FrozenTrial], float]:
    """Optimize a fresh in-memory study; return its COMPLETE trials and the wall seconds per
    trial (sampling included: with a tabular backend that is nearly all of it)."""
    study = optuna.create_study(directions=config.directions, sampler=factory(config))
    started = time.perf_counter()
    study.optimize(objective, n_trials=config.max_trials)
    seconds = (time.perf_counter() - started) / config.max_trials
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), seconds


def _points(trials: list[FrozenTrial], metrics: tuple[str, str]) -> np.ndarray:
    return np.array([[t.user_attrs["metrics"][m] for m in metrics] for t in trials],
                    dtype=float).reshape(-1, 2)


def report(title: str, scores: dict[str, list[float]], seconds: dict[str, list[float]],
           distinct: dict[str, list[int]] | None = None) -> None:
    print(f"\n{title}")
    print(f"{'sampler':40s} {'median':>7s} {'IQR':>15s} {'vs random':>9s} {'mean':>6s} "
          f"{'min':>6s} {'s/trial':>8s} {'seeds':>5s}"
          + (f" {'distinct':>8s}" if distinct else ""))
    base = float(np.median(scores["random"]))
    for name, values in scores.items():
        v = np.asarray(values)
        q1, q3 = np.percentile(v, [25, 75])
        extra = f" {np.median(distinct[name]):8.0f}" if distinct else ""
        print(f"{name:40s} {np.median(v):7.3f} {f'[{q1:.3f}, {q3:.3f}]':>15s} "
              f"{np.median(v) / base:9.3f} {v.mean():6.3f} {v.min():6.3f} "
              f"{np.mean(seconds[name]):8.4f} {len(v):5d}{extra}", flush=True)


def nasbench(seeds: int, trials: int, ablations: bool, first_seed: int = 0,
             gp_seeds: int = 5) -> None:
    table = NASBench201Table()
    dataset = "imagenet16-120"
    reference = [0.30, 1.1 * float(table.arrays(dataset)["params"].max())]
    true_hv = hypervolume(table.true_front(dataset, ("accuracy", "params")).values,
                          DIRECTIONS, reference)
    scores: dict[str, list[float]] = {}
    seconds: dict[str, list[float]] = {}
    distinct: dict[str, list[int]] = {}
    for name, factory in samplers(ablations).items():
        for seed in range(first_seed, first_seed + (min(seeds, gp_seeds) if name == GP_NAME
                                                    else seeds)):
            config = load_config({"experiment": {
                "name": "nb201", "architecture_type": "nasbench201", "dataset": dataset,
                "objectives": ["accuracy", "params"], "max_trials": trials,
                "search_space": {edge: list(OPS) for edge in EDGES}},
                "defaults": {"seed": seed}})
            done, per_trial = run(config, factory, Objective(config, timing=False))
            found = _points(done, ("accuracy_mean", "params"))
            scores.setdefault(name, []).append(hypervolume(found, DIRECTIONS, reference)
                                               / true_hv)
            seconds.setdefault(name, []).append(per_trial)
            distinct.setdefault(name, []).append(
                len({tuple(t.params[e] for e in EDGES) for t in done}))
    report(f"(a) NAS-Bench-201 ImageNet16-120, accuracy vs params: hypervolume after {trials} "
           f"trials as a fraction of the true front's, {seeds} seeds ({GP_NAME}: first "
           f"{min(seeds, gp_seeds)}); distinct: median number of distinct cells evaluated",
           scores, seconds, distinct)


def digits(seeds: int, trials: int, epochs: int, ablations: bool, gp_seeds: int = 5) -> None:
    import torch

    torch.set_num_threads(1)
    runs: dict[str, list[np.ndarray]] = {}
    seconds: dict[str, list[float]] = {}
    same_as_random = "NSGA-II as shipped (pop 50)"
    for name, factory in samplers(ablations).items():
        if name == same_as_random and trials <= 50:
            continue  # its first generation (50 trials) is RandomSampler's, draw for draw
        for seed in range(min(seeds, gp_seeds) if name == GP_NAME else seeds):
            config = load_study_file(ROOT / "studies" / "quickstart.toml", overrides={
                "max_trials": trials, "epochs": epochs, "seed": seed, "resolution": 16,
                "max_train_samples": 400})
            done, per_trial = run(config, factory, Objective(config, timing=False))
            runs.setdefault(name, []).append(_points(done, ("accuracy", "flops")))
            seconds.setdefault(name, []).append(per_trial)
    everything = np.vstack([p for points in runs.values() for p in points])
    reference = [0.5, 1.1 * float(everything[:, 1].max())]
    best = hypervolume(everything, DIRECTIONS, reference)
    scores = {name: [hypervolume(p, DIRECTIONS, reference) / best for p in points]
              for name, points in runs.items()}
    if same_as_random not in runs:
        scores = {**{k: v for k, v in scores.items() if k != "random"},
                  f"{same_as_random} = random": scores["random"], "random": scores["random"]}
        seconds[f"{same_as_random} = random"] = seconds["random"]
    report(f"(b) digits (quickstart space at 16x16, 400 training images), accuracy vs FLOPs, "
           f"{trials} trials x {epochs} epochs: hypervolume as a fraction of all runs' joint "
           f"front, {seeds} seeds", scores, seconds)


def weighted(seeds: int, trials: int) -> None:
    from neuromosaic_optuna.objective import weighted_score

    dataset = "imagenet16-120"
    arrays = NASBench201Table().arrays(dataset)

    def config(seed: int) -> StudyConfig:
        return load_config({"experiment": {
            "name": "nb201w", "architecture_type": "nasbench201", "dataset": dataset,
            "objectives": {"accuracy": {"weight": 1.0}, "params": {"weight": -0.05}},
            "search_strategy": "weighted", "max_trials": trials,
            "search_space": {edge: list(OPS) for edge in EDGES}}, "defaults": {"seed": seed}})

    def score(cfg: StudyConfig, metrics: dict[str, float]) -> float:
        return weighted_score(cfg, {"accuracy": metrics["accuracy_mean"],
                                    "params": metrics["params"]})

    table_scores = np.array([score(config(0), {"accuracy_mean": a, "params": p})
                             for a, p in zip(arrays["accuracy_mean"], arrays["params"],
                                             strict=True)])
    best, median = float(table_scores.max()), float(np.median(table_scores))
    factories: dict[str, SamplerFactory] = {
        "neuromosaic default": make_sampler,
        "Optuna 5 default (TPE, multivariate)": lambda c: TPESampler(seed=c.seed),
        "TPE, univariate": lambda c: TPESampler(seed=c.seed, multivariate=False),
        "random": lambda c: RandomSampler(seed=c.seed),
    }
    regrets: dict[str, list[float]] = {}
    seconds: dict[str, list[float]] = {}
    for name, factory in factories.items():
        for seed in range(seeds):
            cfg = config(seed)
            done, per_trial = run(cfg, factory, Objective(cfg, timing=False))
            found = max(score(cfg, t.user_attrs["metrics"]) for t in done)
            regrets.setdefault(name, []).append((best - found) / (best - median))
            seconds.setdefault(name, []).append(per_trial)
    report(f"(c) weighted strategy on NAS-Bench-201 ImageNet16-120 (accuracy 1.0, params -0.05): "
           f"regret after {trials} trials as a fraction of (best - median cell), {seeds} seeds "
           f"(lower is better)", regrets, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="part a's seeds are first-seed .. first-seed + seeds - 1")
    parser.add_argument("--gp-seeds", type=int, default=5,
                        help=f"seeds of part a that {GP_NAME} runs (about 1 s per trial)")
    parser.add_argument("--ablations", action="store_true")
    parser.add_argument("--parts", default="a", help="which of a, b, c to run, e.g. 'abc'")
    parser.add_argument("--digits-seeds", type=int, default=20)
    parser.add_argument("--digits-trials", type=int, default=20)
    parser.add_argument("--digits-epochs", type=int, default=2)
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # the machine is shared; the GP's linear algebra is small
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    started = time.perf_counter()
    if "a" in args.parts:
        nasbench(args.seeds, args.trials, args.ablations, args.first_seed, args.gp_seeds)
    if "b" in args.parts:
        digits(args.digits_seeds, args.digits_trials, args.digits_epochs, args.ablations,
               args.gp_seeds)
    if "c" in args.parts:
        weighted(args.seeds, args.trials)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
