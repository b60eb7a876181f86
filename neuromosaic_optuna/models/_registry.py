"""Registry of architecture builders, looked up by a study's ``architecture_type``.

A builder is a plain function ``builder(params, ctx) -> BuiltModel``; register it with
:func:`register_model`. A builder that cannot build a parameter combination raises
:class:`ArchitectureError` with the reason; the objective stores that reason on the trial
and never trains. Tabular backends (results looked up instead of trained) register a
:class:`TabularBenchmark` with :func:`register_tabular`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from neuromosaic_optuna.exceptions import ArchitectureError

if TYPE_CHECKING:  # torch is imported lazily so the CLI answers --help fast
    from torch import nn

__all__ = [
    "ArchitectureError",
    "BuildContext",
    "BuiltModel",
    "ModelBuilder",
    "TabularBenchmark",
    "get_builder",
    "get_tabular",
    "is_tabular",
    "list_models",
    "register_model",
    "register_tabular",
]


@dataclass(frozen=True)
class BuildContext:
    """What a builder needs besides the trial's params.

    Attributes:
        num_classes: Output classes of the dataset.
        resolution: Input height and width in pixels (already capped by the budget).
        in_channels: Input channels (3 for every dataset we load).
        options: Study-level builder options, e.g. ``{"head_dim": 16}``.
    """

    num_classes: int
    resolution: int
    in_channels: int = 3
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class BuiltModel:
    """A freshly initialised model and a JSON-able summary of its architecture."""

    model: nn.Module
    input_size: tuple[int, int, int]
    summary: dict[str, Any]


class ModelBuilder(Protocol):
    def __call__(self, params: Mapping[str, Any], ctx: BuildContext) -> BuiltModel: ...


class TabularBenchmark(Protocol):
    """A backend that evaluates an architecture by table lookup instead of training."""

    #: The search space in study-file form, used when a study gives none.
    default_search_space: Mapping[str, Any]

    def evaluate(self, params: Mapping[str, Any], *, dataset: str, seed: int) -> dict[str, float]:
        """Return measured metrics (accuracy as a fraction, params, flops, latency, ...)."""
        ...


_BUILDERS: dict[str, ModelBuilder] = {}
_TABULAR: dict[str, Callable[[], TabularBenchmark]] = {}


def register_model(name: str, *, overwrite: bool = False) -> Callable[[ModelBuilder], ModelBuilder]:
    """Register ``builder`` under ``name`` (a study's ``architecture_type``).

    Example:
        >>> from torch import nn
        >>> @register_model("tiny_mlp", overwrite=True)
        ... def tiny_mlp(params, ctx):
        ...     r = ctx.resolution
        ...     model = nn.Sequential(nn.Flatten(), nn.Linear(3 * r * r, ctx.num_classes))
        ...     return BuiltModel(model, (3, r, r), {"layers": 1})
        >>> "tiny_mlp" in list_models()
        True
    """

    def decorate(builder: ModelBuilder) -> ModelBuilder:
        if (name in _BUILDERS or name in _TABULAR) and not overwrite:
            warnings.warn(f"architecture_type {name!r} is registered twice; the new builder "
                          "replaces the old one", stacklevel=2)
        _BUILDERS[name] = builder
        return builder

    return decorate


def register_tabular(name: str, factory: Callable[[], TabularBenchmark]) -> None:
    """Register a tabular backend; ``factory`` is called once, lazily, on first use."""
    _TABULAR[name] = factory


_TABULAR_CACHE: dict[str, TabularBenchmark] = {}


def get_builder(name: str) -> ModelBuilder:
    """Return the builder registered for ``name``.

    Raises:
        KeyError: Unknown name; the message lists the registered ones.
    """
    _load_builtin()
    if name not in _BUILDERS:
        raise KeyError(f"unknown architecture_type {name!r}; registered: "
                       f"{', '.join(list_models())}")
    return _BUILDERS[name]


def is_tabular(name: str) -> bool:
    """True when ``name`` is a tabular backend rather than a trainable builder."""
    _load_builtin()
    return name in _TABULAR


def get_tabular(name: str) -> TabularBenchmark:
    """Return the (cached) tabular backend registered for ``name``."""
    _load_builtin()
    if name not in _TABULAR_CACHE:
        _TABULAR_CACHE[name] = _TABULAR[name]()
    return _TABULAR_CACHE[name]


def list_models() -> list[str]:
    """Names of all registered builders and tabular backends, sorted."""
    _load_builtin()
    return sorted(set(_BUILDERS) | set(_TABULAR))


_BUILTIN_LOADED = False


def _load_builtin() -> None:
    """Import the built-in builders on first use (they import torch)."""
    global _BUILTIN_LOADED
    if _BUILTIN_LOADED:
        return
    _BUILTIN_LOADED = True
    import importlib

    for module in ("convnet", "vit", "nasbench201"):
        try:
            importlib.import_module(f"neuromosaic_optuna.models.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"neuromosaic_optuna.models.{module}":
                raise
