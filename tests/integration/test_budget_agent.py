"""with_budget over a real ``langchain.agents.create_agent`` agent with tools."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.tools import tool

from langchain_runtime.cost import with_budget
from langchain_runtime.domain import Usage
from langchain_runtime.errors import BudgetExceededError

D = Decimal
# Every scripted call reports 1000 input and 500 output tokens: on gpt-4o-mini
# (0.15 / 0.60 per 1M) that is $0.00045 a call.
PER_CALL = D("0.00045")


class ToolCallingFake(FakeMessagesListChatModel):
    """Scripted answers (tool calls, then a final answer); counts the calls it serves."""

    served: int = 0

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ToolCallingFake:  # type: ignore[override]
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self.served += 1
        return super()._generate(messages, *args, **kwargs)


def md() -> Any:
    return {"input_tokens": 1000, "output_tokens": 500, "total_tokens": 1500}


def script() -> list[BaseMessage]:
    return [
        AIMessage(
            "",
            tool_calls=[{"name": "lookup", "args": {"city": "Paris"}, "id": "c1"}],
            usage_metadata=md(),
        ),
        AIMessage(
            "",
            tool_calls=[{"name": "lookup", "args": {"city": "Lyon"}, "id": "c2"}],
            usage_metadata=md(),
        ),
        AIMessage("Paris 18C, Lyon 21C.", usage_metadata=md()),
    ]


def build() -> tuple[Any, ToolCallingFake, list[str]]:
    looked_up: list[str] = []

    @tool
    def lookup(city: str) -> str:
        """Current temperature in a city."""
        looked_up.append(city)
        return f"{city}: 20C"

    model = ToolCallingFake(responses=script())
    return create_agent(model, tools=[lookup]), model, looked_up


QUESTION = {"messages": [("user", "Weather in Paris and Lyon?")]}


def test_the_agent_completes_within_a_sufficient_budget() -> None:
    agent, model, looked_up = build()
    # each call reserves gpt-4o-mini's 16,384-token maximum output (~$0.0098)
    wrapped = with_budget(agent, max_cost=D("0.02"), default_model="gpt-4o-mini")
    result = wrapped.invoke(QUESTION)
    assert result["messages"][-1].content == "Paris 18C, Lyon 21C."
    assert model.served == 3 and looked_up == ["Paris", "Lyon"]
    assert wrapped.usage == Usage(input_tokens=3000, output_tokens=1500)
    assert wrapped.spent.amount == 3 * PER_CALL
    assert wrapped.remaining is not None and wrapped.remaining.amount == D("0.02") - 3 * PER_CALL


@pytest.mark.parametrize("path", ["invoke", "ainvoke", "stream", "astream"])
def test_the_agent_is_stopped_before_the_call_that_would_overspend(path: str) -> None:
    agent, model, looked_up = build()
    # Two calls cost $0.0009; the third reserves its few input tokens plus 100
    # expected output tokens (~$0.00006) and would cross $0.00095.
    wrapped = with_budget(
        agent, max_cost=D("0.00095"), expected_output_tokens=100, default_model="gpt-4o-mini"
    )

    async def consume_astream() -> None:
        async for _ in wrapped.astream(QUESTION):
            pass

    runs = {
        "invoke": lambda: wrapped.invoke(QUESTION),
        "ainvoke": lambda: asyncio.run(wrapped.ainvoke(QUESTION)),
        "stream": lambda: list(wrapped.stream(QUESTION)),
        "astream": lambda: asyncio.run(consume_astream()),
    }
    with pytest.raises(BudgetExceededError) as err:
        runs[path]()
    assert model.served == 2  # the third model call was never made
    assert looked_up == ["Paris", "Lyon"]  # both tools ran before the stop
    assert wrapped.spent.amount == 2 * PER_CALL
    assert wrapped.usage == Usage(input_tokens=2000, output_tokens=1000)
    assert err.value.limit == D("0.00095") and err.value.spent == 2 * PER_CALL
    assert wrapped.handler.reserved.amount == 0
    # The budget is cumulative: the next run is refused at its first model call.
    with pytest.raises(BudgetExceededError):
        wrapped.invoke(QUESTION)
    assert model.served == 2


def test_a_token_budget_stops_the_agent_too() -> None:
    agent, model, _ = build()
    wrapped = with_budget(agent, max_tokens=3000, expected_output_tokens=200)
    with pytest.raises(BudgetExceededError) as err:
        wrapped.invoke(QUESTION)
    assert model.served == 2
    assert err.value.limit == 3000 and err.value.spent == 3000
