"""Search decisions read validation data only (issue 16, item 6): robustness objectives are
measured on the validation split, test metrics cannot be objectives or constraints, and every
subset of a split is seeded and stratified, never its first N items."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from torch.utils.data import TensorDataset

import neuromosaic_optuna as nm
from neuromosaic_optuna import robustness
from neuromosaic_optuna.config import ConfigError, load_config
from neuromosaic_optuna.data import (
    ByteImageDataset,
    load_dataset,
    split_labels,
    split_tensors,
    stratified_subset,
)

ROOT = Path(__file__).resolve().parent.parent


def _class_sorted(n_per_class: int = 30, classes: int = 10) -> ByteImageDataset:
    """uint8 images whose red channel encodes the label, stored class by class (as ImageNet's
    ``val/`` folder is)."""
    y = torch.arange(classes).repeat_interleave(n_per_class)
    x = torch.zeros((len(y), 3, 4, 4), dtype=torch.uint8)
    x[:, 0] = (y * 20).to(torch.uint8)[:, None, None]
    return ByteImageDataset(x, y, resolution=4)


def test_stratified_subset_of_a_class_sorted_split_covers_every_class() -> None:
    ds = _class_sorted()
    sub = stratified_subset(ds, 50, seed=3)
    counts = Counter(split_labels(sub).tolist())
    assert sorted(counts) == list(range(10)) and set(counts.values()) == {5}
    again = stratified_subset(ds, 50, seed=3)
    other = stratified_subset(ds, 50, seed=4)
    assert list(sub.indices) == list(again.indices)  # type: ignore[attr-defined]
    assert list(sub.indices) != list(other.indices)  # type: ignore[attr-defined]
    assert list(sub.indices) != list(range(50))  # type: ignore[attr-defined]
    assert stratified_subset(ds, 1000, seed=0) is ds


def test_split_tensors_reads_a_stratified_subset_of_lazy_splits() -> None:
    x, y = split_tensors(_class_sorted(), limit=20, seed=0)
    assert x.shape == (20, 3, 4, 4)
    assert Counter(y.tolist()) == dict.fromkeys(range(10), 2)
    # images and labels stay paired: the red channel encodes the label
    assert torch.allclose(x[:, 0, 0, 0], y.float() * 20 / 255)
    full = load_dataset("digits", resolution=8).test
    assert isinstance(full, TensorDataset)
    assert torch.equal(split_tensors(full)[0], full.tensors[0])  # in memory: all of it


def test_training_subsets_are_stratified() -> None:
    full = load_dataset("digits", resolution=8, seed=7)
    head = load_dataset("digits", resolution=8, seed=7, max_train_samples=50)
    counts = Counter(split_labels(head.train).tolist())
    shares = Counter(split_labels(full.train).tolist())
    assert sorted(counts) == list(range(10))
    for cls, n in counts.items():
        assert abs(n - 50 * shares[cls] / len(full.train)) <= 1  # within one image of its share


@pytest.mark.parametrize("study", [
    {"objectives": ["test_accuracy"]},
    {"objectives": {"test_accuracy": {"weight": 1.0}}, "search_strategy": "weighted"},
    {"objectives": ["accuracy"], "constraints": {"min_test_accuracy": 0.5}},
])
def test_test_metrics_cannot_steer_the_search(study: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="test_accuracy is measured on the test split"):
        load_config({"name": "t", "architecture_type": "conv_net",
                     "search_space": {"width_multiplier": [0.5, 1.0]}, **study})


def test_robustness_objectives_read_the_validation_split(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    real = robustness.evaluate_robustness

    def spy(model: Any, x: torch.Tensor, y: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        seen.append((x, y))
        return real(model, x[:16], y[:16], *args, **kwargs)  # 16 images keep the test short

    monkeypatch.setattr(robustness, "evaluate_robustness", spy)
    monkeypatch.chdir(tmp_path)
    config = nm.load_study_file(ROOT / "studies" / "robustness.toml", budget="smoke",
                                overrides={"max_trials": 1})
    objective = nm.Objective(config, timing=False)
    study = optuna.create_study(directions=["maximize", "maximize"])
    study.optimize(objective, n_trials=1)
    assert len(seen) == 1
    splits = objective.dataset(objective.input_resolution({}))
    val, test = split_tensors(splits.val), split_tensors(splits.test)
    assert torch.equal(seen[0][0], val[0]) and torch.equal(seen[0][1], val[1])
    assert seen[0][0].shape != test[0].shape or not torch.equal(seen[0][0], test[0])
    metrics = study.trials[0].user_attrs["metrics"]
    assert 0.0 <= metrics["adversarial_accuracy"] <= 1.0
