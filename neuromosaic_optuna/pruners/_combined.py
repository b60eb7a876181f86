""":class:`CombinedPruner`: run several pruners; the first that says stop decides."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial

from neuromosaic_optuna.pruners._base import CurvePruner, Verdict
from neuromosaic_optuna.pruners._decide import _judge


class CombinedPruner(CurvePruner):
    """Prune when any of ``pruners`` does (the first one that does gives the reason).

    Optuna's own pruners may be combined in single-objective studies.

    Args:
        pruners: One or more pruners.

    Raises:
        ValueError: When ``pruners`` is empty or holds something that is not a pruner.

    Example:
        >>> p = CombinedPruner(pruners=[DivergencePruner(), ParetoDominancePruner()])
        >>> [type(x).__name__ for x in p.pruners]
        ['DivergencePruner', 'ParetoDominancePruner']
    """

    def __init__(self, *, pruners: Sequence[BasePruner]) -> None:
        if not pruners or not all(isinstance(p, BasePruner) for p in pruners):
            raise ValueError(f"pruners: expected a non-empty list of pruners, got {pruners!r}")
        self.pruners = list(pruners)

    def judge(self, study: optuna.Study, trial: FrozenTrial) -> Verdict:
        """See the class docstring."""
        attrs: dict[str, Any] = {}
        for pruner in self.pruners:
            verdict = _judge(pruner, study, trial)
            attrs.update(verdict.attrs)
            if verdict.prune:
                return Verdict(True, verdict.reason, attrs)
        return Verdict(False, "", attrs)
