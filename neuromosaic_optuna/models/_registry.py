"""Registry of architecture builders, looked up by a study's ``architecture_type``.

A builder is a plain function ``builder(params, ctx) -> BuiltModel``; register it with
:func:`register_model`. A builder that cannot build a parameter combination raises
:class:`ArchitectureError` with the reason; the objective stores that reason on the trial
and never trains. Tabular backends (results looked up instead of trained) register a
:class:`TabularBenchmark` with :func:`register_tabular`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
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
    "MAX_BLOCKS",
    "MAX_PARAMS_HARD_LIMIT",
    "TabularBenchmark",
    "builder_schema",
    "count_params_meta",
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
_SCHEMAS: dict[str, tuple[frozenset[str], frozenset[str]]] = {}

#: Largest model (parameters) any builder may make: sized on the ``meta`` device before any
#: memory is allocated, so a typo such as ``c999999`` fails at once instead of building for
#: minutes. 2G parameters are 8 GB of float32 weights.
MAX_PARAMS_HARD_LIMIT = 2_000_000_000

#: Most blocks or layers a builder may stack (checked from the params, before building).
MAX_BLOCKS = 1000


def register_model(name: str, *, overwrite: bool = False, params: Sequence[str] | None = None,
                   options: Sequence[str] | None = None
                   ) -> Callable[[ModelBuilder], ModelBuilder]:
    """Register ``builder`` under ``name`` (a study's ``architecture_type``).

    ``params`` (the trial params it reads) and ``options`` (the ``model_options`` keys it
    reads), when given, let a study be checked before its first trial: an unknown
    search-space parameter, ``known_good`` key or ``model_options`` key is then an error.

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
        if params is not None and options is not None:
            _SCHEMAS[name] = (frozenset(params), frozenset(options))
        else:
            _SCHEMAS.pop(name, None)
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


def builder_schema(name: str) -> tuple[frozenset[str], frozenset[str]] | None:
    """``(params, options)`` a registered builder reads, or None when it did not say.

    Example:
        >>> params, options = builder_schema("conv_net")
        >>> "width_multiplier" in params, "convnet_stages" in options
        (True, True)
    """
    _load_builtin()
    return _SCHEMAS.get(name)


def count_params_meta(builder: ModelBuilder, params: Mapping[str, Any],
                      ctx: BuildContext) -> int:
    """Build ``params`` on the ``meta`` device (no memory allocated) and count parameters.

    Raises:
        ArchitectureError: The builder refuses the params, or the model has more than
            :data:`MAX_PARAMS_HARD_LIMIT` parameters.

    Example:
        >>> from neuromosaic_optuna.models import get_builder
        >>> count_params_meta(get_builder("conv_net"), {"width_multiplier": 0.25},
        ...                   BuildContext(num_classes=10, resolution=32)) > 0
        True
    """
    import torch

    with torch.device("meta"):
        built = builder(params, ctx)
    count = sum(p.numel() for p in built.model.parameters())
    if count > MAX_PARAMS_HARD_LIMIT:
        raise ArchitectureError(f"{count:.3g} parameters, above the hard limit of "
                                f"{MAX_PARAMS_HARD_LIMIT:.3g}")
    return count


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

    for module in ("convnet", "vit", "nasbench201", "nasbench201_net"):
        try:
            importlib.import_module(f"neuromosaic_optuna.models.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"neuromosaic_optuna.models.{module}":
                raise
