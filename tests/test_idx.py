"""IDX reader (MNIST format, gzip or plain) and the ``fashion_mnist`` dataset built on it."""

from __future__ import annotations

import doctest
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from doctests import run_doctests

from neuromosaic_optuna import _idx, data
from neuromosaic_optuna._idx import IDX_FILES, read_idx, read_idx_split
from neuromosaic_optuna.cli import main
from neuromosaic_optuna.config import ConfigError
from neuromosaic_optuna.data import load_dataset


def _idx_bytes(arr: np.ndarray) -> bytes:
    return struct.pack(f">BBBB{arr.ndim}I", 0, 0, 8, arr.ndim, *arr.shape) + arr.tobytes()


def _write(path: Path, payload: bytes, gz: bool) -> Path:
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def make_idx_tree(root: Path, *, n_train: int = 60, n_test: int = 20, size: int = 28,
                  gz: bool = True, seed: int = 0) -> dict[str, np.ndarray]:
    """Four MNIST-format files of random images with balanced labels 0..9."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 10).astype(np.uint8)
        for part in ("images", "labels"):
            _write(root / IDX_FILES[(split, part)], _idx_bytes(arrays[f"{split}_{part}"]), gz)
    return arrays


def test_module_doctests() -> None:
    assert run_doctests(_idx, optionflags=doctest.ELLIPSIS).failed == 0


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_read_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    arr = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    path = _write(tmp_path / "x-idx3-ubyte", _idx_bytes(arr), gz)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 5)
    np.testing.assert_array_equal(out, arr)
    out[0, 0, 0] = 99  # a copy: the cache is not mutated
    assert read_idx(path)[0, 0, 0] == 0


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_split_reads_images_and_labels(tmp_path: Path, gz: bool) -> None:
    arrays = make_idx_tree(tmp_path, gz=gz)
    x, y = read_idx_split(tmp_path, "test")
    np.testing.assert_array_equal(x, arrays["test_images"])
    np.testing.assert_array_equal(y, arrays["test_labels"])


def _one_line_error(call: object, *needles: str) -> str:
    with pytest.raises(ConfigError) as err:
        call()  # type: ignore[operator]
    text = str(err.value)
    assert err.value.path == "dataset_path"
    assert "\n" not in text
    for needle in needles:
        assert needle in text, text
    return text


BAD_BODIES = {
    "bad magic": (b"\x08\x03\x00\x00" + bytes(20), "bad magic number"),
    "type code": (struct.pack(">BBBBI", 0, 0, 0x0D, 1, 2) + bytes(8), "type code 0x0d"),
    "short header": (struct.pack(">BBBB", 0, 0, 8, 3) + bytes(4), "truncated IDX header"),
    "truncated": (struct.pack(">BBBBIII", 0, 0, 8, 3, 4, 28, 28) + bytes(100),
                  "truncated (header declares 4x28x28 = 3136 bytes, found 100)"),
    "too long": (struct.pack(">BBBBI", 0, 0, 8, 1, 2) + bytes(3),
                 "longer than its header says"),
    "empty": (b"", "bad magic number"),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_corrupt_files_are_one_line(tmp_path: Path, case: str, gz: bool) -> None:
    payload, needle = BAD_BODIES[case]
    path = _write(tmp_path / "bad-idx1-ubyte", payload, gz)
    _one_line_error(lambda: read_idx(path), str(path), needle)


def test_broken_gzip_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "x-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_bytes(np.zeros(50, np.uint8)))[:20])
    _one_line_error(lambda: read_idx(path), str(path), "not readable")
    path.write_bytes(b"plain bytes, not gzip")
    _one_line_error(lambda: read_idx(path), "not readable")


def test_counts_and_dimensions_must_agree(tmp_path: Path) -> None:
    make_idx_tree(tmp_path, gz=False)
    labels = tmp_path / IDX_FILES[("train", "labels")]
    labels.write_bytes(_idx_bytes(np.zeros(59, np.uint8)))
    _one_line_error(lambda: read_idx_split(tmp_path, "train"), "59 labels for 60 images")
    labels.write_bytes(_idx_bytes(np.zeros((60, 1), np.uint8)))
    _one_line_error(lambda: read_idx_split(tmp_path, "train"), "expected 1 dimension, found 2")
    images = tmp_path / IDX_FILES[("test", "images")]
    images.write_bytes(_idx_bytes(np.zeros((20, 784), np.uint8)))
    _one_line_error(lambda: read_idx_split(tmp_path, "test"), "expected 3 dimensions")
    (tmp_path / IDX_FILES[("test", "labels")]).unlink()
    _one_line_error(lambda: read_idx_split(tmp_path, "test"),
                    "lacks t10k-labels-idx1-ubyte (or .gz)")


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_fashion_mnist_from_any_folder(tmp_path: Path, gz: bool) -> None:
    arrays = make_idx_tree(tmp_path, gz=gz)
    splits = load_dataset("fashion_mnist", resolution=28, path=tmp_path, seed=3,
                          val_fraction=0.2)
    assert splits.name == "fashion_mnist" and splits.num_classes == 10
    assert (len(splits.train), len(splits.val), len(splits.test)) == (50, 10, 20)
    x_test, y_test = splits.test.tensors  # type: ignore[attr-defined]
    assert tuple(x_test.shape) == (20, 3, 28, 28)
    # pixels: grey repeated on the three channels, scaled to [0, 1]
    np.testing.assert_allclose(x_test[:, 1].numpy() * 255, arrays["test_images"], atol=1e-3)
    assert bool((x_test[:, 0] == x_test[:, 2]).all())
    assert y_test.tolist() == arrays["test_labels"].tolist()
    # validation is a stratified share of the training files, disjoint from training
    y_val = splits.val.tensors[1]  # type: ignore[attr-defined]
    assert sorted(y_val.tolist()) == list(range(10))
    small = load_dataset("fashion_mnist", resolution=14, path=tmp_path, max_train_samples=10)
    assert len(small.train) == 10 and len(set(small.train.tensors[1].tolist())) == 10  # type: ignore[attr-defined]
    assert tuple(small.test.tensors[0].shape[1:]) == (3, 14, 14)  # type: ignore[attr-defined]


def test_missing_folder_names_the_package(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _one_line_error(lambda: load_dataset("fashion_mnist", resolution=28, path=tmp_path / "no"),
                    "apt-get install dataset-fashion-mnist", str(tmp_path / "no"))
    # without dataset_path, the Debian folder is the last place looked in
    for env in ("NEUROMOSAIC_FASHION_MNIST_DIR", "NEUROMOSAIC_DATA_DIR"):
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setattr(data, "_CACHE_DIR", tmp_path / "cache")
    src = data._SOURCES["fashion_mnist"]
    assert src.default == "/usr/share/datasets/fashion-mnist"
    monkeypatch.setitem(data._SOURCES, "fashion_mnist",
                        data._Source(src.description, src.env, src.expects,
                                     str(tmp_path / "debian"), src.install))
    _one_line_error(lambda: load_dataset("fashion_mnist", resolution=28),
                    str(tmp_path / "debian"), "apt-get install dataset-fashion-mnist")
    make_idx_tree(tmp_path / "debian", gz=True)
    assert load_dataset("fashion_mnist", resolution=28).num_classes == 10


def test_cli_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "fm.toml"
    study.write_text(f"""
[experiment]
name = "fm"
architecture_type = "conv_net"
objectives = ["accuracy", "flops"]
dataset = "fashion_mnist"
[experiment.search_space]
width_multiplier = [0.25, 0.5]
[defaults]
dataset_path = "{tmp_path / 'absent'}"
""")
    db = tmp_path / "untouched.db"
    code = main(["run", str(study), "--storage", f"sqlite:///{db}", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "dataset_path" in lines[0] and "apt-get install dataset-fashion-mnist" in lines[0]
    assert not db.exists()
