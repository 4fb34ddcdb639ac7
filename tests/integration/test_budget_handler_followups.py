"""The budget handler on real provider clients (respx): budget events on the model-call
spans, and streamed Anthropic usage that reports no input tokens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from langchain_runtime.cost import BudgetCallbackHandler, TokenEstimator, with_budget
from langchain_runtime.cost.ledger import InMemoryLedger
from langchain_runtime.domain import Budget, Usage
from langchain_runtime.errors import BudgetExceededError
from langchain_runtime.observability import OpenTelemetryCallbackHandler

OPENAI = "https://api.openai.com/v1/chat/completions"
ANTHROPIC = "https://api.anthropic.com/v1/messages"


def _openai_body(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.fixture
def spans() -> Iterator[tuple[OpenTelemetryCallbackHandler, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield OpenTelemetryCallbackHandler(tracer_provider=provider), exporter
    provider.shutdown()


def test_reserve_and_settle_are_events_on_the_span_of_a_budgeted_call(
    api: respx.MockRouter, spans: tuple[OpenTelemetryCallbackHandler, InMemorySpanExporter]
) -> None:
    otel, exporter = spans
    api.post(OPENAI).mock(return_value=httpx.Response(200, json=_openai_body(9, 5)))
    ledger = InMemoryLedger()
    ledger.set_limit("team:x", max_cost="1")
    model = with_budget(
        ChatOpenAI(model="gpt-4o-mini", api_key="sk-test", max_retries=0, max_tokens=40),
        max_cost="0.01",
        ledger=ledger,
        scopes=["team:x"],
    )
    model.invoke("Hello", config={"callbacks": [otel]})
    [chat] = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    names = [e.name for e in chat.events]
    assert names == ["langchain_runtime.budget.reserved", "langchain_runtime.budget.settled"]
    reserved, settled = chat.events
    assert reserved.attributes is not None and settled.attributes is not None
    assert reserved.attributes["langchain_runtime.budget.output_tokens"] == 40
    assert settled.attributes["langchain_runtime.budget.input_tokens"] == 9
    assert settled.attributes["langchain_runtime.budget.output_tokens"] == 5
    expected = (9 * Decimal("0.15") + 5 * Decimal("0.60")) / 1_000_000
    assert settled.attributes["langchain_runtime.budget.amount"] == pytest.approx(float(expected))
    assert model.spent.amount == expected == ledger.status("team:x").spent


def test_a_refusal_is_an_event_on_the_span(
    api: respx.MockRouter, spans: tuple[OpenTelemetryCallbackHandler, InMemorySpanExporter]
) -> None:
    otel, exporter = spans
    route = api.post(OPENAI).mock(return_value=httpx.Response(200, json=_openai_body(9, 5)))
    handler = BudgetCallbackHandler(Budget(max_tokens=10))
    model = ChatOpenAI(model="gpt-4o-mini", api_key="sk-test", max_retries=0, max_tokens=40)
    with pytest.raises(BudgetExceededError):
        model.invoke("Hello", config={"callbacks": [otel, handler]})
    assert route.call_count == 0
    [chat] = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    assert chat.events[0].name == "langchain_runtime.budget.refused"


def _sse(events: list[dict[str, Any]]) -> str:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)


def _anthropic_stream(output: int, *, delta_input: int | None = None) -> str:
    """A stream whose message_delta carries only output tokens (langchain issue #35509:
    LangChain then reports input_tokens=0), or the cumulative input too."""
    delta_usage: dict[str, int] = {"output_tokens": output}
    if delta_input is not None:
        delta_usage["input_tokens"] = delta_input
    message: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": delta_input or 21, "output_tokens": 1},
    }
    block = {"type": "text", "text": ""}
    return _sse(
        [
            {"type": "message_start", "message": message},
            {"type": "content_block_start", "index": 0, "content_block": block},
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hi"},
            },
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": delta_usage,
            },
            {"type": "message_stop"},
        ]
    )


def test_a_stream_reporting_no_input_is_settled_at_the_counted_input(
    api: respx.MockRouter,
) -> None:
    body = _anthropic_stream(9)
    api.post(ANTHROPIC).mock(
        return_value=httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
    )
    handler = BudgetCallbackHandler(Budget(max_cost="0.10"))
    model = ChatAnthropic(
        model="claude-sonnet-4-5", api_key="sk-ant", max_tokens=100, max_retries=0
    )
    question = [HumanMessage("What is the capital of France, in one word?")]
    "".join(c.text for c in model.stream(question, config={"callbacks": [handler]}))
    counted = TokenEstimator().count_messages(question, "claude-sonnet-4-5")
    assert counted > 0
    assert handler.usage == Usage(input_tokens=counted, output_tokens=9, estimated=True)
    expected = (counted * Decimal(3) + 9 * Decimal(15)) / 1_000_000
    assert handler.spent.amount == expected


def test_a_stream_that_reports_its_input_is_taken_as_reported(api: respx.MockRouter) -> None:
    body = _anthropic_stream(9, delta_input=21)
    api.post(ANTHROPIC).mock(
        return_value=httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
    )
    handler = BudgetCallbackHandler()
    model = ChatAnthropic(
        model="claude-sonnet-4-5", api_key="sk-ant", max_tokens=100, max_retries=0
    )
    list(model.stream("Hello", config={"callbacks": [handler]}))
    assert handler.usage == Usage(input_tokens=21, output_tokens=9)
