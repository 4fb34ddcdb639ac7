from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk

from langchain_runtime import ConfigurationError, Usage, with_budget
from langchain_runtime.cost import CostCalculator, ModelCatalog
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


def _merged(chunks: list[Any]) -> Any:
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total


def test_scripted_streams_word_by_word_with_usage_on_the_last_chunk_only() -> None:
    script = ["hello there  world"]
    chunks = list(ScriptedChatModel(responses=script).stream("hi"))
    assert [c.content for c in chunks] == ["hello", " there", "  world", ""]
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert [c.usage_metadata is not None for c in chunks] == [False, False, False, True]
    assert chunks[-1].chunk_position == "last"
    streamed = _merged(chunks)
    invoked = ScriptedChatModel(responses=script).invoke("hi")
    assert streamed.content == invoked.content
    assert streamed.usage_metadata == invoked.usage_metadata
    assert streamed.response_metadata["model_name"] == "simulated"


def test_scripted_streams_tool_calls_as_tool_call_chunks() -> None:
    call = AIMessage(content="", tool_calls=[{"name": "f", "args": {"q": "owls"}, "id": "c1"}])
    chunks = list(ScriptedChatModel(responses=[call]).stream("go"))
    streamed = _merged(chunks)
    assert streamed.tool_calls == [
        {"name": "f", "args": {"q": "owls"}, "id": "c1", "type": "tool_call"}
    ]
    assert (
        streamed.usage_metadata == ScriptedChatModel(responses=[call]).invoke("go").usage_metadata
    )


@pytest.mark.anyio
async def test_scripted_streams_async_and_advances_the_script() -> None:
    model = ScriptedChatModel(responses=["one two", "three"])
    first = [c async for c in model.astream("a")]
    second = [c async for c in model.astream("b")]
    assert _merged(first).content == "one two" and _merged(second).content == "three"
    assert model.calls == 2
    with pytest.raises(IndexError, match="no reply left"):
        [c async for c in model.astream("c")]


@pytest.mark.parametrize(
    "make",
    [lambda: ScriptedChatModel(responses=["ok"], cycle=True), lambda: SimulatedChatModel()],
    ids=["scripted", "simulated"],
)
def test_a_per_call_model_override_is_reported_and_priced(make: Any) -> None:
    model = make()
    assert model._get_ls_params(model="gpt-4o")["ls_model_name"] == "gpt-4o"
    assert model._get_ls_params()["ls_model_name"] == "simulated"
    assert model.invoke("hi", model="gpt-4o").response_metadata["model_name"] == "gpt-4o"
    streamed = _merged(list(model.stream("hi", model="gpt-4o")))
    assert streamed.response_metadata["model_name"] == "gpt-4o"
    assert model.invoke("hi").response_metadata["model_name"] == "simulated"

    overridden = with_budget(model.bind(model="gpt-4o"), max_cost=Decimal("1"))
    plain = with_budget(model, max_cost=Decimal("1"))
    reply = overridden.invoke("hi")
    plain.invoke("hi")
    usage = Usage.from_usage_metadata(reply.usage_metadata)
    calculator = CostCalculator(ModelCatalog.default())
    assert overridden.spent == calculator.cost("gpt-4o", usage)
    assert plain.spent == calculator.cost("simulated", usage)
    assert overridden.spent != plain.spent


@pytest.mark.parametrize(
    ("make", "meant"),
    [
        (lambda: SimulatedChatModel(respons_tokens=5), "response_tokens"),
        (lambda: SimulatedChatModel(max_token=5), "max_tokens"),
        (lambda: ScriptedChatModel(responses=["a"], cylce=True), "cycle"),
    ],
    ids=["simulated-response_tokens", "simulated-max_tokens", "scripted-cycle"],
)
def test_a_misspelt_parameter_is_an_error_naming_the_closest(make: Any, meant: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"unknown field; did you mean '{meant}'\?"):
        make()


def test_the_standard_parameters_are_accepted_and_stop_cuts_the_reply() -> None:
    model = SimulatedChatModel(
        response_tokens=10, temperature=0, timeout=5, max_retries=1, stop=None
    )
    words = str(model.invoke("owls").content).split(" ")
    cut = model.invoke("owls", stop=[" " + words[3]]).content
    assert cut == " ".join(words[:3])
    assert (
        SimulatedChatModel(response_tokens=10, stop=[" " + words[3]]).invoke("owls").content == cut
    )
    assert model._get_ls_params()["ls_temperature"] == 0
    scripted = ScriptedChatModel(responses=["hello you there"], stop=["you"], max_tokens=5)
    assert scripted.invoke("x").content == "hello "
    assert scripted._get_ls_params()["ls_max_tokens"] == 5


def test_streaming_true_makes_invoke_stream() -> None:
    seen: list[str] = []

    class Tokens(BaseCallbackHandler):
        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            seen.append(token)

    reply = ScriptedChatModel(responses=["one two three"], streaming=True).invoke(
        "x", {"callbacks": [Tokens()]}
    )
    assert reply.content == "one two three"
    assert [t for t in seen if t] == ["one", " two", " three"]
