"""Costs of a model measured before training: params, FLOPs, activation memory, latency.

Every function takes any ``torch.nn.Module`` and the size ``(C, H, W)`` of one input image;
the model's state is never changed (train/eval flags are restored module by module, the
forward passes run under :func:`torch.inference_mode` in eval mode, so batch-norm statistics
stay as they are, and the example input comes from a private random generator, so the global
RNG is untouched).

Conventions (they match torchvision's model documentation, checked in the tests):

* **params** (:func:`count_params`): every parameter, trainable or not, shared ones once;
  torchvision's ``num_params``.
* **flops** (:func:`count_flops`): multiply-accumulates (MACs) of one forward pass on one
  image, the quantity torchvision publishes as "GFLOPS" (its ``_ops`` metadata). Counted:
  convolutions, linear layers (``mm``/``addmm``) and batched matrix products (``bmm``,
  ``baddbmm``, scaled-dot-product attention: ``Q·Kᵀ`` and ``attn·V``), one MAC per
  multiply-add of the dense definition. Not counted: bias additions, normalisation,
  activations, softmax, pooling and other element-wise work. The count runs the model once
  under :class:`torch.utils.flop_counter.FlopCounterMode` (which counts ``2·MACs``; we halve
  it) with two additions: the fused fast path of ``nn.MultiheadAttention`` and
  ``nn.TransformerEncoderLayer`` (``torch._native_multi_head_attention``, which the counter
  cannot see into) is switched off during the count, so the in-projection of ``q``, ``k``,
  ``v``, both attention matmuls and the out-projection are all counted; and the CPU kernel of
  scaled-dot-product attention gets the formula the counter only has for the GPU kernels.
  With this, torchvision's published figures come out within 0.5 %: ResNet-50 4.089 G,
  EfficientNet-B0 0.386 G, MobileNetV3-Large 0.217 G, ViT-B/16 17.564 G, ViT-B/32 4.409 G
  (plain ``FlopCounterMode`` in eval mode reads 11.3 G for ViT-B/16). ``backend="thop"``
  asks :func:`thop.profile` instead, as a cross-check; thop also counts batch-norm and
  pooling, and has no rule for ``nn.MultiheadAttention``.
* **memory** (:func:`measure_activation_memory`): peak activation memory in bytes of one
  inference forward pass at batch 1. Every tensor storage created by an operator during the
  pass (plus the input image) is added when created and subtracted when Python frees it,
  through a ``TorchDispatchMode`` with weak references on the storages; the peak of that
  running sum is the result. Parameters and buffers are excluded, so are temporaries that
  live only inside one fused kernel (for example the tiles of the CPU attention kernel).
  It is deterministic, independent of the allocator and the device, and grows with the
  resolution the way activations do (4x the pixels, about 4x the bytes for a ConvNet).
* **latency** (:func:`measure_latency`): median wall time in seconds of one forward pass of a
  batch, in eval mode under inference mode, on one torch thread, after warm-up runs; two
  processes never time at once (an ``fcntl.flock`` on a lock file in the temp directory),
  and results are cached in-process per architecture key.
* **throughput** (:func:`measure_throughput`): images per second, ``batch_size / latency``.

**On a declared device** (``device`` of :func:`measure_latency` / :func:`profile_model`, the
study's ``latency_device``): latency and throughput are timed there; on CUDA with CUDA events
around each forward pass, after the warm-up passes and a synchronisation, and activation
memory is then the CUDA allocator's peak (``torch.cuda.max_memory_allocated`` during one
batch-1 forward pass, above what was allocated before it: the input and every activation).
The latency cache is keyed by device. FLOPs and params never depend on the device.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import statistics
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "LATENCY_LOCK_PATH",
    "Profile",
    "clear_latency_cache",
    "count_flops",
    "count_params",
    "latency_lock_wait",
    "measure_activation_memory",
    "measure_latency",
    "measure_throughput",
    "profile_model",
]

#: Lock file that serialises latency timing across worker processes on one machine.
LATENCY_LOCK_PATH = os.path.join(tempfile.gettempdir(), "neuromosaic_optuna-latency.lock")

_LATENCY_CACHE: dict[tuple[str, tuple[int, int, int], int, str], float] = {}
_THREAD_LOCK = threading.Lock()
_LOCK_WAIT = [0.0]  # seconds this process has waited for the latency lock, in total
_BACKENDS = ("torch", "thop")


@dataclass(frozen=True)
class Profile:
    """The costs of one model, measured before training.

    Attributes:
        params: Number of parameters.
        flops: Multiply-accumulates of one forward pass on one image.
        memory: Peak activation memory in bytes of one forward pass on one image.
        latency: Median seconds per forward pass of ``latency_batch_size`` images (0.0 when
            timing was skipped).
        throughput: Images per second at ``latency_batch_size`` (0.0 when timing was skipped).
        latency_batch_size: The batch size latency and throughput were measured at.
    """

    params: int
    flops: int
    memory: int
    latency: float
    throughput: float
    latency_batch_size: int

    def as_dict(self) -> dict[str, float]:
        """The measured metrics under their catalogue names.

        Returns:
            A dict with exactly the keys ``params``, ``flops``, ``memory``, ``latency`` and
            ``throughput``.

        Example:
            >>> Profile(10, 20, 30, 0.5, 2.0, 1).as_dict()
            {'params': 10.0, 'flops': 20.0, 'memory': 30.0, 'latency': 0.5, 'throughput': 2.0}
        """
        return {"params": float(self.params), "flops": float(self.flops),
                "memory": float(self.memory), "latency": float(self.latency),
                "throughput": float(self.throughput)}


def count_params(model: nn.Module) -> int:
    """Number of parameters of ``model`` (trainable or not; shared ones once).

    Args:
        model: Any module.

    Returns:
        The parameter count, torchvision's ``num_params`` convention.

    Example:
        >>> from torch import nn
        >>> count_params(nn.Linear(10, 5))
        55
    """
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_size: tuple[int, int, int], *,
                backend: str = "torch") -> int:
    """Multiply-accumulates of one forward pass of ``model`` on one image.

    Args:
        model: Any module taking a ``(1, C, H, W)`` tensor.
        input_size: ``(C, H, W)`` of one image.
        backend: ``"torch"`` (the counter described in the module docstring) or ``"thop"``
            (:func:`thop.profile`, a cross-check that also counts normalisation and pooling
            and misses attention).

    Returns:
        MACs (torchvision's "GFLOPS" times 1e9).

    Raises:
        ValueError: If ``backend`` is unknown or ``input_size`` is not three positive ints.

    Example:
        >>> from torch import nn
        >>> count_flops(nn.Conv2d(3, 8, 3, padding=1, bias=False), (3, 4, 4))  # 8*16 px * 27
        3456
    """
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(_BACKENDS)}, got {backend!r}")
    size = _check_input_size(input_size)
    if backend == "thop":
        return _thop_macs(model, size)
    return _analyse(model, size, flops=True, memory=False)[0]


def measure_activation_memory(model: nn.Module, input_size: tuple[int, int, int]) -> int:
    """Peak activation memory in bytes of one inference forward pass on one image.

    The method (live tensor storages tracked through a dispatch mode, parameters and buffers
    excluded, the input included) is described in the module docstring.

    Args:
        model: Any module taking a ``(1, C, H, W)`` tensor.
        input_size: ``(C, H, W)`` of one image.

    Returns:
        The peak number of bytes held by activations at once.

    Raises:
        ValueError: If ``input_size`` is not three positive ints.

    Example:
        >>> from torch import nn
        >>> measure_activation_memory(nn.Conv2d(3, 8, 3, padding=1), (3, 4, 4))  # in + out
        704
    """
    return _analyse(model, _check_input_size(input_size), flops=False, memory=True)[1]


def measure_latency(model: nn.Module, input_size: tuple[int, int, int], *, batch_size: int = 1,
                    warmup: int = 3, repeats: int = 10, cache_key: str | None = None,
                    device: torch.device | str | None = None) -> float:
    """Median wall time in seconds of one forward pass of a batch.

    The model runs in eval mode under :func:`torch.inference_mode` with torch set to one
    thread (the previous thread count is restored). An exclusive ``fcntl.flock`` on
    :data:`LATENCY_LOCK_PATH` is held while timing (all warm-up passes but the last run
    before it), so parallel workers on one machine never time at the same moment. With
    ``cache_key`` (an architecture key), the result is cached in this process per
    ``(cache_key, input_size, batch_size, device)`` and a later call returns it without
    running the model. On a CUDA device each pass is timed with CUDA events (after the warm-up
    passes and a synchronisation).

    Args:
        model: Any module taking a ``(batch_size, C, H, W)`` tensor.
        input_size: ``(C, H, W)`` of one image.
        batch_size: Images per forward pass.
        warmup: Untimed passes before timing.
        repeats: Timed passes; the median is returned.
        cache_key: Key of the architecture, or None to always measure.
        device: Where to time (the model is moved there and back); default: where the
            model's parameters are.

    Returns:
        Seconds per forward pass.

    Raises:
        ValueError: If ``batch_size`` or ``repeats`` is below 1, ``warmup`` is negative or
            ``input_size`` is not three positive ints.

    Example:
        >>> from torch import nn
        >>> measure_latency(nn.Conv2d(3, 8, 3), (3, 16, 16), repeats=3) > 0
        True
    """
    size = _check_input_size(input_size)
    _check_int(batch_size, "batch_size", 1)
    _check_int(repeats, "repeats", 1)
    _check_int(warmup, "warmup", 0)
    import torch

    target = torch.device(device) if device is not None else _device_of(model)
    key = None if cache_key is None else (cache_key, size, batch_size, _device_name(target))
    if key is not None and key in _LATENCY_CACHE:
        return _LATENCY_CACHE[key]
    times: list[float] = []
    with _on_device(model, target), _one_thread(), _eval_mode(model), torch.inference_mode():
        x = _example_input(model, size, batch_size)
        sync = _synchronizer(x)
        for _ in range(warmup - 1):  # first-run costs are paid before taking the lock
            model(x)
        sync()
        with _timing_lock():
            if warmup:  # the last warm-up pass: caches warm again after the wait
                model(x)
                sync()
            for _ in range(repeats):
                if target.type == "cuda":
                    begin = torch.cuda.Event(enable_timing=True)
                    end = torch.cuda.Event(enable_timing=True)
                    begin.record()
                    model(x)
                    end.record()
                    end.synchronize()
                    times.append(begin.elapsed_time(end) / 1000.0)
                else:
                    start = time.perf_counter()
                    model(x)
                    sync()
                    times.append(time.perf_counter() - start)
    latency = statistics.median(times)
    if key is not None:
        _LATENCY_CACHE[key] = latency
    return latency


def measure_throughput(model: nn.Module, input_size: tuple[int, int, int], *,
                       batch_size: int = 1, warmup: int = 3, repeats: int = 10,
                       cache_key: str | None = None,
                       device: torch.device | str | None = None) -> float:
    """Images per second at ``batch_size``: ``batch_size / measure_latency(...)``.

    Args:
        model: Any module taking a ``(batch_size, C, H, W)`` tensor.
        input_size: ``(C, H, W)`` of one image.
        batch_size: Images per forward pass.
        warmup: Untimed passes before timing.
        repeats: Timed passes; the median latency is used.
        cache_key: Key of the architecture for the latency cache, or None.
        device: Where to time (see :func:`measure_latency`).

    Returns:
        Images per second.

    Raises:
        ValueError: As :func:`measure_latency`.

    Example:
        >>> from torch import nn
        >>> measure_throughput(nn.Conv2d(3, 8, 3), (3, 16, 16), batch_size=4, repeats=3) > 0
        True
    """
    latency = measure_latency(model, input_size, batch_size=batch_size, warmup=warmup,
                              repeats=repeats, cache_key=cache_key, device=device)
    return batch_size / latency if latency > 0 else math.inf


def clear_latency_cache() -> None:
    """Forget every cached latency of this process.

    Example:
        >>> clear_latency_cache()
    """
    _LATENCY_CACHE.clear()


def profile_model(model: nn.Module, input_size: tuple[int, int, int], *,
                  latency_batch_size: int = 1, timing: bool = True,
                  cache_key: str | None = None,
                  device: torch.device | str | None = None) -> Profile:
    """All costs of ``model`` at once; FLOPs and memory share one forward pass, on one torch
    thread (counts do not depend on threads, and the analysis runs many tiny operators).

    Args:
        model: Any module taking a ``(N, C, H, W)`` tensor.
        input_size: ``(C, H, W)`` of one image.
        latency_batch_size: Batch size for latency and throughput.
        timing: False skips latency and throughput (both 0.0), for fast tests.
        cache_key: Architecture key for the latency cache (see :func:`measure_latency`).
        device: The device costs are measured for (``latency_device``): latency and
            throughput are timed there, and on CUDA memory is the allocator's peak; FLOPs and
            params are the same on every device. Default: where the model's parameters are.

    Returns:
        The :class:`Profile`.

    Raises:
        ValueError: If ``input_size`` is not three positive ints or ``latency_batch_size``
            is below 1.

    Example:
        >>> from torch import nn
        >>> p = profile_model(nn.Conv2d(3, 8, 3, padding=1), (3, 4, 4), timing=False)
        >>> p.params, p.flops, p.memory, p.latency
        (224, 3456, 704, 0.0)
    """
    size = _check_input_size(input_size)
    _check_int(latency_batch_size, "latency_batch_size", 1)
    import torch

    target = torch.device(device) if device is not None else _device_of(model)
    with _one_thread():  # tiny operators: more threads only wait on each other
        flops, memory = _analyse(model, size, flops=True, memory=True)
    if target.type == "cuda":
        memory = _cuda_peak_activation_bytes(model, size, target)
    latency = throughput = 0.0
    if timing:
        latency = measure_latency(model, size, batch_size=latency_batch_size,
                                  cache_key=cache_key, device=target)
        throughput = latency_batch_size / latency if latency > 0 else math.inf
    return Profile(params=count_params(model), flops=flops, memory=memory, latency=latency,
                   throughput=throughput, latency_batch_size=latency_batch_size)


# --- checks and shared context managers ---------------------------------------------------

def _check_int(value: Any, name: str, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_input_size(input_size: Any) -> tuple[int, int, int]:
    size = tuple(input_size)
    if len(size) != 3 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                             for v in size):
        raise ValueError(f"input_size must be (C, H, W) of positive ints, got {input_size!r}")
    return size  # type: ignore[return-value]


def _example_input(model: nn.Module, size: tuple[int, int, int], batch: int) -> torch.Tensor:
    """A fixed random batch on the model's device and dtype; the global RNG is untouched."""
    import torch

    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    device = param.device if param is not None else torch.device("cpu")
    x = torch.randn((batch, *size), generator=torch.Generator().manual_seed(0), dtype=dtype)
    return x.to(device)


def _device_of(model: nn.Module) -> torch.device:
    import torch

    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _device_name(device: torch.device) -> str:
    """``cuda`` and ``cuda:0`` are one device for the cache."""
    if device.type == "cuda" and device.index is None:
        import torch

        return f"cuda:{torch.cuda.current_device()}"
    return str(device)


@contextlib.contextmanager
def _on_device(model: nn.Module, device: torch.device) -> Iterator[None]:
    """``model`` on ``device`` inside the block, back where it was after."""
    home = _device_of(model)
    if home == device or (device.type == home.type and device.index is None):
        yield
        return
    model.to(device)
    try:
        yield
    finally:
        model.to(home)


def _cuda_peak_activation_bytes(model: nn.Module, size: tuple[int, int, int],
                                device: torch.device) -> int:
    """Peak bytes the CUDA allocator holds above its level before one inference forward pass
    on one image (the input and the activations; parameters were allocated before)."""
    import torch

    with _on_device(model, device), _eval_mode(model), torch.inference_mode():
        x = _example_input(model, size, 1)
        model(x)  # warm-up: lazily allocated workspaces (cuBLAS, cuDNN) are not activations
        del x
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        x = _example_input(model, size, 1)
        model(x)
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
    return int(max(0, peak - base))


def _synchronizer(x: torch.Tensor) -> Callable[[], None]:
    import torch

    if x.device.type == "cuda":
        return lambda: torch.cuda.synchronize(x.device)
    return lambda: None


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for the block; every module's own training flag is restored afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def latency_lock_wait() -> float:
    """Seconds this process has waited, in total, for the latency lock (the lock file that
    keeps parallel workers from timing at once); a per-trial timeline takes differences.

    Example:
        >>> latency_lock_wait() >= 0.0
        True
    """
    return _LOCK_WAIT[0]


@contextlib.contextmanager
def _timing_lock() -> Iterator[None]:
    """Exclusive across threads of this process and (with fcntl) across processes."""
    try:
        import fcntl
    except ImportError:  # not POSIX: only the threads of this process are serialised
        fcntl = None  # type: ignore[assignment]
    waited = time.perf_counter()
    with _THREAD_LOCK, open(LATENCY_LOCK_PATH, "a+b") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        _LOCK_WAIT[0] += time.perf_counter() - waited
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def _attention_fastpath_off() -> Iterator[None]:
    """Route nn.MultiheadAttention/TransformerEncoderLayer through their visible ops."""
    import torch

    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)


# --- FLOPs and memory in one forward pass -------------------------------------------------

def _analyse(model: nn.Module, size: tuple[int, int, int], *, flops: bool,
             memory: bool) -> tuple[int, int]:
    """(MACs, peak activation bytes) of one batch-1 forward pass; 0 for what is not asked."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = _example_input(model, size, 1)
    counter = FlopCounterMode(display=False, custom_mapping=_extra_flop_formulas())
    tracker = _live_bytes_mode()(excluded=(*model.parameters(), *model.buffers()),
                                 included=(x,))
    with contextlib.ExitStack() as stack:
        stack.enter_context(_eval_mode(model))
        stack.enter_context(_attention_fastpath_off())
        stack.enter_context(torch.inference_mode())
        if memory:
            stack.enter_context(tracker)
        if flops:
            stack.enter_context(counter)
        model(x)
    macs = counter.get_total_flops() // 2 if flops else 0
    peak = tracker.peak if memory else 0
    return int(macs), int(peak)


def _extra_flop_formulas() -> dict[Any, Callable[..., int]]:
    """FLOP formulas (2 per MAC) for attention kernels FlopCounterMode has no rule for."""
    import torch

    aten = torch.ops.aten
    return {getattr(aten, name): _sdpa_flops
            for name in ("_scaled_dot_product_flash_attention_for_cpu",
                         "_scaled_dot_product_fused_attention_overrideable")
            if hasattr(aten, name)}


def _sdpa_flops(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any,
                out_shape: Any = None, **kwargs: Any) -> int:
    """``Q·Kᵀ`` and ``attn·V`` of ``(..., L, E)`` queries against ``(..., S, E)`` keys."""
    *batch, length, dim = query_shape
    source = key_shape[-2]
    value_dim = value_shape[-1]
    batches = math.prod(batch)
    return 2 * batches * length * source * (dim + value_dim)


@functools.cache
def _live_bytes_mode() -> type:
    """The dispatch mode class behind activation memory (defined once, on first use)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class LiveBytes(TorchDispatchMode):
        """``peak``: the most bytes of storages created in the block that were alive at once.

        Storages of ``excluded`` tensors (parameters, buffers) are never counted; ``included``
        tensors (the input) are counted from the start.
        """

        def __init__(self, excluded: Iterable[torch.Tensor],
                     included: Iterable[torch.Tensor]) -> None:
            super().__init__()
            self._excluded = {t.untyped_storage()._cdata for t in excluded}
            self._live: dict[int, int] = {}
            self.current = 0
            self.peak = 0
            for tensor in included:
                self._track(tensor)

        def _track(self, tensor: torch.Tensor) -> None:
            storage = tensor.untyped_storage()
            key = storage._cdata
            if key in self._live or key in self._excluded:
                return
            size = storage.nbytes()
            self._live[key] = size
            self.current += size
            self.peak = max(self.peak, self.current)
            weakref.finalize(storage, self._release, key)

        def _release(self, key: int) -> None:
            self.current -= self._live.pop(key, 0)

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                               kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            for value in tree_flatten(out)[0]:
                if isinstance(value, torch.Tensor) and value.layout == torch.strided:
                    self._track(value)
            return out

    return LiveBytes


def _thop_macs(model: nn.Module, size: tuple[int, int, int]) -> int:
    """thop's count on a copy (thop leaves buffers behind on modules it has no rule for)."""
    import copy

    import torch

    with warnings.catch_warnings():  # thop 0.1.1 uses distutils' deprecated LooseVersion
        warnings.simplefilter("ignore", DeprecationWarning)
        import thop

        clone = copy.deepcopy(model)
        x = _example_input(clone, size, 1)
        with _eval_mode(clone), torch.inference_mode():
            macs, _ = thop.profile(clone, inputs=(x,), verbose=False)
    return int(round(float(macs)))
