"""Our training loop vs a bare plain-torch loop on the same device (issue 16, "Acceptance").

For each architecture (built by our registry), both loops train the same freshly built model
(same seed, batch size, precision from ``resolve_precision("auto", ...)``) on the same
device-resident, CIFAR-10-shaped random data: ours reads it as the Objective does (``uint8``
on the device, converted per batch: :class:`~neuromosaic_optuna.data.ByteImageDataset`), the
bare loop from a float tensor on the device. The script prints images/second of each, the
ratio ours / bare (goal: >= 0.9) and the time ours takes for one 50,000-image CIFAR-10 epoch
(goal for the mid ViT: < 10 s on an H100/H200). The bare loop (:func:`bare_loop`, under 40
lines) imports nothing of ours. Each loop runs one warm-up epoch first, untimed.

Then a 10-trial ``vit_search`` study (its ``gpu`` budget with ``--study-epochs`` epochs, default
2; ``--quick``: tiny heads, one epoch, 1,000 images) on CIFAR-10 from
``$NEUROMOSAIC_CIFAR10_DIR`` when it is there, else on random ``uint8`` images written in
CIFAR-10's python format to a temporary folder (nothing is downloaded): trials per hour and
the GPU's utilisation (``torch.cuda.utilization`` or ``nvidia-smi``, sampled every 0.5 s in a
thread; ``n/a`` on the CPU).

Full run (a GPU machine): the issue's three architectures (ViT 8 layers, 8 heads x 64, patch 4,
32 px; the seed space's largest ViT, 12 layers, 16 heads, mlp 4, patch 8; ``conv_net`` at
multipliers 1.0, 64 px), 5,000 images, batch 256. Reference figures of the issue (one H200,
torch 2.11, bare loop, data resident): 14,598 / 10,247 images/s (bf16) and 10,993 images/s
(ConvNet, fp32). ``--quick`` (CPU, about a minute): two small architectures, 512 images,
batch 64, and the small study.

Run: ``python benchmarks/gpu.py [--quick] [--device cuda:0] [--no-study] [--study-epochs N]``
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuromosaic_optuna.data import ByteImageDataset
from neuromosaic_optuna.models import BuildContext, get_builder
from neuromosaic_optuna.training import resolve_device, resolve_precision, train_model

ROOT = Path(__file__).resolve().parent.parent
CIFAR10_EPOCH = 50_000

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


def _ours(model: torch.nn.Module, train: ByteImageDataset, val: ByteImageDataset, *,
          epochs: int,
          batch_size: int, precision: str, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    train_model(model, train, val, epochs=epochs, batch_size=batch_size, learning_rate=1e-3,
                device=device, precision=precision)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _write_cifar10(folder: Path, per_batch: int, seed: int = 0) -> Path:
    """Random ``uint8`` images in CIFAR-10's python format (5 training batches of
    ``per_batch`` images, a test batch, ``batches.meta``) under ``folder``."""
    rng = np.random.default_rng(seed)
    out = folder / "cifar-10-batches-py"
    out.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        with open(out / name, "wb") as fh:
            pickle.dump({b"data": data, b"labels": labels}, fh, protocol=2)
    with open(out / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [f"class{i}".encode() for i in range(10)]}, fh,
                    protocol=2)
    return folder


class _Utilisation:
    """Samples the GPU's utilisation (%) every ``period`` seconds in a thread."""

    def __init__(self, device: torch.device, period: float = 0.5) -> None:
        self.device, self.period = device, period
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> float | None:
        try:
            return float(torch.cuda.utilization(self.device))
        except Exception:  # noqa: BLE001 - no pynvml: ask nvidia-smi
            index = self.device.index or 0
            try:
                text = subprocess.run(
                    ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                     "-i", str(index)], capture_output=True, text=True, timeout=5).stdout
                return float(text.strip().splitlines()[0])
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                return None

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            value = self._read()
            if value is not None:
                self.samples.append(value)

    def __enter__(self) -> _Utilisation:
        if self.device.type == "cuda":
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def summary(self) -> str:
        if self.device.type != "cuda" or not self.samples:
            return "n/a"
        return (f"mean {statistics.fmean(self.samples):.0f}%, median "
                f"{statistics.median(self.samples):.0f}% ({len(self.samples)} samples)")


def vit_study(device: torch.device, *, quick: bool, n_trials: int = 10,
              epochs: int | None = None) -> None:
    """Run ``n_trials`` of ``vit_search`` (its ``gpu`` budget, ``epochs`` per trial when given)
    and print trials per hour, the GPU's utilisation, and the whole ``gpu`` budget's time
    projected from the measured seconds per trial-epoch."""
    import optuna

    import neuromosaic_optuna as nm

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    found = os.environ.get("NEUROMOSAIC_CIFAR10_DIR")
    tmp = None
    if found and Path(found).is_dir() and not quick:
        path, what = Path(found), f"CIFAR-10 from {found}"
    else:
        tmp = Path(tempfile.mkdtemp(prefix="neuromosaic-cifar10-"))
        per_batch = 100 if quick else 10_000
        path = _write_cifar10(tmp, per_batch)
        what = f"random uint8 images in CIFAR-10 format ({6 * per_batch:,} images, {tmp})"
    overrides: dict[str, Any] = {"max_trials": n_trials, "dataset_path": str(path),
                                 "device": str(device)}
    if quick:
        overrides.update(head_dim=4, epochs=1, batch_size=64)
    elif epochs is not None:
        overrides["epochs"] = epochs
    try:
        config = nm.load_study_file(ROOT / "studies" / "vit_search.toml", budget="gpu",
                                    overrides=overrides)
        objective = nm.Objective(config)
        objective.preflight()
        study = nm.create_study(config, storage=None)
        with _Utilisation(device) as util:
            start = time.perf_counter()
            study.optimize(objective, n_trials=n_trials)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - start
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    done = [t for t in study.trials if t.state.is_finished()]
    print(f"vit_search, budget gpu{' (quick: head_dim 4, 1 epoch)' if quick else ''}, "
          f"{config.epochs} epochs, batch {config.batch_size}, on {what}:")
    print(f"  {len(done)} trials in {seconds:.1f} s = {len(done) / seconds * 3600:.1f} "
          f"trials/hour; GPU utilisation {util.summary()}")
    if quick:
        return
    budget = nm.load_study_file(ROOT / "studies" / "vit_search.toml", budget="gpu")
    per_epoch = seconds / max(1, len(done) * config.epochs)
    print(f"  {per_epoch:.1f} s per trial-epoch (profiling and start-up included): the gpu "
          f"budget ({budget.max_trials} trials x {budget.epochs} epochs) projects to "
          f"{per_epoch * budget.max_trials * budget.epochs / 3600:.2f} h")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small architectures, ~1 minute")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-study", action="store_true", help="skip the vit_search study")
    parser.add_argument("--study-epochs", type=int, default=2,
                        help="epochs per trial of the vit_search study (default 2; the gpu "
                        "budget's own is 15)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    archs, n, batch, epochs = (QUICK, 512, 64, 2) if args.quick else (FULL, 5000, 256, 2)
    print(f"device {device}, torch {torch.__version__}, {n} images, batch {batch}, "
          f"{epochs} timed epochs after one warm-up epoch")
    for name, arch, params, res, head_dim in archs:
        gen = torch.Generator().manual_seed(1)
        images = torch.randint(0, 256, (n, 3, res, res), dtype=torch.uint8, generator=gen)
        y = torch.randint(0, 10, (n,), generator=gen)
        train = ByteImageDataset(images, y, res).to(device)
        val = ByteImageDataset(images[:batch], y[:batch], res).to(device)
        x = images.to(device).float().div_(255.0)
        y = y.to(device)
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
              f"ratio {ips_ours / ips_bare:.2f}x; a {CIFAR10_EPOCH:,}-image CIFAR-10 epoch: "
              f"{CIFAR10_EPOCH / ips_ours:.1f} s ours (ours includes one {batch}-image "
              "validation pass per epoch)")
    if not args.no_study:
        # --quick: 3 trials (the 10-trial figure is the GPU run's; on 2 CPU cores it is minutes)
        vit_study(device, quick=args.quick, n_trials=3 if args.quick else 10,
                  epochs=args.study_epochs)


if __name__ == "__main__":
    main()
