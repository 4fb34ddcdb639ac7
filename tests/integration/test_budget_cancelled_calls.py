"""A call cancelled or timed out after it was sent costs its hold; it is never freed.

Reviewer's t20 and t21: ``asyncio.wait_for`` around ``with_budget(...).ainvoke`` or
an agent with ``BudgetMiddleware``, and an orchestrator task timeout, left the
provider billing requests the budget had released (reported $0). Real ChatOpenAI
against a respx-mocked API that receives the request and answers late.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx
from langchain.agents import create_agent
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from langchain_runtime import Budget, BudgetMiddleware, Orchestrator, RunPolicy, Task
from langchain_runtime.cost import CostCalculator, with_budget
from langchain_runtime.domain import Usage

URL = "https://api.openai.com/v1/chat/completions"
MODEL = "gpt-4o-mini"
LIMIT = Decimal("0.001")


class SlowProvider:
    """Receives the request (and will bill up to its limit), answers after a second."""

    def __init__(self) -> None:
        self.received = asyncio.Event()
        self.limits: list[int] = []
        self.worst_case = Decimal(0)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        limit = int(body.get("max_completion_tokens") or body.get("max_tokens") or 8000)
        self.limits.append(limit)
        usage = Usage(input_tokens=8, output_tokens=limit)
        self.worst_case += CostCalculator().cost(MODEL, usage).amount
        self.received.set()
        await asyncio.sleep(1.0)
        return httpx.Response(500, json={"error": {"message": "too late", "type": "server"}})


def chat() -> ChatOpenAI:
    return ChatOpenAI(model=MODEL, api_key="sk-test", max_retries=0, timeout=5)  # type: ignore[arg-type]


async def cancel_once_sent(api: SlowProvider, call: Any) -> None:
    task = asyncio.ensure_future(call)
    await asyncio.wait_for(api.received.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_with_budget_charges_a_cancelled_call_at_its_hold() -> None:
    api = SlowProvider()
    budgeted = with_budget(chat(), max_cost=LIMIT)
    # respx records a call only once its (late) answer is made: it never is here.
    with respx.mock(assert_all_called=False) as mock:
        mock.post(URL).mock(side_effect=api)
        asyncio.run(cancel_once_sent(api, budgeted.ainvoke("hi")))
    assert len(api.limits) == 1
    assert budgeted.spent.amount >= api.worst_case > 0
    assert budgeted.usage.estimated
    assert budgeted.handler.reserved.amount == 0  # charged, not left holding


def test_middleware_charges_a_cancelled_call_at_its_hold() -> None:
    api = SlowProvider()
    middleware = BudgetMiddleware(max_cost=LIMIT)
    agent = create_agent(chat(), middleware=[middleware])
    # respx records a call only once its (late) answer is made: it never is here.
    with respx.mock(assert_all_called=False) as mock:
        mock.post(URL).mock(side_effect=api)
        asyncio.run(cancel_once_sent(api, agent.ainvoke({"messages": [("user", "hi")]})))
    assert len(api.limits) == 1
    assert middleware.spent.amount >= api.worst_case > 0
    assert middleware.usage.estimated


def test_task_timeout_charges_the_attempt_and_frees_no_stale_hold() -> None:
    api = SlowProvider()
    prompt = ChatPromptTemplate.from_messages([("user", "{q}")])
    task = Task("a", prompt=prompt, model=chat(), timeout=0.3, max_retries=3)
    policy = RunPolicy(retry_backoff=0.01, budget=Budget(max_cost=LIMIT))
    with respx.mock(assert_all_called=False) as mock:
        mock.post(URL).mock(side_effect=api)
        result = Orchestrator([task], policy=policy).invoke({"q": "hi"})
    assert len(api.limits) >= 2
    # Every attempt the provider received is charged at what it could bill ...
    assert result.cost.amount >= api.worst_case
    # ... and the budget is never promised twice: the provider's worst case fits in it.
    assert api.worst_case <= LIMIT
    # The second attempt was planned from what the first one's charge left.
    first = CostCalculator().cost(MODEL, Usage(input_tokens=8, output_tokens=api.limits[0]))
    assert api.limits[1] <= int((LIMIT - first.amount) / (Decimal("0.60") / 1_000_000))
