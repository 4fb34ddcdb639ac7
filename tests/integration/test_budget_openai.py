"""Budgets on a real ChatOpenAI client against a mocked OpenAI HTTP API (respx)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI

from langchain_runtime.cost import BudgetCallbackHandler, TokenEstimator, with_budget
from langchain_runtime.domain import Budget, Usage
from langchain_runtime.errors import BudgetExceededError

URL = "https://api.openai.com/v1/chat/completions"
D = Decimal

# shared/FACTS.md: 11 input tokens of which 4 cached, 7 output of which 2 reasoning.
USAGE = {
    "prompt_tokens": 11,
    "completion_tokens": 7,
    "total_tokens": 18,
    "prompt_tokens_details": {"cached_tokens": 4},
    "completion_tokens_details": {"reasoning_tokens": 2},
}
BODY = {
    "id": "c1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}
    ],
    "usage": USAGE,
}
EXPECTED = Usage(input_tokens=11, output_tokens=7, cache_read_tokens=4, reasoning_tokens=2)
# gpt-4o-mini: 7 uncached input at 0.15, 4 cached at 0.075, 7 output at 0.60 (per 1M).
EXPECTED_COST = (7 * D("0.15") + 4 * D("0.075") + 7 * D("0.60")) / 1_000_000


def sse(usage: dict[str, Any] | None = USAGE) -> bytes:
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
    chunks: list[dict[str, Any]] = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    if usage is not None:
        chunks.append({**base, "choices": [], "usage": usage})
    lines = [f"data: {json.dumps(c)}\n\n" for c in chunks] + ["data: [DONE]\n\n"]
    return "".join(lines).encode()


def model(**kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(model="gpt-4o-mini", api_key="sk-test", max_retries=0, timeout=5, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


def route(
    api: respx.MockRouter, *, stream: bool, usage: dict[str, Any] | None = USAGE
) -> respx.Route:
    response = (
        httpx.Response(200, content=sse(usage), headers={"content-type": "text/event-stream"})
        if stream
        else httpx.Response(200, json=BODY)
    )
    return api.post(URL).mock(return_value=response)


async def _astream(runnable: Any, inp: Any, config: Any = None) -> list[Any]:
    return [c async for c in runnable.astream(inp, config)]


def call(runnable: Any, path: str, inp: Any = "hello", config: Any = None) -> None:
    if path == "invoke":
        runnable.invoke(inp, config)
    elif path == "ainvoke":
        asyncio.run(runnable.ainvoke(inp, config))
    elif path == "stream":
        list(runnable.stream(inp, config))
    else:
        asyncio.run(_astream(runnable, inp, config))


PATHS = ["invoke", "ainvoke", "stream", "astream"]


@pytest.mark.parametrize("path", PATHS)
def test_recorded_usage_equals_the_providers(api: respx.MockRouter, path: str) -> None:
    r = route(api, stream=path in ("stream", "astream"))
    handler = BudgetCallbackHandler(Budget(max_cost=D("0.01")))
    call(model(), path, config={"callbacks": [handler]})
    assert r.call_count == 1
    assert handler.usage == EXPECTED
    assert handler.spent.amount == EXPECTED_COST
    assert handler.reserved.amount == 0
    assert handler.by_model()["gpt-4o-mini"].calls == 1


@pytest.mark.parametrize("path", PATHS)
def test_a_refused_call_sends_no_request(api: respx.MockRouter, path: str) -> None:
    r = route(api, stream=path in ("stream", "astream"))
    handler = BudgetCallbackHandler(Budget(max_cost=D("0.00001")))  # less than 1024 outputs
    with pytest.raises(BudgetExceededError) as err:
        call(model(), path, config={"callbacks": [handler]})
    assert r.call_count == 0
    assert err.value.limit == D("0.00001")
    assert handler.usage == Usage() and handler.reserved.amount == 0


@pytest.mark.parametrize("path", PATHS)
def test_with_budget_over_chat_openai(api: respx.MockRouter, path: str) -> None:
    r = route(api, stream=path in ("stream", "astream"))
    # Each call reserves its input + max_tokens=20 output: three fit whole; later
    # calls are sent with the output the money left can pay for, until not one fits.
    input_tokens = TokenEstimator().count_messages([HumanMessage("hello")], "gpt-4o-mini")
    per_call = (input_tokens * D("0.15") + 20 * D("0.60")) / 1_000_000
    limit = 2 * EXPECTED_COST + per_call
    wrapped = with_budget(model(max_tokens=20), max_cost=limit)

    def affordable() -> int:
        left = (limit - wrapped.spent.amount) * 1_000_000 - input_tokens * D("0.15")
        return min(20, int(left / D("0.60")))

    sent: list[int] = []
    wanted: list[int] = []
    while affordable() >= 1:
        wanted.append(affordable())
        call(wrapped, path)
        sent.append(json.loads(r.calls.last.request.content)["max_completion_tokens"])
    assert sent == wanted and sent[:3] == [20, 20, 20] and 0 < sent[-1] < 20
    calls = r.call_count
    assert wrapped.usage == Usage(
        input_tokens=11 * calls,
        output_tokens=7 * calls,
        cache_read_tokens=4 * calls,
        reasoning_tokens=2 * calls,
    )
    # (this mock always reports 7 output tokens, even when told 1: the overrun is its)
    assert wrapped.spent.amount == calls * EXPECTED_COST
    with pytest.raises(BudgetExceededError):
        call(wrapped, path)
    assert r.call_count == calls  # the refused call was never sent
    wrapped.reset()
    call(wrapped, path)
    assert r.call_count == calls + 1


def test_streamed_call_without_a_usage_chunk_is_estimated(api: respx.MockRouter) -> None:
    route(api, stream=True, usage=None)
    handler = BudgetCallbackHandler(Budget(max_tokens=20_000))
    list(model(stream_usage=False).stream("hello", config={"callbacks": [handler]}))
    est = TokenEstimator()
    assert handler.usage == Usage(
        input_tokens=est.count_messages([HumanMessage("hello")], "gpt-4o-mini"),
        output_tokens=est.count_text("Hi", "gpt-4o-mini"),
        estimated=True,
    )


def test_an_http_error_is_charged_its_input_estimate(api: respx.MockRouter) -> None:
    api.post(URL).mock(
        return_value=httpx.Response(500, json={"error": {"message": "boom", "type": "server"}})
    )
    handler = BudgetCallbackHandler(Budget(max_cost=D("0.01")))
    with pytest.raises(Exception, match="boom"):
        model().invoke("hello", config={"callbacks": [handler]})
    input_tokens = TokenEstimator().count_messages([HumanMessage("hello")], "gpt-4o-mini")
    assert handler.usage == Usage(input_tokens=input_tokens, estimated=True)
    assert handler.reserved.amount == 0


def test_bound_tools_are_counted_in_the_reservation(api: respx.MockRouter) -> None:
    r = route(api, stream=False)

    def lookup_customer_record(customer_id: str, include_history: bool = False) -> str:
        """Look up a customer's record in the CRM, optionally with the order history."""
        return customer_id

    handler = BudgetCallbackHandler(Budget(max_tokens=1_000_000))
    bound = model(max_tokens=5).bind_tools([lookup_customer_record])
    bound.invoke("hello", config={"callbacks": [handler]})
    assert r.call_count == 1
    sent = json.loads(r.calls.last.request.content)
    est = TokenEstimator()
    bare = est.count_messages([HumanMessage("hello")], "gpt-4o-mini")
    with_tools = est.count_messages([HumanMessage("hello")], "gpt-4o-mini", tools=sent["tools"])
    tight = BudgetCallbackHandler(Budget(max_tokens=bare + 5 + (with_tools - bare) // 2))
    with pytest.raises(BudgetExceededError):
        bound.invoke("hello", config={"callbacks": [tight]})
    assert r.call_count == 1
