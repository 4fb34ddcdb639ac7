"""A stream from a provider that ignores max_tokens is cut so its bill stays in its hold.

Reviewer's t2 (case A), t1 and t18: a provider that ignores ``max_tokens`` and
sends several tokens per SSE chunk was cut only after more pieces than reserved
tokens (so 50 times the hold), and one token per chunk was cut one token late.
The mocked provider here generates lazily and bills only the chunks the client
read before it disconnected. Real ChatOpenAI against respx.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx
from langchain_core.runnables import RunnableLambda
from langchain_openai import ChatOpenAI

from langchain_runtime.cost import CostCalculator, with_budget
from langchain_runtime.domain import Usage
from langchain_runtime.errors import BudgetExceededError

URL = "https://api.openai.com/v1/chat/completions"
MODEL = "gpt-4o-mini"
LIMIT = Decimal("0.001")


class IgnoringProvider:
    """Streams 8000 tokens whatever max_tokens says, ``per_chunk`` words a chunk."""

    def __init__(self, per_chunk: int, prompt_tokens: int = 8) -> None:
        self.per_chunk = per_chunk
        self.prompt_tokens = prompt_tokens
        self.sent_tokens = 0
        self.limits: list[int | None] = []

    def _chunks(self, body: dict[str, Any]) -> Iterator[bytes]:
        base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
        total, first = 8000, True
        while self.sent_tokens < total:
            k = min(self.per_chunk, total - self.sent_tokens)
            text = ("" if first else " ") + " ".join(["hello"] * k)
            first = False
            delta = {"role": "assistant", "content": text}
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            self.sent_tokens += k  # generated, so billed, once it is sent
            yield f"data: {json.dumps(chunk)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    def billed(self) -> Decimal:
        usage = Usage(input_tokens=self.prompt_tokens, output_tokens=self.sent_tokens)
        return CostCalculator().cost(MODEL, usage).amount

    def sync(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.limits.append(body.get("max_completion_tokens") or body.get("max_tokens"))
        return httpx.Response(
            200, content=self._chunks(body), headers={"content-type": "text/event-stream"}
        )

    def asynchronous(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.limits.append(body.get("max_completion_tokens") or body.get("max_tokens"))

        async def chunks() -> AsyncIterator[bytes]:
            for piece in self._chunks(body):
                await asyncio.sleep(0)
                yield piece

        return httpx.Response(200, content=chunks(), headers={"content-type": "text/event-stream"})


def chat() -> ChatOpenAI:
    return ChatOpenAI(model=MODEL, api_key="sk-test", max_retries=0, timeout=5)  # type: ignore[arg-type]


@pytest.mark.parametrize("per_chunk", [1, 7, 50])
def test_sync_stream_past_its_sent_limit_is_cut_within_a_chunk(per_chunk: int) -> None:
    # with_budget over the chat model sends the clamped limit: the provider ignores it.
    api = IgnoringProvider(per_chunk)
    budgeted = with_budget(chat(), max_cost=LIMIT)
    with respx.mock() as mock:
        mock.post(URL).mock(side_effect=api.sync)
        with pytest.raises(BudgetExceededError, match="reservation"):
            for _ in budgeted.stream("hi"):
                pass
    limit = api.limits[0]
    assert limit is not None
    # Cut on proof the limit was ignored: within one chunk (and the 10% a nearby
    # encoding may miscount English by), where pieces alone let 50-token chunks
    # run to 50 times the limit.
    assert limit < api.sent_tokens <= int(limit * 1.1) + per_chunk
    assert budgeted.spent.amount >= api.billed()  # the settlement covers the bill


@pytest.mark.parametrize("per_chunk", [1, 7, 50])
def test_stream_told_no_limit_is_cut_within_its_hold(per_chunk: int) -> None:
    # Inside a chain the call cannot be clamped: no limit is sent, the hold is
    # expected_output_tokens, and the stream stops before it would pass it.
    api = IgnoringProvider(per_chunk)
    model = chat()
    chain = RunnableLambda(lambda q: "".join(str(c.content) for c in model.stream(q)))
    budgeted = with_budget(chain, max_cost=LIMIT, expected_output_tokens=500)
    with respx.mock() as mock:
        mock.post(URL).mock(side_effect=api.sync)
        with pytest.raises(BudgetExceededError, match="reservation"):
            budgeted.invoke("hi")
    assert api.limits == [None]
    assert 500 - 2 * per_chunk < api.sent_tokens <= 500  # billed <= reserved
    assert api.billed() <= LIMIT
    assert budgeted.spent.amount >= api.billed()


@pytest.mark.parametrize("per_chunk", [1, 50])
def test_async_stream_past_its_sent_limit_is_cut_within_a_chunk(per_chunk: int) -> None:
    api = IgnoringProvider(per_chunk)
    budgeted = with_budget(chat(), max_cost=LIMIT)

    async def consume() -> None:
        async for _ in budgeted.astream("hi"):
            pass

    with respx.mock() as mock:
        mock.post(URL).mock(side_effect=api.asynchronous)
        with pytest.raises(BudgetExceededError, match="reservation"):
            asyncio.run(consume())
    limit = api.limits[0]
    assert limit is not None
    assert limit < api.sent_tokens <= int(limit * 1.1) + per_chunk
    assert budgeted.spent.amount >= api.billed()
