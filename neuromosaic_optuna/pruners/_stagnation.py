""":class:`HypervolumeStagnationCallback`: stop a study whose hypervolume stalls."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from neuromosaic_optuna.pareto import (
    hypervolume_history_of,
    pareto_info,
)
from neuromosaic_optuna.pruners._base import _check_float, _check_int

#: Study user attribute set when a :class:`HypervolumeStagnationCallback` stops the study.
STOPPED_ATTR = "stopped_by"


class HypervolumeStagnationCallback:
    """Stop a study when its hypervolume grew by less than ``min_improvement`` over the last
    ``window`` finished trials.

    After each trial: ``HV_now`` is the hypervolume of the feasible COMPLETE trials;
    ``HV_before`` that of those among the finished (COMPLETE or PRUNED) trials before the last
    ``window``; both with the same reference point (given, or :func:`pareto.pareto_info`'s
    ``"natural"`` rule over the current trials). When ``HV_before > 0`` and
    ``(HV_now - HV_before) / HV_before < min_improvement`` it prints one line, stores it in the
    study user attribute ``stopped_by`` and calls ``study.stop()``. In every worker process that
    runs this callback, the next finished trial sees ``stopped_by`` and stops that worker too.

    Args:
        window: ``K``, the number of recent finished trials judged.
        min_improvement: Relative hypervolume gain (fraction) that keeps the study going.
        min_trials: Never stop before this many finished trials (default ``2 * window``).
        reference_point: Fixed reference point in the objectives' units.
        verbose: Print when it fires.

    Raises:
        ValueError: On an invalid argument (the message names it).

    Example:
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> stop = HypervolumeStagnationCallback(window=2, min_improvement=0.01,
        ...                                      reference_point=[0.0, 10.0], verbose=False)
        >>> study.optimize(lambda t: (0.5, 5.0), n_trials=10, callbacks=[stop])
        >>> len(study.trials), study.user_attrs["stopped_by"]["trial"]
        (4, 3)
    """

    def __init__(self, *, window: int = 10, min_improvement: float = 0.01,
                 min_trials: int | None = None, reference_point: Sequence[float] | None = None,
                 verbose: bool = True) -> None:
        self.window = _check_int("window", window, 1)
        self.min_improvement = _check_float("min_improvement", min_improvement, 0.0)
        self.min_trials = (2 * self.window if min_trials is None
                           else _check_int("min_trials", min_trials, self.window + 1))
        if reference_point is not None:
            reference_point = [_check_float("reference_point", v, -math.inf)
                               for v in reference_point]
        self.reference_point = reference_point
        self.verbose = bool(verbose)

    def improvement(self, study: optuna.Study) -> float | None:
        """Relative hypervolume gain over the last ``window`` trials (None: cannot tell yet)."""
        finished = study.get_trials(deepcopy=False,
                                    states=(TrialState.COMPLETE, TrialState.PRUNED))
        if len(finished) < max(self.min_trials, self.window + 1):
            return None
        cutoff = sorted(t.number for t in finished)[-self.window]
        info = pareto_info(study, reference_point=self.reference_point)
        if info.trial_numbers.size == 0 or not np.isfinite(info.reference_point).all():
            return None
        history = hypervolume_history_of(study, info.reference_point)
        before_idx = np.flatnonzero(info.trial_numbers < cutoff)
        before = float(history[before_idx[-1]]) if before_idx.size else 0.0
        now = float(history[-1])
        if not before > 0 or not math.isfinite(now):
            return None
        return (now - before) / before

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Optuna callback: judge after each finished trial."""
        if STOPPED_ATTR in study.user_attrs:
            study.stop()
            return
        gain = self.improvement(study)
        if gain is None or gain >= self.min_improvement:
            return
        message = (f"Stopping study {study.study_name!r} after trial {trial.number}: "
                   f"hypervolume improved by {gain:.2%} over the last {self.window} trials "
                   f"(< {self.min_improvement:.2%})")
        study.set_user_attr(STOPPED_ATTR, {"callback": type(self).__name__,
                                           "trial": trial.number, "message": message})
        if self.verbose:
            print(message, flush=True)
        study.stop()
