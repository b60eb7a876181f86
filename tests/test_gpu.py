"""Checks that need a CUDA GPU (issue 16); each skips with a reason elsewhere."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from neuromosaic_optuna.training import train_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _htod_copies(prof: object) -> int:
    events = prof.events()  # type: ignore[attr-defined]
    return sum(1 for e in events if "memcpy htod" in e.name.lower())


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
    copies = _htod_copies(prof)
    assert copies < batches // 4, f"{copies} host-to-device copies for {batches} batches"


def test_uint8_resident_split_with_augmentation_copies_nothing_per_batch() -> None:
    """The Objective's path: uint8 CIFAR-shaped images on the GPU, converted and resized there
    per batch, crop + flip drawn from a generator on the GPU: no host-to-device copy per batch."""
    from torch.profiler import ProfilerActivity, profile

    from neuromosaic_optuna.data import ByteImageDataset, standard_augment

    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4096, 3, 32, 32), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (4096,), generator=gen)
    train = ByteImageDataset(images, labels, resolution=24).to("cuda")
    val = ByteImageDataset(images[:256], labels[:256], resolution=24).to("cuda")
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 24 * 24, 10)).cuda()

    def augment(m: object, x: torch.Tensor, y: torch.Tensor, g: torch.Generator
                ) -> torch.Tensor:
        assert x.is_cuda and g.device.type == "cuda"
        return standard_augment(x, g)

    kw = {"epochs": 1, "batch_size": 128, "augment": augment}
    train_model(model, train, val, **kw)  # type: ignore[arg-type]  # warm-up
    batches = 4096 // 128
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        train_model(model, train, val, **kw)  # type: ignore[arg-type]
        torch.cuda.synchronize()
    copies = _htod_copies(prof)
    assert copies < batches // 4, f"{copies} host-to-device copies for {batches} batches"


def test_objective_trains_from_uint8_splits_on_the_gpu() -> None:
    from neuromosaic_optuna.config import load_config
    from neuromosaic_optuna.data import ByteImageDataset
    from neuromosaic_optuna.objective import Objective

    cfg = load_config({"experiment": {"name": "g", "architecture_type": "conv_net",
                                      "search_space": {"width_multiplier": [0.25, 0.5]}},
                       "defaults": {"epochs": 1, "device": "cuda"}})
    objective = Objective(cfg, timing=False)
    splits = objective.dataset(objective.input_resolution({}))
    assert isinstance(splits.train, ByteImageDataset) and splits.train.device.type == "cuda"
    import optuna

    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)
    assert study.trials[0].user_attrs["status"] == "ok"


def test_costs_on_cuda_keep_flops_and_params() -> None:
    from neuromosaic_optuna.profiling import clear_latency_cache, profile_model

    clear_latency_cache()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(16 * 32 * 32, 10))
    cpu = profile_model(model, (3, 32, 32), cache_key="m", device="cpu")
    gpu = profile_model(model, (3, 32, 32), cache_key="m", device="cuda")
    assert (gpu.flops, gpu.params) == (cpu.flops, cpu.params)
    assert gpu.latency > 0 and gpu.latency != cpu.latency  # its own cache entry
    # allocator peak: at least the input and the conv output (fp32), well under 100 MB
    assert 4 * (3 + 16) * 32 * 32 <= gpu.memory < 100 * 2**20
    assert next(model.parameters()).device.type == "cpu"  # moved back
