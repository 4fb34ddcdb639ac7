"""Property: 20 agent runs in parallel under one budget never get billed past it.

The provider (a respx-mocked OpenAI API behind real ChatOpenAI clients) always
answers as long as it is allowed: exactly ``max_completion_tokens`` output tokens,
or 8,000 when a request sends no limit. In every trial, whatever the interleaving
of threads or tasks:

* what the provider billed never exceeds the budget;
* the spend the budget reports equals what the provider billed, call for call;
* every run ends with an answer, with the budget's final message (middleware), or
  with ``BudgetExceededError`` (``with_budget``), and nothing stays reserved.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import respx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool

from langchain_runtime import BudgetMiddleware, with_budget
from langchain_runtime.agents.middleware import BUDGET_FINISH_REASON
from langchain_runtime.errors import BudgetExceededError
from tests.unit.agents.openai_api import NO_LIMIT, URL, FakeOpenAI, chat_openai

RUNS = 20
QUESTION = {"messages": [HumanMessage("Weather in Paris?")]}
# From less than one full answer to enough for a few whole runs.
BUDGETS = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("0.08"), places=5)
TRIALS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@tool
def lookup(city: str) -> str:
    """Current temperature in a city."""
    return f"{city}: 20C"


def run_all(runnable: Any, runner: str) -> list[Any]:
    if runner == "threads":
        return list(
            runnable.batch([QUESTION] * RUNS, {"max_concurrency": RUNS}, return_exceptions=True)
        )

    async def together() -> list[Any]:
        return await asyncio.gather(
            *(runnable.ainvoke(QUESTION) for _ in range(RUNS)), return_exceptions=True
        )

    return asyncio.run(together())


def outcome(result: Any) -> str:
    if isinstance(result, BudgetExceededError):
        return "refused"
    assert not isinstance(result, BaseException), repr(result)
    last = result["messages"][-1]
    assert isinstance(last, AIMessage)
    if last.response_metadata.get("finish_reason") == BUDGET_FINISH_REASON:
        return "ended"
    assert last.content == "It is 20C."
    return "answered"


@TRIALS
@given(budget=BUDGETS, runner=st.sampled_from(["threads", "async"]))
def test_parallel_agents_under_one_middleware(budget: Decimal, runner: str) -> None:
    api = FakeOpenAI()
    middleware = BudgetMiddleware(max_cost=budget)
    agent = create_agent(chat_openai(), tools=[lookup], middleware=[middleware])
    with respx.mock(assert_all_called=False) as router:
        router.post(URL).mock(side_effect=api.answer)
        results = run_all(agent, runner)
    outcomes = [outcome(r) for r in results]
    assert "refused" not in outcomes  # exit_behavior="end": no run raises
    assert api.billed <= budget
    assert middleware.spent.amount == api.billed
    assert middleware.usage == api.billed_usage
    assert middleware.enforcer.reserved_tokens == 0
    # every request carried a limit: none was answered at the 8,000-token default
    assert all(bill.limit is not None for bill in api.bills)
    assert outcomes.count("ended") >= 1 or budget > Decimal("0.05")


@TRIALS
@given(budget=BUDGETS, runner=st.sampled_from(["threads", "async"]))
def test_parallel_agents_under_one_with_budget(budget: Decimal, runner: str) -> None:
    api = FakeOpenAI()
    # no middleware: requests go out without a limit and are answered at 8,000
    # tokens; each reserves the model's 16,384-token maximum output instead
    wrapped = with_budget(create_agent(chat_openai(), tools=[lookup]), max_cost=budget)
    with respx.mock(assert_all_called=False) as router:
        router.post(URL).mock(side_effect=api.answer)
        results = run_all(wrapped, runner)
    outcomes = [outcome(r) for r in results]
    assert "ended" not in outcomes
    assert api.billed <= budget
    assert wrapped.spent.amount == api.billed
    assert wrapped.usage == api.billed_usage
    assert wrapped.handler.reserved.amount == 0
    assert all(bill.usage.output_tokens == NO_LIMIT for bill in api.bills)
