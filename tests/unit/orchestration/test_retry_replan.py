"""A retried task plans its output limit again from what the budget has left then.

Reviewer's t14: task ``a`` fails with a 500 while ``b`` is in flight; ``b`` then
spends, and ``a``'s retry must not reuse the limit planned before its first attempt.
Real ChatOpenAI clients against a respx-mocked API.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import httpx
import respx
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from langchain_runtime import Budget, Orchestrator, RunPolicy, RunState, Task, TaskState

URL = "https://api.openai.com/v1/chat/completions"
BUDGET = Decimal("0.001")
IN, OUT = Decimal("0.15") / 1_000_000, Decimal("0.60") / 1_000_000  # gpt-4o-mini


def chat() -> ChatOpenAI:
    return ChatOpenAI(model="gpt-4o-mini", api_key="sk-test", max_retries=0, timeout=5)  # type: ignore[arg-type]


def reply(body: dict[str, Any], prompt_tokens: int, completion_tokens: int) -> httpx.Response:
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    message = {"role": "assistant", "content": "hello " * completion_tokens}
    return httpx.Response(
        200,
        json={
            "id": "c1",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": usage,
        },
    )


class Api:
    """A fails once with a 500; B answers after A's failure, as long as it may."""

    def __init__(self, b_prompt_tokens: int | None = None) -> None:
        self.limits: list[tuple[str, int | None]] = []
        self.billed = Decimal(0)
        self.a_failures = 1
        self.b_prompt_tokens = b_prompt_tokens

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        text = body["messages"][-1]["content"]
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        self.limits.append((text, limit))
        if text == "A" and self.a_failures:
            self.a_failures -= 1
            return httpx.Response(500, json={"error": {"message": "boom", "type": "server_error"}})
        if text == "B":
            await asyncio.sleep(0.1)
        out = int(limit) if limit is not None else 8000
        prompt = 8
        if text == "B" and self.b_prompt_tokens is not None:
            prompt = self.b_prompt_tokens
        self.billed += prompt * IN + out * OUT
        return reply(body, prompt, out)


def run(api: Api) -> Any:
    def prompt(text: str) -> ChatPromptTemplate:
        return ChatPromptTemplate.from_messages([("user", text)])

    tasks = [
        Task("a", prompt=prompt("A"), model=chat(), max_retries=2),
        Task("b", prompt=prompt("B"), model=chat()),
    ]
    policy = RunPolicy(
        max_parallelism=2,
        retry_backoff=0.3,
        budget=Budget(max_cost=BUDGET, expected_output_tokens=1000),
    )
    with respx.mock() as mock:
        mock.post(URL).mock(side_effect=api)
        return Orchestrator(tasks, policy=policy).invoke({})


def test_retry_is_clamped_to_what_is_left_after_others_spent() -> None:
    api = Api()
    result = run(api)
    a_limits = [limit for text, limit in api.limits if text == "A"]
    assert a_limits[0] == 1000
    assert len(a_limits) == 2
    # The retry asked for less than the first attempt: b's spending came off it.
    assert a_limits[1] is not None and a_limits[1] < 1000
    assert result.state is RunState.COMPLETED
    assert result.tasks["a"].state is TaskState.COMPLETED
    assert result.tasks["a"].attempts == 2
    assert api.billed <= BUDGET
    assert result.cost.amount <= BUDGET


def test_retry_that_cannot_fit_is_refused_before_it_is_sent() -> None:
    # b's bill leaves less than a's prompt costs: the retry must not go out.
    b_out = 662  # what b is clamped to while a's first attempt holds 1000 tokens
    api = Api(b_prompt_tokens=int((BUDGET - Decimal("0.0000015") - b_out * OUT) / IN))
    result = run(api)
    b_limit = next(limit for text, limit in api.limits if text == "B")
    assert b_limit == b_out
    assert [text for text, _ in api.limits].count("A") == 1
    a = result.tasks["a"]
    assert a.state is TaskState.FAILED
    assert a.error is not None and a.error.type == "BudgetExceededError"
    assert "'a'" in a.error.message
    assert api.billed <= BUDGET
