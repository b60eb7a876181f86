"""Pareto decision layer: ranks, fronts, crowding, hypervolume, knee and operating points.

Pure math on arrays and on :class:`optuna.Study` objects, below every module that ranks
trials (samplers, pruners, plots, reports). No torch.

Conventions:

* ``values`` is an ``(n, m)`` array, one row per point and one column per objective;
  ``directions`` lists ``"maximize"``/``"minimize"`` (or :class:`optuna.study.StudyDirection`)
  per column. Internally every objective is minimized (maximized columns are negated).
* A point is *feasible* when all of its constraint values are ``<= 0`` (Optuna 5's
  ``Trial.set_constraint`` convention); its *violation* is the sum of its positive
  constraint values. Trials without constraints are feasible.
* Ranking uses Deb's constrained domination: a feasible point dominates every infeasible one;
  of two infeasible points the one with the smaller total violation dominates; with equal
  violation (or when only a feasibility mask is given) Pareto dominance decides. Equal points
  share a rank.
* Study functions read objective values from ``trial.values`` and other metrics from the user
  attribute ``metrics`` (a dict metric name -> float), and only use COMPLETE trials.

Optuna's private ``_fast_non_domination_rank`` and ``compute_hypervolume`` do the heavy
lifting, reached through :mod:`neuromosaic_optuna._compat` (which fails loudly when an Optuna
release moved them); the numpy versions here are checked against them in the tests.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import optuna
from numpy.typing import ArrayLike
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from neuromosaic_optuna import _compat
from neuromosaic_optuna.exceptions import ConfigError
from neuromosaic_optuna.metrics import METRICS
from neuromosaic_optuna.record import is_feasible, metric_names, metric_value
from neuromosaic_optuna.record import violation as trial_violation
from neuromosaic_optuna.units import parse_metric_text

# Optuna's private implementations (guarded in _compat: a changed Optuna fails loudly at first
# use); tests set these to None to check the numpy fallbacks give the same results.
_optuna_rank: Callable[[np.ndarray], np.ndarray] | None = _compat.fast_non_domination_rank
_optuna_hypervolume: Callable[[np.ndarray, np.ndarray], float] | None = (
    _compat.compute_hypervolume)

__all__ = [
    "OperatingPoint",
    "ParetoInfo",
    "crowding_distance",
    "hypervolume",
    "hypervolume_history",
    "hypervolume_history_of",
    "knee_point",
    "operating_point",
    "pareto_front_mask",
    "pareto_info",
    "pareto_ranks",
    "parse_operating_point",
    "reference_point",
]

Direction = str | StudyDirection
_OPTION = "--operating-point"
_TIE = 1e-9  # ties in normalized space (knee scores)

# --------------------------------------------------------------------------- inputs


def _signs(directions: Sequence[Direction], m: int) -> np.ndarray:
    signs = []
    for d in directions:
        name = d.name.lower() if isinstance(d, StudyDirection) else str(d).lower()
        if name not in ("minimize", "maximize"):
            raise ValueError(f"directions: expected 'minimize' or 'maximize', got {d!r}")
        signs.append(-1.0 if name == "maximize" else 1.0)
    if len(signs) != m:
        raise ValueError(f"directions: got {len(signs)} directions for {m} objectives")
    return np.asarray(signs)


def _as_values(values: ArrayLike,
               directions: Sequence[Direction]) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1 and (arr.size == 0 or len(directions) == 1):
        arr = arr.reshape(-1, len(directions))
    if arr.ndim != 2:
        raise ValueError(f"values: expected an (n, m) array, got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError("values: must not contain NaN")
    return arr


def _loss(values: ArrayLike,
          directions: Sequence[Direction]) -> np.ndarray:
    arr = _as_values(values, directions)
    return arr * _signs(directions, arr.shape[1])


def _ref_loss(reference: ArrayLike, directions: Sequence[Direction],
              m: int) -> np.ndarray:
    ref = np.asarray(reference, dtype=float).reshape(-1)
    if ref.size != m:
        raise ValueError(f"reference_point: expected {m} values, got {ref.size}")
    if not np.isfinite(ref).all():
        raise ValueError(f"reference_point: must be finite, got {ref.tolist()}")
    return ref * _signs(directions, m)


def _feasibility(n: int, feasible: ArrayLike | None,
                 violation: ArrayLike | None) -> tuple[np.ndarray, np.ndarray]:
    viol = None if violation is None else np.asarray(violation, dtype=float).reshape(-1)
    if viol is not None and viol.size != n:
        raise ValueError(f"violation: expected {n} values, got {viol.size}")
    if feasible is not None:
        feas = np.asarray(feasible, dtype=bool).reshape(-1)
        if feas.size != n:
            raise ValueError(f"feasible: expected {n} values, got {feas.size}")
    else:
        feas = np.ones(n, dtype=bool) if viol is None else viol <= 0
    return feas, np.zeros(n) if viol is None else viol


# --------------------------------------------------------------------------- ranks


def _peel_ranks(loss: np.ndarray) -> np.ndarray:
    """Non-domination ranks by peeling fronts off the pairwise domination matrix."""
    n = loss.shape[0]
    if n == 0:
        return np.zeros(0, dtype=int)
    unique, inverse = np.unique(loss, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    k = unique.shape[0]
    no_worse = np.ones((k, k), dtype=bool)  # [i, j]: i is <= j in every objective
    better = np.zeros((k, k), dtype=bool)  # [i, j]: i is < j in some objective
    for col in unique.T:
        no_worse &= col[:, None] <= col[None, :]
        better |= col[:, None] < col[None, :]
    dominates = no_worse & better
    n_dominators = dominates.sum(axis=0)
    ranks = np.full(k, -1, dtype=int)
    rank = 0
    while (front := (n_dominators == 0) & (ranks < 0)).any():
        ranks[front] = rank
        n_dominators = n_dominators - dominates[front].sum(axis=0)
        rank += 1
    return ranks[inverse]


def _nondomination_ranks(loss: np.ndarray) -> np.ndarray:
    if loss.shape[0] == 0:
        return np.zeros(0, dtype=int)
    if _optuna_rank is not None:
        return np.asarray(_optuna_rank(loss), dtype=int).reshape(-1)
    return _peel_ranks(loss)


def pareto_ranks(values: ArrayLike, directions: Sequence[Direction],
                 *, feasible: ArrayLike | None = None,
                 violation: ArrayLike | None = None) -> np.ndarray:
    """Non-dominated sorting ranks under constrained domination (0 is the front).

    Feasible points are sorted first. Infeasible points follow, grouped by total violation
    (smaller first); within a group, Pareto dominance decides. Equal points share a rank.

    Args:
        values: ``(n, m)`` objective values.
        directions: ``"maximize"``/``"minimize"`` per objective.
        feasible: Feasibility per point; defaults to ``violation <= 0``, or all feasible.
        violation: Total constraint violation per point (sum of positive constraint values);
            only orders infeasible points. Without it, all infeasible points form one group.

    Returns:
        An ``int`` array of ranks, ``0`` for the (feasible) Pareto front.

    Raises:
        ValueError: If shapes disagree, a direction is unknown or values contain NaN.

    Example:
        >>> pareto_ranks([[2, 5], [1, 2], [2, 5], [1, 6], [3, 9]], ["maximize", "minimize"],
        ...              feasible=[True, True, True, True, False]).tolist()
        [0, 0, 0, 1, 2]
    """
    loss = _loss(values, directions)
    n = loss.shape[0]
    feas, viol = _feasibility(n, feasible, violation)
    ranks = np.zeros(n, dtype=int)
    ranks[feas] = _nondomination_ranks(loss[feas])
    offset = int(ranks[feas].max(initial=-1)) + 1
    infeasible = np.flatnonzero(~feas)
    if infeasible.size:
        order = infeasible[np.argsort(viol[infeasible], kind="stable")]
        _, starts = np.unique(viol[order], return_index=True)
        for group in np.split(order, starts[1:]):
            group_ranks = (_nondomination_ranks(loss[group]) if group.size > 1
                           else np.zeros(1, dtype=int))
            ranks[group] = offset + group_ranks
            offset += int(group_ranks.max()) + 1
    return ranks


def pareto_front_mask(values: ArrayLike,
                      directions: Sequence[Direction], *,
                      feasible: ArrayLike | None = None) -> np.ndarray:
    """Mask of the feasible, non-dominated points (empty when nothing is feasible).

    Args:
        values: ``(n, m)`` objective values.
        directions: ``"maximize"``/``"minimize"`` per objective.
        feasible: Feasibility per point (default: all feasible).

    Returns:
        A boolean array; duplicates of a front point are on the front too.

    Example:
        >>> pareto_front_mask([[1, 1], [2, 0], [2, 2]], ["minimize", "minimize"]).tolist()
        [True, True, False]
    """
    loss = _loss(values, directions)
    feas, _ = _feasibility(loss.shape[0], feasible, None)
    mask = np.zeros(loss.shape[0], dtype=bool)
    mask[feas] = _nondomination_ranks(loss[feas]) == 0
    return mask


def crowding_distance(values: ArrayLike) -> np.ndarray:
    """NSGA-II crowding distance of each point (directions do not matter).

    Per objective, points are sorted (stable); the first and the last get ``inf``, the
    others the gap between their two neighbours divided by the objective's range. An
    objective whose values are all equal adds nothing (as in Optuna's NSGA-II).

    Args:
        values: ``(n, m)`` finite values, usually one front.

    Returns:
        The summed distance per point.

    Raises:
        ValueError: If values are not finite.

    Example:
        >>> crowding_distance([[0, 4], [1, 2], [3, 1], [4, 0]]).tolist()
        [inf, 1.5, 1.25, inf]
    """
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if not np.isfinite(arr).all():
        raise ValueError("values: crowding distance needs finite values")
    n = arr.shape[0]
    distance = np.zeros(n)
    for col in arr.T:
        order = np.argsort(col, kind="stable")
        ordered = col[order]
        width = ordered[-1] - ordered[0] if n else 0.0
        if not width > 0:
            continue
        gaps = np.full(n, np.inf)
        gaps[1:-1] = (ordered[2:] - ordered[:-2]) / width
        distance[order] += gaps
    return distance


# --------------------------------------------------------------------------- hypervolume


class _Staircase:
    """Non-dominated 2-D points (minimization) sorted by x, and the area they dominate."""

    def __init__(self, ref_x: float, ref_y: float) -> None:
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.ref_x = ref_x
        self.ref_y = ref_y
        self.area = 0.0

    def insert(self, x: float, y: float) -> float:
        """Add a point strictly inside the reference box; return the area it adds."""
        xs, ys = self.xs, self.ys
        i = bisect_left(xs, x)
        if (i > 0 and ys[i - 1] <= y) or (i < len(xs) and xs[i] == x and ys[i] <= y):
            return 0.0
        upper = ys[i - 1] if i > 0 else self.ref_y
        start, j, added = x, i, 0.0
        while j < len(xs) and ys[j] >= y:  # points (weakly) dominated by the new one
            added += (xs[j] - start) * (upper - y)
            start, upper = xs[j], ys[j]
            j += 1
        end = xs[j] if j < len(xs) else self.ref_x
        added += (end - start) * (upper - y)
        xs[i:j] = [x]
        ys[i:j] = [y]
        self.area += added
        return added


def _hv_2d(points: np.ndarray, ref: np.ndarray) -> float:
    order = np.lexsort((points[:, 1], points[:, 0]))
    x = points[order, 0]
    lowest_y = np.minimum.accumulate(points[order, 1])
    widths = np.append(x[1:], ref[0]) - x
    return float(widths @ (ref[1] - lowest_y))


def _hv_3d(points: np.ndarray, ref: np.ndarray) -> float:
    order = np.argsort(points[:, 2], kind="stable")
    p = points[order]
    thickness = np.append(p[1:, 2], ref[2]) - p[:, 2]
    stairs = _Staircase(float(ref[0]), float(ref[1]))
    volume = 0.0
    for x, y, dz in zip(p[:, 0].tolist(), p[:, 1].tolist(), thickness.tolist(), strict=True):
        stairs.insert(x, y)
        volume += stairs.area * dz
    return volume


def _hv_slices(points: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume in any dimension by slicing along the last objective."""
    if ref.size <= 3:
        return _hv_inside(points, ref)
    points = points[_peel_ranks(points) == 0]
    order = np.argsort(points[:, -1], kind="stable")
    p = points[order]
    thickness = np.append(p[1:, -1], ref[-1]) - p[:, -1]
    return float(sum(_hv_slices(p[: k + 1, :-1], ref[:-1]) * dz
                     for k, dz in enumerate(thickness) if dz > 0))


def _hv_inside(points: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume of points that are all strictly better than ``ref`` (minimization)."""
    if points.shape[0] == 0:
        return 0.0
    if not np.isfinite(points).all():
        return math.inf  # a coordinate of -inf: an unbounded box
    m = ref.size
    if m == 1:
        return float(ref[0] - points[:, 0].min())
    if m == 2:
        return _hv_2d(points, ref)
    if m == 3:
        return _hv_3d(points, ref)
    if _optuna_hypervolume is not None:
        return float(_optuna_hypervolume(points, ref))
    return _hv_slices(points, ref)


def _hv_loss(loss: np.ndarray, ref: np.ndarray) -> float:
    return _hv_inside(loss[np.all(loss < ref, axis=1)], ref)


def hypervolume(values: ArrayLike, directions: Sequence[Direction],
                reference_point: ArrayLike) -> float:
    """Exact hypervolume dominated by ``values`` and bounded by ``reference_point``.

    Points that are not strictly better than the reference point in every objective add
    nothing. Algorithms: 2 objectives, a sort-and-sweep in O(n log n); 3 objectives, a sweep
    along the third objective over a 2-D staircase (HV3D-style, about n log n for typical
    fronts); more objectives, Optuna's WFG implementation (or an exact slicing recursion).

    Args:
        values: ``(n, m)`` objective values.
        directions: ``"maximize"``/``"minimize"`` per objective.
        reference_point: ``m`` finite values in the objectives' own units and directions.

    Returns:
        The hypervolume (``inf`` if a contributing point is infinitely good).

    Raises:
        ValueError: On shape mismatches, NaN values or a non-finite reference point.

    Example:
        >>> hypervolume([[0.9, 2.0], [0.5, 1.0]], ["maximize", "minimize"], [0.0, 4.0])
        2.3
    """
    loss = _loss(values, directions)
    return _hv_loss(loss, _ref_loss(reference_point, directions, loss.shape[1]))


def hypervolume_history(values: ArrayLike,
                        directions: Sequence[Direction],
                        reference_point: ArrayLike,
                        feasible: ArrayLike | None = None) -> np.ndarray:
    """Hypervolume of the feasible points among the first ``k``, for every ``k``.

    Incremental: each new point adds its exclusive contribution (a staircase update for two
    objectives; box volume minus the hypervolume of the front clipped to the box otherwise),
    so dominated points cost one comparison with the current front.

    Args:
        values: ``(n, m)`` objective values in trial order.
        directions: ``"maximize"``/``"minimize"`` per objective.
        reference_point: ``m`` finite values in the objectives' own units.
        feasible: Feasibility per point (default: all feasible).

    Returns:
        A float array of length ``n``, non-decreasing.

    Example:
        >>> hypervolume_history([[1, 3], [2, 2], [3, 3], [1, 1]], ["minimize", "minimize"],
        ...                     [4, 4]).tolist()
        [3.0, 5.0, 5.0, 9.0]
    """
    loss = _loss(values, directions)
    n, m = loss.shape
    ref = _ref_loss(reference_point, directions, m)
    feas, _ = _feasibility(n, feasible, None)
    useful = feas & np.all(loss < ref, axis=1)
    history = np.zeros(n)
    infinite = False
    if m == 1:
        best = np.minimum.accumulate(np.where(useful, loss[:, 0], ref[0]))
        return np.asarray(ref[0] - best, dtype=float)
    stairs = _Staircase(float(ref[0]), float(ref[1])) if m == 2 else None
    front = np.zeros((0, m))
    total = 0.0
    for k in range(n):
        if useful[k]:
            p = loss[k]
            if not np.isfinite(p).all():
                infinite = True
            elif stairs is not None:
                stairs.insert(float(p[0]), float(p[1]))
                total = stairs.area
            elif not np.any(np.all(front <= p, axis=1)):
                clipped = np.maximum(front, p)
                total += float(np.prod(ref - p)) - _hv_loss(clipped, ref)
                front = np.vstack([front[~np.all(p <= front, axis=1)], p])
        history[k] = math.inf if infinite else total
    return history


# --------------------------------------------------------------------------- reference point


def reference_point(values: ArrayLike,
                    directions: Sequence[Direction], *, rule: str = "nadir",
                    margin: float = 0.1, metric_names: Sequence[str] | None = None) -> np.ndarray:
    """A hypervolume reference point for ``values``.

    Rules:

    * ``"nadir"``: the worst observed value of each objective, moved ``margin`` times the
      objective's observed range further in the worse direction (when the range is zero,
      ``margin`` times the value's magnitude, or ``margin`` if it is 0), so that every
      observed point, including the worst, contributes.
    * ``"natural"``: like ``"nadir"``, except that objectives whose metric (by
      ``metric_names``, see :data:`neuromosaic_optuna.metrics.METRICS`) is a fraction use the
      natural worst bound: 0 when maximized (accuracy 0), 1 when minimized. Such a reference
      does not move as the study progresses, so hypervolumes stay comparable.

    Every function that takes a reference point also accepts an explicit one instead.

    Args:
        values: ``(n, m)`` objective values with at least one finite value per objective.
        directions: ``"maximize"``/``"minimize"`` per objective.
        rule: ``"nadir"`` or ``"natural"``.
        margin: Fraction of the range to add, ``>= 0``.
        metric_names: Metric names per objective; needed by ``"natural"``.

    Returns:
        ``m`` values in the objectives' own units and directions.

    Raises:
        ValueError: On an unknown rule, a negative margin, missing names or no finite values.

    Example:
        >>> reference_point([[0.9, 2.0], [0.5, 1.0]], ["maximize", "minimize"]).round(6).tolist()
        [0.46, 2.1]
        >>> reference_point([[0.9, 2.0], [0.5, 1.0]], ["maximize", "minimize"],
        ...                 rule="natural", metric_names=["accuracy", "flops"]).tolist()
        [0.0, 2.1]
    """
    if rule not in ("nadir", "natural"):
        raise ValueError(f"rule: expected 'nadir' or 'natural', got {rule!r}")
    if not margin >= 0:
        raise ValueError(f"margin: must be >= 0, got {margin!r}")
    loss = _loss(values, directions)
    signs = _signs(directions, loss.shape[1])
    if rule == "natural" and (metric_names is None or len(metric_names) != loss.shape[1]):
        raise ValueError("metric_names: rule='natural' needs one metric name per objective")
    finite = np.where(np.isfinite(loss), loss, np.nan)
    if np.isnan(finite).all(axis=0).any():
        raise ValueError("values: every objective needs at least one finite value")
    worst = np.nanmax(finite, axis=0)
    spread = worst - np.nanmin(finite, axis=0)
    spread = np.where(spread > 0, spread, np.where(worst != 0, np.abs(worst), 1.0))
    ref = worst + margin * spread
    if rule == "natural":
        assert metric_names is not None
        for j, name in enumerate(metric_names):
            info = METRICS.get(name)
            if info is not None and info.unit == "fraction":
                ref[j] = 0.0 if signs[j] < 0 else 1.0
    return ref * signs + 0.0  # no -0.0


# --------------------------------------------------------------------------- knee


def _plane_normal(norm: np.ndarray) -> np.ndarray | None:
    """Normal ``w`` of the plane ``w @ x = 1`` through the extreme points, or None."""
    m = norm.shape[1]
    totals = norm.sum(axis=1)
    extremes = [int(np.lexsort((totals, norm[:, j]))[0]) for j in range(m)]
    if len(set(extremes)) < m:
        return None
    corners = norm[extremes]
    if np.linalg.cond(corners) > 1e12:
        return None
    w = np.linalg.solve(corners, np.ones(m))
    return w if np.isfinite(w).all() and (w > 0).all() else None


def knee_point(front_values: ArrayLike,
               directions: Sequence[Direction]) -> int:
    """Index of the knee of a front: the point that bulges most towards the ideal point.

    Objectives are normalized to ``[0, 1]`` over the given points (0 = best, constant
    objectives become 0). The knee is the point with the largest signed distance from the
    hyperplane through the extreme points (the best point of each objective, ties broken by
    the smallest sum of normalized objectives), measured towards the ideal point. When the
    extreme points do not span a plane facing the ideal point (shared extremes, degenerate
    fronts), the plane ``sum(x) = const`` is used instead, i.e. the smallest sum of normalized
    objectives wins. Ties (within 1e-9) go to the point closest to the ideal point, then to
    the lowest index. Special cases: one point -> 0; two points -> the one closer to the ideal
    point after normalization (the first on a tie); one objective -> the best point. Rows with
    non-finite values are never chosen unless all rows have them (then 0).

    Args:
        front_values: ``(n, m)`` values of the front's points, ``n >= 1``.
        directions: ``"maximize"``/``"minimize"`` per objective.

    Returns:
        A row index into ``front_values``.

    Raises:
        ValueError: If there are no points.

    Example:
        >>> knee_point([[0, 1], [0.1, 0.9], [0.3, 0.3], [0.9, 0.1], [1, 0]],
        ...            ["minimize", "minimize"])
        2
    """
    loss = _loss(front_values, directions)
    n, m = loss.shape
    if n == 0:
        raise ValueError("front_values: the knee needs at least one point")
    rows = np.flatnonzero(np.isfinite(loss).all(axis=1))
    if n == 1 or rows.size == 0:
        return 0
    pts = loss[rows]
    low = pts.min(axis=0)
    span = pts.max(axis=0) - low
    norm = np.where(span > 0, (pts - low) / np.where(span > 0, span, 1.0), 0.0)
    to_ideal = np.linalg.norm(norm, axis=1)
    if rows.size <= 2 or m == 1:
        score = -to_ideal
    else:
        w = _plane_normal(norm)
        score = ((1.0 - norm @ w) / np.linalg.norm(w) if w is not None
                 else -norm.sum(axis=1) / math.sqrt(m))
    candidates = np.flatnonzero(score >= score.max() - _TIE)
    return int(rows[candidates[np.argmin(to_ideal[candidates])]])


# --------------------------------------------------------------------------- operating points


class OperatingPoint(NamedTuple):
    """A bound on one metric, such as ``latency <= 0.02`` (seconds).

    Attributes:
        metric: The metric's name.
        op: One of ``"<="``, ``"<"``, ``">="``, ``">"``.
        bound: The bound in the metric's base unit (seconds, bytes, MACs, fraction).
    """

    metric: str
    op: str
    bound: float

    def satisfied_by(self, value: float) -> bool:
        """Whether ``value`` meets the bound (NaN never does).

        Example:
            >>> OperatingPoint("latency", "<=", 0.02).satisfied_by(0.02)
            True
        """
        compare = {"<=": float.__le__, "<": float.__lt__, ">=": float.__ge__, ">": float.__gt__}
        return bool(compare[self.op](float(value), float(self.bound)))

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.bound:g}"


_OPERATING_POINT = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*([^<>=\s].*?)\s*")


def parse_operating_point(text: str, *, known: Iterable[str] = ()) -> OperatingPoint:
    """Parse ``"<metric><op><bound>"``, e.g. ``"latency<=20ms"`` or ``"accuracy>=0.9"``.

    The bound is read in the metric's unit from the catalogue: durations (``"20ms"``),
    sizes (``"64MB"``), counts (``"5M"``), fractions (``0.9`` or ``"90%"``). Names in
    ``known`` but not in the catalogue (e.g. a study's own metric names) take plain numbers.

    Args:
        text: The operating point, spaces allowed around the operator.
        known: Extra metric names to accept.

    Returns:
        The parsed :class:`OperatingPoint`.

    Raises:
        ConfigError: With path ``--operating-point`` when the text, the metric or the bound
            cannot be read.

    Example:
        >>> parse_operating_point("latency<=20ms")
        OperatingPoint(metric='latency', op='<=', bound=0.02)
        >>> parse_operating_point("accuracy > 90%").bound
        0.9
    """
    match = _OPERATING_POINT.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(_OPTION, f"cannot read {text!r}; write <metric><op><bound> with op "
                          'one of <=, <, >=, >, e.g. "latency<=20ms" or "accuracy>=0.9"')
    metric, op, raw = match.groups()
    info = METRICS.get(metric)
    if info is None and metric not in set(known):
        names = sorted(set(METRICS) | set(known))
        raise ConfigError(_OPTION, f"unknown metric {metric!r}; known: {', '.join(names)}")
    try:
        bound = parse_metric_text(metric, raw, _OPTION)
    except ConfigError as exc:
        raise ConfigError(_OPTION, f"bound of {metric!r}: {exc.message}") from None
    return OperatingPoint(metric, op, bound)


# --------------------------------------------------------------------------- studies


@dataclass(frozen=True, eq=False)
class ParetoInfo:
    """Everything a plot or report needs about a study's trade-offs.

    Rows are the COMPLETE trials (with every requested metric) in trial-number order.

    Attributes:
        trial_numbers: ``(n,)`` trial numbers of the rows.
        values: ``(n, m)`` values of the metrics, in their own units and directions.
        directions: ``"maximize"``/``"minimize"`` per metric.
        metric_names: The metrics (``study.metric_names`` or ``objective_<i>``).
        ranks: Constrained non-domination ranks (see :func:`pareto_ranks`).
        feasible: Rows whose trial satisfies all its constraints.
        violation: Sum of the positive constraint values of each row.
        front: Row indices of the feasible Pareto front, ascending.
        dominated: Feasible rows that are not on the front.
        knee_trial: Trial number of the front's knee (see :func:`knee_point`), or None.
        hypervolume: Hypervolume of the feasible rows w.r.t. ``reference_point``.
        reference_point: ``(m,)``; the ``"natural"`` rule over the feasible rows unless given.
        non_finite: Numbers of COMPLETE trials left out because a metric is NaN or infinite
            (a damaged or hand-edited storage; a trial never stores one).
    """

    trial_numbers: np.ndarray
    values: np.ndarray
    directions: list[str]
    metric_names: list[str]
    ranks: np.ndarray
    feasible: np.ndarray
    violation: np.ndarray
    front: np.ndarray
    dominated: np.ndarray
    knee_trial: int | None
    hypervolume: float
    reference_point: np.ndarray
    non_finite: tuple[int, ...] = ()

    @property
    def front_trials(self) -> list[int]:
        """Trial numbers on the feasible Pareto front."""
        return [int(x) for x in self.trial_numbers[self.front]]


def _direction_of(name: str, names: list[str], directions: list[str]) -> str:
    if name in names:
        return directions[names.index(name)]
    if name in METRICS:
        return METRICS[name].direction
    raise ValueError(f"metrics: {name!r} is neither an objective of the study ({names}) nor a "
                     f"known metric ({', '.join(sorted(METRICS))})")


class _Table(NamedTuple):
    numbers: np.ndarray
    values: np.ndarray
    directions: list[str]
    names: list[str]
    feasible: np.ndarray
    violation: np.ndarray
    non_finite: tuple[int, ...] = ()


def _study_table(study: optuna.Study, metrics: Sequence[str] | None) -> _Table:
    study_names = metric_names(study)
    study_dirs = [d.name.lower() for d in study.directions]
    names = study_names if metrics is None else list(metrics)
    directions = [_direction_of(n, study_names, study_dirs) for n in names]
    numbers, rows, feasible, violation, non_finite = [], [], [], [], []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        row = [metric_value(trial, n, study_names) for n in names]
        if any(v is None for v in row):
            continue
        if not all(math.isfinite(float(v)) for v in row if v is not None):
            non_finite.append(trial.number)
            continue
        feas, viol = is_feasible(trial), trial_violation(trial)
        numbers.append(trial.number)
        rows.append(row)
        feasible.append(feas)
        violation.append(viol)
    return _Table(np.asarray(numbers, dtype=int),
                  np.asarray(rows, dtype=float).reshape(len(rows), len(names)), directions,
                  names, np.asarray(feasible, dtype=bool), np.asarray(violation, dtype=float),
                  tuple(non_finite))


def _table_reference(table: _Table, given: ArrayLike | None) -> np.ndarray:
    m = len(table.names)
    if given is not None:
        ref = np.asarray(given, dtype=float).reshape(-1)
        if ref.size != m:
            raise ValueError(f"reference_point: expected {m} values, got {ref.size}")
        return ref
    points = table.values[table.feasible] if table.feasible.any() else table.values
    if points.shape[0] == 0:
        return np.full(m, np.nan)
    return reference_point(points, table.directions, rule="natural", metric_names=table.names)


def pareto_info(study: optuna.Study, *,
                reference_point: ArrayLike | None = None,
                metrics: Sequence[str] | None = None) -> ParetoInfo:
    """Ranks, front, knee and hypervolume of a study's COMPLETE trials.

    Args:
        study: A single- or multi-objective study. For one objective the front is the set of
            best feasible trials.
        reference_point: Hypervolume reference in the metrics' units; default: the
            ``"natural"`` rule of :func:`reference_point` over the feasible trials.
        metrics: Metrics to use instead of the study's objectives: objective names are read
            from ``trial.values``, others from the user attribute ``metrics`` (directions
            from the catalogue). Trials lacking one of them are left out.

    Returns:
        A :class:`ParetoInfo`.

    Raises:
        ValueError: On an unknown metric or a reference point of the wrong length.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> study.set_metric_names(["accuracy", "flops"])
        >>> study.add_trials([optuna.trial.create_trial(values=v)
        ...                   for v in ([0.9, 4e6], [0.8, 1e6], [0.7, 2e6])])
        >>> info = pareto_info(study)
        >>> info.front_trials, info.ranks.tolist(), info.knee_trial
        ([0, 1], [0, 0, 1], 0)
    """
    table = _study_table(study, metrics)
    ranks = pareto_ranks(table.values, table.directions, feasible=table.feasible,
                         violation=table.violation)
    on_front = (ranks == 0) & table.feasible
    front = np.flatnonzero(on_front)
    ref = _table_reference(table, reference_point)
    feasible_values = table.values[table.feasible]
    hv = (hypervolume(feasible_values, table.directions, ref)
          if feasible_values.shape[0] else 0.0)
    knee = (int(table.numbers[front[knee_point(table.values[front], table.directions)]])
            if front.size else None)
    return ParetoInfo(
        trial_numbers=table.numbers, values=table.values, directions=table.directions,
        metric_names=table.names, ranks=ranks, feasible=table.feasible,
        violation=table.violation, front=front, dominated=table.feasible & ~on_front,
        knee_trial=knee, hypervolume=hv, reference_point=ref, non_finite=table.non_finite,
    )


def hypervolume_history_of(study: optuna.Study,
                           reference_point: ArrayLike | None = None, *,
                           metrics: Sequence[str] | None = None) -> np.ndarray:
    """Hypervolume of the feasible COMPLETE trials after each COMPLETE trial.

    The entries align with ``pareto_info(study, metrics=metrics).trial_numbers``; the default
    reference point is the same as :func:`pareto_info`'s (computed over all trials, so the
    curve does not shift as it grows).

    Args:
        study: The study.
        reference_point: Explicit reference point in the metrics' units.
        metrics: Metrics to use instead of the study's objectives (see :func:`pareto_info`).

    Returns:
        A non-decreasing float array, one entry per COMPLETE trial.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(directions=["minimize", "minimize"])
        >>> study.add_trials([optuna.trial.create_trial(values=v)
        ...                   for v in ([1, 3], [3, 3], [2, 1])])
        >>> hypervolume_history_of(study, [4, 4]).tolist()
        [3.0, 3.0, 7.0]
    """
    table = _study_table(study, metrics)
    if table.values.shape[0] == 0:
        return np.zeros(0)
    ref = _table_reference(table, reference_point)
    return hypervolume_history(table.values, table.directions, ref, feasible=table.feasible)


def operating_point(study: optuna.Study, constraint: str | OperatingPoint, *,
                    objective: str | None = None) -> FrozenTrial | None:
    """The best feasible COMPLETE trial that meets an operating point.

    The constrained metric is read from ``trial.values`` when it is an objective of the
    study, else from the user attribute ``metrics``; trials without it are skipped. "Best"
    is by ``objective`` (default: the first maximized objective, else the first objective);
    ties go to the lowest trial number.

    Args:
        study: The study.
        constraint: An :class:`OperatingPoint` or its text, e.g. ``"latency<=20ms"``.
        objective: The metric to optimize among the trials that meet the bound.

    Returns:
        The chosen trial, or None when no feasible trial meets the bound.

    Raises:
        ConfigError: If the constraint text cannot be parsed.
        ValueError: If ``objective`` is neither an objective nor a known metric.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> study.set_metric_names(["accuracy", "flops"])
        >>> study.add_trials([optuna.trial.create_trial(
        ...     values=[a, f], user_attrs={"metrics": {"latency": lat}})
        ...     for a, f, lat in ([0.9, 4e6, 0.05], [0.8, 1e6, 0.01], [0.7, 2e6, 0.005])])
        >>> operating_point(study, "latency<=20ms").number
        1
    """
    names = metric_names(study)
    directions = [d.name.lower() for d in study.directions]
    point = (constraint if isinstance(constraint, OperatingPoint)
             else parse_operating_point(constraint, known=names))
    if objective is None:
        objective = next((n for n, d in zip(names, directions, strict=True) if d == "maximize"),
                         names[0])
    sign = -1.0 if _direction_of(objective, names, directions) == "maximize" else 1.0
    best: FrozenTrial | None = None
    best_key = math.inf
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if not is_feasible(trial):
            continue
        bounded = metric_value(trial, point.metric, names)
        score = metric_value(trial, objective, names)
        if bounded is None or score is None or not point.satisfied_by(bounded):
            continue
        if best is None or sign * score < best_key:
            best, best_key = trial, sign * score
    return best
