"""Early stopping for single- and multi-objective studies.

Optuna 5 refuses ``Trial.report`` and ``Trial.should_prune`` in multi-objective studies and never
calls a multi-objective study's pruner. This module makes early stopping work in both kinds:

* :func:`report` records per-step metrics. Every study keeps them in the trial's user attribute
  ``intermediate``: ``{metric: {str(step): value}}`` (non-finite values stored as ``null``), a
  plain JSON value that pruners in any worker process and optuna-dashboard read. In a
  single-objective study the objective's metric is also passed to ``trial.report``, so Optuna's
  own pruners and plots work as usual.
* :func:`should_prune` asks a pruner (default: the study's) in both kinds of study: our pruners
  read the ``intermediate`` curves; Optuna's pruners judge single-objective trials as they
  always do. A pruned trial gets the user attribute ``reason``.
* Pruners (real :class:`optuna.pruners.BasePruner` subclasses, usable in plain Optuna scripts):
  :class:`ParetoDominancePruner`, :class:`ConstraintTrajectoryPruner`,
  :class:`MultiObjectiveSuccessiveHalvingPruner`, :class:`DivergencePruner`, and
  :class:`CombinedPruner` to run several. Objectives are matched to reported metrics by
  ``study.metric_names``; cost objectives (params, FLOPs, latency, memory, throughput) are known
  before training and read from the trial's user attribute ``metrics`` (completed trials: from
  their values).
* :class:`HypervolumeStagnationCallback` stops a study whose hypervolume stalls.
* A study file's ``[fidelity]`` table (``min``, ``max``, ``reduction_factor`` epochs, and
  ``brackets`` for Hyperband-style brackets) runs :class:`MultiObjectiveSuccessiveHalvingPruner`
  (asynchronous MO-ASHA) at its rungs; :func:`rung_decision` is its rule at one rung, a pure
  function of the results there.

The *optimistic estimate* used by the dominance and constraint pruners: a trial at step ``s``
with value ``v`` may still gain, at most, the largest gain ``max_j (final_j - value_j(s))``
seen among COMPLETE trials that reported step ``s`` (never less than 0; ``margin`` added; for a
minimized metric the same with signs flipped; fractions clipped to ``[0, 1]``).

Study files choose a pruner in the ``[pruner]`` table::

    [pruner]
    name = "MultiObjectiveSuccessiveHalvingPruner"  # ours, or any class of optuna.pruners
    reduction_factor = 3                            # the pruner's keyword arguments
    divergence = true                # also run a DivergencePruner (a table gives its arguments)
    [pruner.stop]                    # optional: stop the study when hypervolume stalls
    window = 10
    min_improvement = 0.01

Without a ``[pruner]`` table a study uses :data:`DEFAULT_PRUNER` (with divergence): it only stops
a trial that cannot reach the feasible Pareto front (or, with one objective, beat the best
trial) even under the optimistic estimate, so it never costs hypervolume on curves like the ones
seen so far, and it needs no tuning. ``name = "NopPruner"`` turns pruning off.
"""

from neuromosaic_optuna.pruners._base import CurvePruner, EpochHook, Verdict
from neuromosaic_optuna.pruners._combined import CombinedPruner
from neuromosaic_optuna.pruners._config import (
    DEFAULT_PRUNER,
    epoch_hook_for,
    make_pruner,
    stop_callback_for,
)
from neuromosaic_optuna.pruners._constraint_trajectory import ConstraintTrajectoryPruner
from neuromosaic_optuna.pruners._curves import INTERMEDIATE_ATTR, intermediate_values, report
from neuromosaic_optuna.pruners._decide import should_prune
from neuromosaic_optuna.pruners._divergence import DivergencePruner
from neuromosaic_optuna.pruners._dominance import ParetoDominancePruner
from neuromosaic_optuna.pruners._stagnation import STOPPED_ATTR, HypervolumeStagnationCallback
from neuromosaic_optuna.pruners._successive_halving import (
    MultiObjectiveSuccessiveHalvingPruner,
    RungDecision,
    rung_decision,
)

__all__ = [
    "DEFAULT_PRUNER",
    "INTERMEDIATE_ATTR",
    "STOPPED_ATTR",
    "CombinedPruner",
    "ConstraintTrajectoryPruner",
    "CurvePruner",
    "DivergencePruner",
    "EpochHook",
    "HypervolumeStagnationCallback",
    "MultiObjectiveSuccessiveHalvingPruner",
    "ParetoDominancePruner",
    "RungDecision",
    "Verdict",
    "epoch_hook_for",
    "intermediate_values",
    "make_pruner",
    "report",
    "rung_decision",
    "should_prune",
    "stop_callback_for",
]
