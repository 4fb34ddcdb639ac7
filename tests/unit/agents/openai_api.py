"""A respx-mocked OpenAI chat completions API that answers as long as it is allowed.

Each answer is exactly ``max_completion_tokens`` output tokens long (``NO_LIMIT``
when the request sends none) and reports that usage; the input it reports is the
request counted the way ``TokenEstimator`` counts it (a provider whose tokenizer
agrees with ours). A conversation without a tool result yet gets a tool call, one
with a tool result gets a final answer. Every answer is recorded with what was
billed for it, priced by the catalog.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
from langchain_openai import ChatOpenAI

from langchain_runtime.cost import CostCalculator, TokenEstimator
from langchain_runtime.domain import Usage

URL = "https://api.openai.com/v1/chat/completions"
MODEL = "gpt-4o-mini"
#: Output of an answer to a request that sets no output limit.
NO_LIMIT = 8000


def chat_openai(model: str = MODEL, **kwargs: Any) -> ChatOpenAI:
    """A real ChatOpenAI client for the mocked API (no retries, short timeout)."""
    return ChatOpenAI(model=model, api_key="sk-test", max_retries=0, timeout=5, **kwargs)  # type: ignore[arg-type]


@dataclass
class Bill:
    limit: int | None  # the output limit the request carried
    usage: Usage
    cost: Decimal


@dataclass
class FakeOpenAI:
    """The mocked API's state: what each request sent and what it was billed."""

    estimator: TokenEstimator = field(default_factory=TokenEstimator)
    calculator: CostCalculator = field(default_factory=CostCalculator)
    bills: list[Bill] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def billed(self) -> Decimal:
        with self._lock:
            return sum((b.cost for b in self.bills), Decimal(0))

    @property
    def billed_usage(self) -> Usage:
        with self._lock:
            return sum((b.usage for b in self.bills), Usage())

    def _bill(self, body: dict[str, Any], output: int) -> dict[str, Any]:
        prompt = self.estimator.count_messages(body["messages"], MODEL, body.get("tools"))
        usage = Usage(input_tokens=prompt, output_tokens=output)
        with self._lock:
            self.bodies.append(body)
            self.bills.append(
                Bill(
                    body.get("max_completion_tokens"),
                    usage,
                    self.calculator.cost(MODEL, usage).amount,
                )
            )
        return {
            "prompt_tokens": prompt,
            "completion_tokens": output,
            "total_tokens": prompt + output,
        }

    def answer(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        limit = body.get("max_completion_tokens")
        output = limit if isinstance(limit, int) else NO_LIMIT
        has_result = any(m.get("role") == "tool" for m in body["messages"])
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "It is 20C." if has_result else "",
        }
        if not has_result and body.get("tools"):
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": f"call_{len(self.bodies)}",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": json.dumps({"city": "Paris"})},
                }
            ]
        if body.get("stream"):
            return httpx.Response(
                200,
                content=self._sse(message, self._bill(body, output)),
                headers={"content-type": "text/event-stream"},
            )
        return httpx.Response(
            200,
            json={
                "id": "c1",
                "object": "chat.completion",
                "created": 1,
                "model": MODEL,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": self._bill(body, output),
            },
        )

    @staticmethod
    def _sse(message: dict[str, Any], usage: dict[str, Any]) -> bytes:
        base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
        delta = {k: v for k, v in message.items() if v is not None}
        if "tool_calls" in delta:
            delta["tool_calls"] = [{"index": 0, **c} for c in delta["tool_calls"]]
        chunks = [
            {**base, "choices": [{"index": 0, "delta": delta}]},
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {**base, "choices": [], "usage": usage},
        ]
        return "".join(
            [*(f"data: {json.dumps(c)}\n\n" for c in chunks), "data: [DONE]\n\n"]
        ).encode()


def token_stream(
    n: int, sent: list[int], *, usage: bool = False, word: str = " owl"
) -> Iterator[bytes]:
    """SSE events of an answer of ``n`` words (one token each), produced lazily.

    ``sent`` counts the word events the client actually pulled: what a provider
    that stops when the client disconnects would bill.
    """
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    first = {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    yield f"data: {json.dumps(first)}\n\n".encode()
    for _ in range(n):
        sent[0] += 1
        chunk = {**base, "choices": [{"index": 0, "delta": {"content": word}}]}
        yield f"data: {json.dumps(chunk)}\n\n".encode()
    done = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    yield f"data: {json.dumps(done)}\n\n".encode()
    if usage:
        tail = {**base, "choices": [], "usage": {"prompt_tokens": 8, "completion_tokens": n}}
        yield f"data: {json.dumps(tail)}\n\n".encode()
    yield b"data: [DONE]\n\n"
