"""Robustness of image classifiers: input noise, common corruptions, FGSM/PGD, and scores.

Case study 5 of the design document (``robustness_study``). Every function works on float
images of shape ``(N, C, H, W)`` in the model's pixel range ``[0, 1]``: the datasets of
:mod:`neuromosaic_optuna.data` are raw pixels without normalisation (a model that wants
normalised inputs normalises inside itself), so noise levels, corruption constants and attack
budgets are all in pixel units, and every perturbed image is clamped back to ``[0, 1]``.

Randomness always comes from an explicit :class:`torch.Generator` (never the global RNG), so the
same seed gives the same numbers. Nothing here changes a model: evaluation and attacks run in
eval mode (batch-norm running statistics stay as they are, dropout is off), every module's mode
is restored afterwards, and attack gradients are taken with :func:`torch.autograd.grad` with
respect to the input only, so no parameter's ``.grad`` is touched.

* :func:`gaussian_noise`, :func:`corrupt`: Gaussian input noise and the three noise corruptions
  of ImageNet-C / CIFAR-10-C (Hendrycks & Dietterich, ICLR 2019).
* :func:`fgsm`, :func:`pgd`: L-inf attacks on the cross-entropy loss (Goodfellow et al. 2015;
  Madry et al. 2018).
* :func:`evaluate_robustness`: the study's perturbations applied to a test set, with the metrics
  of the metric catalogue (``clean_accuracy`` ... ``stability_index``).
* :func:`robustness_scores`: the design document's formulas.
* :func:`augment_batch`: training-time regularizers (Gaussian noise augmentation and fast
  FGSM adversarial training, Wong et al. 2020) for :func:`neuromosaic_optuna.training.train_model`.

This module imports torch at the top: it is only imported when a study measures or trains for
robustness.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from statistics import fmean, pstdev
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ATTACKS",
    "CORRUPTIONS",
    "DEFAULT_EPSILON",
    "RobustnessResult",
    "augment_batch",
    "corrupt",
    "corruption_constants",
    "evaluate_robustness",
    "fgsm",
    "gaussian_noise",
    "pgd",
    "robustness_scores",
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

#: Severity constants of the noise corruptions, copied from Hendrycks & Dietterich's code
#: (github.com/hendrycks/robustness, ``ImageNet-C/imagenet_c/imagenet_c/corruptions.py`` and
#: ``ImageNet-C/create_c/make_cifar_c.py``), severity 1 first:
#:
#: * ``gaussian``: std of additive Gaussian noise, ``clip(x + N(0, c^2))``;
#: * ``shot``: photon count scale of Poisson noise, ``clip(Poisson(x * c) / c)``;
#: * ``impulse``: salt-and-pepper ``amount`` (scikit-image ``random_noise(mode="s&p")`` with
#:   ``salt_vs_pepper=0.5``): each element is replaced with probability ``c``, by 1 or 0 with
#:   equal chance.
_CONSTANTS: dict[str, dict[str, tuple[float, ...]]] = {
    "imagenet": {
        "gaussian": (0.08, 0.12, 0.18, 0.26, 0.38),
        "shot": (60.0, 25.0, 12.0, 5.0, 3.0),
        "impulse": (0.03, 0.06, 0.09, 0.17, 0.27),
    },
    "cifar10": {
        "gaussian": (0.04, 0.06, 0.08, 0.09, 0.10),
        "shot": (500.0, 250.0, 100.0, 75.0, 50.0),
        "impulse": (0.01, 0.02, 0.03, 0.05, 0.07),
    },
}

#: Images at most this many pixels high use the CIFAR-10-C constants, taller ones ImageNet-C's.
SMALL_IMAGE_MAX_HEIGHT = 64

#: Corruption names accepted by :func:`corrupt` (``"gaussian_noise"`` etc. are aliases).
CORRUPTIONS = ("gaussian", "shot", "impulse")

#: Attack names accepted in ``perturbations["adversarial"]``.
ATTACKS = ("fgsm", "pgd")

_PERTURBATION_KEYS = ("input_noise", "adversarial", "corruption", "epsilon", "severities",
                      "pgd_steps")


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


# --------------------------------------------------------------------------- perturbations

def gaussian_noise(x: torch.Tensor, std: float, *, generator: torch.Generator) -> torch.Tensor:
    """Add zero-mean Gaussian noise of standard deviation ``std`` (pixel units), clamp to [0, 1].

    Args:
        x: Images in ``[0, 1]``.
        std: Noise standard deviation; the seed's ``input_noise`` levels 0.1, 0.2, 0.3 are such
            stds.
        generator: Source of randomness (any device; the noise is moved to ``x``'s device).

    Returns:
        A new tensor shaped like ``x``.

    Raises:
        ValueError: ``std`` is negative or not finite.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> out = gaussian_noise(torch.full((1, 3, 8, 8), 0.5), 0.1, generator=g)
        >>> out.shape, bool(out.min() >= 0 and out.max() <= 1)
        (torch.Size([1, 3, 8, 8]), True)
    """
    std = _non_negative(std, "std")
    return (x + std * _randn_like(x, generator)).clamp_(0.0, 1.0)


def corruption_constants(kind: str, height: int, benchmark: str = "auto") -> tuple[float, ...]:
    """The five severity constants of a noise corruption.

    Args:
        kind: ``"gaussian"``, ``"shot"`` or ``"impulse"`` (or ``"gaussian_noise"`` ...).
        height: Image height in pixels; with ``benchmark="auto"``, images at most
            :data:`SMALL_IMAGE_MAX_HEIGHT` (64) pixels high get the CIFAR-10-C constants, taller
            ones the ImageNet-C constants.
        benchmark: ``"auto"``, ``"cifar10"`` or ``"imagenet"``.

    Returns:
        The constants ``c`` for severities 1 to 5 (see :func:`corrupt`).

    Raises:
        ValueError: Unknown kind or benchmark.

    Example:
        >>> corruption_constants("gaussian", 32)
        (0.04, 0.06, 0.08, 0.09, 0.1)
        >>> corruption_constants("shot", 224)
        (60.0, 25.0, 12.0, 5.0, 3.0)
    """
    kind = _corruption_kind(kind)
    if benchmark == "auto":
        benchmark = "cifar10" if height <= SMALL_IMAGE_MAX_HEIGHT else "imagenet"
    if benchmark not in _CONSTANTS:
        raise ValueError(f"benchmark must be 'auto', 'cifar10' or 'imagenet', got {benchmark!r}")
    return _CONSTANTS[benchmark][kind]


def corrupt(x: torch.Tensor, kind: str, severity: int, *, generator: torch.Generator,
            benchmark: str = "auto") -> torch.Tensor:
    """Apply a noise corruption of ImageNet-C / CIFAR-10-C at ``severity`` (1 to 5).

    Follows Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common
    Corruptions and Perturbations" (ICLR 2019) and their code, in torch and with ``generator``:

    * ``gaussian``: ``clip(x + N(0, c^2), 0, 1)``, ``c`` = ImageNet-C
      ``[.08, .12, .18, .26, .38]``, CIFAR-10-C ``[.04, .06, .08, .09, .10]``;
    * ``shot``: ``clip(Poisson(x * c) / c, 0, 1)`` (mean ``x``, variance ``x / c``), ``c`` =
      ImageNet-C ``[60, 25, 12, 5, 3]``, CIFAR-10-C ``[500, 250, 100, 75, 50]``;
    * ``impulse``: salt and pepper as scikit-image's ``random_noise(mode="s&p", amount=c)``:
      every element (each channel separately) is replaced with probability ``c``, by 1 or by 0
      with equal chance; ``c`` = ImageNet-C ``[.03, .06, .09, .17, .27]``, CIFAR-10-C
      ``[.01, .02, .03, .05, .07]``.

    The original code quantises its output to 8 bits; this one keeps floats.

    Args:
        x: Images ``(N, C, H, W)`` in ``[0, 1]``.
        kind: ``"gaussian"``, ``"shot"`` or ``"impulse"`` (``"gaussian_noise"`` etc. also work).
        severity: 1 (mild) to 5 (severe).
        generator: Source of randomness (any device; results are moved to ``x``'s device).
        benchmark: Which constants, see :func:`corruption_constants` (``"auto"``: CIFAR-10-C
            for images at most 64 pixels high, ImageNet-C above).

    Returns:
        A new tensor shaped like ``x``, in ``[0, 1]``.

    Raises:
        ValueError: Unknown kind or benchmark, or a severity outside 1..5.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> out = corrupt(torch.full((2, 3, 8, 8), 0.5), "impulse", 5, generator=g)
        >>> sorted({round(v, 1) for v in out.unique().tolist()})
        [0.0, 0.5, 1.0]
    """
    if isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= 5:
        raise ValueError(f"severity must be an integer from 1 to 5, got {severity!r}")
    kind = _corruption_kind(kind)
    c = corruption_constants(kind, x.shape[-2], benchmark)[severity - 1]
    if kind == "gaussian":
        return (x + c * _randn_like(x, generator)).clamp_(0.0, 1.0)
    if kind == "shot":
        rate = (x.detach().to(generator.device, torch.float32) * c).clamp_(min=0.0)
        counts = torch.poisson(rate, generator=generator)
        return (counts / c).to(x.device, x.dtype).clamp_(0.0, 1.0)
    flipped = _rand_like(x, generator) < c
    salted = _rand_like(x, generator) < 0.5
    out = x.clone()
    out[flipped & salted] = 1.0
    out[flipped & ~salted] = 0.0
    return out


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Fast gradient sign method: one L-inf step of size ``eps`` up the cross-entropy loss.

    ``x_adv = clip(x + eps * sign(grad_x CE(model(x), y)), 0, 1)`` (Goodfellow et al. 2015). The
    model runs in eval mode (every module's mode is restored afterwards); the gradient is taken
    with respect to the input only.

    Args:
        model: A classifier returning logits.
        x: Images in ``[0, 1]``, on the model's device.
        y: Integer labels.
        eps: Budget in pixel units (``0`` returns a copy of ``x``).

    Returns:
        Adversarial images, detached, in ``[0, 1]`` and within ``eps`` of ``x``.

    Raises:
        ValueError: ``eps`` is negative or not finite.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
        >>> x = torch.full((1, 3, 2, 2), 0.5)
        >>> adv = fgsm(model, x, torch.tensor([0]), 0.1)
        >>> round(float((adv - x).abs().max()), 4)
        0.1
    """
    eps = _non_negative(eps, "eps")
    x = x.detach()
    if eps == 0.0:
        return x.clone()
    with _eval_mode(model):
        grad = _input_gradient(model, x, y)
    return (x + eps * grad.sign()).clamp_(0.0, 1.0)


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 10,
        step_size: float | None = None, random_start: bool = True,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected gradient descent (Madry et al. 2018) in the L-inf ball of radius ``eps``.

    Starts at ``x`` plus uniform noise in ``[-eps, eps]`` (``random_start``), then takes
    ``steps`` signed-gradient steps of ``step_size`` up the cross-entropy loss, each followed by
    projection onto the ``eps``-ball around ``x`` and onto ``[0, 1]``; returns the last iterate.
    The model runs in eval mode (modes restored afterwards); gradients are taken with respect to
    the input only.

    Args:
        model: A classifier returning logits.
        x: Images in ``[0, 1]``, on the model's device.
        y: Integer labels.
        eps: Budget in pixel units (``0`` returns a copy of ``x``).
        steps: Number of gradient steps (at least 1).
        step_size: Step length; default ``2.5 * eps / steps`` (Madry et al.'s rule, so the
            iterates can cross the ball).
        random_start: Start at a uniformly random point of the ball.
        generator: Source of the random start; default a generator seeded with 0 (never the
            global RNG).

    Returns:
        Adversarial images, detached, in ``[0, 1]`` and within ``eps`` of ``x``.

    Raises:
        ValueError: Negative ``eps`` or ``step_size``, or ``steps`` below 1.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
        >>> x = torch.full((1, 3, 2, 2), 0.5)
        >>> adv = pgd(model, x, torch.tensor([0]), 0.1, generator=torch.Generator().manual_seed(0))
        >>> bool((adv - x).abs().max() <= 0.1 + 1e-6)
        True
    """
    eps = _non_negative(eps, "eps")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    alpha = 2.5 * eps / steps if step_size is None else _non_negative(step_size, "step_size")
    x = x.detach()
    if eps == 0.0:
        return x.clone()
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    adv = x.clone()
    if random_start:
        adv = (adv + (2.0 * _rand_like(x, generator) - 1.0) * eps).clamp_(0.0, 1.0)
    lower, upper = x - eps, x + eps
    with _eval_mode(model):
        for _ in range(steps):
            grad = _input_gradient(model, adv, y)
            adv = torch.minimum(torch.maximum(adv + alpha * grad.sign(), lower), upper)
            adv = adv.clamp_(0.0, 1.0)
    return adv


# --------------------------------------------------------------------------- training

def augment_batch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, noise_std: float = 0.0,
                  adv_eps: float = 0.0, generator: torch.Generator | None = None
                  ) -> torch.Tensor:
    """The batch to train on, with Gaussian noise augmentation and/or fast adversarial training.

    * ``noise_std > 0``: add ``N(0, noise_std^2)`` noise (pixel units), clamp to ``[0, 1]``.
    * ``adv_eps > 0``: fast adversarial training, "FGSM with random start" of Wong, Rice and
      Kolter, "Fast is better than free" (ICLR 2020): ``delta ~ U(-eps, eps)``, one signed
      gradient step of ``1.25 * eps`` on ``delta``, ``delta`` clipped to ``[-eps, eps]`` and the
      image to ``[0, 1]``.

    With both, the noise comes first and the adversarial step is taken around the noisy image
    (the result lies within ``adv_eps`` of the noisy image). The attack's forward pass runs in
    eval mode, so batch-norm running statistics are not updated by it, and every module's mode
    is restored; no parameter's ``.grad`` is touched. Both knobs at 0 return ``x`` itself.

    Args:
        model: The model being trained (in whatever mode the caller has it).
        x: Training images in ``[0, 1]``.
        y: Their labels.
        noise_std: Std of the Gaussian noise augmentation (0 disables it).
        adv_eps: L-inf budget of the adversarial example (0 disables it).
        generator: Source of randomness; required when either knob is positive (a training
            loop passes its own, so batches get different noise).

    Returns:
        The perturbed batch, detached, in ``[0, 1]``.

    Raises:
        ValueError: A negative knob, or a positive one without a generator.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
        >>> x, y = torch.full((4, 3, 2, 2), 0.5), torch.tensor([0, 1, 0, 1])
        >>> g = torch.Generator().manual_seed(0)
        >>> out = augment_batch(model, x, y, adv_eps=0.05, generator=g)
        >>> bool((out - x).abs().max() <= 0.05 + 1e-6)
        True
    """
    noise_std = _non_negative(noise_std, "noise_std")
    adv_eps = _non_negative(adv_eps, "adv_eps")
    if noise_std == 0.0 and adv_eps == 0.0:
        return x
    if generator is None:
        raise ValueError("augment_batch needs a generator when noise_std or adv_eps is positive")
    x = x.detach()
    if noise_std > 0.0:
        x = gaussian_noise(x, noise_std, generator=generator)
    if adv_eps > 0.0:
        delta = (2.0 * _rand_like(x, generator) - 1.0) * adv_eps
        delta = (x + delta).clamp_(0.0, 1.0) - x
        with _eval_mode(model):
            grad = _input_gradient(model, x + delta, y)
        delta = (delta + 1.25 * adv_eps * grad.sign()).clamp_(-adv_eps, adv_eps)
        x = (x + delta).clamp_(0.0, 1.0)
    return x


# --------------------------------------------------------------------------- evaluation

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
    plan = _plan(perturbations, severities, epsilon, pgd_steps)
    _check_images(x, y)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    device = _model_device(model, x)

    def accuracy(name: str, perturb: Any, attack: bool = False) -> float:
        generator = torch.Generator().manual_seed(_stream_seed(seed, name))
        correct = 0
        for start in range(0, len(y), batch_size):
            xb = x[start:start + batch_size].to(device)
            yb = y[start:start + batch_size].to(device)
            if perturb is not None:
                if attack:
                    xb = perturb(xb, yb, generator)
                else:
                    with torch.no_grad():
                        xb = perturb(xb, generator)
            with torch.no_grad():
                correct += int((model(xb).argmax(dim=1) == yb).sum())
        return correct / len(y) if len(y) else 0.0

    details: dict[str, float] = {}
    with _eval_mode(model):
        clean = accuracy("clean", None)
        noise = []
        for std in plan["input_noise"]:
            key = f"noise@{std:g}"
            details[key] = accuracy(key, lambda xb, g, s=std: gaussian_noise(xb, s, generator=g))
            noise.append(details[key])
        corrupted = []
        for kind in plan["corruption"]:
            per_kind = []
            for sev in plan["severities"]:
                key = f"{kind}@{sev}"
                details[key] = accuracy(key, lambda xb, g, k=kind, s=sev: corrupt(
                    xb, k, s, generator=g, benchmark=benchmark))
                per_kind.append(details[key])
            details[f"corrupt:{kind}"] = fmean(per_kind)
            corrupted.extend(per_kind)
        adversarial = []
        for attack in plan["adversarial"]:
            for eps in plan["epsilon"]:
                key = f"{attack}@{eps:g}"
                if attack == "fgsm":
                    def run(xb: torch.Tensor, yb: torch.Tensor, g: torch.Generator,
                            e: float = eps) -> torch.Tensor:
                        return fgsm(model, xb, yb, e)
                else:
                    def run(xb: torch.Tensor, yb: torch.Tensor, g: torch.Generator,
                            e: float = eps) -> torch.Tensor:
                        return pgd(model, xb, yb, e, steps=plan["pgd_steps"], generator=g)
                details[key] = accuracy(key, run, attack=True)
                adversarial.append(details[key])

    metrics: dict[str, float] = {"clean_accuracy": clean}
    if noise:
        metrics["noise_accuracy"] = fmean(noise)
    corrupt_acc = fmean(corrupted) if corrupted else None
    adv_acc = fmean(adversarial) if adversarial else None
    if corrupt_acc is not None:
        metrics["corrupt_accuracy"] = corrupt_acc
    if adv_acc is not None:
        metrics["adversarial_accuracy"] = adv_acc
    metrics.update(robustness_scores(clean, corrupt_acc, adv_acc,
                                     [clean, *noise, *corrupted, *adversarial]))
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


# --------------------------------------------------------------------------- helpers

def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else 0.0


def _non_negative(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def _corruption_kind(kind: str) -> str:
    name = str(kind).lower().removesuffix("_noise")
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; known: {', '.join(CORRUPTIONS)}")
    return name


def _rand_like(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Uniform ``[0, 1)`` noise shaped like ``x``, drawn on the generator's device."""
    return torch.rand(x.shape, generator=generator, device=generator.device,
                      dtype=torch.float32).to(x.device, x.dtype)


def _randn_like(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=generator.device,
                       dtype=torch.float32).to(x.device, x.dtype)


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode and restore every module's own mode afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode


def _input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient of the summed cross-entropy with respect to ``x`` only (parameters untouched)."""
    with torch.enable_grad():
        inp = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(inp), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, inp)
    return grad


def _model_device(model: nn.Module, x: torch.Tensor) -> torch.device:
    for param in model.parameters():
        return param.device
    for buffer in model.buffers():
        return buffer.device
    return x.device


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


def _number_list(value: Any, path: str) -> list[float]:
    items = value if isinstance(value, (list, tuple)) else [value]
    return [_non_negative(v, path) for v in items]


def _plan(perturbations: Mapping[str, Any], severities: Sequence[int] | None,
          epsilon: float | Sequence[float] | None, pgd_steps: int | None) -> dict[str, Any]:
    """Check the perturbation table once and resolve the defaults."""
    if not isinstance(perturbations, Mapping):
        raise ValueError(f"perturbations must be a mapping, got {type(perturbations).__name__}")
    unknown = sorted(set(perturbations) - set(_PERTURBATION_KEYS))
    if unknown:
        raise ValueError(f"perturbations: unknown key(s) {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(_PERTURBATION_KEYS)}")

    def names(key: str, known: Sequence[str]) -> list[str]:
        value = perturbations.get(key, [])
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ValueError(f"perturbations.{key} must be a list of names, got {value!r}")
        out = []
        for item in value:
            name = str(item).lower()
            if key == "corruption":
                name = _corruption_kind(name)
            elif name not in known:
                raise ValueError(f"perturbations.{key}: unknown {item!r}; known: "
                                 f"{', '.join(known)}")
            out.append(name)
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
    return {
        "input_noise": list(dict.fromkeys(_number_list(perturbations.get("input_noise", []),
                                                       "perturbations.input_noise"))),
        "corruption": names("corruption", CORRUPTIONS),
        "adversarial": names("adversarial", ATTACKS),
        "severities": list(dict.fromkeys(sev_list)),
        "epsilon": list(dict.fromkeys(_number_list(eps, "epsilon"))),
        "pgd_steps": steps,
    }
