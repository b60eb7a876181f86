"""Hypervolume reached after a fixed number of trials: our Pareto strategy vs Optuna's samplers.

Samplers compared (each seeded with the run's seed):

* ``ours (gp)``: what ``search_strategy = "pareto"`` builds (``make_sampler``):
  :class:`~neuromosaic_optuna.samplers.ParetoSampler`, population from the trial budget, its
  default Gaussian-process surrogate screening the offspring;
* ``ours (forest)``: the same with ``surrogate="forest"`` (random-forest
  :class:`~neuromosaic_optuna.predictor.PerformancePredictor` screening);
* ``GPSampler``: Optuna 5's multi-objective Gaussian-process sampler (about a second per
  trial, so it runs on the first ``--gp-seeds`` (5) seeds only);
* ``TPE``: ``TPESampler()``, Optuna 5's default multi-objective sampler;
* ``NSGA-II``: ``NSGAIISampler()`` as shipped (population 50);
* ``random``: ``RandomSampler()`` (the baseline of the ratios);
* ablations of our default (``--ablations``): plain NSGA-II with our population size,
  ``ParetoSampler`` without surrogate screening, without the front neighbours, and with a
  random instead of a Latin-hypercube first generation.

Problems:

(a) NAS-Bench-201 through the tabular backend (``architecture_type = "nasbench201"``),
    ``--problems`` (all three by default):

    * ``a1``: ImageNet16-120, validation accuracy (max) vs params (min);
    * ``a2``: CIFAR-100, accuracy vs params;
    * ``a3``: ImageNet16-120, accuracy vs params vs latency (the table's recorded latency).

    The samplers see one recorded training run's accuracy per trial (the study seed + trial
    number chooses it: evaluation noise); a score is the hypervolume of the *run-averaged*
    accuracies (and params, latency) of the cells a study evaluated, as a fraction of the
    hypervolume of the table's true front (all 15,625 cells), with the reference point
    accuracy 0.30 and 1.1 x the table's largest params (and latency). Two budgets are scored:
    **distinct cells** (the headline: the first 50 / ``--trials`` distinct cells a study
    evaluated; a sampler that repeats cells runs on, up to twice ``--trials`` trials, until it
    has evaluated that many) and **all trials** (the first 50 / ``--trials`` trials, repeats
    included). ``distinct`` is the number of distinct cells among the first ``--trials``
    trials; ``s/trial`` the wall seconds per trial of the whole run (on the tabular backend,
    nearly all of it is the sampler's own time), measured in the same run.
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
random search's, and the wall time per trial; for (a) the goals of issue 19, met or not.

Part (a) can be split over processes: ``--arms`` picks samplers, ``--out FILE`` appends one
JSON line per run and skips the runs the file already holds (so processes can share a file
and a stopped run resumes), ``--report FILE [FILE ...]`` prints the tables of saved runs
(a run recorded twice counts once; keep the baseline ``random`` in one of the files).

Run: ``python benchmarks/multiobjective.py [--parts abc] [--problems a1,a2,a3] [--seeds 10]
[--first-seed 0] [--trials 100] [--gp-seeds 5] [--arms ...] [--out runs.jsonl] [--ablations]``
(one thread for torch and BLAS; GPSampler's runs dominate the cost: on the shared 2-core
machine at a load average near 20, its three-objective runs took about 16 s a trial, and the
whole of part a with ``--seeds 10 --gp-seeds 5``, split over up to 9 processes with ``--out``,
about 75 minutes).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.samplers import BaseSampler, GPSampler, NSGAIISampler, RandomSampler, TPESampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from neuromosaic_optuna.config import StudyConfig, load_config, load_study_file
from neuromosaic_optuna.models.nasbench201 import EDGES, OPS, NASBench201Table
from neuromosaic_optuna.objective import Objective
from neuromosaic_optuna.pareto import hypervolume
from neuromosaic_optuna.samplers import ParetoSampler, default_population_size, make_sampler

ROOT = Path(__file__).resolve().parent.parent
DIRECTIONS = ["maximize", "minimize"]
SamplerFactory = Callable[[StudyConfig], BaseSampler]
GP_NAME = "GPSampler"
OURS = "ours (gp)"
BASELINE = "random"
#: Optuna's samplers our search is compared with (the issue's goal).
COMPARED = ("GPSampler", "TPE", "NSGA-II", "random")
#: problem -> (dataset, objectives, goal: fraction of the true front's hypervolume or None)
PROBLEMS: dict[str, tuple[str, tuple[str, ...], float | None]] = {
    "a1": ("imagenet16-120", ("accuracy", "params"), 0.97),
    "a2": ("cifar100", ("accuracy", "params"), None),
    "a3": ("imagenet16-120", ("accuracy", "params", "latency"), 0.95),
}


def samplers(ablations: bool) -> dict[str, SamplerFactory]:
    """Name -> factory building a seeded sampler for a config."""
    pop = default_population_size
    table: dict[str, SamplerFactory] = {
        OURS: make_sampler,
        "ours (forest)": lambda c: ParetoSampler(
            seed=c.seed, population_size=pop(c.max_trials), surrogate="forest"),
        GP_NAME: lambda c: GPSampler(seed=c.seed),
        "TPE": lambda c: TPESampler(seed=c.seed),
        "NSGA-II": lambda c: NSGAIISampler(seed=c.seed),
        "random": lambda c: RandomSampler(seed=c.seed),
    }
    if ablations:
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


def _points(trials: list[FrozenTrial], metrics: Sequence[str]) -> np.ndarray:
    return np.array([[t.user_attrs["metrics"][m] for m in metrics] for t in trials],
                    dtype=float).reshape(-1, len(metrics))


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


# --------------------------------------------------------------------------- part a


def _nasbench_config(problem: str, seed: int, trials: int) -> StudyConfig:
    dataset, objectives, _ = PROBLEMS[problem]
    return load_config({"experiment": {
        "name": f"nb201-{problem}", "architecture_type": "nasbench201", "dataset": dataset,
        "objectives": list(objectives), "max_trials": trials,
        "search_space": {edge: list(OPS) for edge in EDGES}}, "defaults": {"seed": seed}})


def _reference(table: NASBench201Table, problem: str) -> tuple[list[str], list[float], float]:
    """Directions, reference point and the true front's hypervolume of a problem."""
    dataset, objectives, _ = PROBLEMS[problem]
    arrays = table.arrays(dataset)
    directions = ["maximize" if m == "accuracy" else "minimize" for m in objectives]
    reference = [0.30 if m == "accuracy" else 1.1 * float(arrays[m].max()) for m in objectives]
    true_hv = hypervolume(table.true_front(dataset, objectives).values, directions, reference)
    return directions, reference, true_hv


def nasbench_run(problem: str, name: str, factory: SamplerFactory, seed: int,
                 trials: int, table: NASBench201Table) -> dict[str, Any]:
    """One study of a problem: its scores as a JSON-able record.

    The study runs until it has evaluated ``trials`` distinct cells, or ``2 * trials`` trials.
    """
    config = _nasbench_config(problem, seed, trials)
    _, objectives, _ = PROBLEMS[problem]
    directions, reference, true_hv = _reference(table, problem)
    cells: set[tuple[str, ...]] = set()

    def stop_at_enough_cells(study: Study, trial: FrozenTrial) -> None:
        if trial.params:
            cells.add(tuple(trial.params[e] for e in EDGES))
        if len(cells) >= trials:
            study.stop()

    study = optuna.create_study(directions=config.directions, sampler=factory(config))
    started = time.perf_counter()
    study.optimize(Objective(config, timing=False), n_trials=2 * trials,
                   callbacks=[stop_at_enough_cells])
    elapsed = time.perf_counter() - started
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    metrics = ["accuracy_mean" if m == "accuracy" else m for m in objectives]
    first_seen: list[FrozenTrial] = []
    keys: set[tuple[str, ...]] = set()
    for t in done:
        key = tuple(t.params[e] for e in EDGES)
        if key not in keys:
            keys.add(key)
            first_seen.append(t)

    def fraction(subset: list[FrozenTrial]) -> float:
        return hypervolume(_points(subset, metrics), directions, reference) / true_hv

    half = trials // 2
    return {"problem": problem, "sampler": name, "seed": seed, "trials": trials,
            "distinct_half": fraction(first_seen[:half]),
            "distinct_full": fraction(first_seen[:trials]),
            "all_half": fraction(done[:half]), "all_full": fraction(done[:trials]),
            "distinct": len({tuple(t.params[e] for e in EDGES) for t in done[:trials]}),
            "seconds_per_trial": elapsed / max(1, len(study.trials)),
            "n_run": len(study.trials)}


def _stat(values: Sequence[float]) -> str:
    q1, median, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return f"{median:.3f} [{q1:.3f}, {q3:.3f}]"


def nasbench_report(records: Sequence[dict[str, Any]]) -> None:
    """Print part (a)'s tables and the issue's goals, met or not, from run records."""
    unique: dict[tuple[str, str, int, int], dict[str, Any]] = {}
    for r in records:
        unique.setdefault(_run_key(r), r)  # a run two processes both made counts once
    for problem in PROBLEMS:
        runs = [r for r in unique.values() if r["problem"] == problem]
        if not runs:
            continue
        dataset, objectives, goal = PROBLEMS[problem]
        trials = runs[0]["trials"]
        by: dict[str, list[dict[str, Any]]] = {}
        for r in runs:
            by.setdefault(r["sampler"], []).append(r)
        print(f"\n({problem}) NAS-Bench-201 {dataset}, {' vs '.join(objectives)}: hypervolume "
              f"as a fraction of the true front's, median [IQR] over seeds; "
              f"distinct = first N distinct cells (headline), all = first N trials")
        print(f"{'sampler':32s} {'seeds':>5s} {f'distinct@{trials}':>22s} {'vs random':>9s} "
              f"{f'distinct@{trials // 2}':>22s} {f'all@{trials}':>22s} "
              f"{f'all@{trials // 2}':>22s} {'distinct':>8s} {'s/trial':>8s}")
        medians = {name: float(np.median([r["distinct_full"] for r in rs]))
                   for name, rs in by.items()}
        base = medians.get(BASELINE)
        for name, rs in by.items():
            ratio = f"{medians[name] / base:9.3f}" if base else f"{'-':>9s}"
            print(f"{name:32s} {len(rs):5d} {_stat([r['distinct_full'] for r in rs]):>22s} "
                  f"{ratio} {_stat([r['distinct_half'] for r in rs]):>22s} "
                  f"{_stat([r['all_full'] for r in rs]):>22s} "
                  f"{_stat([r['all_half'] for r in rs]):>22s} "
                  f"{np.median([r['distinct'] for r in rs]):8.0f} "
                  f"{np.median([r['seconds_per_trial'] for r in rs]):8.4f}", flush=True)
        seconds = {name: float(np.median([r["seconds_per_trial"] for r in rs]))
                   for name, rs in by.items()}
        for ours in (n for n in by if n.startswith("ours (")):
            others = [n for n in COMPARED if n in by]
            ahead = all(medians[ours] > medians[n] for n in others)
            print(f"  goal {ours} ahead of {', '.join(others)} (median distinct@{trials}): "
                  f"{'met' if ahead else 'not met'}")
            if GP_NAME in seconds:
                faster = seconds[ours] < seconds[GP_NAME]
                print(f"  goal {ours} s/trial below {GP_NAME}'s ({seconds[ours]:.4f} vs "
                      f"{seconds[GP_NAME]:.4f}): {'met' if faster else 'not met'}")
            if goal is not None:
                print(f"  goal {ours} >= {goal} of the true front's hypervolume at {trials} "
                      f"trials ({medians[ours]:.3f}): "
                      f"{'met' if medians[ours] >= goal else 'not met'}")


def _run_key(record: dict[str, Any]) -> tuple[str, str, int, int]:
    return record["problem"], record["sampler"], record["seed"], record["trials"]


def _recorded(path: Path) -> set[tuple[str, str, int, int]]:
    """The runs a record file holds (read before each run: processes may share it)."""
    if not path.exists():
        return set()
    return {_run_key(json.loads(line)) for line in path.read_text().splitlines() if line.strip()}


def nasbench(seeds: int, trials: int, ablations: bool, first_seed: int = 0,
             gp_seeds: int = 5, problems: Sequence[str] = tuple(PROBLEMS),
             arms: Sequence[str] | None = None, out: Path | None = None) -> list[dict[str, Any]]:
    """Run part (a): every chosen arm on every chosen problem and seed; return the records
    (appended to ``out`` as JSON lines as they finish)."""
    table = NASBench201Table()
    chosen = {name: f for name, f in samplers(ablations).items()
              if arms is None or name.strip() in arms}
    # Warm-up (not scored): imports, the tables and first-call caches, so that no arm's
    # seconds per trial carry them.
    for problem in problems:
        nasbench_run(problem, OURS, make_sampler, first_seed, 12, table)
    records: list[dict[str, Any]] = []
    for problem in problems:
        for name, factory in chosen.items():
            n = min(seeds, gp_seeds) if name == GP_NAME else seeds
            for seed in range(first_seed, first_seed + n):
                if out is not None and (problem, name, seed, trials) in _recorded(out):
                    continue  # resumed: this run is in the file already
                record = nasbench_run(problem, name, factory, seed, trials, table)
                records.append(record)
                if out is not None:
                    with out.open("a") as stream:
                        stream.write(json.dumps(record) + "\n")
    return records


def digits(seeds: int, trials: int, epochs: int, ablations: bool, gp_seeds: int = 5) -> None:
    import torch

    torch.set_num_threads(1)
    runs: dict[str, list[np.ndarray]] = {}
    seconds: dict[str, list[float]] = {}
    same_as_random = "NSGA-II"
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
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="part a's seeds are first-seed .. first-seed + seeds - 1")
    parser.add_argument("--gp-seeds", type=int, default=5,
                        help=f"seeds of part a that {GP_NAME} runs (about 1 s per trial)")
    parser.add_argument("--problems", default=",".join(PROBLEMS),
                        help="part a's problems, comma-separated: " + ", ".join(PROBLEMS))
    parser.add_argument("--arms", default=None,
                        help="part a's samplers, comma-separated names (default: all)")
    parser.add_argument("--out", type=Path, default=None,
                        help="append part a's run records to this JSON-lines file")
    parser.add_argument("--report", type=Path, nargs="+", default=None,
                        help="only print part a's tables from these record files")
    parser.add_argument("--ablations", action="store_true")
    parser.add_argument("--parts", default="a", help="which of a, b, c to run, e.g. 'abc'")
    parser.add_argument("--digits-seeds", type=int, default=20)
    parser.add_argument("--digits-trials", type=int, default=20)
    parser.add_argument("--digits-epochs", type=int, default=2)
    args = parser.parse_args()
    if args.report:
        nasbench_report([json.loads(line) for path in args.report
                         for line in path.read_text().splitlines() if line.strip()])
        return
    import torch
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # the machine is shared; the GPs' linear algebra is small
    torch.set_num_threads(1)  # GPSampler's torch too
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    started = time.perf_counter()
    if "a" in args.parts:
        problems = [p.strip() for p in args.problems.split(",") if p.strip()]
        unknown = sorted(set(problems) - set(PROBLEMS))
        if unknown:
            parser.error(f"--problems: unknown {', '.join(unknown)}")
        arms = None if args.arms is None else [a.strip() for a in args.arms.split(",")]
        nasbench_report(nasbench(args.seeds, args.trials, args.ablations, args.first_seed,
                                 args.gp_seeds, problems, arms, args.out))
    if "b" in args.parts:
        digits(args.digits_seeds, args.digits_trials, args.digits_epochs, args.ablations,
               args.gp_seeds)
    if "c" in args.parts:
        weighted(args.seeds, args.trials)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
