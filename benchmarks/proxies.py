"""Zero-cost proxies against NAS-Bench-201's accuracies, next to the parameter count.

For a seeded sample of NAS-Bench-201 cells (``--cells``, 1,000; the sample is drawn once from
``--seed`` and computed in that order, so any prefix is itself a uniform random sample), each
cell is built as a real network (``nasbench201_net``, 10-class head, weights from
``torch.manual_seed(seed)``) and scored by every proxy of :mod:`neuromosaic_optuna.proxies`
on one fixed batch. The scores go to ``benchmarks/data/nb201_proxies.csv``, one row per cell,
appended as each cell finishes; a rerun skips the cells already there (``--compute 0`` only
prints the table from the cache).

The stand-in batch (no CIFAR or ImageNet16 images exist offline; the one a tabular study's
``proxies`` use too, :func:`neuromosaic_optuna.proxies.stand_in_batch`): ``--batch`` (64)
Fashion-MNIST *training* images drawn with ``--seed`` from
``/usr/share/datasets/fashion-mnist/train-*-idx*-ubyte.gz``, resized from 28 to 32 pixels
(bilinear), repeated to 3 channels and normalised with
the dataset's mean 0.2860 and standard deviation 0.3530; targets are their 10 labels. The
same batch and weights serve all three datasets (the networks of CIFAR-100 and ImageNet16-120
differ only in the classifier head). Published figures (CIFAR images, batch 64 or 128) are
a guide, not a target.

Printed: per proxy, Spearman ρ and Kendall τ against the table's run-averaged validation
accuracy on CIFAR-10 (valid split), CIFAR-100 and ImageNet16-120, with params' as the
baseline; then combinations fitted and scored out of sample (5-fold cross-validation,
out-of-fold predictions ranked against the truth): ridge regression on standardised,
log-scaled proxies, and a random forest on the same features. Non-finite scores
(``jacob_cov`` of a network whose output ignores its input) rank lowest.

Run: ``nice -n 19 python benchmarks/proxies.py [--cells 1000] [--batch 64] [--seed 0]
[--compute 1] [--reverse 0]`` (a second process with ``--reverse 1`` shares the work). Cost
measured on the 2-core machine (one torch thread, others' jobs running): see the printed
seconds per cell.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch

from neuromosaic_optuna.models import BuildContext
from neuromosaic_optuna.models.nasbench201 import NASBench201Table, to_arch_str
from neuromosaic_optuna.proxies import (
    PROXIES,
    proxy_rank_correlations,
    score_architecture,
    stand_in_batch,
)

CACHE = Path(__file__).parent / "data" / "nb201_proxies.csv"
DATASETS = (("cifar10", "CIFAR-10"), ("cifar100", "CIFAR-100"),
            ("imagenet16-120", "ImageNet16-120"))
_COLUMNS = ("index", "arch_str", *PROXIES, "seconds", "batch", "seed")


def sample_cells(n: int, seed: int) -> list[int]:
    """The seeded sample of cell indices, in computation order."""
    return np.random.default_rng(seed).permutation(15625)[:n].tolist()


def _read_cache(batch: int, seed: int) -> dict[int, dict[str, float]]:
    """Cached rows computed with this batch size and seed (other rows are kept, unused)."""
    if not CACHE.exists():
        return {}
    with CACHE.open(newline="") as handle:
        return {int(row["index"]): {k: float(row[k]) for k in (*PROXIES, "seconds")}
                for row in csv.DictReader(handle)
                if int(row["batch"]) == batch and int(row["seed"]) == seed}


def compute(cells: list[int], *, batch: int, seed: int, reverse: bool = False) -> None:
    """Compute the proxies of the cells not cached yet, appending one row per cell.

    ``reverse`` works from the end of the sample, so a second process can share the work
    (rows are appended whole; cached cells at start are skipped)."""
    done = _read_cache(batch, seed)
    todo = [i for i in (cells[::-1] if reverse else cells) if i not in done]
    print(f"{len(cells) - len(todo)} of {len(cells)} cells cached; computing {len(todo)}",
          flush=True)
    if not todo:
        return
    torch.set_num_threads(1)
    x, y = stand_in_batch(batch, seed)
    ctx = BuildContext(num_classes=10, resolution=32)
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    new_file = not CACHE.exists()
    start = time.perf_counter()
    with CACHE.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if new_file:
            writer.writerow(_COLUMNS)
        for n, index in enumerate(todo, 1):
            cell = NASBench201Table.cell(index)
            t0 = time.perf_counter()
            scores = score_architecture("nasbench201_net", cell, ctx, x, y, seed=seed)
            seconds = time.perf_counter() - t0
            writer.writerow([index, to_arch_str(cell), *(repr(scores[p]) for p in PROXIES),
                             f"{seconds:.3f}", batch, seed])
            handle.flush()
            if n % 25 == 0 or n == len(todo):
                elapsed = time.perf_counter() - start
                print(f"{n}/{len(todo)} cells, {elapsed / n:.2f} s per cell", flush=True)


def _features(rows: list[dict[str, float]]) -> np.ndarray:
    """Log-scaled proxies (signed log for the ones that can be negative); nan -> column min."""
    columns = []
    for name in PROXIES:
        values = np.array([row[name] for row in rows], dtype=float)
        values = np.sign(values) * np.log1p(np.abs(values))
        finite = np.isfinite(values)
        low = values[finite].min() - 1.0 if finite.any() else 0.0
        columns.append(np.where(finite, values, low))
    return np.column_stack(columns)


def report(cells: list[int], *, batch: int, seed: int) -> None:
    """Print the correlation table for the cached cells of the sample."""
    from scipy.stats import kendalltau, spearmanr
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cache = _read_cache(batch, seed)
    indices = [i for i in cells if i in cache]
    if len(indices) < 20:
        print(f"only {len(indices)} cells cached; need at least 20 for a table")
        return
    rows = [cache[i] for i in indices]
    seconds = np.array([row["seconds"] for row in rows])
    print(f"\n{len(indices)} NAS-Bench-201 cells (seed {seed}, batch {batch}); proxies cost "
          f"{np.median(seconds):.2f} s per cell (median; mean {seconds.mean():.2f} s)")
    table = NASBench201Table()
    truths = {name: table.arrays(name)["accuracy_mean"][indices] for name, _ in DATASETS}
    scores = {name: [row[name] for row in rows] for name in PROXIES}
    features = _features(rows)
    folds = KFold(5, shuffle=True, random_state=seed)
    models = {
        "ridge(all proxies)": make_pipeline(StandardScaler(),
                                            RidgeCV(alphas=np.logspace(-3, 3, 13))),
        "forest(all proxies)": RandomForestRegressor(n_estimators=200, min_samples_leaf=3,
                                                     random_state=seed, n_jobs=1),
    }
    combined: dict[str, dict[str, tuple[float, float]]] = {}
    for label, truth in truths.items():
        for model_name, model in models.items():
            predicted = cross_val_predict(model, features, truth, cv=folds)
            combined.setdefault(model_name, {})[label] = (
                float(spearmanr(predicted, truth).statistic),
                float(kendalltau(predicted, truth).statistic))
    single = {label: proxy_rank_correlations(scores, truth) for label, truth in truths.items()}
    header = f"{'proxy':<28}" + "".join(f"{title + ' rho':>19}{'tau':>7}" for _, title in DATASETS)
    print(header)
    print("-" * len(header))
    for name in PROXIES:
        line = f"{name:<28}"
        for label, _ in DATASETS:
            rho, tau = single[label][name]
            line += f"{rho:>19.3f}{tau:>7.3f}"
        print(line + ("   <- baseline" if name == "params" else ""))
    for model_name, by_dataset in combined.items():
        line = f"{model_name + ' 5-fold':<28}"
        for label, _ in DATASETS:
            rho, tau = by_dataset[label]
            line += f"{rho:>19.3f}{tau:>7.3f}"
        print(line)
    print("\n(rho: Spearman, tau: Kendall, against the run-averaged 200-epoch validation "
          "accuracy; combinations scored on out-of-fold predictions)")


def compare_predictors(cells: list[int], *, batch: int, seed: int, train_size: int,
                       repeats: int) -> None:
    """Rank correlation on held-out cells of predictors trained on ``train_size`` cells."""
    from scipy.stats import kendalltau, spearmanr

    from neuromosaic_optuna.predictor import FAMILIES, PerformancePredictor, architecture_features
    from neuromosaic_optuna.space import SearchSpace

    cache = _read_cache(batch, seed)
    indices = np.array([i for i in cells if i in cache])
    if len(indices) < train_size + 50:
        print(f"\npredictors: only {len(indices)} cells cached; need {train_size + 50}")
        return
    table = NASBench201Table()
    space = SearchSpace(table.default_search_space)
    cell_params = [NASBench201Table.cell(int(i)) for i in indices]
    proxy_names = [name for name in PROXIES if name not in ("params", "flops")]
    rows = [cache[int(i)] for i in indices]
    full = architecture_features(cell_params, space.distributions, rows, [*proxy_names, "params"])
    width = len(full[0]) - len(proxy_names) - 1
    feature_sets = {"encoding": full[:, :width], "proxies": full[:, width:],
                    "encoding+proxies": full}
    configs = [(family, "encoding+proxies") for family in FAMILIES]
    configs += [("forest", "encoding"), ("forest", "proxies")]
    print(f"\nPredictors trained on {train_size} cells, ranked on the other "
          f"{len(indices) - train_size} (median over {repeats} draws; seconds: fit + predict)")
    header = f"{'family / features':<34}" + "".join(
        f"{title + ' rho':>19}{'tau':>7}" for _, title in DATASETS) + f"{'seconds':>9}"
    print(header)
    print("-" * len(header))
    truths = {name: table.arrays(name)["accuracy_mean"][indices] for name, _ in DATASETS}
    for family, feature_name in configs:
        x = feature_sets[feature_name]
        line = f"{family + ' / ' + feature_name:<34}"
        seconds: list[float] = []
        for label, _ in DATASETS:
            y = truths[label]
            rhos, taus = [], []
            for repeat in range(repeats):
                order = np.random.default_rng([seed, repeat]).permutation(len(indices))
                train, test = order[:train_size], order[train_size:]
                t0 = time.perf_counter()
                model = PerformancePredictor(family=family, seed=repeat).fit(x[train], y[train])
                mean, _ = model.predict(x[test])
                seconds.append(time.perf_counter() - t0)
                rhos.append(spearmanr(mean, y[test]).statistic)
                taus.append(kendalltau(mean, y[test]).statistic)
            line += f"{np.median(rhos):>19.3f}{np.median(taus):>7.3f}"
        print(line + f"{np.median(seconds):>9.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compute", type=int, default=1, help="0: only print from the cache")
    parser.add_argument("--reverse", type=int, default=0,
                        help="1: compute from the end of the sample (a second process)")
    parser.add_argument("--train-size", type=int, default=100,
                        help="cells a predictor is trained on (0: skip the predictors)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cells = sample_cells(args.cells, args.seed)
    if args.compute:
        compute(cells, batch=args.batch, seed=args.seed, reverse=bool(args.reverse))
    report(cells, batch=args.batch, seed=args.seed)
    if args.train_size:
        compare_predictors(cells, batch=args.batch, seed=args.seed, train_size=args.train_size,
                           repeats=args.repeats)


if __name__ == "__main__":
    main()
