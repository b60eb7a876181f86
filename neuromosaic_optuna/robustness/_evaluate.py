"""Accuracy under the study's perturbations, walked through the registry, and the scores."""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import fmean, pstdev
from typing import Any

import torch
from torch import nn

from neuromosaic_optuna.robustness._perturbations import _eval_mode, _model_device
from neuromosaic_optuna.robustness._registry import (
    GROUPS,
    PERTURBATIONS,
    Perturbation,
    check_perturbations,
    get_perturbation,
)


@dataclass(frozen=True)
class RobustnessResult:
    """What :func:`evaluate_robustness` measured; every value is a fraction or a ratio.

    Attributes:
        metrics: Summary metrics named as in :data:`neuromosaic_optuna.metrics.METRICS`:
            ``clean_accuracy``, ``stability_index`` always; ``noise_accuracy`` (mean over the
            noise levels), ``corrupt_accuracy`` (mean over corruption kinds and severities) with
            ``corruption_resistance``, and ``adversarial_accuracy`` (mean over attacks and
            epsilons) with ``adversarial_robustness``, each when that group was evaluated.
        details: Accuracy under every single perturbation, named ``noise@0.1``, ``gaussian@3``
            (corruption at severity 3), ``fgsm@0.0313725``, ``pgd@0.0313725``, plus the mean of
            each corruption kind over severities, ``corrupt:gaussian``.
    """

    metrics: dict[str, float] = field(default_factory=dict)
    details: dict[str, float] = field(default_factory=dict)


def evaluate_robustness(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                        perturbations: Mapping[str, Any], *,
                        severities: Sequence[int] | None = None,
                        epsilon: float | Sequence[float] | None = None,
                        pgd_steps: int | None = None, batch_size: int = 256, seed: int = 0,
                        benchmark: str = "auto") -> RobustnessResult:
    """Accuracy of ``model`` on ``(x, y)`` under the study's perturbations, and the scores.

    ``perturbations`` is the design document's table, e.g. ``{"input_noise": [0.1, 0.2, 0.3],
    "adversarial": ["fgsm", "pgd"], "corruption": ["gaussian", "shot", "impulse"]}``; it may
    also hold ``epsilon`` (a number or a list), ``severities`` and ``pgd_steps``, which apply
    when the matching keyword argument is not given. Every key is optional; a missing group is
    not evaluated and its metrics are left out. Each perturbation draws from its own generator
    seeded from ``seed`` and its name, so its accuracy does not depend on which other
    perturbations are evaluated; the same seed and ``batch_size`` give identical numbers (noise
    is drawn batch by batch, so another ``batch_size`` draws other noise).

    ``stability_index`` is the population standard deviation (``ddof=0``, numpy's default as in
    the design document's ``np.std``) of the clean accuracy together with every per-perturbation
    accuracy in ``details`` (the per-kind means excluded): 0 for a model whose accuracy no
    perturbation moves, larger the more accuracy swings.

    Args:
        model: A trained classifier returning logits; left unchanged (eval mode while measuring,
            modes restored, batch-norm statistics and parameters untouched).
        x: Test images ``(N, C, H, W)`` in ``[0, 1]`` (raw pixels, no normalisation), any device
            (batches are moved to the model's).
        y: Integer labels ``(N,)``.
        perturbations: The perturbation table described above.
        severities: Corruption severities (default ``(1, 2, 3, 4, 5)``).
        epsilon: Attack budget(s) in pixel units (default :data:`DEFAULT_EPSILON`, 8/255).
        pgd_steps: PGD iterations (default 10); the step size is ``2.5 * eps / steps``.
        batch_size: Images per forward pass.
        seed: Seed of every random perturbation.
        benchmark: Corruption constants, see :func:`corruption_constants`.

    Returns:
        A :class:`RobustnessResult`.

    Raises:
        ValueError: An unknown key, attack or corruption, a negative level, a bad severity, or
            images that are not 4-D floats in ``[0, 1]`` with one label each.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
        >>> x = torch.rand(8, 3, 2, 2, generator=torch.Generator().manual_seed(0))
        >>> y = torch.zeros(8, dtype=torch.long)
        >>> table = {"input_noise": [0.1], "adversarial": ["fgsm"], "corruption": ["shot"]}
        >>> result = evaluate_robustness(model, x, y, table, severities=(1,))
        >>> sorted(result.details)
        ['corrupt:shot', 'fgsm@0.0313725', 'noise@0.1', 'shot@1']
    """
    plan = check_perturbations(perturbations, severities=severities, epsilon=epsilon,
                               pgd_steps=pgd_steps)
    _check_images(x, y)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    device = _model_device(model, x)
    options = {"pgd_steps": plan["pgd_steps"], "benchmark": benchmark}

    def accuracy(key: str, entry: Perturbation | None = None, level: float = 0.0) -> float:
        generator = torch.Generator().manual_seed(_stream_seed(seed, key))
        perturb = entry.resolve() if entry is not None else None
        name = entry.name if entry is not None else ""
        attack = entry is not None and GROUPS[entry.group].attack
        correct = 0
        for start in range(0, len(y), batch_size):
            xb = x[start:start + batch_size].to(device)
            yb = y[start:start + batch_size].to(device)
            if perturb is not None:
                with contextlib.nullcontext() if attack else torch.no_grad():
                    xb = perturb(model, xb, yb, level, name=name, generator=generator,
                                 options=options)
            with torch.no_grad():
                correct += int((model(xb).argmax(dim=1) == yb).sum())
        return correct / len(y) if len(y) else 0.0

    details: dict[str, float] = {}
    by_group: dict[str, list[float]] = {}
    with _eval_mode(model):
        clean = accuracy("clean")
        for group in GROUPS.values():
            measured = by_group.setdefault(group.key, [])
            entries = ([get_perturbation(n, group.key) for n in plan[group.key]] if group.named
                       else [e for e in PERTURBATIONS.values() if e.group == group.key])
            levels = plan[group.levels] if group.named else plan[group.key]
            for entry in entries:
                per_name = []
                for level in levels:
                    key = entry.key(level)
                    details[key] = accuracy(key, entry, level)
                    per_name.append(details[key])
                if group.kind_mean and per_name:
                    details[f"{group.kind_mean}:{entry.name}"] = fmean(per_name)
                measured.extend(per_name)

    metrics: dict[str, float] = {"clean_accuracy": clean}
    for group in GROUPS.values():
        if by_group[group.key]:
            metrics[group.metric] = fmean(by_group[group.key])
    corrupt_acc = metrics.get(GROUPS["corruption"].metric)
    adv_acc = metrics.get(GROUPS["adversarial"].metric)
    metrics.update(robustness_scores(clean, corrupt_acc, adv_acc,
                                     [clean, *(a for g in GROUPS for a in by_group[g])]))
    return RobustnessResult(metrics=metrics, details=details)


def robustness_scores(clean_acc: float, corrupt_acc: float | None, adv_acc: float | None,
                      accuracies: Sequence[float]) -> dict[str, float]:
    """The design document's robustness scores.

    ``corruption_resistance = corrupt_acc / clean_acc``, ``adversarial_robustness = adv_acc /
    clean_acc`` (both 0.0 when ``clean_acc`` is 0: a model that is never right has no accuracy to
    keep) and ``stability_index = np.std(accuracies)``, the population standard deviation
    (``ddof=0``), computed with :func:`statistics.pstdev` (exactly 0 for equal accuracies).

    Args:
        clean_acc: Accuracy on clean inputs.
        corrupt_acc: Mean accuracy over corruptions, or None to leave its ratio out.
        adv_acc: Mean accuracy under attacks, or None to leave its ratio out.
        accuracies: The accuracies whose spread is the stability index (at least one).

    Returns:
        ``corruption_resistance`` (when ``corrupt_acc`` is given), ``adversarial_robustness``
        (when ``adv_acc`` is given) and ``stability_index``.

    Raises:
        ValueError: ``accuracies`` is empty.

    Example:
        >>> scores = robustness_scores(0.8, 0.6, 0.2, [0.8, 0.6, 0.2])
        >>> {k: round(v, 4) for k, v in scores.items()}
        {'corruption_resistance': 0.75, 'adversarial_robustness': 0.25, 'stability_index': 0.2494}
    """
    if len(accuracies) == 0:
        raise ValueError("accuracies must hold at least one accuracy")
    out: dict[str, float] = {}
    if corrupt_acc is not None:
        out["corruption_resistance"] = _ratio(corrupt_acc, clean_acc)
    if adv_acc is not None:
        out["adversarial_robustness"] = _ratio(adv_acc, clean_acc)
    out["stability_index"] = pstdev(float(a) for a in accuracies)
    return out


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else 0.0


def _stream_seed(seed: int, name: str) -> int:
    """A seed for one perturbation, from the run's seed and the perturbation's name."""
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2**63 - 1)


def _check_images(x: torch.Tensor, y: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a float tensor of shape (N, C, H, W), got {shape}")
    if not isinstance(y, torch.Tensor) or y.shape != (x.shape[0],):
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"y must hold one label per image ({x.shape[0]}), got {shape}")
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise ValueError(f"x must hold pixels in [0, 1] (no normalisation), found "
                         f"[{float(x.min()):.3g}, {float(x.max()):.3g}]")
