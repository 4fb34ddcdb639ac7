"""A streamed call whose output passes its reservation is stopped there.

Real ChatOpenAI clients stream from a respx-mocked API whose SSE body is produced
lazily, one one-token word per event: what the client pulled before it hung up is
what such a provider bills.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableLambda

from langchain_runtime.cost import ModelCatalog, TokenEstimator, with_budget
from langchain_runtime.errors import BudgetExceededError
from tests.unit.agents.openai_api import MODEL, URL, chat_openai, token_stream


class LazyBody(httpx.SyncByteStream, httpx.AsyncByteStream):
    """An SSE body produced as the client reads it, counting the words pulled."""

    def __init__(self, words: int, word: str = " owl") -> None:
        self.words = words
        self.word = word
        self.sent = [0]
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from token_stream(self.words, self.sent, word=self.word)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in token_stream(self.words, self.sent, word=self.word):
            yield part

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


@pytest.fixture
def body() -> Iterator[LazyBody]:
    stream = LazyBody(words=500)
    with respx.mock(assert_all_called=False) as router:
        router.post(URL).mock(
            side_effect=lambda request: httpx.Response(
                200, stream=stream, headers={"content-type": "text/event-stream"}
            )
        )
        yield stream


def small_max_catalog(max_output: int) -> ModelCatalog:
    catalog = ModelCatalog.default()
    catalog.add(MODEL, max_output_tokens=max_output)
    return catalog


def drain(runnable: Any, path: str) -> None:
    if path == "stream":
        for _ in runnable.stream("tell me about owls"):
            pass
        return

    async def consume() -> None:
        async for _ in runnable.astream("tell me about owls"):
            pass

    asyncio.run(consume())


@pytest.mark.parametrize("path", ["stream", "astream"])
def test_a_call_without_a_limit_is_cut_at_its_reservation(body: LazyBody, path: str) -> None:
    # Inside a function no clamp can reach the call: it is sent without max_tokens,
    # and reserves the 40 expected output tokens asked for (less than gpt-4o-mini
    # can answer, so the reservation is all that holds it).
    model = chat_openai(streaming=True)

    async def acollect(q: str) -> str:
        return "".join([c.text async for c in model.astream(q)])

    def collect(q: str) -> str:
        return "".join(c.text for c in model.stream(q))

    runnable = RunnableLambda(collect) if path == "stream" else RunnableLambda(acollect)
    wrapped = with_budget(runnable, max_cost="0.01", expected_output_tokens=40)
    with pytest.raises(BudgetExceededError, match="Stream stopped at its reservation"):
        drain(wrapped, path)
    assert body.sent[0] <= 40  # billed <= reserved
    assert body.sent[0] == 40  # and stopped right there, not earlier
    assert body.closed  # the connection was dropped: the provider stops generating
    # settled at what was produced, counted (no usage chunk arrived)
    assert wrapped.usage.output_tokens == body.sent[0]
    assert wrapped.usage.estimated
    assert wrapped.handler.reserved.amount == 0


def test_a_model_past_its_catalog_maximum_is_cut_just_past_it(body: LazyBody) -> None:
    # no limit sent: the call reserves the model's maximum output (40 in this
    # catalog), which a model cannot pass; this one does (the catalog was wrong)
    model = chat_openai(streaming=True)
    inner = RunnableLambda(lambda q: "".join(c.text for c in model.stream(q)))
    wrapped = with_budget(inner, max_cost="0.01", catalog=small_max_catalog(40))
    with pytest.raises(BudgetExceededError, match="produced 41 output tokens, 40 were"):
        wrapped.invoke("tell me about owls")
    assert body.sent[0] == 41 and body.closed
    assert wrapped.usage.output_tokens == 41 and wrapped.usage.estimated


def test_a_provider_that_ignores_max_tokens_is_cut_just_past_it(body: LazyBody) -> None:
    # the clamp sends max_tokens=20; this provider streams 500 words anyway
    model = chat_openai(streaming=True, max_tokens=20)
    inner = RunnableLambda(lambda q: "".join(c.text for c in model.stream(q)))
    wrapped = with_budget(inner, max_cost="0.01")
    with pytest.raises(BudgetExceededError, match="produced 21 output tokens, 20 were"):
        wrapped.invoke("tell me about owls")
    assert body.sent[0] == 21  # the first token over the limit stops it
    assert wrapped.usage.output_tokens == 21 and wrapped.usage.estimated  # charged honestly


def test_a_stream_within_its_reservation_is_untouched(body: LazyBody) -> None:
    body.words = 30
    model = chat_openai(streaming=True)
    inner = RunnableLambda(lambda q: "".join(c.text for c in model.stream(q)))
    wrapped = with_budget(inner, max_cost="0.01", catalog=small_max_catalog(40))
    assert wrapped.invoke("tell me about owls") == " owl" * 30
    assert body.sent[0] == 30
    assert wrapped.usage.output_tokens == 30


def test_a_cut_is_one_error_and_no_warning(
    body: LazyBody, caplog: pytest.LogCaptureFixture
) -> None:
    model = chat_openai(streaming=True)
    wrapped = with_budget(
        RunnableLambda(lambda q: "".join(c.text for c in model.stream(q))),
        max_cost="0.01",
        expected_output_tokens=10,
    )
    with caplog.at_level(logging.WARNING), pytest.raises(BudgetExceededError):
        wrapped.invoke([HumanMessage("tell me about owls")])
    assert [r for r in caplog.records if "callback" in r.getMessage()] == []
    assert TokenEstimator().count_text(" owl" * 10, MODEL) == 10  # one token a word
    assert Decimal(0) < wrapped.spent.amount


def test_an_agent_streaming_without_a_limit_is_cut_at_its_reservation(body: LazyBody) -> None:
    from langchain.agents import create_agent

    agent = create_agent(chat_openai(streaming=True), tools=[])
    wrapped = with_budget(agent, max_cost="0.01", expected_output_tokens=25)
    with pytest.raises(BudgetExceededError, match="Stream stopped at its reservation"):
        wrapped.invoke({"messages": [HumanMessage("tell me about owls")]})
    assert body.sent[0] == 25 and body.closed
    assert wrapped.usage.output_tokens == 25


def test_a_counting_difference_never_cuts_an_answer_within_its_limit(body: LazyBody) -> None:
    # 20 pieces, one token each for the provider, that cl100k counts as more
    body.words, body.word = 20, "鵟鸟"
    assert TokenEstimator().count_text(body.word, MODEL) > 1
    model = chat_openai(streaming=True, max_tokens=20)
    inner = RunnableLambda(lambda q: "".join(c.text for c in model.stream(q)))
    wrapped = with_budget(inner, max_cost="0.01")
    assert wrapped.invoke("tell me about owls") == body.word * 20
    assert body.sent[0] == 20
