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
* :data:`PERTURBATIONS`, :func:`register_perturbation`, :func:`get_perturbation`: the registry,
  name -> function, group and metric keys; :func:`check_perturbations` validates a study's
  table (:mod:`neuromosaic_optuna.config` calls it at load time).
* :func:`augment_batch`: training-time regularizers (Gaussian noise augmentation and fast
  FGSM adversarial training, Wong et al. 2020) for :func:`neuromosaic_optuna.training.train_model`.

Importing this package does not import torch: the registry is plain data, and the measuring
functions (``fgsm``, ``evaluate_robustness`` ...) load their torch module on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from neuromosaic_optuna.robustness._registry import (
    ATTACKS,
    CORRUPTIONS,
    DEFAULT_EPSILON,
    DEFAULT_PERTURBATIONS,
    DEFAULT_PGD_STEPS,
    GROUPS,
    PERTURBATIONS,
    ROBUSTNESS_METRICS,
    SUMMARY_METRICS,
    Perturbation,
    PerturbationGroup,
    check_perturbations,
    get_perturbation,
    perturbation_names,
    register_perturbation,
)

if TYPE_CHECKING:
    from neuromosaic_optuna.robustness._evaluate import (
        RobustnessResult,
        evaluate_robustness,
        robustness_scores,
    )
    from neuromosaic_optuna.robustness._perturbations import (
        SMALL_IMAGE_MAX_HEIGHT,
        augment_batch,
        corrupt,
        corruption_constants,
        fgsm,
        gaussian_noise,
        pgd,
    )

#: Names whose module imports torch, loaded on first access.
_LAZY = {
    "RobustnessResult": "_evaluate",
    "evaluate_robustness": "_evaluate",
    "robustness_scores": "_evaluate",
    "SMALL_IMAGE_MAX_HEIGHT": "_perturbations",
    "augment_batch": "_perturbations",
    "corrupt": "_perturbations",
    "corruption_constants": "_perturbations",
    "fgsm": "_perturbations",
    "gaussian_noise": "_perturbations",
    "pgd": "_perturbations",
}

__all__ = [
    "ATTACKS",
    "CORRUPTIONS",
    "DEFAULT_EPSILON",
    "DEFAULT_PERTURBATIONS",
    "DEFAULT_PGD_STEPS",
    "GROUPS",
    "PERTURBATIONS",
    "ROBUSTNESS_METRICS",
    "SMALL_IMAGE_MAX_HEIGHT",
    "SUMMARY_METRICS",
    "Perturbation",
    "PerturbationGroup",
    "RobustnessResult",
    "augment_batch",
    "check_perturbations",
    "corrupt",
    "corruption_constants",
    "evaluate_robustness",
    "fgsm",
    "gaussian_noise",
    "get_perturbation",
    "perturbation_names",
    "pgd",
    "register_perturbation",
    "robustness_scores",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
