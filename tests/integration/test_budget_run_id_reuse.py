"""Reusing a run_id in the config never erases earlier spending.

Reviewer's t17: holds and records were keyed by the caller's ``run_id``, so a
second call with the same ``run_id`` replaced the first one's record (and a
concurrent one its hold). Real ChatOpenAI against respx.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal
from typing import Any

import httpx
import respx
from langchain_openai import ChatOpenAI

from langchain_runtime.cost import BudgetCallbackHandler, CostCalculator, with_budget
from langchain_runtime.domain import Budget, Usage
from langchain_runtime.errors import BudgetExceededError

URL = "https://api.openai.com/v1/chat/completions"
MODEL = "gpt-4o-mini"


class Provider:
    """Answers as long as allowed (1000 tokens at most), bills what it answered."""

    def __init__(self) -> None:
        self.billed = Decimal(0)
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        out = min(int(limit), 1000) if limit is not None else 1000
        usage = {"prompt_tokens": 8, "completion_tokens": out, "total_tokens": 8 + out}
        self.billed += CostCalculator().cost(MODEL, Usage(input_tokens=8, output_tokens=out)).amount
        self.calls += 1
        message = {"role": "assistant", "content": "hello " * out}
        return httpx.Response(
            200,
            json={
                "id": f"c{self.calls}",
                "object": "chat.completion",
                "created": 1,
                "model": MODEL,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": usage,
            },
        )


def chat() -> ChatOpenAI:
    return ChatOpenAI(model=MODEL, api_key="sk-test", max_retries=0, timeout=5)  # type: ignore[arg-type]


def calls_with(run: Any, n: int) -> list[Any]:
    out = []
    for _ in range(n):
        try:
            out.append(run())
        except BudgetExceededError as exc:
            out.append(exc)
    return out


def test_with_budget_counts_every_call_with_the_same_run_id() -> None:
    api = Provider()
    rid = uuid.uuid4()
    budgeted = with_budget(chat(), max_cost="0.0015")
    with respx.mock(assert_all_called=False) as mock:
        mock.post(URL).mock(side_effect=api)
        calls_with(lambda: budgeted.invoke("hi", config={"run_id": rid}), 3)
    assert api.calls >= 2
    assert budgeted.spent.amount == api.billed
    assert api.billed <= Decimal("0.0015")


def test_handler_counts_every_call_with_the_same_run_id() -> None:
    api = Provider()
    rid = uuid.uuid4()
    handler = BudgetCallbackHandler(Budget(max_cost="0.0015"))
    llm = chat()
    with respx.mock(assert_all_called=False) as mock:
        mock.post(URL).mock(side_effect=api)
        calls_with(
            lambda: llm.invoke(
                "hi", config={"run_id": rid, "callbacks": [handler]}, max_tokens=1000
            ),
            3,
        )
    assert api.calls == 2  # the third does not fit after two settled calls
    assert handler.spent.amount == api.billed
    assert api.billed <= Decimal("0.0015")


def test_concurrent_calls_with_the_same_run_id_each_hold() -> None:
    api = Provider()
    rid = uuid.uuid4()
    budgeted = with_budget(chat(), max_cost="0.0015")

    async def gather() -> list[Any]:
        calls = (budgeted.ainvoke("hi", config={"run_id": rid}) for _ in range(3))
        return await asyncio.gather(*calls, return_exceptions=True)

    with respx.mock(assert_all_called=False) as mock:
        mock.post(URL).mock(side_effect=api)
        asyncio.run(gather())
    assert budgeted.spent.amount == api.billed
    assert api.billed <= Decimal("0.0015")
