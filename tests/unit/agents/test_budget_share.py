"""A refusal while money is only held says so; max_output_tokens caps one call's hold.

Reviewer's #6 (t2/t3): 12 parallel calls, 11 refused with "the budget ran out ...
not even a minimal answer fits" while $0.00018 of $0.002 was spent -- the rest was
held by the first calls in flight. Real ChatOpenAI and create_agent against respx.
"""

from __future__ import annotations

from decimal import Decimal

import respx
from langchain.agents import create_agent
from langchain_core.messages import AIMessage

from langchain_runtime import BudgetMiddleware
from langchain_runtime.agents.middleware import BUDGET_FINISH_REASON
from langchain_runtime.cost import with_budget
from tests.unit.agents.openai_api import MODEL, URL, FakeOpenAI, chat_openai


def test_refusal_while_calls_hold_the_money_says_so() -> None:
    middleware = BudgetMiddleware(max_cost="0.002")
    # Another run's call in flight holds nearly all of it (nothing is spent yet).
    middleware.enforcer.reserve("other-run", MODEL, 100, 3308)
    agent = create_agent(chat_openai(), middleware=[middleware])
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(URL).mock(side_effect=FakeOpenAI().answer)
        result = agent.invoke({"messages": [("user", "hi")]})
    assert route.call_count == 0
    final = result["messages"][-1]
    assert isinstance(final, AIMessage)
    assert final.response_metadata["finish_reason"] == BUDGET_FINISH_REASON
    text = str(final.content)
    assert "held by 1 call in flight" in text
    assert "$0.000000 of $0.002 spent" in text
    assert "ran out" not in text


def test_with_budget_max_output_tokens_caps_the_clamp() -> None:
    api = FakeOpenAI()
    budgeted = with_budget(chat_openai(), max_cost="0.01", max_output_tokens=100)
    with respx.mock() as mock:
        mock.post(URL).mock(side_effect=api.answer)
        budgeted.invoke("hi")
    assert [b.limit for b in api.bills] == [100]
    assert budgeted.spent.amount == api.billed


def test_middleware_max_output_tokens_caps_the_clamp() -> None:
    api = FakeOpenAI()
    middleware = BudgetMiddleware(max_cost="0.01", max_output_tokens=100)
    agent = create_agent(chat_openai(), middleware=[middleware])
    with respx.mock() as mock:
        mock.post(URL).mock(side_effect=api.answer)
        agent.invoke({"messages": [("user", "hi")]})
    assert [b.limit for b in api.bills] == [100]
    assert middleware.spent.amount == api.billed
    assert middleware.spent.amount <= Decimal("0.01")
