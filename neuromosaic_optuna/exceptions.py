"""Every exception and warning of the package, in one module (as :mod:`optuna.exceptions`).

The modules that raise them re-export them, so ``neuromosaic_optuna.config.ConfigError`` and
``neuromosaic_optuna.exceptions.ConfigError`` are the same class. This module imports nothing
from the package and sits below every other module.

* :class:`ConfigError`: bad input (study file, CLI flag, storage URL, dataset path). Its
  ``str()`` is one line, ``field.path: what to do``; the CLI turns it into exit code 2.
* :class:`StorageError`: a :class:`ConfigError` about ``--storage`` (passwords masked).
* :class:`ArchitectureError`: params that describe an architecture that cannot be built.
* :class:`DivergedError`: training produced a NaN or infinite loss.
* :class:`PrematureConvergenceWarning`: a genetic search's population has collapsed.
"""

from __future__ import annotations

__all__ = [
    "ArchitectureError",
    "ConfigError",
    "DivergedError",
    "PrematureConvergenceWarning",
    "StorageError",
]


class ConfigError(ValueError):
    """A study file or dict is invalid. ``str(err)`` is one line: ``field.path: what to do``.

    Example:
        >>> str(ConfigError("experiment.epochs", "expected a positive integer"))
        'experiment.epochs: expected a positive integer'
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class StorageError(ConfigError):
    """The storage URL cannot be used. ``str(err)`` is one line, ``--storage: <what to do>``,
    with any password masked."""

    def __init__(self, message: str) -> None:
        super().__init__("--storage", message)


class ArchitectureError(ValueError):
    """The parameters describe an architecture that cannot be built; ``str()`` is the reason."""


class DivergedError(RuntimeError):
    """Training produced a NaN or infinite loss; ``str()`` says at which epoch and step."""


class PrematureConvergenceWarning(UserWarning):
    """The population of a genetic search has collapsed onto few architectures."""
