"""In-memory OpenTelemetry exporters and a respx-mocked OpenAI endpoint."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import respx
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from langchain_runtime.observability import OpenTelemetryCallbackHandler

URL = "https://api.openai.com/v1/chat/completions"


@dataclass
class Telemetry:
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    handler: OpenTelemetryCallbackHandler
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, prefix: str) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name.startswith(prefix)]

    def metric_points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        points: list[Any] = []
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        points.extend(metric.data.data_points)
        return points


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    handler = OpenTelemetryCallbackHandler(
        tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    yield Telemetry(exporter, reader, handler, tracer_provider, meter_provider)
    meter_provider.shutdown()
    tracer_provider.shutdown()


def completion(
    content: str = "Hi",
    *,
    model: str = "gpt-4o-mini",
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The FACTS.md body: 11 in (4 cached), 7 out (2 reasoning)."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {"index": 0, "message": message,
             "finish_reason": "tool_calls" if tool_calls else "stop"}
        ],
        "usage": {
            "prompt_tokens": 11,
            "completion_tokens": 7,
            "total_tokens": 18,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 2},
        },
    }  # fmt: skip


@dataclass
class OpenAIMock:
    route: respx.Route
    bodies: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def openai_mock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., OpenAIMock]]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with respx.mock(assert_all_called=False) as router:

        def make(
            answer: Callable[[dict[str, Any]], httpx.Response] | None = None,
        ) -> OpenAIMock:
            mock = OpenAIMock(router.post(URL))

            def side_effect(request: httpx.Request) -> httpx.Response:
                body = json.loads(request.content)
                mock.bodies.append(body)
                if answer is not None:
                    return answer(body)
                return httpx.Response(
                    200, json=completion(f"re: {body['messages'][-1]['content']}")
                )

            mock.route.side_effect = side_effect
            return mock

        yield make


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
