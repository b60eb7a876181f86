"""Training augmentation (issue 16, item 3): `augmentation = "none" | "standard"`, a seeded,
vectorised random crop (4-pixel zero padding) plus horizontal flip, in training only."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from neuromosaic_optuna import training
from neuromosaic_optuna.config import ConfigError, load_config
from neuromosaic_optuna.data import default_augmentation, standard_augment
from neuromosaic_optuna.objective import Objective

_EXP = {"name": "a", "architecture_type": "conv_net",
        "search_space": {"width_multiplier": [0.25, 0.5]}}


def _config(**defaults: Any) -> Any:
    return load_config({"experiment": _EXP,
                        "defaults": {"max_train_samples": 64, "epochs": 1, **defaults}})


def test_seeded_identical_and_a_crop_or_flip_of_the_input() -> None:
    x = torch.rand(64, 3, 8, 8)
    a = standard_augment(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, standard_augment(x, torch.Generator().manual_seed(3)))
    assert not torch.equal(a, standard_augment(x, torch.Generator().manual_seed(4)))
    assert a.shape == x.shape
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(len(x)):  # every output is one 8x8 window of the padded image, maybe flipped
        windows = [padded[i, :, r:r + 8, c:c + 8] for r in range(9) for c in range(9)]
        assert any(torch.equal(a[i], w) or torch.equal(a[i], w.flip(-1)) for w in windows)
    flips = standard_augment(x, torch.Generator().manual_seed(0), padding=0)
    same = [torch.equal(flips[i], x[i]) for i in range(len(x))]
    mirrored = [torch.equal(flips[i], x[i].flip(-1)) for i in range(len(x))]
    assert all(s or m for s, m in zip(same, mirrored, strict=True))
    assert 16 < sum(mirrored) < 48  # about half are flipped


def test_key_and_defaults() -> None:
    assert default_augmentation("digits") == "none"
    assert default_augmentation("cifar10") == "standard"
    assert default_augmentation("imagefolder") == "none"
    assert _config().augmentation is None
    assert _config(augmentation="standard").augmentation == "standard"
    with pytest.raises(ConfigError, match="augmentation.*expected none or standard"):
        _config(augmentation="autoaugment")


@pytest.mark.parametrize("setting", ["none", "standard"])
def test_objective_augments_training_batches_only(setting: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_train(model: Any, train: Any, val: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        raise training.DivergedError("stop here")

    monkeypatch.setattr(training, "train_model", fake_train)
    objective = Objective(_config(augmentation=setting), timing=False)
    import optuna

    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1, catch=(training.DivergedError,))
    hook = seen["augment"]
    if setting == "none":
        assert hook is None
        return
    x, y = torch.rand(8, 3, 32, 32), torch.zeros(8, dtype=torch.long)
    out = hook(torch.nn.Identity(), x, y, torch.Generator().manual_seed(1))
    assert torch.equal(out, standard_augment(x, torch.Generator().manual_seed(1)))
