"""Performance predictor: learn an architecture's score from its encoding and zero-cost proxies.

A :class:`PerformancePredictor` is fitted on the architectures a study has evaluated (plain
feature rows and their measured values) and predicts, with an uncertainty, the value of ones
it has not evaluated; :func:`screen` then ranks candidates by an optimistic bound and returns
the best distinct, valid ones that are not evaluated yet. Nothing here reads a benchmark table:
the caller passes only what the study measured and what the network itself gives (proxies).

Features (:func:`architecture_features`): the search-space encoding of
:func:`~neuromosaic_optuna.space.param_features` (one-hot categoricals, unit-scaled numbers),
optionally followed by proxy scores (:mod:`neuromosaic_optuna.proxies`) transformed by a
signed ``log1p`` (synflow spans tens of orders of magnitude); a missing (``nan``) score is
replaced at fit time by the column's minimum minus one, since a proxy that cannot measure a
network (e.g. ``jacob_cov`` of one whose output ignores its input) marks a broken one.

Model families (``family=``), each with an uncertainty:

* ``"forest"`` (default): a random forest; the spread of its trees' predictions.
* ``"gp"``: a Gaussian process (constant x Matérn 5/2 with one length scale per feature,
  plus white noise) on standardised features; its posterior standard deviation.
* ``"boosting"``: five gradient-boosted tree ensembles on different row subsamples; their
  spread.
* ``"mlp"``: five small MLPs (two hidden layers of 64) from different initialisations on
  standardised features; their spread.

Measured (``benchmarks/proxies.py``, 996 NAS-Bench-201 cells, trained on 100, Spearman on
the other 896, median of 5 draws; CIFAR-10 / CIFAR-100 / ImageNet16-120): boosting 0.946 /
0.940 / 0.927, forest 0.937 / 0.925 / 0.902, GP 0.855 / 0.911 / 0.900, MLP 0.43-0.53; the
encoding alone (forest) 0.69-0.71. The default stays ``"forest"`` (within 0.025 of boosting,
one model instead of five; the family warm starts already use).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution

from neuromosaic_optuna.space import SearchSpace, param_features

__all__ = ["FAMILIES", "PerformancePredictor", "architecture_features", "screen"]

#: Model families :class:`PerformancePredictor` accepts.
FAMILIES: tuple[str, ...] = ("forest", "gp", "boosting", "mlp")
_MEMBERS = 5


def architecture_features(params: Sequence[Mapping[str, Any]],
                          distributions: Mapping[str, BaseDistribution],
                          proxies: Sequence[Mapping[str, float]] | None = None,
                          proxy_names: Sequence[str] = ()) -> np.ndarray:
    """Feature rows of architectures: their encoding, then their signed-log proxy scores.

    Args:
        params: One parameter set per architecture.
        distributions: The search space's distributions (the encoding's column order).
        proxies: One ``{proxy: score}`` per architecture (same order as ``params``), or None.
        proxy_names: The proxies to use as features, in column order.

    Returns:
        ``(len(params), width)`` float array; proxy columns may hold ``nan``.

    Example:
        >>> from optuna.distributions import CategoricalDistribution
        >>> dists = {"op": CategoricalDistribution(["a", "b"])}
        >>> architecture_features([{"op": "b"}], dists, [{"synflow": 1e30}], ["synflow"]
        ...                       ).round(2).tolist()
        [[0.0, 0.71, 69.08]]
    """
    encoded = param_features(params, distributions)
    if not proxy_names:
        return encoded
    if proxies is None or len(proxies) != len(params):
        raise ValueError("proxies: give one score mapping per architecture when proxy_names "
                         "is set")
    raw = np.array([[float(row.get(name, math.nan)) for name in proxy_names] for row in proxies],
                   dtype=float).reshape(len(params), len(proxy_names))
    with np.errstate(invalid="ignore"):
        scaled = np.sign(raw) * np.log1p(np.abs(raw))
    return np.hstack([encoded, scaled])


class PerformancePredictor:
    """Predict a score (higher better or not: it just regresses) with an uncertainty.

    Args:
        family: One of :data:`FAMILIES`.
        seed: Seeds every random choice of the model.
        n_estimators: Trees of the forest (default 200) or boosting stages of each boosted
            member (default 150); ignored by ``"gp"`` and ``"mlp"``. Fewer is cheaper to fit
            (the sampler's screening refits for every trial).

    Raises:
        ValueError: An unknown family or ``n_estimators`` below 1.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.uniform(size=(60, 3))
        >>> model = PerformancePredictor(seed=0).fit(x, 3 * x[:, 0] + x[:, 1])
        >>> mean, std = model.predict(np.array([[0.9, 0.5, 0.5], [0.1, 0.5, 0.5]]))
        >>> bool(mean[0] > mean[1]), bool((std >= 0).all())
        (True, True)
    """

    def __init__(self, *, family: str = "forest", seed: int = 0,
                 n_estimators: int | None = None) -> None:
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}; got {family!r}")
        if n_estimators is not None and (not isinstance(n_estimators, int) or n_estimators < 1):
            raise ValueError(f"n_estimators must be None or an integer >= 1; got "
                             f"{n_estimators!r}")
        self.family = family
        self.seed = seed
        self.n_estimators = n_estimators
        self._fill: np.ndarray | None = None
        self._models: list[Any] = []

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        assert self._fill is not None
        x = np.asarray(x, dtype=float)
        return np.where(np.isfinite(x), x, self._fill)

    def fit(self, features: np.ndarray,
            targets: Sequence[float] | np.ndarray) -> PerformancePredictor:
        """Fit on ``(n, d)`` features and ``n`` targets (``n >= 2``); returns ``self``.

        Raises:
            ValueError: Shapes that do not match, fewer than two rows, or a non-finite target.
        """
        x = np.asarray(features, dtype=float)
        y = np.asarray(targets, dtype=float)
        if x.ndim != 2 or y.shape != (len(x),) or len(x) < 2:
            raise ValueError(f"features must be (n, d) and targets (n,) with n >= 2; got "
                             f"{x.shape} and {y.shape}")
        if not np.isfinite(y).all():
            raise ValueError("targets: every value must be finite; drop failed trials first")
        finite = np.isfinite(x)
        low = np.where(finite, x, np.inf).min(axis=0)
        self._fill = np.where(np.isfinite(low), low - 1.0, 0.0)
        x = self._prepare(x)
        self._models = [model.fit(x, y) for model in self._new_models()]
        return self

    def _new_models(self) -> list[Any]:
        from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
        from sklearn.neural_network import MLPRegressor
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if self.family == "forest":
            return [RandomForestRegressor(n_estimators=self.n_estimators or 200,
                                          min_samples_leaf=2,
                                          random_state=self.seed, n_jobs=1)]
        if self.family == "gp":
            kernel = (ConstantKernel(1.0, (1e-3, 1e3)) * Matern(length_scale=3.0, nu=2.5,
                                                                 length_scale_bounds=(1e-2, 1e3))
                      + WhiteKernel(0.1, (1e-6, 1.0)))
            return [make_pipeline(StandardScaler(), _QuietGP(GaussianProcessRegressor(
                kernel, normalize_y=True, random_state=self.seed)))]
        if self.family == "boosting":
            return [GradientBoostingRegressor(n_estimators=self.n_estimators or 150, max_depth=3,
                                              learning_rate=0.05,
                                              subsample=0.7, random_state=self.seed + k)
                    for k in range(_MEMBERS)]
        return [make_pipeline(StandardScaler(), MLPRegressor(
            hidden_layer_sizes=(64, 64), alpha=1e-3, max_iter=2000, early_stopping=False,
            random_state=self.seed + k)) for k in range(_MEMBERS)]

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted mean and standard deviation, each ``(n,)``.

        Raises:
            RuntimeError: Called before :meth:`fit`.
        """
        if not self._models:
            raise RuntimeError("fit the predictor before predict")
        x = self._prepare(np.atleast_2d(np.asarray(features, dtype=float)))
        if self.family == "forest":
            forest = self._models[0]
            per_tree = np.array([tree.predict(x) for tree in forest.estimators_])
            return per_tree.mean(axis=0), per_tree.std(axis=0)
        if self.family == "gp":
            pipeline = self._models[0]
            z = pipeline[:-1].transform(x)
            mean, std = pipeline[-1].model.predict(z, return_std=True)
            return np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
        members = np.array([model.predict(x) for model in self._models])
        return members.mean(axis=0), members.std(axis=0)


class _QuietGP:
    """A scikit-learn GP whose optimiser's convergence warnings are silenced."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def fit(self, x: np.ndarray, y: np.ndarray) -> _QuietGP:
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(x, y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(x), dtype=float)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"model": self.model}


def _key(params: Mapping[str, Any], names: Sequence[str]) -> tuple[Any, ...]:
    return tuple(params[name] for name in names)


def screen(predictor: PerformancePredictor, candidates: Sequence[Mapping[str, Any]],
           features: np.ndarray, space: SearchSpace, *, k: int,
           seen: Sequence[Mapping[str, Any]] = (), maximize: bool = True,
           beta: float = 1.0) -> list[dict[str, Any]]:
    """The ``k`` most promising candidates: valid, distinct, and not in ``seen``.

    Candidates are ranked by the optimistic bound ``mean + beta * std`` (``mean - beta * std``
    when minimising); a candidate outside ``space``, one equal (on the space's params) to an
    evaluated architecture or to a better-ranked candidate is skipped.

    Args:
        predictor: A fitted :class:`PerformancePredictor`.
        candidates: Parameter sets to choose from.
        features: Their feature rows, ``(len(candidates), d)``, as the predictor was fitted.
        space: The search space; only its params count for identity and validity.
        k: How many to return at most.
        seen: Architectures already evaluated (or enqueued).
        maximize: Whether a higher prediction is better.
        beta: Weight of the uncertainty (0: the mean alone).

    Returns:
        Up to ``k`` parameter sets (restricted to the space's params), best first.

    Raises:
        ValueError: ``k < 1``, a negative ``beta`` or a feature/candidate count mismatch.

    Example:
        >>> space = SearchSpace({"op": ["a", "b", "c"]})
        >>> cands = [{"op": "a"}, {"op": "b"}, {"op": "b"}, {"op": "z"}, {"op": "c"}]
        >>> x = np.array([[0.0], [2.0], [2.0], [9.0], [1.0]])
        >>> model = PerformancePredictor(seed=0).fit(x, x[:, 0])
        >>> screen(model, cands, x, space, k=3, seen=[{"op": "c"}], beta=0.0)
        [{'op': 'b'}, {'op': 'a'}]
    """
    if k < 1:
        raise ValueError(f"k must be at least 1; got {k}")
    if beta < 0:
        raise ValueError(f"beta must be >= 0; got {beta}")
    if len(features) != len(candidates):
        raise ValueError(f"features: one row per candidate; got {len(features)} rows for "
                         f"{len(candidates)} candidates")
    names = list(space.distributions)
    taken = {_key(p, names) for p in seen if all(n in p for n in names)}
    valid = [i for i, p in enumerate(candidates) if space.contains(p)]
    if not valid:
        return []
    mean, std = predictor.predict(np.asarray(features, dtype=float)[valid])
    bound = mean + beta * std if maximize else -(mean - beta * std)
    chosen: list[dict[str, Any]] = []
    for position in np.argsort(-bound, kind="stable"):
        params = candidates[valid[int(position)]]
        key = _key(params, names)
        if key in taken:
            continue
        taken.add(key)
        chosen.append({name: params[name] for name in names})
        if len(chosen) == k:
            break
    return chosen
