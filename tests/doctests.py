"""Run the docstring examples of a module, or of a package and every module inside it.

A package's private modules run with the package's public names in scope, so their
examples read as a user writes them (``from neuromosaic_optuna.pruners import ...``).
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType


def run_doctests(module: ModuleType, **kwargs: object) -> doctest.TestResults:
    """``doctest.testmod`` over ``module`` and, for a package, all its submodules."""
    modules = [module]
    if hasattr(module, "__path__"):
        modules += [importlib.import_module(info.name) for info in
                    pkgutil.walk_packages(module.__path__, module.__name__ + ".")]
    public = {name: getattr(module, name) for name in getattr(module, "__all__", ())}
    failed = attempted = 0
    for mod in modules:
        result = doctest.testmod(mod, extraglobs=public, **kwargs)  # type: ignore[arg-type]
        failed += result.failed
        attempted += result.attempted
    return doctest.TestResults(failed, attempted)
