"""Sampler choice and the Pareto search strategy.

:func:`make_sampler` picks the sampler a study file asks for:

* two or more objectives, ``search_strategy = "pareto"`` (the default): :class:`ParetoSampler`,
  our NSGA-II (a subclass of Optuna's ``NSGAIISampler``) with a population size derived from
  the trial budget (:func:`default_population_size`);
* ``search_strategy = "weighted"`` (the objectives scalarized into one ``weighted_score``):
  :class:`ParetoSampler` too, on the one objective (its hypervolume improvement is then the
  improvement over the best score); measured on NAS-Bench-201 it finds better scores than
  TPE at the same budget;
* a single objective: Optuna's ``TPESampler`` with ``multivariate=True``;
* any Optuna sampler class (or ``"ParetoSampler"``) named in ``search_strategy`` or
  ``[sampler] name``, with the keyword arguments of ``[sampler]``.

:class:`ParetoSampler` turns the seed's best practices into features:

* **start broad**: the first generation is a Latin hypercube over the search space (every
  parameter's range, or every category, is covered evenly), not independent random draws;
* **then focus**: from the second generation on, each trial is chosen from a pool of
  candidates (NSGA-II children of the elite population, random points, and one-step
  neighbours of the current Pareto front) by a surrogate fitted to the finished trials (a
  Gaussian process, or with ``surrogate="forest"``/``"boosting"`` a tree ensemble of
  :mod:`neuromosaic_optuna.predictor`; optionally with zero-cost proxy features): the
  candidate whose predicted objectives add the most hypervolume to the front wins.
  Architectures already evaluated are never proposed again;
* **monitor diversity**: after each generation the population's diversity (mean pairwise
  normalized parameter distance, :func:`population_diversity`) is stored in the study user
  attribute ``diversity`` and logged; in a multi-objective study a
  :class:`PrematureConvergenceWarning` is issued when it falls below ``collapse_ratio`` times
  the first generation's (a front should stay spread out; one objective should converge).
  :func:`diversity_history` recomputes the figures from any NSGA-II study.

Every sampler is seeded from the study's seed, so the same seed gives the same trials.
"""

from __future__ import annotations

import logging
import warnings
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, NSGAIISampler
from optuna.samplers.nsgaii import BaseCrossover
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from neuromosaic_optuna import _compat
from neuromosaic_optuna._factory import instantiate, named_class
from neuromosaic_optuna.config import StudyConfig
from neuromosaic_optuna.exceptions import ConfigError, PrematureConvergenceWarning
from neuromosaic_optuna.pareto import hypervolume, pareto_front_mask, pareto_ranks
from neuromosaic_optuna.predictor import PerformancePredictor, architecture_features
from neuromosaic_optuna.pruners import intermediate_values
from neuromosaic_optuna.record import (
    GENERATION,
    generation_of,
    is_feasible,
    metric_names,
    metric_value,
    status_of,
)
from neuromosaic_optuna.space import (
    encode_params,
    param_distances,
    population_diversity,
    unit_position,
)

__all__ = [
    "GenerationDiversity",
    "ParetoSampler",
    "PrematureConvergenceWarning",
    "default_population_size",
    "diversity_history",
    "make_sampler",
    "population_diversity",
]

_logger = logging.getLogger(__name__)

_NSGA_CROSSOVERS = ("BLXAlphaCrossover", "SBXCrossover", "SPXCrossover", "UNDXCrossover",
                    "UniformCrossover", "VSBXCrossover")
#: Study user attribute holding ``{generation: diversity}`` (keys are strings, JSON).
DIVERSITY_ATTR = "diversity"
#: Trial user attribute holding the NSGA-II generation of a trial.
#: User attribute with the generation of a trial (see :func:`record.generation_of`).
GENERATION_ATTR = GENERATION
_STATES_WITH_PARAMS = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING,
                       TrialState.WAITING, TrialState.FAIL)
_LOWER_RUNGS = ("off", "shift")


class GenerationDiversity(NamedTuple):
    """Diversity of one generation's finished trials.

    Attributes:
        generation: NSGA-II generation number (0 is the initial design).
        size: Number of COMPLETE trials of the generation.
        diversity: Mean pairwise normalized distance of their parameters, in ``[0, 1]``.
    """

    generation: int
    size: int
    diversity: float


# --------------------------------------------------------------------------- budget


def default_population_size(n_trials: int | None) -> int:
    """NSGA-II population size for a trial budget: ``n_trials // 12``, kept within [8, 50].

    Optuna's default of 50 leaves a 100-trial study two generations; measured on
    NAS-Bench-201 (``benchmarks/multiobjective.py``), small populations that leave room for
    many generations do clearly better at such budgets.

    Example:
        >>> [default_population_size(n) for n in (20, 100, 300, 1000, None)]
        [8, 8, 25, 50, 8]
    """
    if n_trials is None:
        return 8
    return int(min(50, max(8, n_trials // 12)))


# --------------------------------------------------------------------------- diversity


def _generation_diversity(trials: Iterable[FrozenTrial], generation: int) -> GenerationDiversity:
    members = [t for t in trials if generation_of(t) == generation]
    distributions: dict[str, BaseDistribution] = {}
    for t in members:
        for name, dist in t.distributions.items():
            distributions.setdefault(name, dist)
    return GenerationDiversity(generation, len(members),
                               population_diversity([t.params for t in members], distributions))


def diversity_history(study: Study) -> list[GenerationDiversity]:
    """Population diversity of every generation of a genetic study (NSGA-II and kin).

    Generations are read from the trial user attribute ``generation`` (set by
    :class:`ParetoSampler`) or from Optuna's own ``<Sampler>:generation`` system attribute, so
    studies run with plain ``NSGAIISampler`` work too. Only COMPLETE trials count; the last
    generation may be partial (see ``size``).

    Args:
        study: The study.

    Returns:
        One :class:`GenerationDiversity` per generation with at least two COMPLETE trials,
        by generation number; empty for a study without generations.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(directions=["minimize", "minimize"],
        ...                             sampler=ParetoSampler(population_size=4, seed=0))
        >>> study.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_float("y", 0, 1)),
        ...                n_trials=8)
        >>> [(g.generation, g.size) for g in diversity_history(study)]
        [(0, 4), (1, 4)]
    """
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    generations = sorted({g for t in trials if (g := generation_of(t)) is not None})
    history = [_generation_diversity(trials, g) for g in generations]
    return [h for h in history if h.size >= 2]


# --------------------------------------------------------------------------- design helpers


def _latin_hypercube_unit(seed: int, name: str, size: int, row: int) -> float:
    """Row ``row`` of a Latin-hypercube column for ``name``: one point per stratum of
    ``[0, 1)`` cut into ``size`` equal strata, strata shuffled per parameter."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), size])
    strata = rng.permutation(size)
    offsets = rng.random(size)
    k = row % size
    return float((strata[k] + offsets[k]) / size)


def _from_unit(u: float, dist: BaseDistribution) -> Any:
    """The value at position ``u`` in ``[0, 1)`` of a distribution (categories: equal bins)."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[min(int(u * len(dist.choices)), len(dist.choices) - 1)]
    transform = _compat.search_space_transform({"x": dist}, transform_0_1=True)
    return transform.untransform(np.array([u]))["x"]


def _key(params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(params.items()))


def _neighbours(params: Mapping[str, Any], space: Mapping[str, BaseDistribution],
                rng: np.random.Generator, max_choices: int = 8,
                numeric_steps: int = 2, step: float = 0.1) -> list[dict[str, Any]]:
    """One-parameter changes of ``params``: every other category (at most ``max_choices``),
    and ``numeric_steps`` Gaussian moves of ``step`` (in unit range) per number."""
    out: list[dict[str, Any]] = []
    for name, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            others = [c for c in dist.choices if c != params[name]]
            if len(others) > max_choices:
                others = [others[i] for i in rng.choice(len(others), max_choices, replace=False)]
            out.extend({**params, name: c} for c in others)
        else:
            u = unit_position(params[name], dist)
            for _ in range(numeric_steps):
                moved = float(np.clip(u + rng.normal(0.0, step), 0.0, 1.0 - 1e-9))
                value = _from_unit(moved, dist)
                if value != params[name]:
                    out.append({**params, name: value})
    return out


# --------------------------------------------------------------------------- surrogate


class _Surrogate:
    """Gaussian process (scikit-learn) on the trials' encoded parameters.

    Kernel: constant x RBF with one length scale per encoded column (automatic relevance
    determination; categoricals one-hot) + white noise; targets normalized. The kernel's
    hyperparameters are fitted (from scratch) once per generation and kept for the
    generation's other trials, whose fits only condition on the new data.
    """

    def __init__(self) -> None:
        self._kernel: Any = None
        self._fitted_for: Any = None

    def fit_predict(self, x: np.ndarray, y: np.ndarray, candidates: np.ndarray, *,
                    tag: Any) -> tuple[np.ndarray, np.ndarray]:
        """Fit on ``(x, y)`` and predict mean and standard deviation at ``candidates``, each
        ``(len(candidates), y.shape[1])``; hyperparameters are re-estimated when ``tag`` (the
        generation) or the encoding width changes."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        d = x.shape[1]
        reuse = (self._kernel is not None and self._fitted_for == (tag, d, y.shape[1]))
        kernel = self._kernel if reuse else (
            ConstantKernel(1.0, (1e-5, 1e5)) * RBF(np.full(d, 2.0), (0.1, 50.0))
            + WhiteKernel(0.01, (1e-5, 1.0)))
        model = GaussianProcessRegressor(kernel, normalize_y=True, random_state=0,
                                         optimizer=None if reuse else "fmin_l_bfgs_b")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x, y)
        if not reuse:
            self._kernel, self._fitted_for = model.kernel_, (tag, d, y.shape[1])
        mean, std = model.predict(candidates, return_std=True)
        shape = (len(candidates), -1)
        return (np.asarray(mean, dtype=float).reshape(shape),
                np.asarray(std, dtype=float).reshape(shape))


#: Trees (forest) or stages per boosted member of the screening predictors: a quarter of the
#: predictor's defaults, since they are refitted for every trial (a 200-tree forest cost
#: about 4x the Gaussian process's time per trial on the 2-core machine).
_SCREEN_ESTIMATORS = 50


class _PredictorSurrogate:
    """One :class:`~neuromosaic_optuna.predictor.PerformancePredictor` per target column
    (``family`` ``"forest"`` or ``"boosting"``, :data:`_SCREEN_ESTIMATORS` trees or stages),
    refitted on every call; its uncertainty is the spread of the ensemble's members. Same
    interface as :class:`_Surrogate`."""

    def __init__(self, family: str, seed: int) -> None:
        self._family = family
        self._seed = seed

    def fit_predict(self, x: np.ndarray, y: np.ndarray, candidates: np.ndarray, *,
                    tag: Any) -> tuple[np.ndarray, np.ndarray]:
        """Fit on ``(x, y)`` and predict mean and standard deviation at ``candidates``, each
        ``(len(candidates), y.shape[1])``; ``tag`` is unused (every fit starts afresh)."""
        y = np.asarray(y, dtype=float).reshape(len(x), -1)
        means, stds = [], []
        for column in y.T:
            model = PerformancePredictor(family=self._family, seed=self._seed,
                                         n_estimators=_SCREEN_ESTIMATORS)
            mean, std = model.fit(x, column).predict(candidates)
            means.append(mean)
            stds.append(std)
        return np.column_stack(means), np.column_stack(stds)


#: Surrogate families ``ParetoSampler(surrogate=...)`` accepts.
_SURROGATES = ("gp", "forest", "boosting")
ProxyFunction = Callable[[dict[str, Any]], Mapping[str, float]]


def _loss_matrix(trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]) -> np.ndarray:
    signs = np.array([-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in directions])
    return np.array([t.values for t in trials], dtype=float) * signs


def _probability_feasible(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """P(every constraint value <= 0) under independent Gaussian predictions."""
    from scipy.stats import norm

    z = -mean / np.maximum(std, 1e-9)
    return np.asarray(np.prod(norm.cdf(z), axis=1), dtype=float)


# --------------------------------------------------------------------------- sampler


class ParetoSampler(NSGAIISampler):
    """NSGA-II that starts broad, then focuses with a surrogate, and watches its diversity.

    Selection, elitism, crowding and constraint handling (Deb's constrained domination over
    ``Trial.set_constraint`` values) are Optuna's ``NSGAIISampler``'s. On top of them:

    * generation 0 is a Latin hypercube of ``population_size`` points (``initial_design``);
    * every later trial is the best of a candidate pool (``n_candidates`` NSGA-II children and
      random points, plus one-step neighbours of the feasible Pareto front when ``focus``)
      under a Gaussian-process surrogate of the objectives: the largest hypervolume
      improvement of the predicted point over the current feasible front, times the
      predicted chance of feasibility when the study has constraints (``screening``);
    * already evaluated parameter sets are not proposed again, nor (with two or more
      objectives) candidates within ``min_distance`` of another trial of the same generation;
    * trials whose user attribute ``status`` is ``"rejected"`` (refused before training by a
      cost constraint, with a sentinel accuracy; see :mod:`neuromosaic_optuna.objective`)
      train the constraint model but not the objective model;
    * each finished generation's diversity is stored and a
      :class:`PrematureConvergenceWarning` issued when it drops below ``collapse_ratio`` times
      the first generation's.

    With ``screening=False`` and ``initial_design="random"`` it is plain NSGA-II (plus the
    duplicate check and the diversity monitor).

    The surrogate is a Gaussian process by default (``surrogate="gp"``); ``"forest"`` or
    ``"boosting"`` screen with :class:`~neuromosaic_optuna.predictor.PerformancePredictor`
    ensembles instead (one per objective and constraint model, refitted for every trial).
    ``proxies`` adds, to every surrogate's encoding, features computed from the network
    itself (zero-cost proxies, :mod:`neuromosaic_optuna.proxies`): a callable called once per
    parameter set, never with a benchmark table's values.

    Cost: the surrogate's kernel is fitted once per generation; with 100 trials a suggestion
    takes some tens of milliseconds (scikit-learn's Gaussian process, one thread), against
    seconds for Optuna's ``GPSampler``. A suggestion reads the study's trials and its system
    attributes once each (a snapshot of the study serves the reads Optuna's NSGA-II code
    makes for every one of the pool's children), so that workers sharing a storage do not
    queue on it. On NAS-Bench-201 (``benchmarks/multiobjective.py``)
    each part measurably helps: the budget-sized population, the surrogate screening and the
    front neighbours.

    Args:
        population_size: Individuals per generation (see :func:`default_population_size`).
        initial_design: ``"lhs"`` (Latin hypercube) or ``"random"`` for generation 0.
        screening: Choose offspring with the surrogate.
        focus: Add neighbours of the Pareto front to the candidate pool.
        n_candidates: NSGA-II children plus random points per pool (half each).
        max_model_trials: At most this many trials (the best by Pareto rank) train the
            surrogate, which bounds its cost in long studies.
        min_distance: In a multi-objective study, candidates closer than this (normalized
            distance, as in :func:`population_diversity`) to another trial of the same
            generation are not proposed: each generation stays spread out, so a noisy
            surrogate cannot collapse it onto one spot of a continuous space, while later
            generations may still refine close to earlier ones. Exact repeats of any trial are
            never proposed.
        collapse_ratio: Warn when a generation's diversity is below this fraction of the
            first generation's (multi-objective studies only); 0 disables the warning.
        mutation_prob: NSGA-II's per-parameter mutation probability (default ``1/n_params``).
        crossover: An ``optuna.samplers.nsgaii`` crossover (default uniform).
        crossover_prob: Probability that a child comes from crossover.
        swapping_prob: Uniform crossover's per-parameter swapping probability.
        surrogate: ``"gp"`` (Gaussian process), ``"forest"`` (random forest) or
            ``"boosting"`` (gradient-boosted trees): the model that screens offspring.
        proxies: None, or a callable ``params -> {proxy name: score}`` computed from the
            network the parameters describe; its scores (signed ``log1p``; ``nan`` allowed)
            are appended to the surrogate's features. It is called once per parameter set.
        seed: Seed of every random choice; the same seed gives the same trials.
        lower_rungs: What the surrogate learns from trials stopped early (PRUNED, with curves
            reported by :func:`neuromosaic_optuna.pruners.report`): ``"off"`` nothing;
            ``"shift"``: each objective's last reported value, plus the median gap between
            that step and the final value among COMPLETE trials that reported the step (at
            least two), cost objectives from the user attribute ``metrics``. Such points
            train the objective surrogate only: the front, the hypervolume a candidate must
            improve and the feasibility model stay full-fidelity.

    Raises:
        ValueError: An argument is out of range (the message names it).

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> sampler = ParetoSampler(population_size=6, seed=1)
        >>> study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
        >>> def f(t):
        ...     x, y = t.suggest_float("x", 0, 1), t.suggest_float("y", 0, 1)
        ...     return x, (1 - x) ** 2 + y
        >>> study.optimize(f, n_trials=20)
        >>> min(t.values[1] for t in study.best_trials if t.values[0] < 0.2) < 0.9
        True
    """

    def __init__(
        self,
        *,
        population_size: int = 8,
        initial_design: str = "lhs",
        screening: bool = True,
        focus: bool = True,
        n_candidates: int = 64,
        max_model_trials: int = 300,
        min_distance: float = 0.05,
        collapse_ratio: float = 0.15,
        mutation_prob: float | None = None,
        crossover: BaseCrossover | None = None,
        crossover_prob: float = 0.9,
        swapping_prob: float = 0.5,
        surrogate: str = "gp",
        proxies: ProxyFunction | None = None,
        seed: int | None = None,
        lower_rungs: str = "off",
    ) -> None:
        if lower_rungs not in _LOWER_RUNGS:
            raise ValueError(f"lower_rungs: expected one of {', '.join(_LOWER_RUNGS)}, got "
                             f"{lower_rungs!r}")
        if surrogate not in _SURROGATES:
            raise ValueError(f"surrogate: expected one of {', '.join(map(repr, _SURROGATES))}, "
                             f"got {surrogate!r}")
        if proxies is not None and not callable(proxies):
            raise ValueError(f"proxies: expected None or a callable params -> {{name: score}}, "
                             f"got {type(proxies).__name__}")
        if initial_design not in ("lhs", "random"):
            raise ValueError(f"initial_design: expected 'lhs' or 'random', got {initial_design!r}")
        if not isinstance(n_candidates, int) or n_candidates < 2:
            raise ValueError(f"n_candidates: expected an integer >= 2, got {n_candidates!r}")
        if not isinstance(max_model_trials, int) or max_model_trials < 4:
            raise ValueError(f"max_model_trials: expected an integer >= 4, got "
                             f"{max_model_trials!r}")
        if not 0.0 <= min_distance < 1.0:
            raise ValueError(f"min_distance: expected a value in [0, 1), got {min_distance!r}")
        if not 0.0 <= collapse_ratio < 1.0:
            raise ValueError(f"collapse_ratio: expected a value in [0, 1), got {collapse_ratio!r}")
        super().__init__(population_size=population_size, mutation_prob=mutation_prob,
                         crossover=crossover, crossover_prob=crossover_prob,
                         swapping_prob=swapping_prob, seed=seed)
        self._design_seed = (int(np.random.SeedSequence().generate_state(1)[0]) if seed is None
                             else int(seed))
        self._initial_design = initial_design
        self._screening = screening
        self._focus = focus
        self._n_candidates = n_candidates
        self._max_model_trials = max_model_trials
        self._min_distance = min_distance
        self._collapse_ratio = collapse_ratio
        self._lower_rungs = lower_rungs
        self._surrogate = surrogate
        self._proxies = proxies
        self._proxy_cache: dict[tuple[tuple[str, Any], ...], dict[str, float]] = {}
        self._proxy_names: list[str] | None = None
        self._objective_model: _Surrogate | _PredictorSurrogate
        self._constraint_model: _Surrogate | _PredictorSurrogate
        if surrogate == "gp":
            self._objective_model, self._constraint_model = _Surrogate(), _Surrogate()
        else:
            self._objective_model = _PredictorSurrogate(surrogate, self._design_seed)
            self._constraint_model = _PredictorSurrogate(surrogate, self._design_seed + 1)
        self._recorded: set[int] = set()

    # ------------------------------------------------------------------ Optuna hooks

    # Each hook below works on a snapshot of the study (``_compat.study_snapshot``): the
    # trials and study system attributes are read once per suggestion (the read Optuna makes
    # for the new trial), not once per NSGA-II child as Optuna's genetic-sampler code would.

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        with _compat.study_snapshot(study) as view:
            super().before_trial(view, trial)
            generation = self.get_trial_generation(view, trial)
            _compat.storage_of(view).set_trial_user_attr(_compat.trial_id(trial),
                                                         GENERATION_ATTR, generation)
            if generation > 0:
                self._record_diversity(view, generation - 1)

    def infer_relative_search_space(self, study: Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        with _compat.study_snapshot(study) as view:
            return super().infer_relative_search_space(view, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        with _compat.study_snapshot(study) as view:
            generation = self.get_trial_generation(view, trial)
            if not search_space:
                return {}
            if generation == 0:
                return self._initial_params(trial, search_space)
            if not self._screening:
                return self._child(view, trial, search_space)
            return self._screened_child(view, trial, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        if (self._initial_design == "lhs" and trial.number < (self.population_size or 1)
                and self.get_trial_generation(study, trial) == 0):
            return _from_unit(_latin_hypercube_unit(self._design_seed, param_name,
                                                    self.population_size or 1, trial.number),
                              param_distribution)
        return super().sample_independent(study, trial, param_name, param_distribution)

    # ------------------------------------------------------------------ proposals

    def _initial_params(self, trial: FrozenTrial,
                        search_space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
        size = self.population_size or 1
        # Each design row is used once: generation 0 outlives trial number `size` when some of
        # its trials were pruned or failed, and those extra trials are drawn at random.
        if self._initial_design != "lhs" or trial.number >= size:
            return {}
        return {name: _from_unit(_latin_hypercube_unit(self._design_seed, name, size,
                                                       trial.number), dist)
                for name, dist in search_space.items()}

    def _child(self, study: Study, trial: FrozenTrial,
               search_space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
        """An NSGA-II child with its mutated parameters drawn at random (as NSGA-II does:
        ``NSGAIISampler.sample_independent``, past our Latin-hypercube override)."""
        child = super().sample_relative(study, trial, dict(search_space))
        for name, dist in search_space.items():
            if name not in child:
                child[name] = super().sample_independent(study, trial, name, dist)
        return child

    def _random(self, study: Study, trial: FrozenTrial,
                search_space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
        return {name: super(ParetoSampler, self).sample_independent(study, trial, name, dist)
                for name, dist in search_space.items()}

    def _screened_child(self, study: Study, trial: FrozenTrial,
                        search_space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
        trials = study.get_trials(deepcopy=False, states=_STATES_WITH_PARAMS)
        seen = {_key(t.params) for t in trials if t.number != trial.number and t.params}
        done = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None
                and all(name in t.params for name in search_space)]
        loss = _loss_matrix(done, study.directions) if done else np.zeros((0, 0))
        feasible = np.array([is_feasible(t) for t in done], dtype=bool)
        front_mask = np.zeros(len(done), dtype=bool)
        if feasible.any():
            front_mask[np.flatnonzero(feasible)[pareto_front_mask(
                loss[feasible], ["minimize"] * loss.shape[1])]] = True

        pool: list[dict[str, Any]] = []
        keys: set[tuple[tuple[str, Any], ...]] = set()

        def offer(params: dict[str, Any]) -> None:
            key = _key(params)
            if key not in seen and key not in keys:
                keys.add(key)
                pool.append(params)

        for i in range(self._n_candidates):
            offer(self._child(study, trial, search_space) if i % 2 == 0
                  else self._random(study, trial, search_space))
        if self._focus:
            rng = np.random.default_rng(_compat.sampler_rng(self).randint(2**31))
            for j in np.flatnonzero(front_mask).tolist():
                for params in _neighbours({n: done[j].params[n] for n in search_space},
                                          search_space, rng):
                    offer(params)
        generation = self.get_trial_generation(study, trial)
        siblings = [t.params for t in trials if t.number != trial.number
                    and generation_of(t) == generation]
        if len(study.directions) > 1:  # one objective should converge, a front spread out
            pool = self._spread(pool, siblings, search_space)
        if not pool:
            return self._random(study, trial, search_space)
        if len(done) < 3:
            return pool[0]
        lower = self._lower_rung_points(study, trials, done, search_space)
        return pool[self._best_candidate(done, loss, feasible, front_mask, pool, search_space,
                                         generation, lower=lower)]

    def _lower_rung_points(self, study: Study, trials: Sequence[FrozenTrial],
                           done: Sequence[FrozenTrial],
                           search_space: Mapping[str, BaseDistribution]
                           ) -> tuple[list[FrozenTrial], np.ndarray]:
        """The PRUNED trials the surrogate learns from and their estimated losses (one row
        each, signs as :func:`_loss_matrix`), per ``lower_rungs``; none when ``"off"``."""
        m = len(study.directions)
        if self._lower_rungs == "off" or not done:
            return [], np.zeros((0, m))
        names = metric_names(study)
        signs = np.array([-1.0 if d == StudyDirection.MAXIMIZE else 1.0
                          for d in study.directions])
        gaps: dict[tuple[int, int], float | None] = {}

        def gap(i: int, step: int) -> float | None:
            if (i, step) not in gaps:
                found = []
                for t in done:
                    value = intermediate_values(t, names[i]).get(step)
                    if value is not None and np.isfinite(value) and np.isfinite(t.values[i]):
                        found.append(float(t.values[i]) - value)
                gaps[(i, step)] = float(np.median(found)) if len(found) >= 2 else None
            return gaps[(i, step)]

        kept, rows = [], []
        for t in trials:
            if t.state != TrialState.PRUNED or not all(n in t.params for n in search_space):
                continue
            row: list[float] = []
            curved = False
            for i, name in enumerate(names):
                curve = {s: v for s, v in intermediate_values(t, name).items()
                         if np.isfinite(v)}
                shift = gap(i, max(curve)) if curve else None
                if curve and shift is not None:
                    row.append(curve[max(curve)] + shift)
                    curved = True
                    continue
                cost = None if curve else metric_value(t, name)
                if cost is None:
                    break
                row.append(cost)
            else:
                if curved:
                    kept.append(t)
                    rows.append(row)
        kept, rows = kept[-self._max_model_trials:], rows[-self._max_model_trials:]
        return kept, np.array(rows, dtype=float).reshape(-1, m) * signs

    def _spread(self, pool: list[dict[str, Any]], tried: list[dict[str, Any]],
                search_space: Mapping[str, BaseDistribution]) -> list[dict[str, Any]]:
        """The candidates at least ``min_distance`` away from every parameter set in ``tried``
        (the other trials of the generation)."""
        tried = [p for p in tried if all(name in p for name in search_space)]
        if not pool or not tried or self._min_distance <= 0:
            return pool
        cand, categorical = encode_params(pool, search_space)
        seen, _ = encode_params(tried, search_space)
        nearest = param_distances(cand, seen, categorical).min(axis=1)
        return [p for p, d in zip(pool, nearest, strict=True) if d >= self._min_distance]

    def _best_candidate(self, done: list[FrozenTrial], loss: np.ndarray, feasible: np.ndarray,
                        front_mask: np.ndarray, pool: list[dict[str, Any]],
                        search_space: Mapping[str, BaseDistribution], generation: int, *,
                        lower: tuple[list[FrozenTrial], np.ndarray] | None = None) -> int:
        m = loss.shape[1]
        train = np.arange(len(done))
        if len(done) > self._max_model_trials:
            ranks = pareto_ranks(loss, ["minimize"] * m, feasible=feasible)
            order = np.lexsort((-train, ranks))  # best rank first, newest first within a rank
            train = np.sort(order[: self._max_model_trials])
        transform = _compat.search_space_transform(dict(search_space), transform_0_1=True)
        x = np.array([transform.transform({n: done[i].params[n] for n in search_space})
                      for i in train])
        candidates = np.array([transform.transform(p) for p in pool])
        lower_params = ([{n: t.params[n] for n in search_space} for t in lower[0]]
                        if lower is not None else [])
        lower_x = np.array([transform.transform(p) for p in lower_params]).reshape(
            len(lower_params), x.shape[1])
        if self._proxies is not None:  # one call, so the GP's proxy scaling is shared
            extra = self._proxy_features([{n: done[i].params[n] for n in search_space}
                                          for i in train] + pool + lower_params)
            n_x, n_c = len(x), len(candidates)
            x = np.hstack([x, extra[:n_x]])
            candidates = np.hstack([candidates, extra[n_x:n_x + n_c]])
            lower_x = np.hstack([lower_x, extra[n_x + n_c:]])
        p_feasible = self._feasibility(done, train, x, candidates, generation)
        # Trials rejected before training carry sentinel objective values: they teach the
        # constraint model, not the objective model.
        informative = np.array([status_of(done[i]) != "rejected" for i in train])
        if informative.sum() < 3:
            informative[:] = True
        low = loss[train][informative].min(axis=0)
        high = loss[train][informative].max(axis=0)
        scale = np.where(high > low, high - low, 1.0)
        targets = (loss[train][informative] - low) / scale
        fit_x = x[informative]
        if lower is not None and lower[0]:  # trials stopped early: the objective model only
            fit_x = np.vstack([fit_x, lower_x])
            targets = np.vstack([targets, (lower[1] - low) / scale])
        mean, _ = self._objective_model.fit_predict(fit_x, targets, candidates,
                                                    tag=generation)
        front = (loss[front_mask] - low) / scale
        directions = ["minimize"] * m
        if front.shape[0] == 0:  # nothing feasible yet: the most likely feasible candidate
            return int(np.argmax(p_feasible))
        reference = np.maximum(np.full(m, 1.1), front.max(axis=0) + 0.1)
        base = hypervolume(front, directions, reference)
        gain = np.array([hypervolume(np.vstack([front, p]), directions, reference) - base
                         for p in mean]) * p_feasible
        if gain.max() > 0:
            return int(np.argmax(gain))
        # No predicted improvement: the candidate predicted closest to the front (additive
        # epsilon indicator), preferring likely feasible ones.
        gap = np.array([np.min(np.max(p - front, axis=1)) for p in mean])
        return int(np.argmin(gap - p_feasible))

    def _proxy_features(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """Proxy columns for parameter sets: each set's scores computed once (cached), names
        fixed by the first result, signed-log scaled
        (:func:`~neuromosaic_optuna.predictor.architecture_features`). For the Gaussian
        process they are rescaled to ``[0, 1]`` over ``rows`` (missing: 0); the tree models
        take them as they are (``nan`` filled by the predictor)."""
        assert self._proxies is not None
        scores = []
        for params in rows:
            key = _key(params)
            if key not in self._proxy_cache:
                self._proxy_cache[key] = {str(k): float(v)
                                          for k, v in self._proxies(dict(params)).items()}
            scores.append(self._proxy_cache[key])
        if self._proxy_names is None:
            self._proxy_names = sorted(scores[0]) if scores else []
        extra = architecture_features(rows, {}, scores, self._proxy_names)
        if self._surrogate != "gp":
            return extra
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-nan columns
            low, high = np.nanmin(extra, axis=0), np.nanmax(extra, axis=0)
        span = np.where(high > low, high - low, 1.0)
        return np.nan_to_num((extra - low) / span, nan=0.0)

    def _feasibility(self, done: list[FrozenTrial], train: np.ndarray, x: np.ndarray,
                     candidates: np.ndarray, generation: int) -> np.ndarray:
        """Predicted probability that each candidate satisfies every constraint: a second
        Gaussian process on the signed values of the constraints every trial has (``<= 0``
        feasible); 1 everywhere while none of them was violated."""
        keys = sorted(set.intersection(*(set(done[i].constraints) for i in train)))
        values = np.array([[float(done[i].constraints[k]) for k in keys] for i in train])
        values = np.nan_to_num(values, nan=1.0)  # unmeasured: violated (record.violation)
        if not keys or (values <= 0).all():
            return np.ones(len(candidates))
        mean, std = self._constraint_model.fit_predict(x, values, candidates,
                                                       tag=generation)
        return _probability_feasible(mean, std)

    # ------------------------------------------------------------------ diversity

    def _record_diversity(self, study: Study, finished: int) -> None:
        """Store (once) the diversity of generations ``0 .. finished`` and warn when the
        newest has collapsed."""
        if finished in self._recorded:
            return
        self._recorded.add(finished)
        stored = dict(study.user_attrs.get(DIVERSITY_ATTR) or {})
        if str(finished) in stored:
            return
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        for generation in range(finished + 1):
            if str(generation) not in stored:
                figure = _generation_diversity(trials, generation)
                if figure.size >= 2:
                    stored[str(generation)] = round(figure.diversity, 6)
                    _logger.info("generation %d: population diversity %.3f (%d trials)",
                                 generation, figure.diversity, figure.size)
        study.set_user_attr(DIVERSITY_ATTR, stored)
        first, last = stored.get("0"), stored.get(str(finished))
        # A single-objective search should converge; only a multi-objective population that
        # shrinks to a point (instead of spreading along the front) has converged prematurely.
        if (self._collapse_ratio > 0 and finished > 0 and len(study.directions) > 1
                and first is not None and last is not None
                and last < self._collapse_ratio * first):
            message = (f"premature convergence: the diversity of generation {finished} "
                       f"({last:.3f}) fell below {self._collapse_ratio:g} x that of the first "
                       f"generation ({first:.3f}); widen the search space, raise "
                       f"population_size or mutation_prob, or restart with another seed")
            _logger.warning(message)
            warnings.warn(message, PrematureConvergenceWarning, stacklevel=3)


# --------------------------------------------------------------------------- choice


_OWN_SAMPLERS: dict[str, type[BaseSampler]] = {"ParetoSampler": ParetoSampler}


def _instantiate(cls: type[BaseSampler], kwargs: Mapping[str, Any], seed: int,
                 path: str) -> BaseSampler:
    kwargs = dict(kwargs)
    if "crossover" in kwargs and isinstance(kwargs["crossover"], str):
        if kwargs["crossover"] not in _NSGA_CROSSOVERS:
            raise ConfigError(f"{path}.crossover", f"choose one of {', '.join(_NSGA_CROSSOVERS)}")
        kwargs["crossover"] = getattr(optuna.samplers.nsgaii, kwargs["crossover"])()
    return instantiate(cls, kwargs, path, defaults={"seed": seed})


def make_sampler(config: StudyConfig) -> BaseSampler:
    """Build the sampler a study file asks for (see the module docstring for the rules).

    ``population_size`` (study key) sets the Pareto sampler's population unless ``[sampler]``
    does; otherwise it comes from :func:`default_population_size` of ``max_trials``.

    Args:
        config: The study configuration.

    Returns:
        A seeded Optuna sampler.

    Raises:
        ConfigError: An unknown sampler name (``sampler.name``) or an argument the sampler
            does not take or rejects (``sampler.<argument>``).

    Example:
        >>> from neuromosaic_optuna.config import load_config
        >>> cfg = load_config({"name": "x", "architecture_type": "conv_net",
        ...     "search_space": {"w": [1, 2]}, "objectives": ["accuracy", "flops"],
        ...     "max_trials": 100})
        >>> sampler = make_sampler(cfg)
        >>> type(sampler).__name__, sampler.population_size
        ('ParetoSampler', 8)
    """
    options = {k: v for k, v in config.sampler.items() if k != "name"}
    name = config.sampler.get("name")
    strategy = config.search_strategy
    path = "sampler.name" if name is not None else "search_strategy"
    if name is None and strategy not in (None, "pareto", "weighted"):
        name = strategy
    if name is not None:
        cls = named_class(name, own=_OWN_SAMPLERS, module=optuna.samplers, base=BaseSampler,
                          path=path, kind="Optuna sampler")
        if cls is ParetoSampler:
            options.setdefault("population_size", config.population_size
                               or default_population_size(config.max_trials))
        return _instantiate(cls, options, config.seed, "sampler")
    if len(config.directions) > 1 or config.is_weighted:
        options.setdefault("population_size", config.population_size
                           or default_population_size(config.max_trials))
        return _instantiate(ParetoSampler, options, config.seed, "sampler")
    options.setdefault("multivariate", True)
    return _instantiate(optuna.samplers.TPESampler, options, config.seed, "sampler")
