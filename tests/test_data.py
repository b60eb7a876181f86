"""Datasets: embedded digits, CIFAR-10 batches (restricted unpickling), ImageFolder trees,
where data is looked for, and the one-line errors for missing or corrupt files."""

from __future__ import annotations

import collections
import doctest
import os
import pickle
import shutil
from collections.abc import Sized
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import torch
from datafiles import CIFAR10_CLASSES, make_cifar10_tree, make_imagefolder_tree
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from neuromosaic_optuna import data
from neuromosaic_optuna.config import ConfigError
from neuromosaic_optuna.data import (
    DATASETS,
    ByteImageDataset,
    DatasetSplits,
    dataset_info,
    load_dataset,
)

_ENV = ("NEUROMOSAIC_CIFAR10_DIR", "NEUROMOSAIC_IMAGENET_DIR", "NEUROMOSAIC_IMAGEFOLDER_DIR",
        "NEUROMOSAIC_DATA_DIR")


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No dataset variable set and an empty home, so only what a test sets is found."""
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_cifar10_tree(tmp_path_factory.mktemp("c10"), n_per_batch=20, n_test=30)


def _n(ds: Dataset[Any]) -> int:
    return len(cast(Sized, ds))


def _sizes(splits: DatasetSplits) -> tuple[int, int, int]:
    return _n(splits.train), _n(splits.val), _n(splits.test)


def _t(ds: Dataset[Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """The tensors of an in-memory split."""
    assert isinstance(ds, TensorDataset)
    return ds.tensors[0], ds.tensors[1]


def _idx(ds: Dataset[Any]) -> list[int]:
    """The indices of a Subset split."""
    assert isinstance(ds, Subset)
    return list(ds.indices)


def _all(ds: Dataset[Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image and label of a split, stacked (whatever kind of Dataset it is)."""
    if isinstance(ds, TensorDataset):
        return _t(ds)
    xs, ys = zip(*(ds[i] for i in range(_n(ds))), strict=True)
    return torch.stack(xs), torch.as_tensor(ys, dtype=torch.long)


def _decoded_labels(x: torch.Tensor) -> torch.Tensor:
    """Invert datafiles.label_red on the mean red value of each image."""
    red = x[:, 0].mean(dim=(1, 2)) * 255.0
    return torch.round((red - 10.0) / 25.0).long()


def _assert_images(x: torch.Tensor, y: torch.Tensor, resolution: int) -> None:
    assert x.dtype == torch.float32 and y.dtype == torch.long
    assert tuple(x.shape[1:]) == (3, resolution, resolution)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    # the red plane is constant per image and encodes its label: images and labels still paired
    assert float((x[:, 0] - x[:, 0].mean(dim=(1, 2), keepdim=True)).abs().max()) < 3 / 255
    assert torch.equal(_decoded_labels(x), y)


def test_module_doctests() -> None:
    result = doctest.testmod(data)
    assert result.attempted >= 4 and result.failed == 0


def test_datasets_and_info() -> None:
    assert DATASETS == ("digits", "cifar10", "imagenet", "imagefolder", "fashion_mnist")
    for name in DATASETS:
        line = dataset_info(name)
        assert line.startswith(f"{name}: ") and "\n" not in line
    assert "NEUROMOSAIC_CIFAR10_DIR" in dataset_info("cifar10")
    assert "NEUROMOSAIC_IMAGENET_DIR" in dataset_info("imagenet")
    assert "NEUROMOSAIC_IMAGEFOLDER_DIR" in dataset_info("imagefolder")
    assert "data_batch_1" in dataset_info("cifar10")
    assert dataset_info("CIFAR10") == dataset_info("cifar10")
    with pytest.raises(ConfigError) as err:
        dataset_info("mnist")
    assert err.value.path == "dataset" and "cifar10" in str(err.value)


def test_info_shows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NEUROMOSAIC_CIFAR10_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("NEUROMOSAIC_DATA_DIR", str(tmp_path / "d"))
    line = dataset_info("cifar10")
    assert str(tmp_path / "c") in line and str(tmp_path / "d" / "cifar10") in line


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"resolution": 0}, "resolution"), ({"resolution": 8, "max_train_samples": 0},
                                        "max_train_samples"),
    ({"resolution": 8.0}, "resolution")])
def test_bad_arguments(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_dataset("digits", **kwargs)  # type: ignore[arg-type]
    assert err.value.path == field


def test_unknown_dataset_and_bad_fraction() -> None:
    with pytest.raises(ConfigError, match="unknown dataset 'mnist'; available: digits, cifar10"):
        load_dataset("mnist", resolution=8)
    with pytest.raises(ValueError, match="val_fraction"):
        load_dataset("digits", resolution=8, val_fraction=1.0)


# --------------------------------------------------------------------------- digits

def test_digits_shapes_and_stratified_sizes() -> None:
    from sklearn.datasets import load_digits

    splits = load_dataset("digits", resolution=12, seed=3)
    assert isinstance(splits, DatasetSplits) and splits.name == "digits"
    assert splits.num_classes == 10 and splits.resolution == 12
    counts = collections.Counter(load_digits().target.tolist())
    expected = [sum(round(n * 0.6) for n in counts.values()),
                sum(round(n * 0.2) for n in counts.values())]
    expected.append(1797 - sum(expected))
    parts = (splits.train, splits.val, splits.test)
    assert [_n(p) for p in parts] == expected
    for part in parts:
        x, y = _t(part)
        assert tuple(x.shape[1:]) == (3, 12, 12) and x.dtype == torch.float32
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0 and y.dtype == torch.long
    for cls, n in counts.items():  # every class split 60/20/20 on its own
        assert int((_t(splits.train)[1] == cls).sum()) == round(n * 0.6)
        assert int((_t(splits.val)[1] == cls).sum()) == round(n * 0.2)


def test_digits_deterministic_per_seed() -> None:
    a, b = (load_dataset("digits", resolution=8, seed=1) for _ in range(2))
    c = load_dataset("digits", resolution=8, seed=2)
    assert torch.equal(_t(a.val)[0], _t(b.val)[0])
    assert torch.equal(_t(a.train)[1], _t(b.train)[1])
    assert not torch.equal(_t(a.train)[1], _t(c.train)[1])
    head = load_dataset("digits", resolution=8, seed=1, max_train_samples=50)
    assert _n(head.train) == 50 and torch.equal(_t(head.train)[1], _t(a.train)[1][:50])
    assert _n(head.val) == _n(a.val)


# --------------------------------------------------------------------------- cifar10

def test_cifar10_end_to_end(cifar_root: Path) -> None:
    splits = load_dataset("cifar10", resolution=32, path=cifar_root, seed=0)
    assert splits.name == "cifar10" and splits.num_classes == len(CIFAR10_CLASSES) == 10
    # 100 training images, 10 per class: 10% of each class held out -> 90/10; test_batch -> 30
    assert _sizes(splits) == (90, 10, 30)
    for part in (splits.train, splits.val, splits.test):
        assert isinstance(part, TensorDataset)  # tiny: materialised as floats
        _assert_images(*_t(part), 32)
    assert sorted(_t(splits.val)[1].tolist()) == list(range(10))  # stratified
    # test_batch labels cycle 0..9 from offset 100 in the generated files, in file order
    assert _t(splits.test)[1].tolist() == [(100 + i) % 10 for i in range(30)]


def test_cifar10_pixels_match_the_files(cifar_root: Path) -> None:
    splits = load_dataset("cifar10", resolution=32, path=cifar_root)
    with open(cifar_root / "cifar-10-batches-py" / "test_batch", "rb") as fh:
        raw = pickle.load(fh)  # our own generated file
    expected = torch.from_numpy(raw[b"data"].reshape(-1, 3, 32, 32)).float() / 255
    assert torch.allclose(_t(splits.test)[0], expected)


@pytest.mark.parametrize("resolution", [16, 48])
def test_cifar10_resized(cifar_root: Path, resolution: int) -> None:
    splits = load_dataset("cifar10", resolution=resolution, path=cifar_root)
    assert splits.resolution == resolution
    _assert_images(*_t(splits.train), resolution)
    _assert_images(*_t(splits.test), resolution)


def test_cifar10_seeded_split(cifar_root: Path) -> None:
    a = load_dataset("cifar10", resolution=32, path=cifar_root, seed=5)
    b = load_dataset("cifar10", resolution=32, path=cifar_root, seed=5)
    c = load_dataset("cifar10", resolution=32, path=cifar_root, seed=6)
    assert torch.equal(_t(a.val)[0], _t(b.val)[0])
    assert torch.equal(_t(a.train)[0], _t(b.train)[0])
    assert not torch.equal(_t(a.val)[0], _t(c.val)[0])
    assert torch.equal(_t(a.test)[0], _t(c.test)[0])  # the test split is fixed
    # train and val are disjoint and together are all 100 training images
    flat = torch.cat([_t(a.train)[0], _t(a.val)[0]]).flatten(1)
    assert len(torch.unique(flat, dim=0)) == 100


def test_cifar10_max_train_samples_and_val_fraction(cifar_root: Path) -> None:
    full = load_dataset("cifar10", resolution=32, path=cifar_root, seed=0)
    head = load_dataset("cifar10", resolution=32, path=cifar_root, seed=0, max_train_samples=7)
    assert _n(head.train) == 7 and _n(head.val) == 10 and _n(head.test) == 30
    assert torch.equal(_t(head.train)[0], _t(full.train)[0][:7])
    more_val = load_dataset("cifar10", resolution=32, path=cifar_root, val_fraction=0.3)
    assert (_n(more_val.train), _n(more_val.val)) == (70, 30)


def test_cifar10_lazy_when_large(cifar_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    eager = load_dataset("cifar10", resolution=20, path=cifar_root, seed=2)
    monkeypatch.setattr(data, "IN_MEMORY_BYTES", 0)
    lazy = load_dataset("cifar10", resolution=20, path=cifar_root, seed=2, max_train_samples=40)
    assert isinstance(lazy.train, ByteImageDataset) and isinstance(lazy.test, ByteImageDataset)
    assert lazy.train.images.dtype == torch.uint8 and _n(lazy.train) == 40
    x, y = lazy.val[3]
    assert torch.allclose(x, _t(eager.val)[0][3], atol=1e-6)
    assert int(y) == int(_t(eager.val)[1][3])
    batches = list(DataLoader(lazy.test, batch_size=8))  # __getitems__: one resize per batch
    xs = torch.cat([b[0] for b in batches])
    assert torch.allclose(xs, _t(eager.test)[0], atol=1e-6)
    assert torch.equal(torch.cat([b[1] for b in batches]), _t(eager.test)[1])
    _assert_images(*_all(lazy.train), 20)


@pytest.mark.parametrize(("protocol", "str_keys"), [(2, False), (4, False), (5, False),
                                                    (2, True)])
def test_cifar10_pickle_variants(tmp_path: Path, protocol: int, str_keys: bool) -> None:
    root = make_cifar10_tree(tmp_path, n_per_batch=10, protocol=protocol)
    if str_keys:  # what Python 2 pickles look like once read with latin1
        batch = root / "cifar-10-batches-py" / "test_batch"
        with open(batch, "rb") as fh:
            entry = pickle.load(fh)
        with open(batch, "wb") as fh:
            pickle.dump({k.decode(): v for k, v in entry.items()}, fh, protocol=protocol)
    splits = load_dataset("cifar10", resolution=32, path=root)
    assert _sizes(splits) == (40, 10, 10)  # 1 of 5/class
    _assert_images(*_t(splits.test), 32)


def test_cifar10_found_through_environment(cifar_root: Path, monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path, _hermetic_env: Path) -> None:
    monkeypatch.setenv("NEUROMOSAIC_CIFAR10_DIR", str(cifar_root))
    assert _n(load_dataset("cifar10", resolution=32).test) == 30
    monkeypatch.delenv("NEUROMOSAIC_CIFAR10_DIR")
    data_dir = tmp_path / "datasets"
    make_cifar10_tree(data_dir / "cifar10", n_per_batch=10)
    monkeypatch.setenv("NEUROMOSAIC_DATA_DIR", str(data_dir))
    assert _n(load_dataset("cifar10", resolution=32).test) == 10
    monkeypatch.delenv("NEUROMOSAIC_DATA_DIR")
    make_cifar10_tree(_hermetic_env / ".cache" / "neuromosaic" / "cifar10", n_per_batch=20,
                      n_test=40)
    assert _n(load_dataset("cifar10", resolution=32).test) == 40
    # the folder holding the batches directly is accepted too
    direct = load_dataset("cifar10", resolution=32, path=cifar_root / "cifar-10-batches-py")
    assert _n(direct.test) == 30


def test_cifar10_missing_lists_where_it_looked(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as err:
        load_dataset("cifar10", resolution=32)
    msg = str(err.value)
    assert err.value.path == "dataset_path" and "\n" not in msg
    assert "$NEUROMOSAIC_CIFAR10_DIR (not set)" in msg
    assert "$NEUROMOSAIC_DATA_DIR/cifar10 (not set)" in msg
    assert str(Path(os.environ["HOME"]) / ".cache" / "neuromosaic" / "cifar10") in msg
    assert "data_batch_1" in msg and "test_batch" in msg and "dataset_path" in msg

    monkeypatch.setenv("NEUROMOSAIC_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError) as err:
        load_dataset("cifar10", resolution=32)
    assert str(tmp_path / "nowhere" / "cifar10") in str(err.value)

    missing = tmp_path / "not-here"
    with pytest.raises(ConfigError) as err:  # an explicit path is the only place looked
        load_dataset("cifar10", resolution=32, path=missing)
    msg = str(err.value)
    assert f"{missing} (dataset_path)" in msg and "NEUROMOSAIC_DATA_DIR/" not in msg
    assert "NEUROMOSAIC_CIFAR10_DIR" in msg  # named as the other way to point at it

    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(b"\x1f\x8b")
    with pytest.raises(ConfigError, match="extract archives first"):
        load_dataset("cifar10", resolution=32, path=archive)


def test_cifar10_incomplete_folder(tmp_path: Path) -> None:
    root = make_cifar10_tree(tmp_path, n_per_batch=10)
    (root / "cifar-10-batches-py" / "test_batch").unlink()
    (root / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(ConfigError) as err:
        load_dataset("cifar10", resolution=32, path=root)
    assert err.value.path == "dataset_path"
    assert "lacks data_batch_4, test_batch" in str(err.value)


def _rewrite(file: Path, entry: object) -> None:
    with open(file, "wb") as fh:
        pickle.dump(entry, fh, protocol=2)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "not-a-dict", "bad-shape",
                                    "bad-dtype", "labels-short", "labels-range"])
def test_cifar10_corrupt_files(tmp_path: Path, damage: str) -> None:
    root = make_cifar10_tree(tmp_path, n_per_batch=10)
    batch = root / "cifar-10-batches-py" / "data_batch_3"
    with open(batch, "rb") as fh:
        entry = pickle.load(fh)
    if damage == "truncated":
        batch.write_bytes(batch.read_bytes()[:500])
    elif damage == "garbage":
        batch.write_bytes(b"this is not a pickle at all")
    elif damage == "not-a-dict":
        _rewrite(batch, [1, 2, 3])
    elif damage == "bad-shape":
        _rewrite(batch, {**entry, b"data": entry[b"data"][:, :100]})
    elif damage == "bad-dtype":
        _rewrite(batch, {**entry, b"data": entry[b"data"].astype(np.float32)})
    elif damage == "labels-short":
        _rewrite(batch, {**entry, b"labels": entry[b"labels"][:-1]})
    else:
        _rewrite(batch, {**entry, b"labels": [12] * len(entry[b"labels"])})
    with pytest.raises(ConfigError) as err:
        load_dataset("cifar10", resolution=32, path=root)
    assert err.value.path == "dataset_path" and "\n" not in str(err.value)
    assert "data_batch" in str(err.value)


class _Exploit:
    """Pickles as a call to os.system: unpickling it with plain pickle would run the command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


def test_restricted_unpickler_refuses_code(tmp_path: Path) -> None:
    root = make_cifar10_tree(tmp_path / "data", n_per_batch=10)
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": _Exploit(f"touch {marker}"), b"labels": [0]}, protocol=2)
    assert b"system" in payload
    (root / "cifar-10-batches-py" / "data_batch_1").write_bytes(payload)
    with pytest.raises(ConfigError) as err:
        load_dataset("cifar10", resolution=32, path=root)
    msg = str(err.value)
    assert "refused to unpickle" in msg and "system" in msg and "data_batch_1" in msg
    assert not marker.exists()


@pytest.mark.parametrize("obj", [eval, np.load, Path, collections.OrderedDict])
def test_restricted_unpickler_allow_list(tmp_path: Path, obj: object) -> None:
    file = tmp_path / "p"
    file.write_bytes(pickle.dumps({"x": obj}, protocol=2))
    with pytest.raises(ConfigError, match="refused to unpickle"):
        data._unpickle_arrays(file)
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    plain = [1, "two", b"three", 4.0, None, (True,)]
    file.write_bytes(pickle.dumps({"a": array, "s": np.float32(2.5), b"k": plain}, protocol=2))
    back = data._unpickle_arrays(file)
    assert np.array_equal(back["a"], array) and back["s"] == np.float32(2.5)
    assert back[b"k"] == plain


# --------------------------------------------------------------------------- image folders

def test_imagefolder_train_val(tmp_path: Path) -> None:
    root = make_imagefolder_tree(tmp_path, n_per_class={"train": 10, "val": 3})
    splits = load_dataset("imagefolder", resolution=8, path=root, seed=0)
    assert splits.name == "imagefolder" and splits.num_classes == 3 and splits.resolution == 8
    # val/ is the validation split; test is 10% of each train class (1 of 10), seeded
    assert _sizes(splits) == (27, 9, 3)
    for part in (splits.train, splits.val, splits.test):
        _assert_images(*_all(part), 8)
    assert sorted(_all(splits.test)[1].tolist()) == [0, 1, 2]
    assert not set(_idx(splits.train)) & set(_idx(splits.test))


def test_imagefolder_train_only_is_split_by_seed(tmp_path: Path) -> None:
    root = make_imagefolder_tree(tmp_path, n_per_class=10, splits=("train",))
    a = load_dataset("imagefolder", resolution=6, path=root, seed=1, val_fraction=0.2)
    b = load_dataset("imagefolder", resolution=6, path=root, seed=1, val_fraction=0.2)
    c = load_dataset("imagefolder", resolution=6, path=root, seed=2, val_fraction=0.2)
    assert _sizes(a) == (18, 6, 6)
    parts = [set(_idx(p)) for p in (a.train, a.val, a.test)]
    assert set.union(*parts) == set(range(30)) and sum(map(len, parts)) == 30
    assert _idx(a.val) == _idx(b.val) and _idx(a.train) == _idx(b.train)
    assert _idx(a.val) != _idx(c.val)
    assert sorted(_all(a.val)[1].tolist()) == [0, 0, 1, 1, 2, 2]


def test_imagefolder_all_splits_given(tmp_path: Path) -> None:
    root = make_imagefolder_tree(tmp_path, n_per_class={"train": 8, "val": 2, "test": 4},
                                 splits=("train", "val", "test"), size=(9, 14))
    splits = load_dataset("imagefolder", resolution=12, path=root, seed=0, max_train_samples=6)
    assert _sizes(splits) == (6, 6, 12)
    x, y = _all(splits.train)
    _assert_images(x, y, 12)
    assert len(set(y.tolist())) > 1  # the training order is shuffled, not class by class
    _assert_images(*_all(splits.test), 12)


def test_imagefolder_classes_follow_train(tmp_path: Path) -> None:
    root = make_imagefolder_tree(tmp_path, n_per_class={"train": 4, "val": 2})
    shutil.rmtree(root / "val" / "bee")  # val/ lacks a class: "cow" keeps train's index 2
    splits = load_dataset("imagefolder", resolution=8, path=root)
    x, y = _all(splits.val)
    assert sorted(y.tolist()) == [0, 0, 2, 2]
    _assert_images(x, y, 8)

    (root / "val" / "yak").mkdir()
    with pytest.raises(ConfigError, match="class folders yak are not in train/"):
        load_dataset("imagefolder", resolution=8, path=root)


def test_imagenet_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_imagefolder_tree(tmp_path / "in", classes=("n01", "n02"),
                                 n_per_class={"train": 10, "val": 5}, ext="JPEG")
    monkeypatch.setenv("NEUROMOSAIC_IMAGENET_DIR", str(root))
    splits = load_dataset("imagenet", resolution=16)
    assert splits.name == "imagenet" and splits.num_classes == 2
    # val/ is the test split; validation is held out of train/
    assert _sizes(splits) == (18, 2, 10)
    x, y = _all(splits.test)
    assert tuple(x.shape) == (10, 3, 16, 16) and sorted(y.tolist()) == [0] * 5 + [1] * 5
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    red = x[:, 0].mean(dim=(1, 2))  # JPEG is lossy (noise bleeds into red): order still holds
    assert float(red[y == 1].min()) > float(red[y == 0].max())

    (root / "val").rename(root / "valid")
    with pytest.raises(ConfigError) as err:
        load_dataset("imagenet", resolution=16)
    assert "lacks val/" in str(err.value) and "NEUROMOSAIC_IMAGENET_DIR" in str(err.value)


def test_imagefolder_missing_and_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as err:
        load_dataset("imagefolder", resolution=8)
    msg = str(err.value)
    assert err.value.path == "dataset_path" and "$NEUROMOSAIC_IMAGEFOLDER_DIR (not set)" in msg
    assert "train/<class>/" in msg
    (tmp_path / "tree" / "train" / "a").mkdir(parents=True)
    (tmp_path / "tree" / "train" / "a" / "notes.txt").write_text("no images")
    monkeypatch.setenv("NEUROMOSAIC_IMAGEFOLDER_DIR", str(tmp_path / "tree"))
    with pytest.raises(ConfigError) as err:
        load_dataset("imagefolder", resolution=8)
    assert err.value.path == "dataset_path" and str(tmp_path / "tree" / "train") in str(err.value)
    (tmp_path / "tree" / "train").rename(tmp_path / "tree" / "training")
    with pytest.raises(ConfigError, match="lacks train/"):
        load_dataset("imagefolder", resolution=8)


def test_imagefolder_too_small_to_split(tmp_path: Path) -> None:
    root = make_imagefolder_tree(tmp_path, n_per_class=1, splits=("train",))
    with pytest.raises(ConfigError, match="too few images"):
        load_dataset("imagefolder", resolution=8, path=root)


def test_imagefolder_corrupt_image(tmp_path: Path) -> None:
    root = make_imagefolder_tree(tmp_path, n_per_class={"train": 4, "val": 2})
    bad = root / "val" / "bee" / "1.png"
    bad.write_bytes(b"\x89PNG but not really")
    with pytest.raises(ConfigError) as err:  # found when the folder loads (issue 22), or
        splits = load_dataset("imagefolder", resolution=8, path=root)
        _all(splits.val)  # at the latest when the image is read
    assert err.value.path == "dataset_path" and str(bad) in str(err.value)


def test_head_of_lazy_splits(tmp_path: Path) -> None:
    root = make_imagefolder_tree(tmp_path, n_per_class={"train": 4, "val": 1})
    splits = load_dataset("imagefolder", resolution=8, path=root, max_train_samples=100)
    assert isinstance(splits.train, Subset) and _n(splits.train) == 9


def test_splits_pickle_for_worker_processes(tmp_path: Path, cifar_root: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_imagefolder_tree(tmp_path, n_per_class={"train": 4, "val": 2})
    folder = load_dataset("imagefolder", resolution=8, path=root)
    monkeypatch.setattr(data, "IN_MEMORY_BYTES", 0)
    lazy = load_dataset("cifar10", resolution=8, path=cifar_root)
    for split in (folder.val, folder.train, lazy.test):
        copy = pickle.loads(pickle.dumps(split))
        assert _n(copy) == _n(split)
        assert torch.equal(copy[0][0], split[0][0]) and int(copy[0][1]) == int(split[0][1])
