"""Does transfer speed up the search? Warm starts on NAS-Bench-201, CIFAR-10 -> ImageNet16-120.

For every seed: a source study on CIFAR-10 (TPE, ``--source-trials`` trials), then target
studies on ImageNet16-120 (TPE, ``--target-trials`` trials, same seed) from scratch and
warm-started with ``--top-k`` trials of the source by each selection. Everything runs in
memory through the package's own path (``create_study``, ``warm_start``, ``open_slots``,
``work``, the tabular ``Objective``); a trial's accuracy is one recorded 200-epoch run of the
cell (``seed + trial number`` picks which), as in a real study.

Printed:

* regret after 10/25/50/100 target trials, in percentage points, mean and median over seeds:
  the table's best mean accuracy minus the table mean accuracy of the search's incumbent (the
  trial with the best observed accuracy so far, i.e. what the search would report); then the
  same for the best cell the search evaluated (table means, i.e. the incumbent chosen without
  noise: which cells the search found);
* ``predictor``: :class:`~neuromosaic_optuna.predictor.PerformancePredictor` on the cell
  encoding plus zero-cost proxies (``--proxies``), fitted on the source trials; proxies of
  every network it scores (source cells and its shortlist of unseen cells) come from
  computed the way ``benchmarks/proxies.py`` computes them (weights from seed 0, the
  Fashion-MNIST stand-in batch, ``--proxy-batch`` images: 16 by default, four times cheaper
  than the cache's 64, which is read at 64; one network per cell, shared by all seeds); the
  table is never read for them;
* the same for a bound no source study can beat: the true top ``--top-k`` cells of the whole
  CIFAR-10 table enqueued (perfect source knowledge; the incumbent is still chosen by one
  noisy run per trial, run-to-run std about 0.4 points on ImageNet16-120);
* the same for the target's own true top ``--top-k`` cells enqueued: the noise floor of
  "regret after ``--top-k`` trials" (no transfer of any kind can beat it by much);
* target trials needed to reach the from-scratch search's final result (median [quartiles];
  a search that never reaches it counts as budget + 1) and the ratio of medians
  (warm / scratch), for three readings of "final result": the incumbent's table-mean
  accuracy, the best observed accuracy (one noisy run), and the hypervolume of observed
  accuracy vs params (reference point: accuracy 0, the table's largest model).

Usage: ``python benchmarks/warmstart.py [--seeds 40] [--first-seed 100] [--plot FILE.html]
[--save RUN.npz]``; ``--pool RUN.npz ...`` prints the regret tables of saved runs over
disjoint seeds pooled (several processes share a loaded machine that way).
Seeds 0-39 were used while choosing the method; the default report uses seeds from 100 on.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
import torch

from neuromosaic_optuna.config import StudyConfig, load_study_file
from neuromosaic_optuna.models import BuildContext
from neuromosaic_optuna.models.nasbench201 import NASBench201Table, to_arch_str
from neuromosaic_optuna.objective import Objective
from neuromosaic_optuna.plots import plot_search_progress, search_progress
from neuromosaic_optuna.proxies import score_architecture, stand_in_batch
from neuromosaic_optuna.study import create_study, open_slots, run_study, work
from neuromosaic_optuna.transfer import source_config
from neuromosaic_optuna.warmstart import warm_start

STUDY = Path(__file__).resolve().parent.parent / "studies" / "transfer_cifar10_to_imagenet.toml"
CACHE = Path(__file__).resolve().parent / "data" / "nb201_proxies.csv"
CHECKPOINTS = (10, 25, 50, 100)
VARIANTS = {  # label -> selection (None: from scratch; "oracle": see _target)
    "from scratch": None,
    "plain enqueue (best)": "best",
    "diverse": "diverse",
    "surrogate (default)": "surrogate",
    "predictor": "predictor",
    "bound: true C10 top-k": "oracle",
    "bound: true I16 top-k": "target_oracle",
}


class _Proxies:
    """``params -> {proxy: score}`` of NAS-Bench-201 cells as ``benchmarks/proxies.py``
    computes them (10-class network with weights from seed 0, the Fashion-MNIST stand-in
    batch drawn with seed 0, here of ``batch`` images), each cell once; at batch 64 the
    cache of ``benchmarks/proxies.py`` is read first."""

    def __init__(self, names: tuple[str, ...], batch: int) -> None:
        self.names = names
        self.inputs, self.targets = stand_in_batch(batch, 0)
        self.cached: dict[str, dict[str, float]] = {}
        if batch == 64:
            with CACHE.open(newline="") as handle:
                for row in csv.DictReader(handle):
                    if row["seed"] == "0" and row["batch"] == "64":
                        self.cached[row["arch_str"]] = {n: float(row[n]) for n in names}
        self.computed, self.seconds = 0, 0.0

    def __call__(self, params: dict[str, object]) -> dict[str, float]:
        key = to_arch_str(params)
        if key not in self.cached:
            start = time.perf_counter()
            self.cached[key] = score_architecture(
                "nasbench201_net", params, BuildContext(num_classes=10, resolution=32),
                self.inputs, self.targets, seed=0, names=self.names)
            self.seconds += time.perf_counter() - start
            self.computed += 1
        return self.cached[key]


def _target(config: StudyConfig, objective: Objective, source: optuna.Study | None,
            selection: str | None, top_k: int, proxies: _Proxies | None = None
            ) -> optuna.Study:
    study = create_study(config, storage=None)
    if selection in ("oracle", "target_oracle"):
        # what perfect knowledge of the whole CIFAR-10 (or even the target's) table gives
        table = NASBench201Table()
        dataset = "cifar10" if selection == "oracle" else "imagenet16-120"
        order = np.argsort(-table.arrays(dataset)["accuracy_mean"], kind="stable")
        for index in order[:top_k]:
            study.enqueue_trial(table.cell(int(index)))
    elif source is not None and selection is not None:
        warm_start(study, source, space=objective.space, top_k=top_k, selection=selection,
                   seed=config.seed, proxy_fn=proxies if selection == "predictor" else None)
    open_slots(study, config.max_trials)
    work(study, objective)
    return study


def _incumbent_means(study: optuna.Study) -> np.ndarray:
    """Table-mean accuracy of the incumbent (best observed accuracy so far) per trial."""
    best, found, out = -np.inf, np.nan, []
    for t in study.trials:
        if t.values is not None and t.values[0] > best:
            best, found = t.values[0], t.user_attrs["metrics"]["accuracy_mean"]
        out.append(found)
    return np.asarray(out)


def _found_means(study: optuna.Study) -> np.ndarray:
    """Best table-mean accuracy among the trials run so far (which cells the search found)."""
    means = [t.user_attrs["metrics"]["accuracy_mean"] if t.values is not None else -np.inf
             for t in study.trials]
    return np.maximum.accumulate(np.asarray(means, dtype=float))


def _print_regret(title: str, best: float, found: dict[str, np.ndarray]) -> None:
    """One regret table: mean over seeds / median, after each checkpoint."""
    print(f"\n{title}; mean / median over seeds, after n target trials")
    print(f"{'':24s}" + "".join(f"{f'n={k}':>13s}" for k in CHECKPOINTS))
    for label, curves in found.items():
        cells = [100 * (best - curves[:, k - 1]) for k in CHECKPOINTS if k <= curves.shape[1]]
        print(f"{label:24s}" + "".join(f"{np.mean(c):7.2f} /{np.median(c):4.2f}"
                                       for c in cells))


_INCUMBENT_TITLE = ("regret (pp) of the incumbent (the cell the search reports: best observed "
                    "accuracy so far), table means")
_FOUND_TITLE = ("regret (pp) of the best cell evaluated so far, table means (as if the "
                "incumbent were chosen without noise)")


def _print_pooled(paths: list[Path], best: float) -> None:
    """The regret tables of runs saved with ``--save`` (disjoint seeds), pooled."""
    runs = [np.load(path) for path in paths]
    seeds = np.concatenate([run["seeds"] for run in runs])
    if len(set(seeds.tolist())) != len(seeds):
        raise SystemExit("--pool: the saved runs share seeds")
    print(f"pooled {len(paths)} saved runs: seeds {', '.join(map(str, sorted(seeds)))} "
          f"({len(seeds)})")
    for kind, title in (("incumbent", _INCUMBENT_TITLE), ("found", _FOUND_TITLE)):
        labels = [k.split("|", 1)[1] for k in runs[0].files if k.startswith(kind + "|")]
        _print_regret(title, best, {label: np.vstack([run[f"{kind}|{label}"] for run in runs])
                                    for label in labels})


def _need(curve: np.ndarray, goal: float, budget: int) -> int:
    reached = np.flatnonzero(curve >= goal - 1e-12)
    return int(reached[0]) + 1 if reached.size else budget + 1


def _fmt_need(values: list[int]) -> str:
    q1, q2, q3 = np.percentile(values, [25, 50, 75])
    return f"{q2:5.1f} [{q1:5.1f}, {q3:5.1f}]"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--first-seed", type=int, default=100)
    parser.add_argument("--source-trials", type=int, default=50)
    parser.add_argument("--target-trials", type=int, default=100)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--proxies", default="jacob_cov,naswot",
                        help="proxies the predictor arm uses, comma-separated")
    parser.add_argument("--proxy-batch", type=int, default=16,
                        help="stand-in images the proxies see (64: read the proxies cache)")
    parser.add_argument("--plot", type=Path, help="write the progress figure (HTML) here")
    parser.add_argument("--save", type=Path, help="also save the per-seed regret curves "
                        "(.npz), so runs over disjoint seeds can be pooled with --pool")
    parser.add_argument("--pool", type=Path, nargs="+", help="print the regret tables of "
                        "saved runs pooled (no search is run)")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    torch.set_num_threads(1)  # proxies: one thread (idle threads spin on a loaded machine)

    table = NASBench201Table()
    best = table.best_mean_accuracy("imagenet")
    if args.pool:
        _print_pooled(args.pool, best)
        return
    max_params = float(table.arrays("imagenet")["params"].max())
    base = load_study_file(STUDY, overrides={"max_trials": args.target_trials})
    budget = args.target_trials
    studies: dict[str, list[optuna.Study]] = {label: [] for label in VARIANTS}
    proxies = _Proxies(tuple(args.proxies.split(",")), args.proxy_batch)
    start = time.perf_counter()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        config = base.with_overrides(seed=seed)
        src_config = source_config(config).with_overrides(max_trials=args.source_trials)
        source = run_study(src_config, objective=Objective(src_config))
        objective = Objective(config)
        for label, selection in VARIANTS.items():
            studies[label].append(_target(config, objective, source, selection, args.top_k,
                                          proxies))
        print(f"seed {seed} done ({time.perf_counter() - start:.0f} s)", file=sys.stderr,
              flush=True)
    elapsed = time.perf_counter() - start

    print(f"NAS-Bench-201 CIFAR-10 -> ImageNet16-120, TPE, seeds {args.first_seed}.."
          f"{args.first_seed + args.seeds - 1} ({args.seeds}); source {args.source_trials} "
          f"CIFAR-10 trials, top {args.top_k} enqueued; target {budget} trials; best mean "
          f"accuracy in the table {100 * best:.2f}% ({elapsed:.0f} s)")
    print(f"predictor: proxies {', '.join(proxies.names)} on {args.proxy_batch} stand-in "
          f"images; {proxies.computed} networks scored ({proxies.seconds:.0f} s)"
          + (f", the others read from {CACHE.name}" if args.proxy_batch == 64 else ""))
    incumbents = {label: np.vstack([_incumbent_means(s) for s in group])
                  for label, group in studies.items()}
    found = {label: np.vstack([_found_means(s) for s in group])
             for label, group in studies.items()}
    if args.save is not None:
        np.savez(args.save, seeds=np.arange(args.first_seed, args.first_seed + args.seeds),
                 **{f"incumbent|{k}": v for k, v in incumbents.items()},
                 **{f"found|{k}": v for k, v in found.items()})
    _print_regret(_INCUMBENT_TITLE, best, incumbents)
    _print_regret(_FOUND_TITLE, best, found)

    observed = search_progress(studies, "accuracy", n_trials=budget)
    hv = search_progress(studies, "hypervolume", objectives=("accuracy", "params"),
                         reference=(0.0, max_params), n_trials=budget)
    readings: dict[str, Callable[[str], np.ndarray]] = {
        "incumbent's table-mean accuracy": lambda label: incumbents[label],
        "best observed accuracy": lambda label: observed.curves[label].runs,
        "hypervolume (accuracy vs params)": lambda label: hv.curves[label].runs,
    }
    for reading, curves_of in readings.items():
        print(f"\ntarget trials to reach from-scratch's final {reading}: median [q1, q3], "
              "ratio of medians")
        scratch = curves_of("from scratch")
        goals = scratch[:, -1]
        scratch_need = [_need(c, g, budget) for c, g in zip(scratch, goals, strict=True)]
        for label in VARIANTS:
            need = [_need(c, g, budget) for c, g in zip(curves_of(label), goals, strict=True)]
            ratio = float(np.median(need) / np.median(scratch_need))
            print(f"  {label:24s} {_fmt_need(need)}   ratio {ratio:5.2f}")
    if args.plot is not None:
        plot_search_progress({"From Scratch": studies["from scratch"],
                              "With Transfer": studies["surrogate (default)"]},
                             "accuracy").write_html(args.plot)
        print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    main()
