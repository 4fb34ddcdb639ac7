from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage

from langchain_runtime.testing import ScriptedChatModel, SimulatedChatModel


def test_simulated_is_deterministic_and_honours_max_tokens() -> None:
    m = SimulatedChatModel(response_tokens=30)
    a, b = m.invoke("Tell me about owls"), m.invoke("Tell me about owls")
    assert a.content == b.content
    assert m.invoke("Tell me about cats").content != a.content
    assert a.usage_metadata is not None and a.usage_metadata["output_tokens"] == 30
    short = m.invoke("Tell me about owls", max_tokens=5)
    assert short.usage_metadata is not None and short.usage_metadata["output_tokens"] == 5


def test_simulated_streams_with_usage_on_the_last_chunk() -> None:
    m = SimulatedChatModel(response_tokens=6)
    chunks = list(m.stream("hello"))
    merged = chunks[0]
    for c in chunks[1:]:
        merged = merged + c
    assert merged.content == m.invoke("hello").content
    assert merged.usage_metadata is not None and merged.usage_metadata["output_tokens"] == 6


def test_scripted_replies_in_order_with_tool_calls() -> None:
    call = AIMessage(content="", tool_calls=[{"name": "f", "args": {}, "id": "1"}])
    m = ScriptedChatModel(responses=[call, "done"], model_name="gpt-4o-mini")
    first = m.bind_tools([]).invoke("go")
    assert first.tool_calls[0]["name"] == "f"
    assert first.usage_metadata is not None and first.usage_metadata["input_tokens"] > 0
    assert m.invoke("next").content == "done"
    with pytest.raises(IndexError, match="no reply left"):
        m.invoke("more")
