"""A prompt marked for a 1-hour (or 5-minute) cache write is held at that write rate.

Reviewer's t5: every input token of a ``cache_control: {ttl: "1h"}`` prompt is
billed at 2x the input rate; a hold priced at the plain input rate let the call
through with an output limit the bill could not pay. Real ChatAnthropic against a
respx-mocked API that bills the whole prompt as a cache write and answers as long
as allowed. Needs ``anthropic<1`` (respx sees its httpx transport).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import HumanMessage, SystemMessage

from langchain_runtime.cost import CostCalculator, TokenEstimator, with_budget
from langchain_runtime.domain import Usage

URL = "https://api.anthropic.com/v1/messages"
MODEL = "claude-sonnet-4-5"
BIG = "lorem ipsum dolor sit amet " * 4000
LIMIT = Decimal("0.20")


def prompt(ttl: str) -> list[Any]:
    mark = {"type": "ephemeral", "ttl": ttl}
    return [
        SystemMessage(content=[{"type": "text", "text": BIG, "cache_control": mark}]),
        HumanMessage("hi"),
    ]


class CachingAnthropic:
    """Bills the counted prompt as a cache write of the request's TTL, output at max_tokens."""

    def __init__(self, ttl: str, counted: int) -> None:
        self.ttl = ttl
        self.counted = counted
        self.billed = Decimal(0)
        self.limits: list[int] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        out = int(body["max_tokens"])
        self.limits.append(out)
        n = self.counted
        one_hour = n if self.ttl == "1h" else 0
        usage = Usage(
            input_tokens=n + 5,
            output_tokens=out,
            cache_creation_tokens=n,
            cache_creation_1h_tokens=one_hour,
        )
        self.billed += CostCalculator().cost(MODEL, usage).amount
        api_usage = {
            "input_tokens": 5,
            "output_tokens": out,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": n,
            "cache_creation": {
                "ephemeral_5m_input_tokens": n - one_hour,
                "ephemeral_1h_input_tokens": one_hour,
            },
        }
        return httpx.Response(
            200,
            json={
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": [{"type": "text", "text": "x"}],
                "stop_reason": "max_tokens",
                "stop_sequence": None,
                "usage": api_usage,
            },
        )


@pytest.mark.parametrize("ttl", ["1h", "5m"])
def test_cache_write_prompt_hold_covers_its_bill(ttl: str) -> None:
    messages = prompt(ttl)
    counted = TokenEstimator().count_messages(messages, MODEL)
    api = CachingAnthropic(ttl, counted)
    with respx.mock() as mock:
        mock.post(URL).mock(side_effect=api)
        model = ChatAnthropic(model=MODEL, api_key="sk-ant-test", max_retries=0, timeout=5)  # type: ignore[call-arg]
        budgeted = with_budget(model, max_cost=LIMIT)
        budgeted.invoke(messages)
    assert len(api.limits) == 1
    assert api.billed <= LIMIT
    assert budgeted.spent.amount == api.billed
