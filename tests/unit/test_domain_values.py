"""Typos name the field they meant; bools, negative money and lower-case currencies."""

from __future__ import annotations

from decimal import Decimal

import pytest
from langchain_core.runnables import RunnableLambda

from langchain_runtime import (
    Budget,
    ConfigurationError,
    ContextPolicy,
    Orchestrator,
    RunPolicy,
    Task,
)
from langchain_runtime.domain import Cost


def echo() -> RunnableLambda[object, object]:
    return RunnableLambda(lambda x: x)


def test_task_keyword_typo_suggests_the_field() -> None:
    with pytest.raises(ConfigurationError) as err:
        Task("a", echo(), max_retry=2)
    assert isinstance(err.value, ValueError)
    assert "Task 'a': max_retry: unknown field; did you mean 'max_retries'?" in str(err.value)


def test_orchestrator_run_setting_typo_points_at_the_policy() -> None:
    with pytest.raises(ConfigurationError) as err:
        Orchestrator([Task("a", echo())], max_paralelism=2)
    assert "max_paralelism" in str(err.value)
    assert "policy=RunPolicy(max_parallelism=...)" in str(err.value)
    # A typo of the Orchestrator's own keyword is still suggested as such.
    with pytest.raises(ConfigurationError, match="did you mean 'policy'"):
        Orchestrator([Task("a", echo())], polcy=RunPolicy())


def test_model_validate_suggests_the_field() -> None:
    with pytest.raises(ConfigurationError, match="max_cst: unknown field; did you mean 'max_cost'"):
        Budget.model_validate({"max_cst": 1})
    with pytest.raises(ConfigurationError, match="did you mean 'strategy'"):
        ContextPolicy.model_validate({"stratgy": "truncate"})
    assert Budget.model_validate({"max_cost": "0.5"}).max_cost == Decimal("0.5")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_tokens": True},
        {"max_cost": True},
        {"expected_output_tokens": False},
        {"max_cost": -1},
        {"max_tokens": -5},
    ],
)
def test_budget_refuses_bools_and_negatives(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        Budget(**kwargs)  # type: ignore[arg-type]


def test_policies_refuse_bools_for_numbers() -> None:
    with pytest.raises(ValueError, match="max_parallelism"):
        RunPolicy(max_parallelism=True)
    with pytest.raises(ValueError, match="keep_last_n"):
        ContextPolicy(keep_last_n=True)


def test_currency_is_normalised_and_money_is_not_negative() -> None:
    assert Budget(currency=" usd ").currency == "USD"
    assert Cost(amount=Decimal(1), currency="eur").currency == "EUR"
    assert Cost(amount=1, currency="usd") + Cost(amount=2, currency="USD") == Cost(amount=3)
    with pytest.raises(ValueError, match="amount"):
        Cost(amount=-1)
    with pytest.raises(ValueError, match="amount"):
        Cost(amount=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="currency"):
        Budget(currency="  ")
