"""Datasets by name, as seeded train/validation/test splits.

Every dataset yields 3-channel float images in the pixel range ``[0, 1]`` (no
normalisation: models see raw pixels, perturbations and attacks work in that range), resized
to the trial's resolution, and integer labels. Nothing is ever downloaded.

* ``digits`` (default, embedded): scikit-learn's ``load_digits``, 1,797 real 8×8 handwritten
  digits shipped inside scikit-learn, upsampled bilinearly; split 60/20/20, stratified, seeded.
* ``cifar10``: CIFAR-10 in torchvision's python format (``cifar-10-batches-py/`` with
  ``data_batch_1`` … ``data_batch_5``, ``test_batch``, ``batches.meta``). A seeded, stratified
  ``val_fraction`` of the training batches is the validation split; ``test_batch`` is the test
  split. Images are resized bilinearly (antialiased) to the resolution.
* ``imagenet``: an ImageFolder tree ``train/<class>/*.JPEG`` and ``val/<class>/*.JPEG`` (the
  official validation images sorted into class folders). ``val/`` is the *test* split (ImageNet's
  test labels are not public); the search's validation split is held out of ``train/``.
* ``fashion_mnist``: Fashion-MNIST (or any MNIST-format folder) as IDX files, gzip or plain
  (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``, ``t10k-...``), read by
  :mod:`neuromosaic_optuna._idx`; found at Debian's ``/usr/share/datasets/fashion-mnist/``
  (``apt-get install dataset-fashion-mnist``) when nowhere else. Grey 28×28 images repeated on
  3 channels; validation held out of the training files like ``cifar10``.
* ``imagefolder``: any ImageFolder tree with ``train/`` and optional ``val/`` and ``test/``;
  a missing split is held out of ``train/`` (seeded, stratified). Images are resized on their
  shorter side and centre-cropped to the resolution.

Where files are looked for: the ``path`` argument (the study's ``dataset_path``) alone when given;
otherwise ``$NEUROMOSAIC_<NAME>_DIR``, then ``$NEUROMOSAIC_DATA_DIR/<name>``, then
``~/.cache/neuromosaic/<name>``; the first existing folder is used. A missing or corrupt dataset
is a :class:`~neuromosaic_optuna.config.ConfigError` on ``dataset_path`` saying where it looked.

**Pickle.** CIFAR-10's only distributed form is a Python pickle, and unpickling runs code named by
the file. The batches are therefore read with a restricted unpickler that resolves no global
except the handful numpy needs to rebuild an array (``_reconstruct``, ``ndarray``, ``dtype``,
``scalar``, ``_frombuffer``) and ``_codecs.encode`` (how Python 3 pickles ``bytes``); a file that
names anything else (``os.system``, ``builtins.eval``, …) is refused before anything runs.

**Subsets.** Every split is stored in a seeded, stratified order (each prefix holds every class in
proportion to its size), so ``max_train_samples`` keeps a stratified subset; evaluation subsets
of lazily read splits come from :func:`stratified_subset`, never from the first N files of a
class-sorted folder.

**Memory.** CIFAR-10 images are kept as ``uint8`` (150 MB for all 60,000). When the float
splits at the requested resolution fit in :data:`IN_MEMORY_BYTES`, the splits are
``TensorDataset`` of floats (the training loop's fast path); otherwise they are
:class:`ByteImageDataset`, which converts and resizes one batch at a time.
"""

from __future__ import annotations

import numbers
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuromosaic_optuna.config import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch.utils.data import Dataset

__all__ = [
    "DATASETS",
    "DEFAULT_VAL_FRACTION",
    "IN_MEMORY_BYTES",
    "ByteImageDataset",
    "DatasetSplits",
    "dataset_info",
    "load_dataset",
    "default_augmentation",
    "resident_splits",
    "split_labels",
    "standard_augment",
    "split_tensors",
    "stratified_subset",
]

DATASETS = ("digits", "cifar10", "imagenet", "imagefolder", "fashion_mnist")

#: Float splits up to this size (all three together) are materialised as ``TensorDataset``.
IN_MEMORY_BYTES = 512 * 2**20

#: Share of each class held out of the training files for validation (cifar10, imagenet, and
#: imagefolder trees without ``val/``).
DEFAULT_VAL_FRACTION = 0.1

_DATA_DIR_ENV = "NEUROMOSAIC_DATA_DIR"
_CACHE_DIR = Path("~/.cache/neuromosaic")


@dataclass(frozen=True)
class _Source:
    description: str
    env: str
    expects: str
    default: str | None = None  # a system-wide folder looked in last, and how to install it
    install: str = ""


_SOURCES = {
    "cifar10": _Source(
        "CIFAR-10, 60,000 32x32 colour images in 10 classes (torchvision's python format)",
        "NEUROMOSAIC_CIFAR10_DIR",
        "cifar-10-batches-py/ with data_batch_1..data_batch_5, test_batch, batches.meta "
        "(the extracted cifar-10-python.tar.gz)"),
    "imagenet": _Source(
        "ImageNet as an ImageFolder tree; val/ is the test split, validation is held out of "
        "train/",
        "NEUROMOSAIC_IMAGENET_DIR",
        "train/<class>/*.JPEG and val/<class>/*.JPEG"),
    "imagefolder": _Source(
        "any ImageFolder tree; missing val/ or test/ splits are held out of train/",
        "NEUROMOSAIC_IMAGEFOLDER_DIR",
        "train/<class>/<images> with optional val/<class>/ and test/<class>/"),
    "fashion_mnist": _Source(
        "Fashion-MNIST, 70,000 28x28 grey images of clothes in 10 classes (IDX files)",
        "NEUROMOSAIC_FASHION_MNIST_DIR",
        "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
        "t10k-labels-idx1-ubyte (each plain or .gz)",
        "/usr/share/datasets/fashion-mnist", "apt-get install dataset-fashion-mnist"),
}


@dataclass
class DatasetSplits:
    """Train/validation/test splits of one dataset at one resolution.

    Each split is a ``torch.utils.data.Dataset`` of ``(image, label)``: ``TensorDataset`` when
    in memory (digits, small CIFAR-10 splits; the training loop batches their tensors directly),
    :class:`ByteImageDataset` for large CIFAR-10 splits, ``Subset``/``ImageFolder`` of lazily
    read files for image folders.
    """

    name: str
    num_classes: int
    resolution: int
    train: Dataset[Any]
    val: Dataset[Any]
    test: Dataset[Any]
    #: True when reading the training split already augments it (a lazily read image folder
    #: with ``train_augmentation = "standard"``: RandomResizedCrop + flip per image, in the
    #: loader's worker processes); the caller then adds no batch augmentation of its own.
    train_augmented: bool = False


def dataset_info(name: str) -> str:
    """One line about dataset ``name``: what it is and where it is looked for.

    Args:
        name: A dataset name from :data:`DATASETS`.

    Returns:
        ``"<name>: <what it is>; ..."``, with the folders searched as the environment has them now.

    Raises:
        ConfigError: Unknown dataset.

    Example:
        >>> dataset_info("digits").startswith("digits: ")
        True
        >>> "NEUROMOSAIC_CIFAR10_DIR" in dataset_info("cifar10")
        True
    """
    key = _canonical(name)
    if key == "digits":
        return ("digits: 1,797 real 8x8 handwritten digits embedded in scikit-learn, 10 classes, "
                "split 60/20/20; no files needed")
    src = _SOURCES[key]
    where = ", ".join(label for _, label in _candidates(key, None))
    return (f"{key}: {src.description}; looks in dataset_path, else {where}; "
            f"expects {src.expects}")


def load_dataset(name: str, *, resolution: int, seed: int = 0,
                 path: str | os.PathLike[str] | None = None,
                 max_train_samples: int | None = None,
                 val_fraction: float = DEFAULT_VAL_FRACTION,
                 resident_bytes: float | None = None,
                 train_augmentation: str = "none") -> DatasetSplits:
    """Load dataset ``name`` at ``resolution`` with seeded splits.

    Args:
        name: A dataset name from :data:`DATASETS` (case-insensitive).
        resolution: Output height and width.
        seed: Seed of the split (and of the training order of lazily read folders).
        path: Where the data lies on disk (datasets that are not embedded); when given, the only
            place looked at.
        max_train_samples: Keep at most this many training samples (a budget knob).
        val_fraction: Share of each class held out of the training files for validation, where
            a dataset has no validation files of its own (not used by ``digits``).
        resident_bytes: When given, return the splits as :class:`ByteImageDataset` (``uint8``
            images converted and resized per batch, wherever they are held; see
            :func:`resident_splits`) if all three together take at most this many bytes as
            ``uint8``: digits and CIFAR-10 always (their source pixels, 0.1 MB and 184 MB),
            image folders decoded once at ``resolution`` (a larger tree stays lazily read).
            ``None``: float ``TensorDataset`` splits where they fit in memory, as before.
        train_augmentation: ``"standard"`` gives a training split that stays lazily read (an
            image folder larger than ``resident_bytes``) torchvision's ImageNet recipe,
            ``RandomResizedCrop`` to ``resolution`` plus a horizontal flip (``transforms.v2``),
            applied per image as it is read (``train_augmented`` is then True). Validation and
            test splits are always resized on the shorter side and centre-cropped. In-memory
            splits are never augmented here: the caller augments their batches on the device
            (:func:`standard_augment`).

    Returns:
        The splits; ``num_classes`` counts the training classes.

    Raises:
        ConfigError: Unknown dataset, a bad resolution or sample count, or a named dataset whose
            files are missing or corrupt (field ``dataset_path``, saying where it looked).
        ValueError: ``val_fraction`` outside ``(0, 1)``.

    Example:
        >>> splits = load_dataset("digits", resolution=16)
        >>> splits.train.tensors[0].shape[1:], splits.num_classes
        (torch.Size([3, 16, 16]), 10)
    """
    key = _canonical(name)
    resolution = _positive_int("resolution", resolution)
    if max_train_samples is not None:
        max_train_samples = _positive_int("max_train_samples", max_train_samples)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction!r}")
    as_bytes = resident_bytes is not None
    if key == "digits":
        splits = _digits(resolution, seed, as_bytes=as_bytes)
    elif key == "cifar10":
        splits = _cifar10(_locate(key, path), resolution, seed, val_fraction, max_train_samples,
                          as_bytes=as_bytes)
    elif key == "fashion_mnist":
        splits = _fashion_mnist(_locate(key, path), resolution, seed, val_fraction,
                                max_train_samples)
    else:
        splits = _image_folder(key, _locate(key, path), resolution, seed, val_fraction)
        parts = (splits.train, splits.val, splits.test)
        n_images = sum(len(p) for p in parts)  # type: ignore[arg-type, misc]
        if resident_bytes is not None and 3 * resolution**2 * n_images <= resident_bytes:
            splits = DatasetSplits(splits.name, splits.num_classes, resolution,
                                   *(_decode(p, resolution) for p in parts))  # type: ignore[arg-type]
        elif train_augmentation == "standard":
            splits.train = _random_resized_crop(splits.train, resolution)
            splits.train_augmented = True
    if train_augmentation not in ("none", "standard"):
        raise ValueError(f"train_augmentation must be none or standard, got "
                         f"{train_augmentation!r}")
    if max_train_samples is not None:
        splits.train = _head(splits.train, max_train_samples)
    return splits


class ByteImageDataset:
    """``uint8`` images kept as they are, served as float ``[0, 1]`` images at ``resolution``.

    A map-style dataset (``torch.utils.data.Dataset`` protocol) whose ``__getitems__`` converts
    a whole batch at once, so a ``DataLoader`` pays one resize per batch.

    Args:
        images: ``uint8`` tensor of shape ``(N, 3, H, W)``.
        labels: Integer tensor of shape ``(N,)``.
        resolution: Output height and width.

    Example:
        >>> import torch
        >>> ds = ByteImageDataset(torch.full((2, 3, 4, 4), 255, dtype=torch.uint8),
        ...                       torch.tensor([0, 1]), resolution=8)
        >>> x, y = ds[1]
        >>> tuple(x.shape), float(x.max()), int(y)
        ((3, 8, 8), 1.0, 1)
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, resolution: int, *,
                 scale: float = 255.0, antialias: bool = True) -> None:
        import torch

        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"images must be uint8 of shape (N, 3, H, W) or (N, 1, H, W), got "
                             f"{images.dtype} {tuple(images.shape)}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape ({images.shape[0]},), got "
                             f"{tuple(labels.shape)}")
        self.images = images
        self.labels = labels.long()
        self.resolution = resolution
        #: Pixel value that means 1.0 (255 for 8-bit images; 16 for scikit-learn's digits).
        self.scale = float(scale)
        #: Antialiased resize (what CIFAR-10 downsizing uses; digits upsample without it).
        self.antialias = antialias

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def device(self) -> torch.device:
        """Where the ``uint8`` images are held (batches are converted there)."""
        return self.images.device

    @property
    def nbytes(self) -> int:
        """Bytes the ``uint8`` images and the labels take."""
        return int(self.images.numel() * self.images.element_size()
                   + self.labels.numel() * self.labels.element_size())

    def to(self, device: torch.device | str) -> ByteImageDataset:
        """The same images and labels held on ``device`` (``uint8`` still: one copy now, none
        per batch).

        Example:
            >>> import torch
            >>> ds = ByteImageDataset(torch.zeros(2, 3, 4, 4, dtype=torch.uint8),
            ...                       torch.tensor([0, 1]), resolution=4)
            >>> ds.to("cpu").device
            device(type='cpu')
        """
        return ByteImageDataset(self.images.to(device), self.labels.to(device),
                                self.resolution, scale=self.scale, antialias=self.antialias)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``index`` (a tensor of positions, best on :attr:`device`) as float ``[0, 1]``
        at :attr:`resolution` with three channels, and their labels, converted where the
        images are held: one vectorised conversion per batch."""
        x = _to_float(self.images[index], self.resolution, scale=self.scale,
                      antialias=self.antialias)
        return x, self.labels[index]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        i = range(len(self))[index]
        x, y = self.batch(torch.tensor([i], device=self.images.device))
        return x[0], y[0]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        import torch

        x, y = self.batch(torch.as_tensor(list(indices), dtype=torch.long,
                                          device=self.images.device))
        return list(zip(x, y, strict=True))


def default_augmentation(name: str) -> str:
    """The training augmentation a dataset gets when the study sets no ``augmentation``:
    ``"standard"`` for CIFAR-10 (random crop with 4-pixel padding plus flip, on the device) and
    ImageNet (RandomResizedCrop plus flip when read from disk; the CIFAR recipe when decoded
    into memory at a small resolution), ``"none"`` for digits (8x8 strokes that a 4-pixel shift
    at 32 px would cut) and for other image folders (not every folder holds natural images
    that a flip keeps in their class).

    Example:
        >>> default_augmentation("digits"), default_augmentation("CIFAR10")
        ('none', 'standard')
    """
    return "standard" if _canonical(name) in ("cifar10", "imagenet") else "none"


def standard_augment(x: torch.Tensor, generator: torch.Generator, *,
                     padding: int = 4) -> torch.Tensor:
    """CIFAR-style training augmentation of a batch, on the batch's device without a per-image
    loop: a random crop of the zero-padded image (``padding`` pixels each side) and a
    horizontal flip of half the images, both drawn from ``generator``.

    Example:
        >>> import torch
        >>> x = torch.rand(4, 3, 8, 8)
        >>> a = standard_augment(x, torch.Generator().manual_seed(0))
        >>> b = standard_augment(x, torch.Generator().manual_seed(0))
        >>> a.shape == x.shape and torch.equal(a, b)
        True
    """
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape
    gen_device = generator.device
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator,
                            device=gen_device).to(x.device)
    flips = (torch.rand(n, generator=generator, device=gen_device) < 0.5).to(x.device)
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = offsets[0][:, None] + torch.arange(h, device=x.device)          # (n, h)
    cols = offsets[1][:, None] + torch.arange(w, device=x.device)          # (n, w)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


# --------------------------------------------------------------------------- shared helpers

def _canonical(name: str) -> str:
    key = str(name).strip().lower()
    if key not in DATASETS:
        raise ConfigError("dataset", f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    return key


def _positive_int(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(field, f"expected a positive integer, got {value!r}")
    return int(value)


def _candidates(name: str, path: str | os.PathLike[str] | None
                ) -> list[tuple[Path | None, str]]:
    """Folders to look in, in order, each with how it is described in messages."""
    if path is not None:
        p = Path(path).expanduser()
        return [(p, f"{p} (dataset_path)")]
    env = _SOURCES[name].env
    out: list[tuple[Path | None, str]] = []
    value = os.environ.get(env)
    if value:
        p = Path(value).expanduser()
        out.append((p, f"{p} (${env})"))
    else:
        out.append((None, f"${env} (not set)"))
    data_dir = os.environ.get(_DATA_DIR_ENV)
    if data_dir:
        p = Path(data_dir).expanduser() / name
        out.append((p, f"{p} (${_DATA_DIR_ENV}/{name})"))
    else:
        out.append((None, f"${_DATA_DIR_ENV}/{name} (not set)"))
    cache = _CACHE_DIR.expanduser() / name
    out.append((cache, str(cache)))
    if _SOURCES[name].default:
        out.append((Path(str(_SOURCES[name].default)), str(_SOURCES[name].default)))
    return out


def _locate(name: str, path: str | os.PathLike[str] | None) -> Path:
    """The first existing candidate folder of dataset ``name``, or a one-line ConfigError."""
    candidates = _candidates(name, path)
    looked = []
    for p, label in candidates:
        if p is not None and p.is_dir():
            return p
        if p is not None and p.exists():
            label += " (a file, not a folder: extract archives first)"
        looked.append(label)
    src = _SOURCES[name]
    raise ConfigError("dataset_path", f"{name} not found (nothing is downloaded); looked in "
                      f"{', '.join(looked)}; expected {src.expects}; "
                      + (f"run `{src.install}` or " if src.install else "")
                      + f"set dataset_path in the study file or the environment variable {src.env}")


def _head(ds: Dataset[Any], n: int) -> Dataset[Any]:
    """The first ``n`` items of a training split. Every split is built in a seeded stratified
    order (see :func:`_stratified_order`), so its first ``n`` items are a seeded stratified
    subset, never the first classes of a class-sorted folder."""
    from torch.utils.data import Subset, TensorDataset

    if isinstance(ds, TensorDataset):
        return TensorDataset(*(t[:n] for t in ds.tensors))
    if isinstance(ds, ByteImageDataset):
        return ByteImageDataset(ds.images[:n], ds.labels[:n], ds.resolution, scale=ds.scale,  # type: ignore[return-value]
                                antialias=ds.antialias)
    if len(ds) <= n:  # type: ignore[arg-type]
        return ds
    return Subset(ds, range(n))


def _to_float(images: torch.Tensor, resolution: int, *, scale: float = 255.0,
              antialias: bool = True) -> torch.Tensor:
    """``uint8`` ``(N, C, H, W)`` -> float ``[0, 1]`` ``(N, 3, resolution, resolution)``
    (bilinear; ``C = 1`` is repeated to three channels after resizing)."""
    import torch.nn.functional as F

    x = images.float().div_(scale)
    if x.shape[-2:] != (resolution, resolution):
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear",
                          align_corners=False, antialias=antialias).clamp_(0.0, 1.0)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1).contiguous()
    return x


def _stratified_order(y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A seeded permutation of ``range(len(y))`` in which every prefix is stratified: the
    ``k``-th member of class ``c`` (in a random order within the class) sits at position key
    ``(k + u) / n_c`` with ``u`` uniform in ``[0, 1)``, and the keys are sorted. The first ``m``
    items then hold each class in proportion to its size (within one item)."""
    import torch

    y = torch.as_tensor(y, dtype=torch.long).flatten()
    keys = torch.empty(len(y), dtype=torch.float64)
    for cls in torch.unique(y):
        idx = torch.nonzero(y == cls).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        u = torch.rand(len(idx), generator=gen, dtype=torch.float64)
        keys[idx] = (torch.arange(len(idx), dtype=torch.float64) + u) / len(idx)
    return torch.argsort(keys, stable=True)


def split_labels(ds: Dataset[Any]) -> torch.Tensor:
    """The integer labels of a split, without reading its images where the dataset knows them
    (``TensorDataset``, :class:`ByteImageDataset`, ``ImageFolder`` and ``Subset`` of those).

    Example:
        >>> split_labels(load_dataset("digits", resolution=8).val).shape
        torch.Size([359])
    """
    import torch
    from torch.utils.data import Subset, TensorDataset

    if isinstance(ds, TensorDataset):
        return ds.tensors[1].long()
    if isinstance(ds, ByteImageDataset):
        return ds.labels
    if isinstance(ds, Subset):
        return split_labels(ds.dataset)[torch.as_tensor(list(ds.indices), dtype=torch.long)]
    targets = getattr(ds, "targets", None)
    if targets is not None:
        return torch.as_tensor(list(targets), dtype=torch.long)
    return torch.as_tensor([int(ds[i][1]) for i in range(len(ds))],  # type: ignore[arg-type]
                           dtype=torch.long)


def stratified_subset(ds: Dataset[Any], n: int, seed: int = 0) -> Dataset[Any]:
    """A seeded, stratified subset of at most ``n`` items of split ``ds`` (each class in
    proportion to its share; never the first ``n`` items, which in a class-sorted folder such
    as ImageNet's ``val/`` would cover a few classes only). ``ds`` itself when it has at most
    ``n`` items.

    Example:
        >>> val = load_dataset("digits", resolution=8).val
        >>> sub = stratified_subset(val, 50, seed=1)
        >>> len(sub), len(set(sub.tensors[1].tolist()))
        (50, 10)
    """
    import torch
    from torch.utils.data import Subset, TensorDataset

    if len(ds) <= n:  # type: ignore[arg-type]
        return ds
    order = _stratified_order(split_labels(ds), torch.Generator().manual_seed(seed))[:n]
    if isinstance(ds, TensorDataset):
        return TensorDataset(*(t[order] for t in ds.tensors))
    return Subset(ds, order.tolist())


def split_tensors(ds: Dataset[Any], limit: int = 1000, seed: int = 0
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of a split as two tensors: all of an in-memory ``TensorDataset``;
    of any other split, a seeded stratified subset of at most ``limit`` items
    (:func:`stratified_subset`), read batch-wise where the dataset can (``__getitems__``).

    Example:
        >>> x, y = split_tensors(load_dataset("digits", resolution=8).test)
        >>> tuple(x.shape[1:]), len(x) == len(y)
        ((3, 8, 8), True)
    """
    import torch
    from torch.utils.data import Subset, TensorDataset

    if isinstance(ds, TensorDataset):
        return ds.tensors[0], ds.tensors[1]
    if isinstance(ds, ByteImageDataset) and len(ds) <= limit:
        return ds.batch(torch.arange(len(ds), device=ds.device))
    sub = stratified_subset(ds, limit, seed)
    base, indices = (sub.dataset, list(sub.indices)) if isinstance(sub, Subset) \
        else (sub, list(range(len(sub))))  # type: ignore[arg-type]
    if isinstance(base, ByteImageDataset):
        items = base.__getitems__(indices)
    else:
        items = [base[i] for i in indices]
    return torch.stack([it[0] for it in items]), torch.tensor([int(it[1]) for it in items])


def _stratified_parts(y: torch.Tensor, seed: int, fractions: Sequence[float]
                      ) -> list[torch.Tensor]:
    """Seeded stratified split of ``range(len(y))``: ``fractions[i]`` of each class goes to part
    ``i + 1`` (at least one sample when the class has enough), the rest to part 0; every part is
    in a seeded stratified order (:func:`_stratified_order`), so its prefixes are stratified."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    parts: list[list[torch.Tensor]] = [[] for _ in range(len(fractions) + 1)]
    for cls in torch.unique(y):
        idx = torch.nonzero(y == cls).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        start = 0
        for i, frac in enumerate(fractions, start=1):
            n = round(len(idx) * frac)
            if n == 0 and len(idx) > len(fractions):
                n = 1
            n = min(n, max(0, len(idx) - start - 1))  # keep one training sample per class
            parts[i].append(idx[start:start + n])
            start += n
        parts[0].append(idx[start:])
    out = []
    for p in parts:
        cat = torch.cat(p) if p else torch.zeros(0, dtype=torch.long)
        out.append(cat[_stratified_order(y[cat], gen)])
    return out


# --------------------------------------------------------------------------- digits

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
        out.append(cat[_stratified_order(y[cat], gen)])
    return out[0], out[1], out[2]


@lru_cache(maxsize=1)
def _digits_bytes() -> tuple[torch.Tensor, torch.Tensor]:
    """The 8x8 digits as scikit-learn stores them: ``uint8`` values 0..16, one channel."""
    import torch
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.uint8).unsqueeze(1)
    return x, torch.tensor(bunch.target, dtype=torch.long)


def _digits(resolution: int, seed: int, *, as_bytes: bool = False) -> DatasetSplits:
    from torch.utils.data import TensorDataset

    if as_bytes:  # the same pixels as _digits_tensors, converted per batch (scale 16, bilinear)
        xb, yb = _digits_bytes()
        tr, va, te = _stratified_split(yb, seed)
        return DatasetSplits("digits", 10, resolution, *(  # type: ignore[arg-type]
            ByteImageDataset(xb[i], yb[i], resolution, scale=16.0, antialias=False)
            for i in (tr, va, te)))
    x, y = _digits_tensors(resolution)
    tr, va, te = _stratified_split(y, seed)
    return DatasetSplits("digits", 10, resolution, TensorDataset(x[tr], y[tr]),
                         TensorDataset(x[va], y[va]), TensorDataset(x[te], y[te]))


# --------------------------------------------------------------------------- cifar10

class _ForbiddenGlobal(pickle.UnpicklingError):
    """A pickle named a global outside the allow-list."""


@lru_cache(maxsize=1)
def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The callables numpy's own pickles name, resolved from numpy itself (any numpy version,
    under both the ``numpy.core`` and ``numpy._core`` spellings)."""
    import numpy as np

    arr = np.zeros(1, dtype=np.uint8)
    reconstruct = arr.__reduce__()[0]
    frombuffer = arr.__reduce_ex__(5)[0]
    scalar = np.int64(0).__reduce__()[0]
    out: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for core in ("numpy.core", "numpy._core"):
        out[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        out[(f"{core}.multiarray", "scalar")] = scalar
        out[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return out


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers, numbers, strings, bytes and numpy arrays; nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):
            import codecs

            return codecs.encode
        found = _numpy_globals().get((module, name))
        if found is None:
            raise _ForbiddenGlobal(f"{module}.{name}")
        return found


def _unpickle_arrays(file: Path) -> Any:
    """Read ``file`` with :class:`_ArrayUnpickler` (``latin1`` for Python 2 pickles, as
    torchvision does); raise ConfigError for a forbidden global or a broken file."""
    try:
        with open(file, "rb") as fh:
            return _ArrayUnpickler(fh, encoding="latin1").load()
    except _ForbiddenGlobal as err:
        raise ConfigError("dataset_path", f"{file}: refused to unpickle, the file references "
                          f"{err}; only numpy arrays, lists, dicts, strings and numbers are "
                          "accepted in dataset pickles") from None
    except Exception as err:  # a parser of untrusted bytes can fail in many ways
        raise ConfigError("dataset_path", f"{file}: not a readable pickle "
                          f"({type(err).__name__}: {err}); re-extract the dataset") from None


def _str_keys(entry: Any, file: Path) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ConfigError("dataset_path", f"{file}: expected a dict, found "
                          f"{type(entry).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in entry.items()}


def _read_cifar_batch(file: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch: ``uint8`` images ``(N, 3, 32, 32)`` and ``int64`` labels ``(N,)``."""
    import numpy as np

    entry = _str_keys(_unpickle_arrays(file), file)
    data, labels = entry.get("data"), entry.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:
        got = (f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray)
               else type(data).__name__)
        raise ConfigError("dataset_path", f"{file}: 'data' must be a uint8 array of shape "
                          f"(N, 3072), found {got}")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        y = np.zeros(0, dtype=np.int64) - 1
    if y.shape != (data.shape[0],):
        raise ConfigError("dataset_path", f"{file}: 'labels' must list one integer per image "
                          f"({data.shape[0]})")
    return data.reshape(-1, 3, 32, 32), y


def _cifar_folder(root: Path) -> Path:
    from torchvision.datasets import CIFAR10

    names = [n for n, _ in CIFAR10.train_list + CIFAR10.test_list] + [CIFAR10.meta["filename"]]
    for folder in (root / CIFAR10.base_folder, root):
        if all((folder / n).is_file() for n in names):
            return folder
    folder = root / CIFAR10.base_folder if (root / CIFAR10.base_folder).is_dir() else root
    missing = [n for n in names if not (folder / n).is_file()]
    raise ConfigError("dataset_path", f"cifar10: {folder} lacks {', '.join(missing)}; expected "
                      f"{_SOURCES['cifar10'].expects}; set dataset_path in the study file or the "
                      f"environment variable {_SOURCES['cifar10'].env}")


def _cifar_arrays(folder: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                         int]:
    from torchvision.datasets import CIFAR10

    files = [n for n, _ in CIFAR10.train_list + CIFAR10.test_list] + [CIFAR10.meta["filename"]]
    stamp = tuple((f, (folder / f).stat().st_mtime_ns, (folder / f).stat().st_size)
                  for f in files)
    return _cifar_arrays_cached(str(folder.resolve()), stamp)


@lru_cache(maxsize=2)
def _cifar_arrays_cached(folder_name: str, stamp: tuple[Any, ...]
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Training and test images (``uint8``) and labels, and the class count, of one folder;
    ``stamp`` (names, mtimes, sizes) invalidates the cache when the files change."""
    import numpy as np
    import torch
    from torchvision.datasets import CIFAR10

    folder = Path(folder_name)
    train = [_read_cifar_batch(folder / n) for n, _ in CIFAR10.train_list]
    test = _read_cifar_batch(folder / CIFAR10.test_list[0][0])
    meta_file = folder / CIFAR10.meta["filename"]
    meta = _str_keys(_unpickle_arrays(meta_file), meta_file)
    names = meta.get(CIFAR10.meta["key"])
    if not isinstance(names, list) or not names:
        raise ConfigError("dataset_path", f"{meta_file}: expected a non-empty list "
                          f"{CIFAR10.meta['key']!r}")
    num_classes = len(names)
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    for file, y in ((folder / "data_batch_*", y_train), (folder / "test_batch", test[1])):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ConfigError("dataset_path", f"{file}: labels must lie in [0, {num_classes}) "
                              f"({num_classes} label_names in batches.meta)")
    return (torch.from_numpy(x_train), torch.from_numpy(y_train), torch.from_numpy(test[0]),
            torch.from_numpy(test[1]), num_classes)


def _image_split(x: torch.Tensor, y: torch.Tensor, resolution: int, in_memory: bool
                 ) -> Dataset[Any]:
    import torch
    from torch.utils.data import TensorDataset

    if not in_memory:
        return ByteImageDataset(x, y, resolution)  # type: ignore[return-value]
    out = torch.empty((len(x), 3, resolution, resolution), dtype=torch.float32)
    for start in range(0, len(x), 4096):
        out[start:start + 4096] = _to_float(x[start:start + 4096], resolution)
    return TensorDataset(out, y.long())


def _cifar10(root: Path, resolution: int, seed: int, val_fraction: float,
             max_train_samples: int | None, *, as_bytes: bool = False) -> DatasetSplits:
    x_train, y_train, x_test, y_test, num_classes = _cifar_arrays(_cifar_folder(root))
    tr, va = _stratified_parts(y_train, seed, [val_fraction])
    if max_train_samples is not None:
        tr = tr[:max_train_samples]
    n_images = len(tr) + len(va) + len(x_test)
    in_memory = n_images * 3 * resolution * resolution * 4 <= IN_MEMORY_BYTES
    if as_bytes:
        return DatasetSplits("cifar10", num_classes, resolution,
                             ByteImageDataset(x_train[tr], y_train[tr], resolution),  # type: ignore[arg-type]
                             ByteImageDataset(x_train[va], y_train[va], resolution),  # type: ignore[arg-type]
                             ByteImageDataset(x_test, y_test, resolution))  # type: ignore[arg-type]
    return DatasetSplits(
        "cifar10", num_classes, resolution,
        _image_split(x_train[tr], y_train[tr], resolution, in_memory),
        _image_split(x_train[va], y_train[va], resolution, in_memory),
        _image_split(x_test, y_test, resolution, in_memory))


def _fashion_mnist(root: Path, resolution: int, seed: int, val_fraction: float,
                   max_train_samples: int | None) -> DatasetSplits:
    """An MNIST-format folder (:mod:`neuromosaic_optuna._idx`) split like :func:`_cifar10`."""
    import torch

    from neuromosaic_optuna._idx import read_idx_split

    (x_tr, y_tr), (x_te, y_te) = read_idx_split(root, "train"), read_idx_split(root, "test")
    x_train, x_test = (torch.from_numpy(x).unsqueeze(1).expand(-1, 3, -1, -1) for x in (x_tr, x_te))
    y_train, y_test = torch.from_numpy(y_tr).long(), torch.from_numpy(y_te).long()
    tr, va = _stratified_parts(y_train, seed, [val_fraction])
    if max_train_samples is not None:
        tr = tr[:max_train_samples]
    in_memory = (len(tr) + len(va) + len(x_test)) * 3 * resolution**2 * 4 <= IN_MEMORY_BYTES
    return DatasetSplits(
        "fashion_mnist", int(max(y_train.max(), y_test.max())) + 1, resolution,
        _image_split(x_train[tr], y_train[tr], resolution, in_memory),
        _image_split(x_train[va], y_train[va], resolution, in_memory),
        _image_split(x_test, y_test, resolution, in_memory))


# --------------------------------------------------------------------------- image folders

def _load_rgb(path: str) -> Any:
    """ImageFolder's loader, with an unreadable image as a ConfigError naming the file."""
    from PIL import Image

    try:
        with open(path, "rb") as fh:
            img = Image.open(fh)
            return img.convert("RGB")
    except Exception as err:  # PIL raises many types for corrupt or truncated images
        raise ConfigError("dataset_path", f"{path}: not a readable image "
                          f"({type(err).__name__}: {err})") from None


#: Images whose headers :func:`_check_images` reads before the first trial (all of a smaller
#: tree; evenly spread over a larger one, where a trial that meets a bad image still stops
#: the run with one line).
MAX_CHECKED_IMAGES = 20_000


def _check_images(files: list[str]) -> None:
    """Open every image (up to :data:`MAX_CHECKED_IMAGES`) and verify it without decoding
    the pixels, so a corrupt file is a :class:`ConfigError` before the first trial."""
    from PIL import Image

    step = max(1, -(-len(files) // MAX_CHECKED_IMAGES))
    for path in files[::step]:
        try:
            with Image.open(path) as img:
                img.verify()
        except Exception as err:  # PIL raises many types for corrupt or truncated images
            raise ConfigError("dataset_path", f"{path}: not a readable image "
                              f"({type(err).__name__}); remove or replace it") from None


def _folder(root: Path, transform: Any, class_to_idx: dict[str, int] | None) -> Any:
    """A torchvision ImageFolder on ``root``. With ``class_to_idx`` (the training classes), its
    labels are renumbered to those indices: a class missing here is allowed, an unknown one is
    not."""
    from torchvision.datasets import ImageFolder
    from torchvision.datasets.folder import IMG_EXTENSIONS

    try:
        ds = ImageFolder(str(root), transform=transform, loader=_load_rgb,
                         allow_empty=class_to_idx is not None)
    except FileNotFoundError as err:
        raise ConfigError("dataset_path", f"{root}: {err}") from None
    if len(ds) == 0:
        raise ConfigError("dataset_path", f"{root}: no images (looked for "
                          f"{', '.join(IMG_EXTENSIONS)} inside class folders)")
    _check_images([file for file, _ in ds.samples])
    if class_to_idx is not None:
        extra = [c for c in ds.classes if c not in class_to_idx]
        if extra:
            raise ConfigError("dataset_path", f"{root}: class folders {', '.join(extra[:5])} "
                              "are not in train/")
        ds.samples = [(file, class_to_idx[ds.classes[t]]) for file, t in ds.samples]
        ds.imgs = ds.samples
        ds.targets = [t for _, t in ds.samples]
        ds.classes = sorted(class_to_idx, key=class_to_idx.__getitem__)
        ds.class_to_idx = dict(class_to_idx)
    return ds


def _image_folder(name: str, root: Path, resolution: int, seed: int,
                  val_fraction: float) -> DatasetSplits:
    import torch
    from torch.utils.data import Subset
    from torchvision import transforms

    src = _SOURCES[name]
    required = ("train", "val") if name == "imagenet" else ("train",)
    missing = [d for d in required if not (root / d).is_dir()]
    if missing:
        raise ConfigError("dataset_path", f"{name}: {root} lacks {'/, '.join(missing)}/; "
                          f"expected {src.expects}; set dataset_path in the study file or the "
                          f"environment variable {src.env}")
    transform = transforms.Compose([
        transforms.Resize(resolution), transforms.CenterCrop(resolution), transforms.ToTensor()])
    train = _folder(root / "train", transform, None)
    classes = dict(train.class_to_idx)
    if name == "imagenet":
        given = {"test": _folder(root / "val", transform, classes)}
    else:
        given = {s: _folder(root / s, transform, classes) for s in ("val", "test")
                 if (root / s).is_dir()}
    carve = [s for s in ("val", "test") if s not in given]
    if len(carve) * val_fraction >= 1.0:
        raise ValueError(f"val_fraction must be below {1 / len(carve):g} to hold out "
                         f"{' and '.join(carve)} from train/, got {val_fraction!r}")
    y = torch.as_tensor(train.targets, dtype=torch.long)
    parts = _stratified_parts(y, seed, [val_fraction] * len(carve))
    for split, idx in zip(carve, parts[1:], strict=True):
        if len(idx) == 0:
            raise ConfigError("dataset_path", f"{root / 'train'}: too few images "
                              f"({len(y)}) to hold out a {split} split; add {split}/")
        given[split] = Subset(train, idx.tolist())
    return DatasetSplits(name, len(train.classes), resolution, Subset(train, parts[0].tolist()),
                         given["val"], given["test"])


#: Worker processes that decode an image folder once into memory (:func:`_decode`).
DECODE_WORKERS = min(8, os.cpu_count() or 1)


def _decode(ds: Dataset[Any], resolution: int) -> ByteImageDataset:
    """Decode a (lazily read) image-folder split once into ``uint8`` at ``resolution`` (its
    resize + centre crop; ``ToTensor``'s floats are exactly ``uint8 / 255``), reading the files
    in :data:`DECODE_WORKERS` worker processes."""
    import torch
    from torch.utils.data import DataLoader

    n = len(ds)  # type: ignore[arg-type]
    images = torch.empty((n, 3, resolution, resolution), dtype=torch.uint8)
    labels = torch.empty(n, dtype=torch.long)
    workers = DECODE_WORKERS if n >= 512 else 0
    loader = DataLoader(ds, batch_size=256, num_workers=workers, shuffle=False)
    start = 0
    for x, y in loader:
        images[start:start + len(x)] = x.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
        labels[start:start + len(x)] = y
        start += len(x)
    return ByteImageDataset(images, labels, resolution)


def resident_splits(splits: DatasetSplits, device: torch.device | str) -> DatasetSplits:
    """``splits`` with every :class:`ByteImageDataset` moved to ``device`` (``uint8``: one copy
    now, then each batch is indexed, converted, resized and augmented there, with no
    per-batch host-to-device copy); other splits are returned as they are.

    Example:
        >>> splits = load_dataset("digits", resolution=16, resident_bytes=2**30)
        >>> resident_splits(splits, "cpu").train.images.dtype
        torch.uint8
    """
    def move(ds: Dataset[Any]) -> Dataset[Any]:
        return ds.to(device) if isinstance(ds, ByteImageDataset) else ds  # type: ignore[return-value]

    return DatasetSplits(splits.name, splits.num_classes, splits.resolution,
                         move(splits.train), move(splits.val), move(splits.test))


def _random_resized_crop(split: Dataset[Any], resolution: int) -> Dataset[Any]:
    """The training ``Subset`` of an image folder, read through a copy of its ``ImageFolder``
    whose transform is torchvision's ImageNet training recipe (``RandomResizedCrop`` to
    ``resolution``, antialiased, plus a horizontal flip; ``transforms.v2``). The copy shares the
    file list; validation splits held out of the same folder keep resize + centre crop."""
    import copy

    import torch
    from torch.utils.data import Subset
    from torchvision.transforms import v2

    if not isinstance(split, Subset):
        return split
    base = copy.copy(split.dataset)
    base.transform = v2.Compose([  # type: ignore[attr-defined]
        v2.RandomResizedCrop(resolution, antialias=True), v2.RandomHorizontalFlip(),
        v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
    return Subset(base, split.indices)
