"""Datasets by name, as seeded train/validation/test splits.

Every dataset yields 3-channel float images in the pixel range ``[0, 1]`` (no
normalisation: models see raw pixels, perturbations and attacks work in that range), resized
to the trial's resolution, and integer labels.

* ``digits`` (default, embedded): scikit-learn's ``load_digits``, 1,797 real 8×8 handwritten
  digits shipped inside scikit-learn, upsampled bilinearly; split 60/20/20, stratified, seeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from neuromosaic_optuna.config import ConfigError

if TYPE_CHECKING:
    import torch
    from torch.utils.data import Dataset

__all__ = ["DatasetSplits", "load_dataset", "DATASETS"]

DATASETS = ("digits",)


@dataclass
class DatasetSplits:
    """Train/validation/test splits of one dataset at one resolution.

    Each split is a ``torch.utils.data.Dataset`` of ``(image, label)``; in-memory datasets are
    ``TensorDataset`` (the training loop batches their tensors directly).
    """

    name: str
    num_classes: int
    resolution: int
    train: Dataset[Any]
    val: Dataset[Any]
    test: Dataset[Any]


def load_dataset(name: str, *, resolution: int, seed: int = 0, path: str | None = None,
                 max_train_samples: int | None = None) -> DatasetSplits:
    """Load dataset ``name`` at ``resolution`` with seeded splits.

    Args:
        name: A dataset name from :data:`DATASETS`.
        resolution: Output height and width.
        seed: Seed of the split.
        path: Where the data lies on disk (datasets that are not embedded).
        max_train_samples: Keep at most this many training samples (a budget knob).

    Raises:
        ConfigError: Unknown dataset, or a named dataset whose files are missing.

    Example:
        >>> splits = load_dataset("digits", resolution=16)
        >>> splits.train.tensors[0].shape[1:], splits.num_classes
        (torch.Size([3, 16, 16]), 10)
    """
    if name == "digits":
        splits = _digits(resolution, seed)
    else:
        raise ConfigError("dataset", f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    if max_train_samples is not None:
        splits.train = _head(splits.train, max_train_samples)
    return splits


def _head(ds: Dataset[Any], n: int) -> Dataset[Any]:
    from torch.utils.data import Subset, TensorDataset

    if isinstance(ds, TensorDataset):
        return TensorDataset(*(t[:n] for t in ds.tensors))
    return Subset(ds, range(min(n, len(ds))))  # type: ignore[arg-type]


@lru_cache(maxsize=8)
def _digits_tensors(resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    if resolution != 8:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    x = x.clamp_(0.0, 1.0).expand(-1, 3, -1, -1).contiguous()
    return x, torch.tensor(bunch.target, dtype=torch.long)


def _stratified_split(y: torch.Tensor, seed: int, fractions: tuple[float, float] = (0.6, 0.2)
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    import torch

    gen = torch.Generator().manual_seed(seed)
    parts: list[list[torch.Tensor]] = [[], [], []]
    for cls in torch.unique(y):
        idx = torch.nonzero(y == cls).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_train = round(len(idx) * fractions[0])
        n_val = round(len(idx) * fractions[1])
        parts[0].append(idx[:n_train])
        parts[1].append(idx[n_train:n_train + n_val])
        parts[2].append(idx[n_train + n_val:])
    out = []
    for p in parts:
        cat = torch.cat(p)
        out.append(cat[torch.randperm(len(cat), generator=gen)])
    return out[0], out[1], out[2]


def _digits(resolution: int, seed: int) -> DatasetSplits:
    from torch.utils.data import TensorDataset

    x, y = _digits_tensors(resolution)
    tr, va, te = _stratified_split(y, seed)
    return DatasetSplits("digits", 10, resolution, TensorDataset(x[tr], y[tr]),
                         TensorDataset(x[va], y[va]), TensorDataset(x[te], y[te]))
