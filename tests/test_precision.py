"""Mixed precision (issue 16, item 2): the `auto` rule, autocast with a dtype during training
only, fp16 refused off CUDA, and a NaN loss still diverges."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from neuromosaic_optuna.config import ConfigError, load_config
from neuromosaic_optuna.training import (
    AUTO_PRECISION,
    DivergedError,
    resolve_precision,
    train_model,
)

_BASE = {"name": "p", "architecture_type": "conv_net", "search_space": {"w": [1, 2]}}


def test_auto_rule_per_family_and_device() -> None:
    assert AUTO_PRECISION == {"vit": "bf16", "efficientnet": "fp32"}
    assert resolve_precision("auto", "cuda:0", "vit") == "bf16"
    assert resolve_precision("auto", "cuda", "efficientnet") == "fp32"
    assert resolve_precision("auto", "cuda", "unknown") == "fp32"
    for family in ("vit", "efficientnet"):
        assert resolve_precision("auto", "cpu", family) == "fp32"
        assert resolve_precision("auto", "mps", family) == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("fp16", "cuda:1") == "fp16"
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", "cpu")


def test_precision_key() -> None:
    assert load_config(_BASE).precision == "auto"
    assert load_config({**_BASE, "precision": "bf16"}).precision == "bf16"
    with pytest.raises(ConfigError, match="precision.*expected auto, bf16, fp16 or fp32"):
        load_config({**_BASE, "precision": "fp8"})


class _Recorder(nn.Module):
    def __init__(self, nan: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)
        self.nan = nan
        self.dtypes: list[tuple[bool, torch.dtype]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x)
        self.dtypes.append((self.training, out.dtype))
        return out * float("nan") if self.nan else out


def test_bf16_autocasts_training_only() -> None:
    ds = TensorDataset(torch.randn(32, 4), torch.randint(0, 2, (32,)))
    model = _Recorder()
    result = train_model(model, ds, ds, epochs=1, batch_size=16, precision="bf16")
    assert {d for train, d in model.dtypes if train} == {torch.bfloat16}
    assert {d for train, d in model.dtypes if not train} == {torch.float32}
    assert model.linear.weight.dtype == torch.float32 and result.train_loss == result.train_loss
    plain = _Recorder()
    train_model(plain, ds, ds, epochs=1, batch_size=16)
    assert {d for _, d in plain.dtypes} == {torch.float32}
    with pytest.raises(ValueError, match="precision"):
        train_model(_Recorder(), ds, ds, epochs=1, precision="auto")


def test_nan_loss_still_diverges_in_bf16() -> None:
    ds = TensorDataset(torch.randn(32, 4), torch.randint(0, 2, (32,)))
    with pytest.raises(DivergedError, match="epoch 1, step 0"):
        train_model(_Recorder(nan=True), ds, ds, epochs=1, precision="bf16")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fp16_with_scaler_on_cuda() -> None:
    ds = TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
    model = _Recorder()
    train_model(model, ds, ds, epochs=1, batch_size=16, device="cuda", precision="fp16")
    assert {d for train, d in model.dtypes if train} == {torch.float16}
