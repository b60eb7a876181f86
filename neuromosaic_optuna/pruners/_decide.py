""":func:`should_prune` in any study: asks our pruners (which read the curves) or Optuna's."""

from __future__ import annotations

import warnings

import optuna
from optuna.pruners import BasePruner, NopPruner
from optuna.trial import FrozenTrial

from neuromosaic_optuna import _compat
from neuromosaic_optuna.pruners._base import CurvePruner, Verdict
from neuromosaic_optuna.record import REASON

_warned: set[int] = set()


def _judge(pruner: BasePruner, study: optuna.Study, trial: FrozenTrial) -> Verdict:
    if isinstance(pruner, CurvePruner):
        return pruner.judge(study, trial)
    if isinstance(pruner, NopPruner):
        return Verdict(False)
    if len(study.directions) > 1:
        if id(pruner) not in _warned:
            _warned.add(id(pruner))
            warnings.warn(f"{type(pruner).__name__} judges one objective and cannot prune a "
                          "multi-objective study; use ParetoDominancePruner, "
                          "MultiObjectiveSuccessiveHalvingPruner, ConstraintTrajectoryPruner or "
                          "DivergencePruner", stacklevel=3)
        return Verdict(False)
    if not pruner.prune(study, trial):
        return Verdict(False)
    step = trial.last_step
    value = trial.intermediate_values.get(step) if step is not None else None
    shown = f" (value {value:.4g})" if value is not None else ""
    return Verdict(True, f"{type(pruner).__name__} at step {step}{shown}")


def _latest_frozen(trial: optuna.trial.Trial) -> FrozenTrial:
    return _compat.latest_frozen_trial(trial)


def _decide(trial: optuna.trial.BaseTrial, pruner: BasePruner | None) -> Verdict:
    """Judge ``trial`` as ``Trial.should_prune`` would, and store the verdict's attributes."""
    if not isinstance(trial, optuna.trial.Trial):
        return Verdict(False)
    study = trial.study
    verdict = _judge(pruner if pruner is not None else study.pruner, study,
                     _latest_frozen(trial))
    for key, value in verdict.attrs.items():
        trial.set_user_attr(key, value)
    if verdict.prune:
        trial.set_user_attr(REASON, verdict.reason)
    return verdict


def should_prune(trial: optuna.trial.BaseTrial, pruner: BasePruner | None = None) -> bool:
    """Should ``trial`` stop now? Works in single- and multi-objective studies.

    ``pruner`` defaults to the study's. Our pruners (:class:`CurvePruner`) judge the curves of
    :func:`report` in any study; Optuna's pruners judge single-objective studies through
    ``trial.should_prune`` and, unable to rank several objectives, never prune a
    multi-objective trial (with a warning). When the answer is yes the user attribute
    ``reason`` says why; a pruner's running details (e.g. ``constraint_margins``) are stored as
    user attributes too. Trials without a study (``FixedTrial``) never stop.

    Args:
        trial: The running trial.
        pruner: Judge with this pruner instead of ``trial.study.pruner``.

    Returns:
        True when the trial should raise :class:`optuna.TrialPruned`.

    Example:
        >>> study = optuna.create_study(pruner=optuna.pruners.NopPruner())
        >>> trial = study.ask()
        >>> report(trial, 1, accuracy=0.5)
        >>> should_prune(trial)
        False
    """
    return _decide(trial, pruner).prune
