"""Docstring examples of the modules that no other test file runs."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest
from doctests import run_doctests

from neuromosaic_optuna import (
    _factory,
    constraints,
    exceptions,
    insights,
    metrics,
    record,
    space,
    transfer,
    units,
    warmstart,
)


@pytest.mark.parametrize("module", [exceptions, units, record, space, constraints, metrics,
                                    insights, _factory, warmstart, transfer],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module: ModuleType) -> None:
    result = run_doctests(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    if module is not _factory:
        assert result.attempted > 0
