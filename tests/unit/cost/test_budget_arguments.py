"""Typos and bad values in the budget entry points are ConfigurationErrors naming them.

Reviewer's #9 and #10: ``with_budget(m, max_cst=1)`` was a TypeError (or, through
``**kwargs``, no limit at all) and ``max_cost="fifty cents"`` a bare
``decimal.InvalidOperation``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from langchain_core.language_models import FakeListChatModel

from langchain_runtime import BudgetMiddleware, ConfigurationError
from langchain_runtime.cost import BudgetCallbackHandler, with_budget
from langchain_runtime.domain import Budget


def model() -> FakeListChatModel:
    return FakeListChatModel(responses=["ok"])


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: with_budget(model(), max_cst=1),
            "with_budget: max_cst: unknown field; did you mean 'max_cost'?",
        ),
        (
            lambda: BudgetMiddleware(max_cost=1, exit_behaviour="end"),
            "BudgetMiddleware: exit_behaviour: unknown field; did you mean 'exit_behavior'?",
        ),
        (
            lambda: BudgetMiddleware(max_cst=1),
            "BudgetMiddleware: max_cst: unknown field; did you mean 'max_cost'?",
        ),
        (
            lambda: BudgetCallbackHandler(budgt=Budget(max_cost=1)),
            "BudgetCallbackHandler: budgt: unknown field; did you mean 'budget'?",
        ),
    ],
)
def test_typos_suggest_the_argument(build: Any, message: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        build()
    assert isinstance(err.value, ValueError)
    assert message in str(err.value)


@pytest.mark.parametrize("value", ["fifty cents", True, -1, "nan"])
@pytest.mark.parametrize("entry", ["with_budget", "BudgetMiddleware"])
def test_bad_max_cost_names_the_argument_and_value(entry: str, value: object) -> None:
    build: Any = (
        (lambda: with_budget(model(), max_cost=value))
        if entry == "with_budget"
        else (lambda: BudgetMiddleware(max_cost=value))
    )
    with pytest.raises(ConfigurationError) as err:
        build()
    assert f"{entry}: max_cost=" in str(err.value)
    assert repr(value) in str(err.value) or repr(str(value)) in str(err.value)


def test_good_values_still_build() -> None:
    assert with_budget(model(), max_cost=0.1).budget.max_cost == Decimal("0.1")
    assert with_budget(model(), max_cost="0.5", max_tokens=10).budget.max_tokens == 10
    assert BudgetMiddleware(max_cost=1, exit_behavior="error").budget.max_cost == Decimal(1)
