"""Cost metrics of a candidate without training: :func:`cost_profiler`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from neuromosaic_optuna.config import StudyConfig
from neuromosaic_optuna.metrics import METRICS, PROXY_METRICS

if TYPE_CHECKING:
    from neuromosaic_optuna.objective import Objective


# --------------------------------------------------------------------------- profiling


def cost_profiler(config: StudyConfig, objective: Objective | None = None
                  ) -> Callable[[dict[str, Any]], dict[str, float]] | None:
    """A ``params -> cost metrics`` function for ``config``'s target, or None without cost
    constraints.

    Tabular backends look the costs up (on the study's dataset); other architectures are
    built and profiled (latency only when a constraint needs it), never trained. A constraint
    on a zero-cost proxy adds the study's proxies
    (:meth:`~neuromosaic_optuna.objective.Objective.proxy_scores`).

    Args:
        config: The target study's configuration.
        objective: Reuse its dataset cache (built from ``config`` when omitted).

    Returns:
        The function, or None when ``config`` has no cost constraint.

    Example:
        >>> from neuromosaic_optuna.config import load_config
        >>> from neuromosaic_optuna.models.nasbench201 import EDGES, OPS
        >>> cfg = load_config({"name": "t", "architecture_type": "nasbench201",
        ...     "search_space": {e: list(OPS) for e in EDGES}, "dataset": "cifar10",
        ...     "constraints": {"max_params": "1M"}})
        >>> profile = cost_profiler(cfg)
        >>> profile(dict.fromkeys(EDGES, "nor_conv_3x3"))["params"]
        1531546.0
    """
    cost = [c for c in config.constraints if METRICS[c.metric].cost]
    if not cost:
        return None
    from neuromosaic_optuna.models import get_tabular, is_tabular
    from neuromosaic_optuna.objective import Objective

    obj = objective or Objective(config)
    proxies = any(c.metric in PROXY_METRICS for c in cost)
    if is_tabular(config.architecture_type):
        backend = get_tabular(config.architecture_type)

        def lookup(params: dict[str, Any]) -> dict[str, float]:
            metrics = backend.evaluate(params, dataset=config.dataset, seed=config.seed)
            costs = {k: float(v) for k, v in metrics.items() if k in METRICS and METRICS[k].cost}
            return {**costs, **(obj.proxy_scores(params) if proxies else {})}

        return lookup

    timing = any(c.metric in ("latency", "throughput") for c in cost)

    def profile(params: dict[str, Any]) -> dict[str, float]:
        from neuromosaic_optuna.profiling import profile_model

        built, _ = obj.build(params)  # the objective's build path (training params dropped)
        costs = dict(profile_model(built.model, built.input_size,
                                   latency_batch_size=config.latency_batch_size,
                                   timing=timing).as_dict())
        return {**costs, **(obj.proxy_scores(params) if proxies else {})}

    return profile
