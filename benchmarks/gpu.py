"""Our training loop vs a bare plain-torch loop on the same device (issue 16, "Acceptance").

For each architecture (built by our registry), both loops train the same freshly built model
(same seed, batch size, precision from ``resolve_precision("auto", ...)``) on the same
device-resident, CIFAR-10-shaped random data; the script prints images/second of each and the
ratio ours / bare (goal: >= 0.9). The bare loop (:func:`bare_loop`, under 40 lines) imports
nothing of ours. Each loop runs one warm-up epoch first, untimed.

Full run (a GPU machine): the issue's three architectures (ViT 8 layers, 8 heads x 64, patch 4,
32 px; the seed space's largest ViT, 12 layers, 16 heads, mlp 4, patch 8; ``conv_net`` at
multipliers 1.0, 64 px), 5,000 images, batch 256. Reference figures of the issue (one H200,
torch 2.11, bare loop, data resident): 14,598 / 10,247 images/s (bf16) and 10,993 images/s
(ConvNet, fp32). ``--quick`` (CPU, about a minute): two small architectures, 512 images,
batch 64. Not measured here: the 10-trial ``vit_search`` study's trials per hour and GPU
utilisation.

Run: ``python benchmarks/gpu.py [--quick] [--device cuda:0]``
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
from torch.utils.data import TensorDataset

from neuromosaic_optuna.models import BuildContext, get_builder
from neuromosaic_optuna.training import resolve_device, resolve_precision, train_model

FULL = [
    ("vit mid (8L, 8x64, p4, 32px)", "vision_transformer",
     {"num_layers": 8, "num_heads": 8, "mlp_ratio": 4.0, "patch_size": 4}, 32, 64),
    ("vit largest (12L, 16x64, mlp4, p8, 32px)", "vision_transformer",
     {"num_layers": 12, "num_heads": 16, "mlp_ratio": 4.0, "patch_size": 8}, 32, 64),
    ("conv_net (1.0/1.0, 64px)", "conv_net",
     {"depth_multiplier": 1.0, "width_multiplier": 1.0}, 64, 64),
]
QUICK = [
    ("vit small (2L, 2x16, p8, 32px)", "vision_transformer",
     {"num_layers": 2, "num_heads": 2, "mlp_ratio": 2.0, "patch_size": 8}, 32, 16),
    ("conv_net (0.5/0.25, 32px)", "conv_net",
     {"depth_multiplier": 0.5, "width_multiplier": 0.25}, 32, 16),
]


def bare_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int,
              batch_size: int, precision: str, lr: float = 1e-3) -> float:
    """Plain torch: AdamW, cross-entropy, autocast; returns seconds (synchronised)."""
    device = x.device
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    model.train()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size].to(device)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _build(arch: str, params: dict[str, Any], resolution: int, head_dim: int,
           device: torch.device) -> tuple[torch.nn.Module, str]:
    torch.manual_seed(0)
    built = get_builder(arch)(params, BuildContext(10, resolution,
                                                   options={"head_dim": head_dim}))
    return built.model.to(device), str(built.summary.get("family"))


def _ours(model: torch.nn.Module, train: TensorDataset, val: TensorDataset, *, epochs: int,
          batch_size: int, precision: str, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    train_model(model, train, val, epochs=epochs, batch_size=batch_size, learning_rate=1e-3,
                device=device, precision=precision)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small architectures, ~1 minute")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    archs, n, batch, epochs = (QUICK, 512, 64, 2) if args.quick else (FULL, 5000, 256, 2)
    print(f"device {device}, torch {torch.__version__}, {n} images, batch {batch}, "
          f"{epochs} timed epochs after one warm-up epoch")
    for name, arch, params, res, head_dim in archs:
        gen = torch.Generator().manual_seed(1)
        x = torch.rand(n, 3, res, res, generator=gen).to(device)
        y = torch.randint(0, 10, (n,), generator=gen).to(device)
        train, val = TensorDataset(x, y), TensorDataset(x[:batch], y[:batch])
        model, family = _build(arch, params, res, head_dim, device)
        precision = resolve_precision("auto", device, family)
        _ours(model, train, val, epochs=1, batch_size=batch, precision=precision, device=device)
        ours = _ours(model, train, val, epochs=epochs, batch_size=batch, precision=precision,
                     device=device)
        model, _ = _build(arch, params, res, head_dim, device)
        bare_loop(model, x, y, epochs=1, batch_size=batch, precision=precision)
        bare = bare_loop(model, x, y, epochs=epochs, batch_size=batch, precision=precision)
        ips_ours, ips_bare = n * epochs / ours, n * epochs / bare
        print(f"{name:42s} {precision}: ours {ips_ours:9.1f} img/s, bare {ips_bare:9.1f} img/s, "
              f"ratio {ips_ours / ips_bare:.2f}x (ours includes one {batch}-image validation "
              "pass per epoch)")


if __name__ == "__main__":
    main()
