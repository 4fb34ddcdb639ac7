from __future__ import annotations

import json
import socket
import sys
from decimal import Decimal
from enum import Enum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.prompts import ChatPromptTemplate
from pydantic import BaseModel

from langchain_runtime import OutputNotStorableError, StoreError
from langchain_runtime.store import decode, encode


class Verdict(BaseModel):
    score: int
    reasons: list[str]
    price: Decimal | None = None


class Color(Enum):
    RED = "red"


def _through_json(value: Any) -> Any:
    """What a store file gives back: the encoded value written as strict JSON and read."""
    text = json.dumps(encode(value, what="task 't' output"), allow_nan=False)
    return decode(json.loads(text))


json_data = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=6) | st.sampled_from(["$lc", "$dict", "lc", "$x"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_data)
def test_json_data_round_trips_unchanged(value: Any) -> None:
    assert _through_json(value) == value


def test_plain_json_is_stored_as_itself() -> None:
    value = {"a": [1, 2.5, "x", None, True], "b": {"c": {}}}
    assert encode(value, what="x") == value


def test_special_numbers_and_tuples() -> None:
    got = _through_json(
        {"inf": float("inf"), "neg": float("-inf"), "d": Decimal("0.10"), "t": (1, 2)}
    )
    assert got == {"inf": float("inf"), "neg": float("-inf"), "d": Decimal("0.10"), "t": [1, 2]}
    assert type(got["d"]) is Decimal and str(got["d"]) == "0.10"
    nan = _through_json(float("nan"))
    assert nan != nan  # still a NaN


AI = AIMessage(
    content="the answer",
    id="run-1",
    tool_calls=[{"name": "search", "args": {"q": "x"}, "id": "call_1"}],
    usage_metadata={
        "input_tokens": 12,
        "output_tokens": 3,
        "total_tokens": 15,
        "input_token_details": {"cache_read": 4},
    },
    response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "tool_calls"},
    additional_kwargs={"lc": "a user key that looks like LangChain's"},
)

MESSAGES = [
    AI,
    AIMessageChunk(
        content="par",
        id="c1",
        usage_metadata={"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
    ),
    HumanMessage(
        content=[
            {"type": "text", "text": "hi"},
            {"type": "image_url", "image_url": {"url": "data:x"}},
        ]
    ),
    SystemMessage(content="be brief", name="sys"),
    ToolMessage(content="42", tool_call_id="call_1", status="success"),
    Document(page_content="a page", metadata={"source": "a.txt", "lc": 1}, id="doc-1"),
]


@pytest.mark.parametrize("value", MESSAGES, ids=lambda v: type(v).__name__)
def test_messages_and_documents_come_back_as_themselves(value: Any) -> None:
    got = _through_json(value)
    assert type(got) is type(value)
    assert got == value


def test_messages_keep_ids_tool_calls_and_usage() -> None:
    got = _through_json({"reply": AI, "history": [HumanMessage("q", id="h1"), AI]})
    reply = got["reply"]
    assert isinstance(reply, AIMessage)
    assert reply.id == "run-1" and reply.usage_metadata == AI.usage_metadata
    assert reply.tool_calls[0]["args"] == {"q": "x"}
    assert reply.additional_kwargs == {"lc": "a user key that looks like LangChain's"}
    assert [m.id for m in got["history"]] == ["h1", "run-1"]


def test_pydantic_models_come_back_as_their_class() -> None:
    value = Verdict(score=3, reasons=["a", "b"], price=Decimal("1.25"))
    got = _through_json({"verdict": value})
    assert isinstance(got["verdict"], Verdict) and got["verdict"] == value


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (lambda x: x, "function"),
        (object(), "object"),
        (Color.RED, "test_codec.Color"),
        ({1: "int key"}, "dict"),
        ({"s": {1, 2}}, "set"),
        (ChatPromptTemplate.from_messages([("human", "{q}")]), "ChatPromptTemplate"),
        (AIMessage("x", additional_kwargs={"obj": object()}), "AIMessage['additional_kwargs']"),
    ],
)
def test_values_that_cannot_be_stored_are_refused_by_name(value: Any, type_name: str) -> None:
    with pytest.raises(OutputNotStorableError) as info:
        encode(value, what="task 'draft' output")
    message = str(info.value)
    assert message.startswith("task 'draft' output cannot be stored: ")
    assert type_name in message and "\n" not in message
    assert isinstance(info.value, TypeError)


def test_a_socket_is_refused_with_where_it_is() -> None:
    with (
        socket.socket() as sock,
        pytest.raises(OutputNotStorableError, match=r"socket\.socket at \['a'\]\[1\]"),
    ):
        encode({"a": [1, sock]}, what="memory 'k'")


def test_a_model_defined_in_a_function_is_refused() -> None:
    class Local(BaseModel):
        x: int

    with pytest.raises(OutputNotStorableError, match="inside a function"):
        encode(Local(x=1), what="task 'a' output")


def test_reading_never_imports_a_module_or_revives_a_class_outside_the_allowlist() -> None:
    assert "antigravity" not in sys.modules
    blobs = [
        {"$lc": {"lc": 1, "type": "constructor", "id": ["antigravity", "Thing"], "kwargs": {}}},
        {
            "$lc": {
                "lc": 1,
                "type": "constructor",
                "id": ["langchain_core", "prompts", "chat", "ChatPromptTemplate"],
                "kwargs": {},
            }
        },
        {"$model": "antigravity:Thing", "data": {}},
        {"$model": "os:system", "data": "echo hi"},
        # a LangChain object (here a message) only comes back through the allowlist
        {"$model": "langchain_core.messages.ai:AIMessage", "data": {"content": "x"}},
        {"$nope": 1},
    ]
    for blob in blobs:
        with pytest.raises(StoreError):
            decode(blob)
    assert "antigravity" not in sys.modules


def test_a_message_subclass_is_not_stored_as_its_base_class() -> None:
    class Tagged(AIMessage):
        tag: str = "x"

    with pytest.raises(OutputNotStorableError, match="Tagged"):
        encode(Tagged("hi"), what="task 'a' output")


def test_an_escaped_user_dict_is_data_not_an_object() -> None:
    # what LangChain's serializer writes for user data shaped like one of its objects
    evil = {
        "lc": 1,
        "type": "constructor",
        "id": ["langchain_core", "prompts", "chat", "ChatPromptTemplate"],
        "kwargs": {},
    }
    got = _through_json(Document(page_content="x", metadata={"payload": evil}))
    assert got.metadata == {"payload": evil}
