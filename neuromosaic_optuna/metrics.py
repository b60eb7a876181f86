"""The metric catalogue: names, directions and units of everything a trial measures.

This module is pure data plus a few formulas. It sits below every other module (config
validates objective and constraint names against it; the objective fills it in), so it
imports nothing from the package.

Conventions (the same in code, storage and config):

* accuracy-like metrics are fractions in ``[0, 1]`` (percent appears only on plot axes);
* ``flops`` are multiply-accumulates (MACs) of one forward pass on one image, the convention
  of torchvision's model documentation ("GFLOPS" there are GMACs);
* ``latency`` is seconds per forward pass of a batch of ``latency_batch_size`` images;
* ``memory`` is peak activation memory in bytes for one image (see :mod:`profiling`);
* ``throughput`` is images per second;
* zero-cost proxies (:data:`PROXY_METRICS`: ``synflow``, ``jacob_cov``, ``naswot``,
  ``grad_norm``, ``snip``) are unitless scores of the untrained network on one seeded batch
  (unit ``"score"``, higher predicts better; see :mod:`neuromosaic_optuna.proxies`); a proxy
  with nothing to measure is ``-inf`` (stored as null), below every finite score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["METRICS", "PROXY_METRICS", "MetricInfo", "efficiency_metrics", "metric_info"]


@dataclass(frozen=True)
class MetricInfo:
    """What one metric means.

    Attributes:
        name: The metric's name as used in study files and user attributes.
        direction: ``"maximize"`` or ``"minimize"``.
        unit: One of ``"fraction"``, ``"count"``, ``"seconds"``, ``"bytes"``, ``"per_second"``,
            ``"ratio"``, ``"score"`` (a unitless proxy score, a plain number); decides how
            constraint bounds such as ``"10M"`` or ``"100ms"`` parse.
        description: One line for tables and docs.
        cost: True for metrics known before training (profiling), so constraints on them are
            checked before any training happens.
    """

    name: str
    direction: str
    unit: str
    description: str
    cost: bool = False


def _m(name: str, direction: str, unit: str, description: str, cost: bool = False) -> MetricInfo:
    return MetricInfo(name, direction, unit, description, cost)


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        _m("accuracy", "maximize", "fraction", "top-1 validation accuracy"),
        _m("accuracy_mean", "maximize", "fraction",
           "mean validation accuracy over recorded runs (tabular backends)"),
        _m("test_accuracy", "maximize", "fraction", "top-1 accuracy on the held-out test split"),
        _m("train_loss", "minimize", "ratio", "training loss of the last epoch"),
        _m("flops", "minimize", "count", "multiply-accumulates of one forward pass", True),
        _m("params", "minimize", "count", "trainable and non-trainable parameters", True),
        _m("latency", "minimize", "seconds", "median inference latency of one batch", True),
        _m("memory", "minimize", "bytes", "peak activation memory of one image", True),
        _m("throughput", "maximize", "per_second", "images per second at batch size", True),
        _m("train_time", "minimize", "seconds", "wall time spent training"),
        _m("params_utilization", "minimize", "count", "params / accuracy (seed, case 2)"),
        _m("memory_efficiency", "minimize", "ratio", "activation memory / throughput"),
        _m("speed_efficiency", "minimize", "seconds", "latency * batch size"),
        _m("clean_accuracy", "maximize", "fraction", "accuracy on unperturbed inputs"),
        _m("noise_accuracy", "maximize", "fraction", "mean accuracy under Gaussian input noise"),
        _m("corrupt_accuracy", "maximize", "fraction", "mean accuracy over corruptions"),
        _m("adversarial_accuracy", "maximize", "fraction", "mean accuracy under attacks"),
        _m("corruption_resistance", "maximize", "ratio", "corrupt_accuracy / clean_accuracy"),
        _m("adversarial_robustness", "maximize", "ratio", "adversarial / clean accuracy"),
        _m("stability_index", "minimize", "fraction", "std of accuracies over perturbations"),
        _m("synflow", "maximize", "score", "SynFlow proxy of the untrained network", True),
        _m("jacob_cov", "maximize", "score", "NASWOT Jacobian-covariance proxy", True),
        _m("naswot", "maximize", "score", "NASWOT activation-pattern proxy (log-det)", True),
        _m("grad_norm", "maximize", "score", "gradient-norm proxy on one batch", True),
        _m("snip", "maximize", "score", "SNIP saliency proxy on one batch", True),
    )
}

#: The zero-cost proxies a study can measure (``proxies = [...]`` in a study file), in the
#: order :mod:`neuromosaic_optuna.proxies` computes them; ``params`` and ``flops``, their
#: baselines, are measured on every trial anyway.
PROXY_METRICS: tuple[str, ...] = ("synflow", "jacob_cov", "naswot", "grad_norm", "snip")


def metric_info(name: str) -> MetricInfo:
    """Return the catalogue entry of ``name``.

    Args:
        name: A metric name such as ``"accuracy"`` or ``"latency"``.

    Returns:
        The :class:`MetricInfo` for that name.

    Raises:
        KeyError: If the metric is unknown; the message lists the known names.

    Example:
        >>> metric_info("flops").direction
        'minimize'
    """
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(sorted(METRICS))}") from None


def efficiency_metrics(values: Mapping[str, float], *, batch_size: int) -> dict[str, float]:
    """The seed's case-study-2 efficiency metrics, computed from measured values.

    ``params_utilization = params / accuracy``, ``memory_efficiency = memory / throughput``
    and ``speed_efficiency = latency * batch_size``, exactly as the seed writes them. A zero
    accuracy or throughput gives ``inf`` rather than an exception.

    Args:
        values: Measured metrics with ``params``, ``accuracy``, ``memory``, ``throughput`` and
            ``latency``.
        batch_size: The batch size ``latency`` was measured at.

    Returns:
        A dict with the three efficiency metrics.

    Example:
        >>> efficiency_metrics({"params": 1e6, "accuracy": 0.5, "memory": 2e6,
        ...                     "throughput": 100.0, "latency": 0.01}, batch_size=1)
        {'params_utilization': 2000000.0, 'memory_efficiency': 20000.0, 'speed_efficiency': 0.01}
    """

    def _div(a: float, b: float) -> float:
        return a / b if b else math.inf

    return {
        "params_utilization": _div(values["params"], values["accuracy"]),
        "memory_efficiency": _div(values["memory"], values["throughput"]),
        "speed_efficiency": values["latency"] * batch_size,
    }
