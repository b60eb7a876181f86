"""One train/evaluate loop for every trainable architecture.

The loop is deliberately plain: AdamW (or Adam/SGD) with a warm-up + cosine learning-rate schedule,
cross-entropy, a fixed number of epochs, a seed that fixes initialisation and batch order.
After each epoch it measures validation accuracy and calls ``on_epoch(epoch, metrics)``; the
callback may raise (``optuna.TrialPruned`` for early stopping). A NaN or infinite loss stops
training at once with :class:`DivergedError`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from neuromosaic_optuna.data import ByteImageDataset
from neuromosaic_optuna.exceptions import DivergedError

__all__ = ["AUTO_PRECISION", "DivergedError", "TrainResult", "evaluate_accuracy",
           "cuda_device_count", "resolve_device", "resolve_precision", "train_model"]

#: ``precision = "auto"`` on a CUDA device, per architecture family (``summary["family"]``).
#: Measured with ``benchmarks/precision.py`` on one H200 (torch 2.11, 2026-12-04, bare loop,
#: batch 256, data on the GPU): bf16 autocast trains the ViTs 2.39-2.41x faster than fp32
#: (fp16 2.26-2.36x); for the depthwise ConvNet (``efficientnet`` family) bf16 is 0.86x and
#: fp32 with channels_last 0.93x of plain fp32, so fp32 stays. channels_last gained nothing
#: for the ViTs (1.00-1.02x, 0.93x with bf16 on the largest) and is used nowhere. Unlisted
#: families: fp32.
AUTO_PRECISION = {"vit": "bf16", "efficientnet": "fp32"}
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

EpochCallback = Callable[[int, dict[str, float]], None]
#: ``augment(model, x, y, generator) -> x`` applied to every training batch (e.g. noise).
BatchAugment = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


@dataclass
class TrainResult:
    """What a finished training run measured."""

    epochs: int
    train_loss: float
    val_accuracy: float
    train_time: float
    history: list[dict[str, float]] = field(default_factory=list)


def resolve_device(spec: str = "auto") -> torch.device:
    """The ``torch.device`` that study setting ``device`` names, checked to exist.

    ``auto`` picks the first CUDA GPU, else Apple's MPS, else the CPU.

    Raises:
        ConfigError: A device that this machine does not have (field ``device``).

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    from neuromosaic_optuna.config import ConfigError

    spec = spec.strip().lower()
    count = cuda_device_count()
    has_mps = _has_mps()
    if spec == "auto":
        if count:
            return torch.device("cuda", 0)
        return torch.device("mps") if has_mps else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not has_mps:
            raise ConfigError("device", "mps is not available on this machine; use "
                              "device = \"auto\" or \"cpu\"")
        return torch.device("mps")
    if spec == "cuda" or (spec.startswith("cuda:") and spec[5:].isdigit()):
        index = int(spec[5:] or 0)
        if index >= count:
            have = f"{count} CUDA device(s)" if count else "no CUDA device"
            raise ConfigError("device", f"{spec} is not available (this machine has {have}); "
                              "use device = \"auto\" or \"cpu\"")
        return torch.device("cuda", index)
    raise ConfigError("device", f"expected auto, cpu, cuda, cuda:N or mps, got {spec!r}")


def resolve_precision(spec: str, device: torch.device | str, family: str | None = None
                      ) -> str:
    """The precision a trial trains in: ``"fp32"``, ``"bf16"`` or ``"fp16"``.

    ``auto`` is fp32 off CUDA and :data:`AUTO_PRECISION` of the architecture family on CUDA.

    Raises:
        ConfigError: fp16 off CUDA (it needs a gradient scaler on a GPU; use bf16 or fp32).

    Example:
        >>> resolve_precision("auto", "cpu", "vit"), resolve_precision("auto", "cuda:0", "vit")
        ('fp32', 'bf16')
    """
    from neuromosaic_optuna.config import ConfigError

    kind = torch.device(device).type
    if spec == "auto":
        return AUTO_PRECISION.get(family or "", "fp32") if kind == "cuda" else "fp32"
    if spec == "fp16" and kind != "cuda":
        raise ConfigError("precision", f"fp16 needs a CUDA device, the device is {kind}; use "
                          "precision = \"bf16\" or \"fp32\"")
    if spec not in ("fp32", "bf16", "fp16"):
        raise ConfigError("precision", f"expected auto, bf16, fp16 or fp32, got {spec!r}")
    return spec


def cuda_device_count() -> int:
    """CUDA devices this process can use (0 without CUDA).

    Example:
        >>> cuda_device_count() >= 0
        True
    """
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _has_mps() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


class _Shuffle(torch.utils.data.Sampler[int]):
    """A new permutation each epoch from ``generator`` alone, so the batch order is the same
    whatever the number of loader workers (a ``DataLoader``'s own generator also seeds its
    workers, once per iterator, which persistent workers create only once)."""

    def __init__(self, n: int, generator: torch.Generator | None) -> None:
        self.n, self.generator = n, generator

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        return iter(torch.randperm(self.n, generator=self.generator).tolist())


def _loader(ds: Dataset[Any], batch_size: int, *, shuffle: bool,
            generator: torch.Generator | None, num_workers: int, device: torch.device
            ) -> DataLoader[Any]:
    """A ``DataLoader`` for a lazily read split (an image folder on disk): ``num_workers``
    worker processes that stay alive across epochs, pinned host memory when the batches go to
    a CUDA device (copied with ``non_blocking``)."""
    sampler = _Shuffle(len(ds), generator) if shuffle else None  # type: ignore[arg-type]
    return DataLoader(ds, batch_size=batch_size, sampler=sampler,
                      num_workers=num_workers, pin_memory=device.type == "cuda",
                      persistent_workers=num_workers > 0,
                      prefetch_factor=4 if num_workers > 0 else None)


def _batches(ds: Dataset[Any], batch_size: int, *, shuffle: bool,
             generator: torch.Generator | None = None,
             loader: DataLoader[Any] | None = None
             ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    if isinstance(ds, TensorDataset):
        x, y = ds.tensors[0], ds.tensors[1]
        n = len(x)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        order = order.to(x.device)  # one copy per epoch: no per-batch host->device index copy
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            yield x[idx], y[idx]
    elif isinstance(ds, ByteImageDataset):  # uint8 where it is held, converted per batch there
        n = len(ds)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        order = order.to(ds.device)
        for start in range(0, n, batch_size):
            yield ds.batch(order[start:start + batch_size])
    else:
        yield from loader if loader is not None else DataLoader(
            ds, batch_size=batch_size, shuffle=shuffle, generator=generator)


def _adapt_batchnorm(model: nn.Module, steps_per_epoch: int) -> None:
    """Give BatchNorm's running statistics a momentum that follows the epoch length.

    With PyTorch's default momentum (0.1) and a short epoch (digits: 17 steps), the running
    statistics lag the quickly changing weights, and the per-epoch validation accuracy reads
    chance level for the first epochs although the network already classifies well in train
    mode, which would make every early-stopping decision random. Momentum
    ``clip(8 / steps_per_epoch, 0.1, 0.5)`` keeps PyTorch's default on long epochs.
    """
    momentum = min(0.5, max(0.1, 8.0 / steps_per_epoch))
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.momentum is not None:
            module.momentum = momentum


def _warmup_cosine(total_steps: int) -> Callable[[int], float]:
    """Linear warm-up over the first 10% of steps (at least one), then cosine decay to 0."""
    warmup = max(1, total_steps // 10)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def evaluate_accuracy(model: nn.Module, ds: Dataset[Any], *, batch_size: int = 512,
                      loader: DataLoader[Any] | None = None) -> float:
    """Top-1 accuracy of ``model`` on ``ds`` as a fraction, in eval mode (mode restored).

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> model = torch.nn.Linear(2, 2)
        >>> ds = TensorDataset(torch.eye(2), torch.tensor([0, 1]))
        >>> 0.0 <= evaluate_accuracy(model, ds) <= 1.0
        True
    """
    was_training = model.training
    model.eval()
    device = _model_device(model)
    correct = total = 0
    try:
        with torch.inference_mode():
            for x, y in _batches(ds, batch_size, shuffle=False, loader=loader):
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                correct += int((model(x).argmax(dim=1) == y).sum())
                total += len(y)
    finally:
        model.train(was_training)
    return correct / total if total else 0.0


def train_model(
    model: nn.Module,
    train: Dataset[Any],
    val: Dataset[Any],
    *,
    epochs: int,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    weight_decay: float = 1e-4,
    optimizer: str = "adamw",
    seed: int = 0,
    on_epoch: EpochCallback | None = None,
    augment: BatchAugment | None = None,
    device: torch.device | str | None = None,
    precision: str = "fp32",
    num_workers: int = 0,
) -> TrainResult:
    """Train ``model`` in place and return what was measured.

    Args:
        model: A freshly built model.
        train: Training split.
        val: Validation split, evaluated after every epoch.
        epochs: Number of epochs.
        batch_size: Mini-batch size.
        learning_rate: Peak learning rate (linear warm-up, then cosine decay).
        weight_decay: Weight decay.
        optimizer: ``"adamw"``, ``"adam"`` or ``"sgd"`` (momentum 0.9, Nesterov).
        seed: Seeds the batch order (initialisation is the caller's: seed before building).
        on_epoch: Called after each epoch with ``{"accuracy", "loss"}``; may raise.
        augment: Optional batch transformation applied during training only.
        device: Where to train (the model is moved there, and every batch); default: where
            the model's parameters already are.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (``torch.autocast`` with that dtype
            for the forward pass and loss; fp16 adds a gradient scaler). Evaluation is fp32.
        num_workers: Worker processes reading a split that is not in memory (an image
            folder on disk) through a ``DataLoader`` (persistent across epochs, pinned memory
            on CUDA); in-memory splits are batched directly, where they are held.

    Raises:
        DivergedError: The loss became NaN or infinite.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> ds = TensorDataset(torch.randn(32, 4), torch.randint(0, 2, (32,)))
        >>> result = train_model(torch.nn.Linear(4, 2), ds, ds, epochs=2)
        >>> result.epochs
        2
    """
    generator = torch.Generator().manual_seed(seed)
    if device is not None:
        model.to(device)
    target = _model_device(model)
    # Random draws of the augment hook happen where the batch is (no per-batch host copy);
    # on the CPU it shares the batch-order generator, as it always did.
    aug_generator = generator if target.type == "cpu" else \
        torch.Generator(device=target).manual_seed(seed)
    # A non-finite loss is looked for at every step on the CPU; on an accelerator every
    # ``check_every`` steps and at the end of the epoch, so that steps do not wait for each
    # other (a NaN stays NaN in the running sum).
    check_every = 1 if target.type == "cpu" else 25
    dtype = _DTYPES.get(precision)
    if precision not in ("fp32", *_DTYPES):
        raise ValueError(f"precision must be fp32, bf16 or fp16, got {precision!r}")
    scaler = torch.amp.GradScaler(target.type) if precision == "fp16" else None
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=learning_rate, momentum=0.9,
                                                     nesterov=True, weight_decay=weight_decay)
    elif optimizer == "adam":
        opt = torch.optim.Adam(params, lr=learning_rate, weight_decay=weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    steps_per_epoch = max(1, math.ceil(len(train) / batch_size))  # type: ignore[arg-type]
    _adapt_batchnorm(model, steps_per_epoch)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, _warmup_cosine(epochs * steps_per_epoch))
    loss_fn = nn.CrossEntropyLoss()
    lazy = (not isinstance(d, (TensorDataset, ByteImageDataset)) for d in (train, val))
    train_loader, val_loader = (
        _loader(d, size, shuffle=shuffle, generator=generator if shuffle else None,
                num_workers=num_workers, device=target) if is_lazy else None
        for d, size, shuffle, is_lazy in zip((train, val), (batch_size, 512), (True, False),
                                             lazy, strict=True))
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    loss_value = math.nan
    val_acc = 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        total_loss = torch.zeros((), device=target)
        n = 0
        step = -1
        for step, (x, y) in enumerate(_batches(train, batch_size, shuffle=True,
                                               generator=generator, loader=train_loader)):
            x, y = x.to(target, non_blocking=True), y.to(target, non_blocking=True)
            if augment is not None:
                x = augment(model, x, y, aug_generator)
            with torch.autocast(target.type, dtype=dtype, enabled=dtype is not None):
                loss = loss_fn(model(x), y)
            if step % check_every == 0 and not torch.isfinite(loss):
                raise DivergedError(f"loss is {loss.item()} at epoch {epoch}, step {step}")
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            schedule.step()
            total_loss += loss.detach().float() * len(y)
            n += len(y)
        loss_value = float(total_loss) / max(n, 1)
        if not math.isfinite(loss_value):
            raise DivergedError(f"loss is {loss_value} at epoch {epoch}, by step {step}")
        val_acc = evaluate_accuracy(model, val, loader=val_loader)
        record = {"epoch": float(epoch), "accuracy": val_acc, "loss": loss_value}
        history.append(record)
        if on_epoch is not None:
            on_epoch(epoch, {"accuracy": val_acc, "loss": loss_value})
    model.eval()
    return TrainResult(epochs, loss_value, val_acc, time.perf_counter() - started, history)
