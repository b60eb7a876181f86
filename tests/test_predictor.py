"""Performance predictor: beats a constant on a planted function; screening stays valid."""

from __future__ import annotations

import doctest
import itertools

import numpy as np
import pytest
from doctests import run_doctests
from scipy.stats import spearmanr

from neuromosaic_optuna import predictor
from neuromosaic_optuna.models.nasbench201 import EDGES, OPS
from neuromosaic_optuna.predictor import (
    FAMILIES,
    PerformancePredictor,
    architecture_features,
    screen,
)
from neuromosaic_optuna.space import SearchSpace

_SPACE = SearchSpace({edge: list(OPS) for edge in EDGES})
_WEIGHT = {"none": -1.0, "skip_connect": 0.3, "nor_conv_1x1": 0.6, "nor_conv_3x3": 1.0,
           "avg_pool_3x3": 0.1}


def _cells(n: int, seed: int) -> list[dict[str, str]]:
    rng = np.random.default_rng(seed)
    return [{edge: OPS[int(rng.integers(len(OPS)))] for edge in EDGES} for _ in range(n)]


def _planted(cell: dict[str, str], proxy: float) -> float:
    """A planted score: per-edge op weights, one interaction, and a proxy term."""
    value = sum(_WEIGHT[cell[e]] for e in EDGES) + 0.5 * proxy
    if cell["edge_3_0"] == "none" and cell["edge_3_1"] == "none":
        value -= 2.0
    return value


@pytest.mark.parametrize("family", FAMILIES)
def test_beats_a_constant_on_a_planted_function(family: str) -> None:
    rng = np.random.default_rng(1)
    cells = _cells(260, seed=2)
    proxies = [{"synflow": float(np.exp(rng.uniform(0, 20))), "jacob_cov": float("nan")
                if i % 17 == 0 else float(rng.normal())} for i in range(len(cells))]
    x = architecture_features(cells, _SPACE.distributions, proxies, ["synflow", "jacob_cov"])
    y = np.array([_planted(c, np.log1p(p["synflow"]) / 10) for c, p in zip(cells, proxies,
                                                                            strict=True)])
    y += rng.normal(0, 0.1, size=len(y))
    train, test = slice(0, 100), slice(100, None)
    model = PerformancePredictor(family=family, seed=0).fit(x[train], y[train])
    mean, std = model.predict(x[test])
    constant_mse = float(np.mean((y[test] - y[train].mean()) ** 2))
    mse = float(np.mean((y[test] - mean) ** 2))
    assert mse < 0.5 * constant_mse, (family, mse, constant_mse)
    assert spearmanr(mean, y[test]).statistic > 0.7
    assert std.shape == mean.shape and (std >= 0).all() and np.isfinite(std).all()
    # Deterministic for a seed.
    again, _ = PerformancePredictor(family=family, seed=0).fit(x[train], y[train]).predict(
        x[test])
    np.testing.assert_allclose(again, mean)


def test_screening_never_proposes_an_invalid_or_duplicate_architecture() -> None:
    rng = np.random.default_rng(3)
    train = _cells(80, seed=4)
    y = np.array([_planted(c, 0.0) for c in train])
    model = PerformancePredictor(seed=0).fit(
        architecture_features(train, _SPACE.distributions), y)
    for round_ in range(5):
        pool = _cells(150, seed=10 + round_)
        pool += pool[:40]  # repeated candidates
        pool += [dict(c) for c in train[:30]]  # already evaluated
        pool += [{**c, "edge_2_1": "conv_7x7"} for c in pool[:10]]  # unknown op
        pool += [{e: c[e] for e in EDGES[:5]} for c in pool[10:20]]  # missing edge
        pool += [{**c, "extra": round_} for c in train[30:40]]  # evaluated, extra key
        order = rng.permutation(len(pool))
        pool = [pool[i] for i in order]
        x = np.vstack([architecture_features([c], _SPACE.distributions) if _SPACE.contains(c)
                       else np.full((1, len(EDGES) * len(OPS)), np.nan) for c in pool])
        chosen = screen(model, pool, x, _SPACE, k=60, seen=train, beta=float(round_ % 2))
        keys = [tuple(c[e] for e in EDGES) for c in chosen]
        assert len(chosen) == 60
        assert len(set(keys)) == len(keys)
        assert all(_SPACE.contains(c) and set(c) == set(EDGES) for c in chosen)
        assert not set(keys) & {tuple(c[e] for e in EDGES) for c in train}
    # The screened set is better than the pool on the planted function.
    pool = _cells(300, seed=99)
    best = screen(model, pool, architecture_features(pool, _SPACE.distributions), _SPACE,
                  k=20, beta=0.0)
    assert np.mean([_planted(c, 0.0) for c in best]) > np.mean(
        [_planted(c, 0.0) for c in pool]) + 1.0


def test_screening_exhausts_the_space_without_repeats() -> None:
    space = SearchSpace({"a": ["x", "y"], "b": ["x", "y", "z"]})
    every = [dict(zip("ab", v, strict=True)) for v in itertools.product("xy", "xyz")]
    x = architecture_features(every, space.distributions)
    model = PerformancePredictor(seed=0).fit(x, np.arange(6.0))
    chosen = screen(model, every * 3, np.vstack([x] * 3), space, k=100, seen=every[:2])
    assert sorted(map(str, chosen)) == sorted(map(str, every[2:]))


@pytest.mark.parametrize(("call", "message"), [
    (lambda: PerformancePredictor(family="svm"), "family must be one of"),
    (lambda: PerformancePredictor(n_estimators=0), "n_estimators"),
    (lambda: PerformancePredictor().fit(np.zeros((3, 2)), [1.0, 2.0]), "targets"),
    (lambda: PerformancePredictor().fit(np.zeros((2, 1)), [1.0, float("nan")]), "finite"),
    (lambda: PerformancePredictor().predict(np.zeros((1, 1))), "fit the predictor"),
])
def test_bad_input_is_named(call, message: str) -> None:
    with pytest.raises((ValueError, RuntimeError), match=message):
        call()


def test_docstring_examples() -> None:
    result = run_doctests(predictor, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
