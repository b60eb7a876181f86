"""Perturbations and attacks on image batches, and the training-time regularizers.

Every function works on float images of shape ``(N, C, H, W)`` in the model's pixel range
``[0, 1]``; randomness comes from an explicit :class:`torch.Generator`; attack gradients are taken
with respect to the input only, in eval mode, with every module's mode restored afterwards.
The ``_apply_*`` adapters are what :mod:`._registry` names for the built-in perturbations.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from neuromosaic_optuna.robustness._registry import _corruption_kind, _non_negative

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


# --------------------------------------------------------------------------- registry adapters

def _apply_noise(model: nn.Module, x: torch.Tensor, y: torch.Tensor, level: float, *, name: str,
                 generator: torch.Generator, options: Mapping[str, Any]) -> torch.Tensor:
    return gaussian_noise(x, level, generator=generator)


def _apply_corruption(model: nn.Module, x: torch.Tensor, y: torch.Tensor, level: float, *,
                      name: str, generator: torch.Generator, options: Mapping[str, Any]
                      ) -> torch.Tensor:
    return corrupt(x, name, int(level), generator=generator, benchmark=options["benchmark"])


def _apply_fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, level: float, *, name: str,
                generator: torch.Generator, options: Mapping[str, Any]) -> torch.Tensor:
    return fgsm(model, x, y, level)


def _apply_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, level: float, *, name: str,
               generator: torch.Generator, options: Mapping[str, Any]) -> torch.Tensor:
    return pgd(model, x, y, level, steps=options["pgd_steps"], generator=generator)


# --------------------------------------------------------------------------- helpers

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
