"""Tiny on-disk datasets in the real formats, for tests (nothing is downloaded).

Every image carries its label in the red channel: the red plane is the constant
``label_red(label)``, so a test can check that images and labels stay paired after loading,
splitting and resizing (a constant plane stays constant under bilinear resizing and cropping).
The green and blue planes are seeded noise.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "CIFAR10_CLASSES",
    "label_red",
    "make_cifar10_tree",
    "make_imagefolder_tree",
]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")


def label_red(label: int) -> int:
    """The red value (0..255) of every pixel of an image of class ``label``.

    Example:
        >>> label_red(0), label_red(9)
        (10, 235)
    """
    return 10 + 25 * int(label)


def _images(labels: np.ndarray, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """``uint8`` images ``(N, 3, H, W)``: red = label_red(label), green/blue = noise."""
    n = len(labels)
    x = rng.integers(0, 256, size=(n, 3, height, width), dtype=np.uint8)
    x[:, 0] = np.array([label_red(v) for v in labels], dtype=np.uint8)[:, None, None]
    return x


def make_cifar10_tree(root: str | Path, n_per_batch: int = 20, *, n_test: int | None = None,
                      seed: int = 0, protocol: int = 2) -> Path:
    """Write CIFAR-10 in torchvision's python format under ``root``.

    ``root/cifar-10-batches-py/`` gets ``data_batch_1`` .. ``data_batch_5`` (``n_per_batch``
    images each), ``test_batch`` (``n_test`` images, default ``n_per_batch``) and
    ``batches.meta``, each a pickle of the same dict structure as the real files
    (``b"data"``: ``uint8`` array ``(N, 3072)``, ``b"labels"``: list of ints, ``b"batch_label"``,
    ``b"filenames"``; meta: ``b"label_names"``, ``b"num_cases_per_batch"``, ``b"num_vis"``).
    Labels cycle through the 10 classes so every batch is balanced when ``n_per_batch`` is a
    multiple of 10.

    Args:
        root: Folder to write into (created).
        n_per_batch: Images per training batch.
        n_test: Images in ``test_batch``.
        seed: Seed of the noise planes.
        protocol: Pickle protocol (2 is what the real files use).

    Returns:
        ``root`` as a Path (what ``load_dataset("cifar10", path=...)`` takes).

    Example:
        >>> import tempfile
        >>> root = make_cifar10_tree(tempfile.mkdtemp(), n_per_batch=10)
        >>> sorted(p.name for p in (root / "cifar-10-batches-py").iterdir())[:2]
        ['batches.meta', 'data_batch_1']
    """
    root = Path(root)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_test = n_per_batch if n_test is None else n_test
    batches = [(f"data_batch_{i}", n_per_batch, f"training batch {i} of 5") for i in range(1, 6)]
    batches.append(("test_batch", n_test, "testing batch 1 of 1"))
    offset = 0
    for name, n, batch_label in batches:
        labels = (np.arange(offset, offset + n) % 10).astype(np.int64)
        offset += n
        x = _images(labels, 32, 32, rng)
        entry = {
            b"batch_label": batch_label.encode(),
            b"labels": [int(v) for v in labels],
            b"data": x.reshape(n, 3 * 32 * 32),
            b"filenames": [f"img_{name}_{i}.png".encode() for i in range(n)],
        }
        with open(folder / name, "wb") as fh:
            pickle.dump(entry, fh, protocol=protocol)
    meta = {b"num_cases_per_batch": n_per_batch,
            b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_vis": 3072}
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump(meta, fh, protocol=protocol)
    return root


def make_imagefolder_tree(root: str | Path, *, classes: Sequence[str] = ("ant", "bee", "cow"),
                          n_per_class: int | dict[str, int] = 6,
                          splits: Sequence[str] = ("train", "val"),
                          size: tuple[int, int] = (12, 10), ext: str = "png",
                          seed: int = 0) -> Path:
    """Write an ImageFolder tree ``root/<split>/<class>/<i>.<ext>`` of RGB images via PIL.

    The red plane of an image of class ``classes[k]`` (classes sorted as ImageFolder sorts them)
    is ``label_red(k)``; use ``ext="png"`` (lossless) when a test checks it.

    Args:
        root: Folder to write into (created).
        classes: Class folder names.
        n_per_class: Images per class and split, or a dict ``split -> count``.
        splits: Split folders to create (``train``, ``val``, ``test``).
        size: Image ``(width, height)`` in pixels.
        ext: File extension (``png``, ``jpeg``, ``bmp`` ...).
        seed: Seed of the noise planes.

    Returns:
        ``root`` as a Path.

    Example:
        >>> import tempfile
        >>> root = make_imagefolder_tree(tempfile.mkdtemp(), n_per_class=2, splits=("train",))
        >>> len(list((root / "train").rglob("*.png")))
        6
    """
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    width, height = size
    for split in splits:
        n = n_per_class[split] if isinstance(n_per_class, dict) else n_per_class
        for k, cls in enumerate(sorted(classes)):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            x = _images(np.full(n, k), height, width, rng)
            for i in range(n):
                pixels = np.ascontiguousarray(x[i].transpose(1, 2, 0))
                Image.fromarray(pixels).save(folder / f"{i}.{ext}")
    return root
