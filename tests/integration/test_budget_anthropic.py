"""ChatAnthropic's 64,000-token default is clamped, not refused (respx-mocked API).

Needs ``anthropic<1`` (the 1.x and 2.x SDKs send through httpx2, which respx does
not see).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import httpx
import pytest
import respx
from langchain.agents import create_agent
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool

from langchain_runtime import BudgetMiddleware
from langchain_runtime.agents.middleware import BUDGET_FINISH_REASON
from langchain_runtime.cost import (
    BudgetCallbackHandler,
    CostCalculator,
    TokenEstimator,
    with_budget,
)
from langchain_runtime.domain import Budget, Usage
from langchain_runtime.errors import BudgetExceededError

URL = "https://api.anthropic.com/v1/messages"
MODEL = "claude-sonnet-4-5"
EST = TokenEstimator()
CALC = CostCalculator()
D = Decimal


class FakeAnthropic:
    """Answers as long as it is allowed (``max_tokens``); reports the input as counted."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.billed = Decimal(0)

    def answer(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        messages = [
            m["content"] if isinstance(m["content"], str) else json.dumps(m["content"])
            for m in body["messages"]
        ]
        prompt = EST.count_messages([HumanMessage(m) for m in messages], MODEL)
        output = body["max_tokens"]
        self.billed += CALC.cost(MODEL, Usage(input_tokens=prompt, output_tokens=output)).amount
        has_result = any(
            isinstance(m["content"], list)
            and any(block.get("type") == "tool_result" for block in m["content"])
            for m in body["messages"]
        )
        if body.get("tools") and not has_result:
            content: list[dict[str, Any]] = [
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"city": "Paris"}}
            ]
            stop = "tool_use"
        else:
            content, stop = [{"type": "text", "text": "It is 20C."}], "end_turn"
        return httpx.Response(
            200,
            json={
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": content,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": {"input_tokens": prompt, "output_tokens": output},
            },
        )


@pytest.fixture
def api() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic()
    with respx.mock(assert_all_called=False) as router:
        router.post(URL).mock(side_effect=fake.answer)
        yield fake


def claude() -> ChatAnthropic:
    return ChatAnthropic(model=MODEL, api_key="sk-ant-test", max_retries=0, timeout=5)  # type: ignore[call-arg]


def affordable(left: Decimal, held_input: int) -> int:
    tokens = (left * 1_000_000 - held_input * 3) / 15
    return int(tokens.to_integral_value(rounding=ROUND_FLOOR))


def test_the_default_limit_is_64000_and_would_not_fit_half_a_dollar() -> None:
    assert claude().max_tokens == 64_000  # ~$0.96 of output at $15 per 1M


def test_with_budget_answers_clamped_instead_of_refusing(api: FakeAnthropic) -> None:
    budgeted = with_budget(claude(), max_cost="0.50")
    answer = budgeted.invoke("What is the weather in Paris?")
    assert answer.content == "It is 20C."
    held = EST.reservation_tokens(
        EST.count_messages([HumanMessage("What is the weather in Paris?")], MODEL), MODEL
    )
    sent = api.bodies[0]["max_tokens"]
    assert sent == affordable(D("0.50"), held) < 64_000  # what reached the HTTP request
    assert budgeted.spent.amount == api.billed <= D("0.50")


def test_a_callback_alone_still_refuses_and_says_what_to_do(api: FakeAnthropic) -> None:
    # without the wrapper nothing can change the request: the 64,000 tokens the
    # model declares are reserved, and the refusal says how to fix it
    handler = BudgetCallbackHandler(Budget(max_cost=D("0.50")))
    with pytest.raises(BudgetExceededError, match="up to 64000 output") as err:
        claude().invoke("What is the weather in Paris?", config={"callbacks": [handler]})
    assert api.bodies == []
    assert err.value.limit == D("0.50")


@tool
def lookup(city: str) -> str:
    """Current temperature in a city."""
    return f"{city}: 20C"


def test_an_agent_with_the_middleware_ends_gracefully(api: FakeAnthropic) -> None:
    budget = BudgetMiddleware(max_cost="0.50", exit_behavior="end")
    agent = create_agent(claude(), tools=[lookup], middleware=[budget])
    result = agent.invoke({"messages": [HumanMessage("Weather in Paris?")]})
    # this provider answers as long as allowed: the first (clamped) call takes the
    # money, the tool runs, and the next call is not sent
    assert len(api.bodies) == 1 and api.bodies[0]["max_tokens"] < 64_000
    assert [m.type for m in result["messages"]] == ["human", "ai", "tool", "ai"]
    last = result["messages"][-1]
    assert isinstance(last, AIMessage)
    assert last.response_metadata["finish_reason"] == BUDGET_FINISH_REASON
    assert last.content.startswith("The budget ran out: $")
    assert "of $0.50 spent" in last.content
    assert budget.spent.amount == api.billed <= D("0.50")
