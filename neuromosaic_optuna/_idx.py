"""IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or plain.

An IDX file is a big-endian header -- two zero bytes, a type code (``0x08`` for unsigned bytes)
and the number of dimensions -- then one 4-byte size per dimension, then the data. MNIST-format
datasets ship four of them: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each optionally ending in ``.gz``.

Every defect (a missing file, a bad magic number, a truncated or oversized body, images and
labels that disagree in count) is one-line :class:`~neuromosaic_optuna.config.ConfigError` on
``dataset_path`` naming the file.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from neuromosaic_optuna.config import ConfigError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["IDX_FILES", "find_idx_file", "read_idx", "read_idx_split"]

#: Base names of the four files of an MNIST-format dataset, by split and part.
IDX_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}

_UBYTE = 0x08
#: Largest body read (bytes): far above MNIST's 47 MB, far below a corrupt header's 4 GB claims.
_MAX_BYTES = 2**31


def find_idx_file(folder: Path, base: str) -> Path:
    """``folder/base`` or ``folder/base.gz``, whichever exists (plain first).

    Raises:
        ConfigError: Neither exists (field ``dataset_path``).

    Example:
        >>> try:
        ...     find_idx_file(Path("/nonexistent"), "t10k-labels-idx1-ubyte")
        ... except ConfigError as err:
        ...     print(err)
        dataset_path: /nonexistent lacks t10k-labels-idx1-ubyte (or .gz)
    """
    for name in (base, base + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise ConfigError("dataset_path", f"{folder} lacks {base} (or .gz)")


def read_idx(path: Path) -> np.ndarray:
    """The unsigned-byte array stored in IDX file ``path`` (gzip when it ends in ``.gz``).

    Args:
        path: An IDX file with type code ``0x08`` (unsigned bytes), as MNIST's.

    Returns:
        A ``uint8`` array with the dimensions the header declares.

    Raises:
        ConfigError: Unreadable, not gzip though named ``.gz``, a bad magic number or type code,
            or a body shorter or longer than the header declares (field ``dataset_path``).

    Example:
        >>> import struct, tempfile
        >>> f = Path(tempfile.mkdtemp()) / "labels-idx1-ubyte"
        >>> _ = f.write_bytes(struct.pack(">BBBBI", 0, 0, 8, 1, 3) + bytes([4, 0, 9]))
        >>> read_idx(f).tolist()
        [4, 0, 9]
    """
    stat = path.stat() if path.is_file() else None
    if stat is None:
        raise ConfigError("dataset_path", f"{path}: no such file")
    return _read_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size).copy()


@lru_cache(maxsize=8)
def _read_cached(name: str, mtime_ns: int, size: int) -> np.ndarray:
    import numpy as np

    path = Path(name)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                raw = fh.read(_MAX_BYTES + 1)
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise ConfigError("dataset_path", f"{path}: not readable "
                          f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
                          ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ConfigError("dataset_path", f"{path}: not an IDX file (bad magic number; expected "
                          "0x0000 then a type code and a dimension count)")
    if raw[2] != _UBYTE:
        raise ConfigError("dataset_path", f"{path}: IDX type code 0x{raw[2]:02x} is not supported "
                          "(only 0x08, unsigned bytes)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise ConfigError("dataset_path", f"{path}: truncated IDX header ({ndim} dimensions)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape, dtype=np.int64))
    body = len(raw) - header
    if body != expected:
        what = "truncated" if body < expected else "longer than its header says"
        raise ConfigError("dataset_path", f"{path}: {what} (header declares "
                          f"{'x'.join(map(str, shape))} = {expected} bytes, found {body})")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_idx_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, H, W)`` and labels ``(N,)`` of split ``"train"`` or ``"test"`` of an
    MNIST-format folder.

    Raises:
        ConfigError: A missing or corrupt file, images that are not 3-dimensional, labels that
            are not 1-dimensional, or counts that disagree (field ``dataset_path``).

    Example:
        >>> try:
        ...     read_idx_split(Path("/nonexistent"), "test")
        ... except ConfigError as err:
        ...     print(err)
        dataset_path: /nonexistent lacks t10k-images-idx3-ubyte (or .gz)
    """
    img_file = find_idx_file(folder, IDX_FILES[(split, "images")])
    lbl_file = find_idx_file(folder, IDX_FILES[(split, "labels")])
    images, labels = read_idx(img_file), read_idx(lbl_file)
    if images.ndim != 3:
        raise ConfigError("dataset_path", f"{img_file}: expected 3 dimensions (count, height, "
                          f"width), found {images.ndim}")
    if labels.ndim != 1:
        raise ConfigError("dataset_path", f"{lbl_file}: expected 1 dimension, found {labels.ndim}")
    if len(images) != len(labels):
        raise ConfigError("dataset_path", f"{lbl_file}: {len(labels)} labels for {len(images)} "
                          f"images in {img_file.name}")
    if len(images) == 0:
        raise ConfigError("dataset_path", f"{img_file}: no images")
    return images, labels
