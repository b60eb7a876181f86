"""Pareto math against brute force: ranks, fronts, hypervolume, knee, operating points."""

from __future__ import annotations

import doctest
import itertools
import time
from collections.abc import Sequence
from typing import Final
from unittest import mock

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState, create_trial

from neuromosaic_optuna import pareto
from neuromosaic_optuna.config import ConfigError
from neuromosaic_optuna.pareto import (
    OperatingPoint,
    crowding_distance,
    hypervolume,
    hypervolume_history,
    hypervolume_history_of,
    knee_point,
    operating_point,
    pareto_front_mask,
    pareto_info,
    pareto_ranks,
    parse_operating_point,
    reference_point,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)
MIN: Final = "minimize"
MAX: Final = "maximize"

# --------------------------------------------------------------------------- brute force


def _to_loss(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    return values * np.array([-1.0 if d == MAX else 1.0 for d in directions])


def _bf_ranks(loss: np.ndarray, feasible: np.ndarray, violation: np.ndarray) -> list[int]:
    """O(n^3) peeling under constrained domination, written from the definition."""

    def dominates(a: int, b: int) -> bool:
        if feasible[a] != feasible[b]:
            return bool(feasible[a])
        if not feasible[a] and violation[a] != violation[b]:
            return bool(violation[a] < violation[b])
        return bool(np.all(loss[a] <= loss[b]) and np.any(loss[a] < loss[b]))

    ranks = [-1] * len(loss)
    remaining = set(range(len(loss)))
    rank = 0
    while remaining:
        front = {i for i in remaining if not any(dominates(j, i) for j in remaining)}
        for i in front:
            ranks[i] = rank
        remaining -= front
        rank += 1
    return ranks


def _bf_hypervolume(loss: np.ndarray, ref: np.ndarray) -> float:
    """Inclusion–exclusion over the boxes [p, ref]; points outside the box give empty boxes."""
    total = 0.0
    for size in range(1, len(loss) + 1):
        for subset in itertools.combinations(range(len(loss)), size):
            corner = loss[list(subset)].max(axis=0)
            total += (-1) ** (size + 1) * float(np.prod(np.clip(ref - corner, 0.0, None)))
    return total


def _no_optuna_rank() -> mock._patch:
    return mock.patch.object(pareto, "_optuna_rank", None)


def _no_optuna_hv() -> mock._patch:
    return mock.patch.object(pareto, "_optuna_hypervolume", None)


@st.composite
def _point_sets(draw: st.DrawFn, max_n: int = 14, max_m: int = 4, grid: int = 4):
    """Small integer grids make ties and duplicates common."""
    m = draw(st.integers(1, max_m))
    n = draw(st.integers(0, max_n))
    values = np.array(draw(st.lists(st.lists(st.integers(0, grid), min_size=m, max_size=m),
                                    min_size=n, max_size=n)), dtype=float).reshape(n, m)
    directions = draw(st.lists(st.sampled_from([MIN, MAX]), min_size=m, max_size=m))
    return values, directions


# --------------------------------------------------------------------------- ranks and fronts


@settings(max_examples=150, deadline=None)
@given(_point_sets(), st.data())
def test_ranks_match_brute_force_with_constraints(case, data) -> None:
    values, directions = case
    n = len(values)
    violation = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.0, 0.5, 1.0, 2.0]),
                                            min_size=n, max_size=n)))
    expected = _bf_ranks(_to_loss(values, directions), violation <= 0, violation)
    assert pareto_ranks(values, directions, violation=violation).tolist() == expected
    with _no_optuna_rank():
        assert pareto_ranks(values, directions, violation=violation).tolist() == expected


@settings(max_examples=150, deadline=None)
@given(_point_sets(), st.data())
def test_front_and_feasibility_mask_match_brute_force(case, data) -> None:
    values, directions = case
    n = len(values)
    feasible = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    loss = _to_loss(values, directions)
    expected = _bf_ranks(loss, feasible, np.zeros(n))  # one infeasible group
    assert pareto_ranks(values, directions, feasible=feasible).tolist() == expected
    mask = pareto_front_mask(values, directions, feasible=feasible)
    assert mask.tolist() == [feasible[i] and expected[i] == 0 for i in range(n)]
    unconstrained = _bf_ranks(loss, np.ones(n, bool), np.zeros(n))
    with _no_optuna_rank():
        assert pareto_ranks(values, directions).tolist() == unconstrained
        assert pareto_front_mask(values, directions).tolist() == [r == 0 for r in unconstrained]


def test_ranks_examples_duplicates_and_infeasible_order() -> None:
    values = [[1, 1], [1, 1], [2, 0], [2, 2], [0, 0], [0, 0], [5, 5]]
    violation = [0, 0, 0, 0, 3.0, 1.0, 1.0]
    # Feasible: (1,1) twice and (2,0) on the front, (2,2) behind; infeasible by violation:
    # violation 1 group {(0,0), (5,5)} is ranked by dominance, then violation 3.
    assert pareto_ranks(values, [MIN, MIN], violation=violation).tolist() == [0, 0, 0, 1, 4, 2, 3]
    assert not pareto_front_mask(values, [MIN, MIN], feasible=[False] * 7).any()
    assert pareto_ranks(np.zeros((0, 2)), [MIN, MIN]).tolist() == []
    assert pareto_ranks([3.0, 1.0, 2.0, 1.0], [MAX]).tolist() == [0, 2, 1, 2]
    with pytest.raises(ValueError, match="directions"):
        pareto_ranks([[1, 2]], [MIN])
    with pytest.raises(ValueError, match="NaN"):
        pareto_ranks([[1, np.nan]], [MIN, MIN])


def test_ranks_are_fast_for_thousands_of_points() -> None:
    rng = np.random.default_rng(0)
    values = rng.random((3000, 3))
    start = time.perf_counter()
    ranks = pareto_ranks(values, [MIN, MAX, MIN])
    with _no_optuna_rank():
        fallback = pareto_ranks(values, [MIN, MAX, MIN])
    elapsed = time.perf_counter() - start
    assert (ranks == fallback).all() and ranks.max() > 5
    print(f"pareto_ranks 3000x3 (Optuna and fallback): {elapsed:.3f}s")


# --------------------------------------------------------------------------- crowding


def test_crowding_distance_matches_definition() -> None:
    values = np.array([[0.0, 4.0], [1.0, 2.0], [3.0, 1.0], [4.0, 0.0]])
    # interior: (x gap + y gap) / ranges = ((3-0)/4 + (4-1)/4), ((4-1)/4 + (2-0)/4)
    assert crowding_distance(values).tolist() == [np.inf, 1.5, 1.25, np.inf]
    assert crowding_distance([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]).tolist() == [0.0, 0.0, 0.0]
    assert crowding_distance([[0.0], [1.0]]).tolist() == [np.inf, np.inf]
    assert crowding_distance(np.zeros((0, 2))).tolist() == []
    with pytest.raises(ValueError, match="finite"):
        crowding_distance([[np.inf, 0.0]])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(0, 10), min_size=2, max_size=2), min_size=3, max_size=12))
def test_crowding_distance_brute_force(rows) -> None:
    values = np.array(rows)
    expected = np.zeros(len(values))
    for j in range(values.shape[1]):
        order = np.argsort(values[:, j], kind="stable")
        s = values[order, j]
        if s[-1] == s[0]:
            continue
        for pos, i in enumerate(order):
            expected[i] += (np.inf if pos in (0, len(s) - 1)
                            else (s[pos + 1] - s[pos - 1]) / (s[-1] - s[0]))
    np.testing.assert_allclose(crowding_distance(values), expected)


# --------------------------------------------------------------------------- hypervolume


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 4), st.data())
def test_hypervolume_matches_inclusion_exclusion(m, data) -> None:
    n = data.draw(st.integers(0, 8))
    coords = st.one_of(st.integers(0, 4).map(float), st.floats(0, 4, allow_nan=False))
    values = np.array(data.draw(st.lists(st.lists(coords, min_size=m, max_size=m),
                                         min_size=n, max_size=n)), dtype=float).reshape(n, m)
    directions = data.draw(st.lists(st.sampled_from([MIN, MAX]), min_size=m, max_size=m))
    ref = np.array(data.draw(st.lists(st.floats(0, 4), min_size=m, max_size=m)))
    expected = _bf_hypervolume(_to_loss(values, directions), _to_loss(ref[None], directions)[0])
    assert hypervolume(values, directions, ref) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    with _no_optuna_hv():
        assert hypervolume(values, directions, ref) == pytest.approx(expected, rel=1e-9,
                                                                     abs=1e-9)


@pytest.mark.parametrize("m,n", [(2, 400), (3, 300), (4, 60), (5, 25)])
def test_hypervolume_matches_optuna_on_larger_sets(m: int, n: int) -> None:
    rng = np.random.default_rng(m)
    for shape in ("uniform", "front"):
        v = rng.random((n, m))
        if shape == "front":  # every point non-dominated (on a sphere)
            v = 1 - v / np.linalg.norm(v, axis=1, keepdims=True)
        directions = [MAX if j % 2 else MIN for j in range(m)]
        values = _to_loss(v, directions)  # so the loss is v again
        ref_loss = np.full(m, 1.05)
        ref = _to_loss(ref_loss[None], directions)[0]
        expected = pareto._optuna_hypervolume(v, ref_loss)  # type: ignore[misc]
        assert hypervolume(values, directions, ref) == pytest.approx(expected, rel=1e-9)
        if m >= 4:
            with _no_optuna_hv():
                assert hypervolume(values, directions, ref) == pytest.approx(expected, rel=1e-9)


def test_hypervolume_3d_against_monte_carlo() -> None:
    rng = np.random.default_rng(1)
    points = rng.random((60, 3)) * 0.8
    ref = np.ones(3)
    samples = rng.random((200_000, 3))
    covered = np.zeros(len(samples), dtype=bool)
    for p in points:
        covered |= np.all(samples >= p, axis=1)
    assert hypervolume(points, [MIN] * 3, ref) == pytest.approx(covered.mean(), abs=0.005)


def test_hypervolume_edge_cases() -> None:
    d = [MIN, MIN]
    assert hypervolume(np.zeros((0, 2)), d, [1, 1]) == 0.0
    assert hypervolume([[1, 0], [0, 1]], d, [1, 1]) == 0.0  # on the box: nothing
    assert hypervolume([[0.5, 0.5], [0.5, 0.5]], d, [1, 1]) == 0.25
    assert hypervolume([[2.0], [0.5]], [MAX], [1.0]) == 1.0
    assert hypervolume([[-np.inf, 0.5]], d, [1, 1]) == np.inf
    with pytest.raises(ValueError, match="reference_point"):
        hypervolume([[0, 0]], d, [1, np.inf])
    with pytest.raises(ValueError, match="reference_point"):
        hypervolume([[0, 0]], d, [1])


def test_hypervolume_5000_points_3d_is_fast() -> None:
    rng = np.random.default_rng(2)
    uniform = rng.random((5000, 3))
    normal = np.abs(rng.normal(size=(5000, 3)))
    sphere = 1 - normal / np.linalg.norm(normal, axis=1, keepdims=True)
    for name, pts in (("uniform", uniform), ("all on one front", sphere)):
        start = time.perf_counter()
        hv = hypervolume(pts, [MIN] * 3, [1.1] * 3)
        elapsed = time.perf_counter() - start
        print(f"hypervolume 5000 3-D points ({name}): {elapsed:.4f}s")
        assert 0 < hv < 1.1**3


@settings(max_examples=80, deadline=None)
@given(_point_sets(max_n=12), st.data())
def test_hypervolume_history_matches_recomputation(case, data) -> None:
    values, directions = case
    n, m = values.shape
    feasible = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    ref = np.array(data.draw(st.lists(st.integers(-1, 5).map(float), min_size=m, max_size=m)))
    history = hypervolume_history(values, directions, ref, feasible=feasible)
    expected = [hypervolume(values[: k + 1][feasible[: k + 1]], directions, ref)
                for k in range(n)]
    np.testing.assert_allclose(history, expected, rtol=1e-9, atol=1e-9)
    assert np.all(np.diff(history) >= -1e-9)


def test_hypervolume_history_on_random_3d_points() -> None:
    rng = np.random.default_rng(3)
    values = rng.random((300, 3))
    history = hypervolume_history(values, [MIN, MAX, MIN], [1.0, 0.0, 1.0])
    assert history[-1] == pytest.approx(hypervolume(values, [MIN, MAX, MIN], [1.0, 0.0, 1.0]))
    assert history[99] == pytest.approx(hypervolume(values[:100], [MIN, MAX, MIN],
                                                    [1.0, 0.0, 1.0]))


# --------------------------------------------------------------------------- reference point


def test_reference_point_rules() -> None:
    values = np.array([[0.9, 2e6, 0.01], [0.5, 1e6, 0.03], [0.7, 4e6, 0.02]])
    dirs = [MAX, MIN, MIN]
    np.testing.assert_allclose(reference_point(values, dirs), [0.46, 4.3e6, 0.032])
    natural = reference_point(values, dirs, rule="natural",
                              metric_names=["accuracy", "flops", "latency"])
    np.testing.assert_allclose(natural, [0.0, 4.3e6, 0.032])
    np.testing.assert_allclose(reference_point(values, dirs, margin=0.0), [0.5, 4e6, 0.03])
    # every point, including the worst, contributes under the default rule
    for row in values:
        assert hypervolume(row[None], dirs, reference_point(values, dirs)) > 0
    np.testing.assert_allclose(reference_point([[0.5, 0.0]], [MAX, MIN]), [0.45, 0.1])
    assert reference_point([[0.2]], [MIN], rule="natural",
                           metric_names=["stability_index"]).tolist() == [1.0]
    with pytest.raises(ValueError, match="rule"):
        reference_point(values, dirs, rule="ideal")
    with pytest.raises(ValueError, match="metric_names"):
        reference_point(values, dirs, rule="natural")
    with pytest.raises(ValueError, match="margin"):
        reference_point(values, dirs, margin=-1)


# --------------------------------------------------------------------------- knee


def test_knee_of_linear_front_with_a_bulge() -> None:
    line = [[x, 1 - x] for x in (0.0, 0.1, 0.2, 0.8, 0.9, 1.0)]
    front = np.array(line[:3] + [[0.4, 0.45]] + line[3:])
    assert knee_point(front, [MIN, MIN]) == 3
    # the same front as accuracy (maximized) against cost (minimized)
    assert knee_point(np.column_stack([1 - front[:, 0], front[:, 1] * 1e6]), [MAX, MIN]) == 3


def test_knee_of_convex_l_shape_is_the_corner() -> None:
    front = [[0.0, 10.0], [0.02, 3.0], [0.1, 1.0], [0.3, 0.2], [1.0, 0.0]]
    assert knee_point(front, [MIN, MIN]) == 2
    # plain linear front: all on the plane, the tie goes to the middle (closest to ideal)
    assert knee_point([[0.0, 1.0], [0.25, 0.75], [0.5, 0.5], [0.75, 0.25], [1.0, 0.0]],
                      [MIN, MIN]) == 2


def test_knee_in_three_objectives() -> None:
    simplex: list[list[float]] = [[1, 0, 0], [0, 1, 0], [0, 0, 1],
                                  [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    assert knee_point(simplex + [[0.2, 0.2, 0.2]], [MIN] * 3) == 6


def test_knee_degenerate_cases() -> None:
    assert knee_point([[3.0, 4.0]], [MIN, MIN]) == 0
    assert knee_point([[0.0, 1.0], [1.0, 0.0]], [MIN, MIN]) == 0  # symmetric: first
    assert knee_point([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]], [MIN] * 3) == 1  # closer to ideal
    assert knee_point([[2.0], [1.0], [3.0]], [MIN]) == 1
    assert knee_point([[1.0, 1.0]] * 4, [MIN, MIN]) == 0  # all equal
    constant_column = [[0.0, 1.0, 5.0], [1.0, 0.0, 5.0], [0.4, 0.4, 5.0]]
    assert knee_point(constant_column, [MIN] * 3) == 2
    assert knee_point([[np.inf, 0.0], [0.5, 0.5], [0.0, 1.0], [1.0, 0.0]], [MIN, MIN]) == 1
    with pytest.raises(ValueError, match="at least one"):
        knee_point(np.zeros((0, 2)), [MIN, MIN])


# --------------------------------------------------------------------------- operating points


@pytest.mark.parametrize("text,expected", [
    ("latency<=20ms", OperatingPoint("latency", "<=", 0.02)),
    (" memory < 64MB ", OperatingPoint("memory", "<", 64e6)),
    ("params<5M", OperatingPoint("params", "<", 5e6)),
    ("accuracy>=0.9", OperatingPoint("accuracy", ">=", 0.9)),
    ("accuracy > 75%", OperatingPoint("accuracy", ">", 0.75)),
    ("throughput>=1K", OperatingPoint("throughput", ">=", 1000.0)),
])
def test_parse_operating_point(text: str, expected: OperatingPoint) -> None:
    assert parse_operating_point(text) == pytest.approx(expected)


@pytest.mark.parametrize("text,message", [
    ("latency=20ms", "<metric><op><bound>"),
    ("latency<=", "<metric><op><bound>"),
    ("latency<=20 parsecs", "cannot read"),
    ("latncy<=20ms", "unknown metric 'latncy'"),
    ("accuracy>=1.5", "fraction"),
    ("accuracy>=high", "0.9 or 90%"),
])
def test_parse_operating_point_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="--operating-point") as err:
        parse_operating_point(text)
    assert err.value.path == "--operating-point" and message in err.value.message


def test_parse_operating_point_study_names_and_satisfied() -> None:
    point = parse_operating_point("objective_1>-2.5", known=["objective_1"])
    assert point == OperatingPoint("objective_1", ">", -2.5)
    assert point.satisfied_by(-2) and not point.satisfied_by(-2.5)
    assert not OperatingPoint("latency", "<=", 1.0).satisfied_by(float("nan"))
    assert str(OperatingPoint("latency", "<=", 0.02)) == "latency<=0.02"


def _nas_study() -> optuna.Study:
    """accuracy (max) / flops (min); latency in user attrs; trial 4 violates a constraint."""
    study = optuna.create_study(directions=[MAX, MIN])
    study.set_metric_names(["accuracy", "flops"])
    rows = [  # accuracy, flops, latency, constraint value
        (0.90, 4e6, 0.050, -1.0),
        (0.85, 1e6, 0.015, -0.5),
        (0.80, 2e6, 0.010, -0.2),  # dominated by trial 1
        (0.70, 0.5e6, 0.005, -0.1),
        (0.95, 0.2e6, 0.001, 2.0),  # infeasible, would dominate everything
        (0.60, 3e6, 0.020, 0.5),  # infeasible, less violation
    ]
    study.add_trials([
        create_trial(values=[a, f], user_attrs={"metrics": {"latency": lat, "accuracy": a}},
                     constraints={"max_params": c})
        for a, f, lat, c in rows
    ])
    study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs={"metrics": {}}))
    study.add_trial(create_trial(values=[0.99, 1.0], user_attrs={}))  # no latency, feasible
    return study


def test_pareto_info_on_a_study() -> None:
    study = _nas_study()
    info = pareto_info(study)
    assert info.trial_numbers.tolist() == [0, 1, 2, 3, 4, 5, 7]
    assert info.metric_names == ["accuracy", "flops"] and info.directions == [MAX, MIN]
    assert info.feasible.tolist() == [True, True, True, True, False, False, True]
    assert info.violation.tolist() == [0, 0, 0, 0, 2.0, 0.5, 0]
    assert info.front_trials == [7]  # (0.99, 1 MAC) dominates every feasible trial
    assert info.ranks.tolist() == [1, 1, 2, 1, 4, 3, 0]
    assert info.dominated.tolist() == [True, True, True, True, False, False, False]
    assert info.knee_trial == 7
    np.testing.assert_allclose(info.reference_point, [0.0, 4e6 + 0.1 * (4e6 - 1.0)])
    expected = hypervolume(info.values[info.feasible], info.directions, info.reference_point)
    assert info.hypervolume == pytest.approx(expected)

    costs = pareto_info(study, metrics=["accuracy", "latency"], reference_point=[0.0, 0.1])
    assert costs.trial_numbers.tolist() == [0, 1, 2, 3, 4, 5]  # trial 7 lacks latency
    assert costs.directions == [MAX, MIN]
    assert costs.front_trials == [0, 1, 2, 3]
    assert costs.knee_trial in costs.front_trials
    np.testing.assert_allclose(costs.reference_point, [0.0, 0.1])
    assert costs.hypervolume == pytest.approx(hypervolume(
        costs.values[:4], [MAX, MIN], [0.0, 0.1]))
    with pytest.raises(ValueError, match="neither an objective"):
        pareto_info(study, metrics=["accuracy", "speed"])


def test_pareto_info_single_objective_and_empty() -> None:
    study = optuna.create_study(direction=MIN)
    assert pareto_info(study).front.size == 0 and pareto_info(study).knee_trial is None
    assert hypervolume_history_of(study).size == 0
    study.add_trials([create_trial(value=v) for v in (3.0, 1.0, 2.0, 1.0)])
    info = pareto_info(study)
    assert info.metric_names == ["objective_0"]
    assert info.front_trials == [1, 3] and info.knee_trial == 1
    assert info.ranks.tolist() == [2, 0, 1, 0]
    assert info.hypervolume == pytest.approx(info.reference_point[0] - 1.0)
    np.testing.assert_allclose(hypervolume_history_of(study, [4.0]), [1.0, 3.0, 3.0, 3.0])


def test_hypervolume_history_of_study() -> None:
    study = _nas_study()
    ref = [0.0, 5e6]
    history = hypervolume_history_of(study, ref)
    info = pareto_info(study, reference_point=ref)
    expected = [hypervolume(info.values[: k + 1][info.feasible[: k + 1]], info.directions, ref)
                for k in range(len(info.values))]
    np.testing.assert_allclose(history, expected)
    assert history[3] == pytest.approx(0.9 * 1e6 + 0.85 * 3e6 + 0.7 * 0.5e6)


def _chosen(study: optuna.Study, constraint: str | OperatingPoint, **kwargs: str) -> int | None:
    trial = operating_point(study, constraint, **kwargs)
    return None if trial is None else trial.number


def test_operating_point_selection() -> None:
    study = _nas_study()
    assert _chosen(study, "latency<=20ms") == 1  # 4 is infeasible
    assert _chosen(study, "latency<=10ms") == 2
    assert _chosen(study, "latency<10ms") == 3
    assert _chosen(study, "latency<=1ms") is None  # only the infeasible trial
    assert _chosen(study, "latency<=20ms", objective="flops") == 3
    assert _chosen(study, "accuracy>=0.8", objective="flops") == 7
    assert _chosen(study, OperatingPoint("flops", "<=", 2e6)) == 7
    with pytest.raises(ConfigError):
        _chosen(study, "latency<=soon")
    with pytest.raises(ValueError, match="neither an objective"):
        _chosen(study, "latency<=20ms", objective="speed")


def test_private_optuna_helpers_are_still_there() -> None:
    # The fallbacks are tested above; this flags a change in Optuna's private layout.
    assert pareto._optuna_rank is not None and pareto._optuna_hypervolume is not None


def test_docstring_examples() -> None:
    result = doctest.testmod(pareto, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 12 and result.failed == 0
