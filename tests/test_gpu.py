"""Checks that need a CUDA GPU (issue 16); each skips with a reason elsewhere."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from neuromosaic_optuna.training import train_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_device_resident_epoch_copies_nothing_per_batch() -> None:
    """A training epoch on a split resident on the GPU makes far fewer host-to-device copies
    than it has batches (goal of the issue: none per batch)."""
    from torch.profiler import ProfilerActivity, profile

    x = torch.rand(2048, 3, 16, 16, device="cuda")
    y = torch.randint(0, 10, (2048,), device="cuda")
    ds = TensorDataset(x, y)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 10)).cuda()
    train_model(model, ds, TensorDataset(x[:64], y[:64]), epochs=1, batch_size=64)  # warm-up
    batches = 2048 // 64
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        train_model(model, ds, TensorDataset(x[:64], y[:64]), epochs=1, batch_size=64)
        torch.cuda.synchronize()
    copies = [e for e in prof.events() if "memcpy htod" in e.name.lower()]
    assert len(copies) < batches // 4, f"{len(copies)} host-to-device copies for {batches} batches"
