"""Device-resident data (issue 16, item 3): splits held as ``uint8`` where the model trains,
converted, resized and augmented there per batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from datafiles import make_imagefolder_tree
from torch.utils.data import TensorDataset

from neuromosaic_optuna.config import ConfigError, load_config
from neuromosaic_optuna.data import (
    ByteImageDataset,
    load_dataset,
    resident_splits,
    split_tensors,
    stratified_subset,
)
from neuromosaic_optuna.objective import Objective, loader_workers
from neuromosaic_optuna.training import evaluate_accuracy, train_model

_EXP = {"name": "d", "architecture_type": "conv_net",
        "search_space": {"width_multiplier": [0.25, 0.5]}}


def _cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32, 10))


def test_uint8_digits_convert_to_the_float_splits() -> None:
    floats = load_dataset("digits", resolution=12, seed=2)
    raw = load_dataset("digits", resolution=12, seed=2, resident_bytes=2**30)
    assert isinstance(raw.train, ByteImageDataset) and raw.train.images.dtype == torch.uint8
    assert raw.train.images.shape[1:] == (1, 8, 8)  # the source pixels, not the resized floats
    for a, b in ((floats.train, raw.train), (floats.val, raw.val), (floats.test, raw.test)):
        assert isinstance(a, TensorDataset)
        x, y = b.batch(torch.arange(len(b)))
        assert x.shape == a.tensors[0].shape
        assert torch.allclose(x, a.tensors[0], atol=1e-6) and torch.equal(y, a.tensors[1])


def test_device_resident_path_gives_the_same_validation_accuracy() -> None:
    """Same seed, same model: the uint8 per-batch path trains to the validation accuracy of the
    float TensorDataset path within 0.5 percentage points (acceptance item of issue 16)."""
    before = load_dataset("digits", resolution=12, seed=0)
    after = resident_splits(load_dataset("digits", resolution=12, seed=0, resident_bytes=2**30),
                            "cpu")
    kw = {"epochs": 3, "batch_size": 64, "learning_rate": 1e-2, "seed": 3}
    a = train_model(_cnn(), before.train, before.val, **kw)  # type: ignore[arg-type]
    b = train_model(_cnn(), after.train, after.val, **kw)  # type: ignore[arg-type]
    assert a.val_accuracy > 0.3  # learned (chance: 0.1)
    assert abs(a.val_accuracy - b.val_accuracy) <= 0.005, (a.val_accuracy, b.val_accuracy)
    assert abs(a.train_loss - b.train_loss) < 1e-3


def test_subsets_and_tensors_of_byte_splits() -> None:
    val = load_dataset("digits", resolution=8, seed=1, resident_bytes=2**30).val
    sub = stratified_subset(val, 50, seed=1)
    assert len(sub) == 50  # type: ignore[arg-type]
    assert len({int(sub[i][1]) for i in range(50)}) == 10
    x, y = split_tensors(val, limit=40)
    assert x.shape == (40, 3, 8, 8) and x.dtype == torch.float32 and float(x.max()) <= 1.0
    head = load_dataset("digits", resolution=8, seed=1, resident_bytes=2**30,
                        max_train_samples=30).train
    assert isinstance(head, ByteImageDataset) and len(head) == 30


def test_objective_holds_the_splits_on_its_device_and_device_data_key() -> None:
    objective = Objective(load_config({"experiment": _EXP, "defaults": {"epochs": 1}}),
                          timing=False)
    splits = objective.dataset(16)
    assert isinstance(splits.train, ByteImageDataset)
    assert splits.train.device == objective.device
    off = Objective(load_config({"experiment": _EXP, "defaults": {"device_data": 0}}),
                    timing=False)
    assert isinstance(off.dataset(16).train, TensorDataset)
    cfg = load_config({"experiment": _EXP, "defaults": {"device_data": "2GB"}})
    assert cfg.device_data == 2e9
    with pytest.raises(ConfigError, match="device_data"):
        load_config({"experiment": _EXP, "defaults": {"device_data": "lots"}})


def test_evaluate_accuracy_reads_byte_splits() -> None:
    ds = ByteImageDataset(torch.randint(0, 256, (20, 3, 4, 4), dtype=torch.uint8),
                          torch.zeros(20, dtype=torch.long), resolution=4)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 2))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor([1.0, 0.0]))
    assert evaluate_accuracy(model, ds) == 1.0


# --------------------------------------------------------------------------- image folders

def test_small_image_folder_is_decoded_once_into_uint8(tmp_path: Path) -> None:
    root = make_imagefolder_tree(tmp_path, n_per_class={"train": 10, "val": 3})
    lazy = load_dataset("imagefolder", resolution=8, path=root, seed=0)
    held = load_dataset("imagefolder", resolution=8, path=root, seed=0, resident_bytes=2**20)
    assert isinstance(held.train, ByteImageDataset) and held.train.images.dtype == torch.uint8
    for a, b in ((lazy.train, held.train), (lazy.val, held.val), (lazy.test, held.test)):
        xa = torch.stack([a[i][0] for i in range(len(a))])  # type: ignore[arg-type]
        xb, yb = b.batch(torch.arange(len(b)))
        assert torch.allclose(xa, xb, atol=1e-6)  # ToTensor's floats are uint8 / 255
        assert yb.tolist() == [int(a[i][1]) for i in range(len(a))]  # type: ignore[arg-type]
    too_big = load_dataset("imagefolder", resolution=8, path=root, seed=0, resident_bytes=100)
    assert not isinstance(too_big.train, ByteImageDataset)


def test_image_folder_read_from_disk_gets_random_resized_crop(tmp_path: Path) -> None:
    """A lazily read folder: training images through RandomResizedCrop + flip (seeded by torch's
    generator), validation through resize + centre crop; the red label plane survives."""
    root = make_imagefolder_tree(tmp_path, n_per_class={"train": 8, "val": 2}, size=(20, 16))
    plain = load_dataset("imagefolder", resolution=8, path=root, seed=0)
    aug = load_dataset("imagefolder", resolution=8, path=root, seed=0,
                       train_augmentation="standard")
    assert aug.train_augmented and not plain.train_augmented
    torch.manual_seed(0)
    a = aug.train[0][0]
    torch.manual_seed(0)
    assert torch.equal(a, aug.train[0][0])  # seeded
    assert a.shape == (3, 8, 8)
    assert not torch.equal(a, plain.train[0][0])
    assert float(a[0].min()) == float(a[0].max())  # a constant plane stays constant
    for i in range(len(aug.val)):  # type: ignore[arg-type]
        assert torch.equal(aug.val[i][0], plain.val[i][0])  # validation: not augmented


def test_train_model_reads_a_folder_with_worker_processes(tmp_path: Path) -> None:
    root = make_imagefolder_tree(tmp_path, n_per_class={"train": 12, "val": 4})
    splits = load_dataset("imagefolder", resolution=8, path=root, seed=0)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 3))
    torch.manual_seed(0)
    twin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 3))
    kw = {"epochs": 2, "batch_size": 8, "seed": 1}
    a = train_model(model, splits.train, splits.val, num_workers=2, **kw)  # type: ignore[arg-type]
    b = train_model(twin, splits.train, splits.val, num_workers=0, **kw)  # type: ignore[arg-type]
    assert a.val_accuracy == b.val_accuracy and abs(a.train_loss - b.train_loss) < 1e-5
    assert loader_workers(splits.train) == 0  # small: read in the training process
    assert loader_workers(load_dataset("digits", resolution=8).train) == 0  # in memory
