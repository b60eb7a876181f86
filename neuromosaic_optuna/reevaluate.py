"""Retrain the front with extra seeds: is the front real once noise is accounted for?

The seed lists "noisy measurements" among its pitfalls: one training run per architecture
ranks architectures partly by luck. :func:`reevaluate` retrains the study's top-K front
trials with extra seeds (the same params, budget and data; the training seed changes), stores
every run's values with their mean and standard deviation on the study (user attribute
:data:`~neuromosaic_optuna.record.REEVALUATION_ATTR`: a finished trial cannot be updated in
Optuna), and compares the front before and after, with the re-evaluated trials at their
mean. :mod:`neuromosaic_optuna.insights` then reads the means instead of the single runs.

Example:
    >>> import optuna, neuromosaic_optuna as nm
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> config = nm.load_study_file("studies/quickstart.toml", budget="smoke")
    >>> study = nm.create_study(config)
    >>> study.add_trial(optuna.trial.create_trial(
    ...     params={"depth_multiplier": 0.5, "width_multiplier": 0.25, "se_ratio": 0.0},
    ...     distributions=nm.Objective(config).space.distributions, values=[0.5, 1e6]))
    >>> report = reevaluate(study, config, top=1, seeds=1)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import optuna

from neuromosaic_optuna.config import StudyConfig
from neuromosaic_optuna.pareto import pareto_front_mask
from neuromosaic_optuna.record import (
    REEVALUATION_ATTR,
    is_feasible,
    metric_names,
    reevaluations,
)

__all__ = ["Reevaluation", "ReevaluationReport", "reevaluate"]


@dataclass
class Reevaluation:
    """One trial's runs: the original and one per extra seed (objective values each)."""

    trial_number: int
    seeds: list[int]
    runs: list[list[float]]

    @property
    def mean(self) -> list[float]:
        """Mean per objective over all runs."""
        return [float(v) for v in np.mean(self.runs, axis=0)]

    @property
    def std(self) -> list[float]:
        """Sample standard deviation per objective (0 with one run)."""
        if len(self.runs) < 2:
            return [0.0] * len(self.runs[0])
        return [float(v) for v in np.std(self.runs, axis=0, ddof=1)]

    def to_dict(self) -> dict[str, Any]:
        """The stored form."""
        return {"seeds": self.seeds, "runs": self.runs, "mean": self.mean, "std": self.std}


@dataclass
class ReevaluationReport:
    """What re-evaluation found."""

    names: list[str]
    trials: list[Reevaluation]
    front_before: list[int]
    front_after: list[int]

    @property
    def changed(self) -> bool:
        """True when the front differs once the re-evaluated trials are at their means."""
        return sorted(self.front_before) != sorted(self.front_after)

    def lines(self) -> list[str]:
        """Plain-text summary."""
        out = []
        for r in self.trials:
            cells = ", ".join(f"{n} {m:.4g} ± {s:.2g}"
                              for n, m, s in zip(self.names, r.mean, r.std, strict=True))
            out.append(f"trial {r.trial_number}: {len(r.runs)} runs (seeds {r.seeds}): "
                       f"{cells}")
        if self.changed:
            gone = sorted(set(self.front_before) - set(self.front_after))
            new = sorted(set(self.front_after) - set(self.front_before))
            out.append(f"the front changes once noise is accounted for: leaves {gone or '-'}, "
                       f"joins {new or '-'} (front now {sorted(self.front_after)})")
        else:
            out.append(f"the front is unchanged at the re-evaluated means: "
                       f"{sorted(self.front_after)}")
        return out


def _front(study: optuna.Study, means: dict[int, list[float]]) -> list[int]:
    trials = [t for t in study.get_trials(deepcopy=False,
                                          states=(optuna.trial.TrialState.COMPLETE,))
              if t.values is not None and all(math.isfinite(v) for v in t.values)]
    if not trials:
        return []
    values = np.array([means.get(t.number, t.values) for t in trials], dtype=float)
    directions = [d.name.lower() for d in study.directions]
    mask = pareto_front_mask(values, directions,
                             feasible=[is_feasible(t) for t in trials])
    return [t.number for t, on in zip(trials, mask, strict=True) if on]


def reevaluate(study: optuna.Study, config: StudyConfig, *, top: int = 5, seeds: int = 3,
               first_seed: int = 1000,
               on_run: Callable[[int, int], None] | None = None) -> ReevaluationReport:
    """Retrain the study's top-``top`` front trials with ``seeds`` extra training seeds.

    Args:
        study: A finished study made from ``config``.
        config: Its study configuration (budget, data, training settings).
        top: How many front trials to retrain, best first by the first objective.
        seeds: Extra runs per trial; run ``i`` trains with seed ``first_seed + i`` (the
            objective adds the trial number, as in the search).
        first_seed: Seed of the first extra run.
        on_run: Called with (trial number, seed) before each run (progress).

    Returns:
        A :class:`ReevaluationReport`; the runs are stored on the study
        (:data:`~neuromosaic_optuna.record.REEVALUATION_ATTR`), merged with earlier ones.

    Raises:
        ValueError: ``top`` or ``seeds`` below 1.
    """
    from neuromosaic_optuna.objective import Objective

    if top < 1 or seeds < 1:
        raise ValueError("top and seeds must be >= 1")
    names = metric_names(study)
    stored = reevaluations(study)
    front = _front(study, {})  # single runs, as the search saw them
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    sign = 1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1
    chosen = sorted(front, key=lambda n: -sign * float(by_number[n].values[0]))[:top]
    results = []
    for number in chosen:
        trial = by_number[number]
        prior = stored.get(number, {})
        runs: list[list[float]] = [list(r) for r in prior.get("runs", [list(trial.values)])]
        used: list[int] = list(prior.get("seeds", [config.seed]))
        for i in range(seeds):
            seed = first_seed + i
            if seed in used:
                continue
            if on_run is not None:
                on_run(number, seed)
            objective = Objective(config.with_overrides(seed=seed))
            # FixedTrial offers the Trial interface the objective uses (suggest, attrs).
            fixed = cast(optuna.trial.Trial,
                         optuna.trial.FixedTrial(dict(trial.params), number=number))
            values = objective(fixed)
            runs.append([float(v) for v in (values if isinstance(values, Sequence)
                                            else [values])])
            used.append(seed)
        result = Reevaluation(number, used, runs)
        stored[number] = result.to_dict()
        study.set_user_attr(REEVALUATION_ATTR, {str(k): v for k, v in stored.items()})
        results.append(result)
    after = _front(study, {n: r["mean"] for n, r in stored.items()})
    return ReevaluationReport(names, results, front, after)
