"""The cost package's public names, and the examples in its docstrings."""

from __future__ import annotations

import doctest
import importlib

import pytest

import langchain_runtime.cost as cost

MODULES = ["tokens", "catalog", "pricing", "tracking", "budget", "handler", "wrap"]


def test_all_is_honest() -> None:
    required = {
        "TokenEstimator",
        "ModelCatalog",
        "ModelInfo",
        "CostCalculator",
        "UsageTracker",
        "BudgetEnforcer",
        "BudgetCallbackHandler",
        "with_budget",
    }
    assert required <= set(cost.__all__)
    assert sorted(cost.__all__) == cost.__all__
    for name in cost.__all__:
        assert getattr(cost, name) is not None, name


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module: str) -> None:
    mod = importlib.import_module(f"langchain_runtime.cost.{module}")
    result = doctest.testmod(
        mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0
    assert result.attempted > 0


@pytest.mark.parametrize("module", MODULES)
def test_modules_stay_small(module: str) -> None:
    mod = importlib.import_module(f"langchain_runtime.cost.{module}")
    assert mod.__file__ is not None
    with open(mod.__file__, encoding="utf-8") as f:
        assert len(f.readlines()) < 500
