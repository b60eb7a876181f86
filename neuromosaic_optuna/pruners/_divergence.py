""":class:`DivergencePruner`: stop a trial whose loss is not finite or explodes."""

from __future__ import annotations

import math

import optuna
from optuna.trial import FrozenTrial

from neuromosaic_optuna.pruners._base import (
    CurvePruner,
    Verdict,
    _check_float,
    _objectives,
)
from neuromosaic_optuna.pruners._curves import _curve


class DivergencePruner(CurvePruner):
    """Stop a trial at once when its loss is NaN/inf or explodes.

    Args:
        metric: The reported metric to watch.
        growth: Prune when the latest value exceeds ``growth`` times the smallest earlier
            value (``None`` turns this test off).
        max_value: Prune when the latest value exceeds it (``None``: no absolute bound).

    Raises:
        ValueError: On an invalid argument (the message names it).

    Example:
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> trial = study.ask()
        >>> report(trial, 1, loss=2.0); report(trial, 2, loss=float("nan"))
        >>> should_prune(trial, DivergencePruner()), trial.user_attrs["reason"]
        (True, 'diverged: loss is not finite at step 2')
    """

    def __init__(self, *, metric: str = "loss", growth: float | None = 10.0,
                 max_value: float | None = None) -> None:
        if not isinstance(metric, str) or not metric:
            raise ValueError(f"metric: expected a metric name, got {metric!r}")
        self.metric = metric
        self.growth = None if growth is None else _check_float("growth", growth, 1.0,
                                                               open_low=True)
        self.max_value = None if max_value is None else _check_float("max_value", max_value,
                                                                     -math.inf)

    def judge(self, study: optuna.Study, trial: FrozenTrial) -> Verdict:
        """See the class docstring."""
        curve = _curve(trial, self.metric, _objectives(study).single_name)
        if not curve:
            return Verdict(False)
        step = max(curve)
        value = curve[step]
        if not math.isfinite(value):
            return Verdict(True, f"diverged: {self.metric} is not finite at step {step}")
        if self.max_value is not None and value > self.max_value:
            return Verdict(True, f"diverged: {self.metric} {value:.4g} at step {step} exceeds "
                                 f"{self.max_value:g}")
        earlier = [v for s, v in curve.items() if s < step and math.isfinite(v)]
        if self.growth is not None and earlier and min(earlier) > 0 \
                and value > self.growth * min(earlier):
            return Verdict(True, f"diverged: {self.metric} {value:.4g} at step {step} exceeds "
                                 f"{self.growth:g} x its best {min(earlier):.4g}")
        return Verdict(False)
