"""Building the Optuna classes a study file names: samplers (``search_strategy``,
``[sampler]``) and pruners (``[pruner]``), ours or Optuna's, with keyword arguments checked
against the constructor so that every mistake is a one-line :class:`ConfigError`."""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from types import ModuleType
from typing import Any, TypeVar, cast

from neuromosaic_optuna.exceptions import ConfigError

T = TypeVar("T")


def named_class(name: Any, *, own: Mapping[str, type[T]], module: ModuleType,
                base: type[Any], path: str, kind: str) -> type[T]:
    """``own[name]``, else the subclass of ``base`` called ``name`` in Optuna's ``module``."""
    if isinstance(name, str) and name in own:
        return own[name]
    cls = getattr(module, name, None) if isinstance(name, str) else None
    if not (inspect.isclass(cls) and issubclass(cls, base)) or cls is base:
        suffix = base.__name__.removeprefix("Base")
        optuna_names = sorted(n for n in dir(module)
                              if n.endswith(suffix) and n != base.__name__)
        raise ConfigError(path, f"unknown {kind} {name!r}; choose one of: "
                          f"{', '.join([*own, *optuna_names])}")
    return cast("type[T]", cls)


def instantiate(cls: type[T], kwargs: Mapping[str, Any], path: str, *,
                defaults: Mapping[str, Any] | None = None, field_errors: bool = False) -> T:
    """``cls(**kwargs)`` with each key checked against the constructor; ``defaults`` fill
    accepted arguments that ``kwargs`` lacks (e.g. the study's seed). With ``field_errors``,
    a constructor error that starts with an argument's name (``"window: must be >= 1"``, the
    convention of our classes) names that field's path."""
    accepted = [k for k in inspect.signature(cls.__init__).parameters if k != "self"]
    for key in kwargs:
        if key not in accepted:
            raise ConfigError(f"{path}.{key}", f"{cls.__name__} takes no argument {key!r}; it "
                              f"takes {', '.join(accepted) or 'none'}")
    check_argument_types(cls, kwargs, path)
    kwargs = {**{k: v for k, v in (defaults or {}).items() if k in accepted}, **kwargs}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        text = str(exc)
        arg = text.split(":", 1)[0].split(".", 1)[0]
        if field_errors and arg in accepted and ":" in text:
            raise ConfigError(f"{path}.{text.split(':', 1)[0]}",
                              text.split(":", 1)[1].strip()) from None
        raise ConfigError(path, f"{cls.__name__} rejected its arguments: {text}") from None


def check_argument_types(cls: Any, kwargs: Mapping[str, Any], path: str) -> None:
    """Check keyword arguments for a class (a sampler, a pruner) against the types of its
    constructor's defaults, so a value such as ``n_startup_trials = "many"`` is refused when
    the study file is loaded, not when a later trial first uses it. Arguments whose default is
    ``None`` or not a plain number/bool/str are left to the class.

    Raises:
        ConfigError: ``<path>.<argument>: expected an integer, got 'many'``.

    Example:
        >>> import optuna
        >>> check_argument_types(optuna.samplers.TPESampler, {"n_startup_trials": "many"},
        ...                      "sampler")
        Traceback (most recent call last):
        ...
        neuromosaic_optuna.exceptions.ConfigError: sampler.n_startup_trials: expected an integer, got 'many'
    """  # noqa: E501
    import inspect

    try:
        params = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return
    for key, value in kwargs.items():
        param = params.get(key)
        if param is None:
            continue
        default = param.default
        where = f"{path}.{key}"
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(where, f"expected true or false, got {value!r}")
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(where, f"expected an integer, got {value!r}")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(where, f"expected a number, got {value!r}")
            if not math.isfinite(value):
                raise ConfigError(where, f"expected a finite number, got {value!r}")
        elif isinstance(default, str) and not isinstance(value, str):
            raise ConfigError(where, f"expected a string, got {value!r}")
