"""The perturbation registry: name -> function, group, metric keys; and the table check.

This module imports neither torch nor anything above :mod:`neuromosaic_optuna.metrics`, so
:mod:`neuromosaic_optuna.config` checks a study's ``perturbations`` table with it at load time
(an unknown name is a one-line config error before any trial trains) and
:func:`neuromosaic_optuna.robustness.evaluate_robustness` walks the same registry to measure.

A perturbation belongs to one :class:`PerturbationGroup`, the table key it is listed under
(``input_noise``, ``corruption``, ``adversarial``), which names the summary metric it feeds
(``noise_accuracy`` ...) and where its levels come from (the noise stds themselves, the
corruption ``severities``, the attack ``epsilon``). Its accuracy at one level is stored under
the detail key ``<name>@<level>`` (:meth:`Perturbation.key`), e.g. ``fgsm@0.0313725``.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ATTACKS",
    "CORRUPTIONS",
    "DEFAULT_EPSILON",
    "DEFAULT_PERTURBATIONS",
    "DEFAULT_PGD_STEPS",
    "GROUPS",
    "PERTURBATIONS",
    "ROBUSTNESS_METRICS",
    "SUMMARY_METRICS",
    "Perturbation",
    "PerturbationGroup",
    "check_perturbations",
    "get_perturbation",
    "perturbation_names",
    "register_perturbation",
]

#: Default L-inf attack budget in pixel units: 8/255, the CIFAR-10 threshold of RobustBench and of
#: Madry et al. (2018): 8 grey levels of an 8-bit image, small next to the seed's input-noise
#: levels (std 0.1 to 0.3). On the embedded digits it still separates models (a small undefended
#: CNN keeps roughly half its accuracy under FGSM and a quarter under PGD). Set
#: ``perturbations["epsilon"]`` (a number or a list) to change it, e.g. 0.1 or 0.3 as in
#: MNIST benchmarks.
DEFAULT_EPSILON = 8 / 255

#: Number of PGD iterations when neither the caller nor ``perturbations["pgd_steps"]`` says.
DEFAULT_PGD_STEPS = 10

#: Keys a ``perturbations`` table may hold.
_PERTURBATION_KEYS = ("input_noise", "adversarial", "corruption", "epsilon", "severities",
                      "pgd_steps")

#: The call every registered function answers:
#: ``fn(model, x, y, level, *, name, generator, options) -> perturbed x``, where ``options``
#: holds ``pgd_steps`` and ``benchmark`` (corruption constants).
PerturbFn = Callable[..., Any]


@dataclass(frozen=True)
class PerturbationGroup:
    """One key of the ``perturbations`` table and the metrics it feeds.

    Attributes:
        key: The table key (``"input_noise"``, ``"corruption"``, ``"adversarial"``).
        metric: Summary metric, the mean accuracy over the group's perturbations and levels.
        ratio: Score ``metric / clean_accuracy`` (None when the group has none).
        levels: The plan entry holding the levels (``"input_noise"``: the table lists the
            levels of the group's single perturbation; ``"severities"``; ``"epsilon"``).
        named: True when the table lists perturbation names, False when it lists levels.
        attack: True when the perturbation needs input gradients (no ``torch.no_grad``).
        kind_mean: Prefix of a per-name mean detail (``"corrupt"`` -> ``corrupt:gaussian``).
        noun: Word put before an unknown name in the error message.
    """

    key: str
    metric: str
    ratio: str | None
    levels: str
    named: bool = True
    attack: bool = False
    kind_mean: str | None = None
    noun: str = ""


#: The groups in evaluation order (details and the stability index follow this order).
GROUPS: dict[str, PerturbationGroup] = {
    g.key: g for g in (
        PerturbationGroup("input_noise", "noise_accuracy", None, "input_noise", named=False),
        PerturbationGroup("corruption", "corrupt_accuracy", "corruption_resistance",
                          "severities", kind_mean="corrupt", noun="corruption "),
        PerturbationGroup("adversarial", "adversarial_accuracy", "adversarial_robustness",
                          "epsilon", attack=True),
    )
}

#: Summary metrics of the groups, drawn against the clean accuracy.
SUMMARY_METRICS = tuple(g.metric for g in GROUPS.values())

#: Every metric :func:`~neuromosaic_optuna.robustness.evaluate_robustness` can return, in table
#: order: clean, the summaries, the ratios, the stability index.
ROBUSTNESS_METRICS = ("clean_accuracy", *SUMMARY_METRICS,
                      *(g.ratio for g in GROUPS.values() if g.ratio), "stability_index")

#: Perturbations evaluated when a study asks for robustness metrics but has no
#: ``perturbations`` table (the seed's ``robustness_study``).
DEFAULT_PERTURBATIONS: dict[str, list[Any]] = {
    "input_noise": [0.1, 0.2, 0.3], "adversarial": ["fgsm", "pgd"],
    "corruption": ["gaussian", "shot", "impulse"]}


@dataclass(frozen=True)
class Perturbation:
    """A registered perturbation or attack.

    Attributes:
        name: Its name in the ``perturbations`` table and in detail keys.
        group: Key of its :class:`PerturbationGroup`.
        function: The callable, or ``"module:attribute"`` imported on first use (so the
            registry itself never imports torch).
        aliases: Other accepted spellings (``"gaussian_noise"`` for ``"gaussian"``).
    """

    name: str
    group: str
    function: PerturbFn | str = field(repr=False)
    aliases: tuple[str, ...] = ()

    @property
    def metric(self) -> str:
        """The summary metric this perturbation's accuracies feed."""
        return GROUPS[self.group].metric

    def key(self, level: float) -> str:
        """The detail key of this perturbation at ``level``.

        Example:
            >>> get_perturbation("fgsm").key(8 / 255)
            'fgsm@0.0313725'
        """
        return f"{self.name}@{level:g}"

    def resolve(self) -> PerturbFn:
        """The callable (imported now when registered by path)."""
        if callable(self.function):
            return self.function
        module, _, attr = self.function.partition(":")
        fn: PerturbFn = getattr(importlib.import_module(module), attr)
        return fn


#: name -> :class:`Perturbation`, in registration order.
PERTURBATIONS: dict[str, Perturbation] = {}


def register_perturbation(name: str, group: str, function: PerturbFn | str, *,
                          aliases: Sequence[str] = ()) -> Perturbation:
    """Register a perturbation or attack under ``name`` in ``group``.

    Args:
        name: Lower-case name used in the ``perturbations`` table and in detail keys.
        group: ``"input_noise"``, ``"corruption"`` or ``"adversarial"``.
        function: ``fn(model, x, y, level, *, name, generator, options) -> x_perturbed``, or
            its ``"module:attribute"`` path.
        aliases: Other accepted spellings.

    Returns:
        The registered :class:`Perturbation`.

    Raises:
        ValueError: Unknown group, or a name or alias that is already taken.

    Example:
        >>> p = register_perturbation("fgsm_twice", "adversarial", lambda *a, **k: a[1])
        >>> get_perturbation("fgsm_twice").metric
        'adversarial_accuracy'
        >>> del PERTURBATIONS["fgsm_twice"]
    """
    if group not in GROUPS:
        raise ValueError(f"group must be one of {', '.join(GROUPS)}, got {group!r}")
    taken = {n for p in PERTURBATIONS.values() for n in (p.name, *p.aliases)}
    clash = sorted(taken & {name, *aliases})
    if clash:
        raise ValueError(f"perturbation name {clash[0]!r} is already registered")
    entry = Perturbation(name, group, function, tuple(aliases))
    PERTURBATIONS[name] = entry
    return entry


def perturbation_names(group: str) -> tuple[str, ...]:
    """The registered names of ``group``, in registration order.

    Example:
        >>> perturbation_names("adversarial")
        ('fgsm', 'pgd')
    """
    return tuple(p.name for p in PERTURBATIONS.values() if p.group == group)


def get_perturbation(name: str, group: str | None = None) -> Perturbation:
    """Look up a perturbation by name or alias (case-insensitive).

    Args:
        name: E.g. ``"pgd"``, ``"shot"``, ``"gaussian_noise"``.
        group: Restrict the lookup to one group.

    Returns:
        The :class:`Perturbation`.

    Raises:
        ValueError: Unknown name; the message lists the known names.

    Example:
        >>> get_perturbation("Gaussian_Noise").name, get_perturbation("pgd").metric
        ('gaussian', 'adversarial_accuracy')
    """
    text = str(name).lower()
    for entry in PERTURBATIONS.values():
        if (group is None or entry.group == group) and text in (entry.name, *entry.aliases):
            return entry
    known = perturbation_names(group) if group else tuple(PERTURBATIONS)
    noun = GROUPS[group].noun if group in GROUPS else ""
    raise ValueError(f"unknown {noun}{name!r}; known: {', '.join(known)}")


def check_perturbations(perturbations: Mapping[str, Any], *,
                        severities: Sequence[int] | None = None,
                        epsilon: float | Sequence[float] | None = None,
                        pgd_steps: int | None = None) -> dict[str, Any]:
    """Check a ``perturbations`` table and resolve its defaults (no torch needed).

    Keyword arguments override the table's ``severities``, ``epsilon`` and ``pgd_steps``.

    Args:
        perturbations: The study's table, e.g. ``{"adversarial": ["fgsm"]}``.
        severities: Corruption severities (default the table's, else 1 to 5).
        epsilon: Attack budget(s) (default the table's, else :data:`DEFAULT_EPSILON`).
        pgd_steps: PGD iterations (default the table's, else :data:`DEFAULT_PGD_STEPS`).

    Returns:
        The plan: per group key the registered names to evaluate (``input_noise``: the noise
        levels), and ``severities``, ``epsilon``, ``pgd_steps``.

    Raises:
        ValueError: One line naming the table key and the fix.

    Example:
        >>> check_perturbations({"adversarial": ["FGSM"]})["adversarial"]
        ['fgsm']
        >>> check_perturbations({"adversarial": ["fgsmm"]})
        Traceback (most recent call last):
        ...
        ValueError: perturbations.adversarial: unknown 'fgsmm'; known: fgsm, pgd
    """
    if not isinstance(perturbations, Mapping):
        raise ValueError(f"perturbations must be a mapping, got {type(perturbations).__name__}")
    unknown = sorted(set(perturbations) - set(_PERTURBATION_KEYS))
    if unknown:
        raise ValueError(f"perturbations: unknown key(s) {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(_PERTURBATION_KEYS)}")

    def names(key: str) -> list[str]:
        value = perturbations.get(key, [])
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ValueError(f"perturbations.{key} must be a list of names, got {value!r}")
        out = []
        for item in value:
            try:
                out.append(get_perturbation(item, key).name)
            except ValueError as exc:
                raise ValueError(f"perturbations.{key}: {exc}") from None
        return list(dict.fromkeys(out))

    sev = severities if severities is not None else perturbations.get("severities", (1, 2, 3, 4,
                                                                                     5))
    sev_list = list(sev) if isinstance(sev, (list, tuple)) else [sev]
    for s in sev_list:
        if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= 5:
            raise ValueError(f"severities must be integers from 1 to 5, got {sev!r}")
    eps = epsilon if epsilon is not None else perturbations.get("epsilon", DEFAULT_EPSILON)
    steps = pgd_steps if pgd_steps is not None else perturbations.get("pgd_steps",
                                                                      DEFAULT_PGD_STEPS)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"pgd_steps must be a positive integer, got {steps!r}")
    plan: dict[str, Any] = {
        group.key: (names(group.key) if group.named else list(dict.fromkeys(_number_list(
            perturbations.get(group.key, []), f"perturbations.{group.key}"))))
        for group in GROUPS.values()
    }
    plan.update(severities=list(dict.fromkeys(sev_list)),
                epsilon=list(dict.fromkeys(_number_list(eps, "epsilon"))), pgd_steps=steps)
    return plan


def _non_negative(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def _number_list(value: Any, path: str) -> list[float]:
    items = value if isinstance(value, (list, tuple)) else [value]
    return [_non_negative(v, path) for v in items]


def _corruption_kind(kind: str) -> str:
    return get_perturbation(kind, "corruption").name


_FUNCTIONS = "neuromosaic_optuna.robustness._perturbations"
register_perturbation("noise", "input_noise", f"{_FUNCTIONS}:_apply_noise")
for _kind in ("gaussian", "shot", "impulse"):
    register_perturbation(_kind, "corruption", f"{_FUNCTIONS}:_apply_corruption",
                          aliases=(f"{_kind}_noise",))
register_perturbation("fgsm", "adversarial", f"{_FUNCTIONS}:_apply_fgsm")
register_perturbation("pgd", "adversarial", f"{_FUNCTIONS}:_apply_pgd")

#: Corruption names accepted by :func:`~neuromosaic_optuna.robustness.corrupt` (``"gaussian_noise"``
#: etc. are aliases).
CORRUPTIONS = perturbation_names("corruption")

#: Attack names accepted in ``perturbations["adversarial"]``.
ATTACKS = perturbation_names("adversarial")
