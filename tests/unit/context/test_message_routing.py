"""A list of chat messages routes as a list; a single message as its text where text is expected."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder

from langchain_runtime import ContextPolicy, ContextRouter, Orchestrator, RunPolicy, Task
from langchain_runtime.testing import ScriptedChatModel, SimulatedChatModel
from tests.unit.context._helpers import Recorder, tokens, words

HISTORY: list[BaseMessage] = [
    SystemMessage("sys"),
    HumanMessage("q1"),
    AIMessage("a1"),
    HumanMessage("q2"),
    AIMessage("a2"),
    HumanMessage("q3"),
]

CHAT = ChatPromptTemplate.from_messages(
    [MessagesPlaceholder("history"), ("human", "Answer the last question about {topic}")]
)


def history_task(**kwargs: Any) -> Task:
    return Task("history", lambda _: list(HISTORY), **kwargs)


def answer_task(model: Any, **kwargs: Any) -> Task:
    return Task("answer", prompt=CHAT, model=model, **kwargs)


def sent(recorder: Recorder, index: int = -1) -> list[tuple[str, str]]:
    return [(m.type, m.text) for m in recorder.starts[index]["messages"]]


EXPECTED_ALL = [(m.type, m.text) for m in HISTORY] + [
    ("human", "Answer the last question about owls")
]


def test_a_history_reaches_a_messages_placeholder_by_default_routing() -> None:
    recorder = Recorder()
    orch = Orchestrator(
        [history_task(), answer_task(ScriptedChatModel(responses=["ok"]), deps=["history"])]
    )
    result = orch.invoke({"topic": "owls"}, {"callbacks": [recorder]})
    assert result.ok, result.error
    assert sent(recorder) == EXPECTED_ALL


@pytest.mark.parametrize(
    ("source", "setup"),
    [
        ("log", {"deps": ["log"]}),
        ("$input.past", {}),
        ("$memory.past", {"deps": ["log"]}),
    ],
    ids=["renamed", "run-input", "memory"],
)
def test_a_history_reaches_a_messages_placeholder_from_every_source(
    source: str, setup: dict[str, Any]
) -> None:
    recorder = Recorder()
    tasks = [
        Task("log", lambda _: list(HISTORY), memory_key="past"),
        answer_task(ScriptedChatModel(responses=["ok"]), inputs={"history": source}, **setup),
    ]
    result = Orchestrator(tasks).invoke(
        {"topic": "owls", "past": list(HISTORY)}, {"callbacks": [recorder]}
    )
    assert result.ok, result.error
    assert sent(recorder) == EXPECTED_ALL


def test_a_history_into_a_text_variable_is_its_texts_joined() -> None:
    recorder = Recorder()
    orch = Orchestrator(
        [
            history_task(),
            Task(
                "answer",
                prompt="Conversation:\n{history}",
                model=ScriptedChatModel(responses=["ok"]),
                deps=["history"],
            ),
        ]
    )
    assert orch.invoke({}, {"callbacks": [recorder]}).ok
    assert sent(recorder) == [("human", "Conversation:\nsys\nq1\na1\nq2\na2\nq3")]


def test_a_callable_receives_the_list_of_messages() -> None:
    seen: dict[str, Any] = {}
    orch = Orchestrator(
        [history_task(), Task("use", lambda x: seen.update(x) or 1, deps=["history"])]
    )
    assert orch.invoke({}).ok
    assert seen["history"] == HISTORY


def test_a_single_message_routes_as_text_and_as_a_list_into_a_placeholder() -> None:
    router = ContextRouter()
    model = SimulatedChatModel()
    reply = AIMessage("the answer")
    text_task = Task("t", prompt="Use {a}", model=model, deps=["a"])
    chat_task = Task(
        "c",
        prompt=ChatPromptTemplate.from_messages([MessagesPlaceholder("a"), ("human", "go")]),
        model=model,
        deps=["a"],
    )
    callable_task = Task("f", lambda x: x, deps=["a"])
    assert router.route(text_task, {"a": reply}, {}) == {"a": "the answer"}
    assert router.route(chat_task, {"a": reply}, {}) == {"a": [reply]}
    assert router.route(callable_task, {"a": reply}, {}) == {"a": "the answer"}


def test_a_history_inside_a_dict_output_is_selected_as_a_list() -> None:
    router = ContextRouter()
    task = answer_task(SimulatedChatModel(), inputs={"history": "chat.messages"})
    routed = router.route(task, {"chat": {"messages": list(HISTORY)}}, {"topic": "x"})
    assert routed["history"] == HISTORY


def test_keep_last_n_compacts_a_routed_history_inside_a_run_keeping_the_system_message() -> None:
    recorder = Recorder()
    policy = ContextPolicy(strategy="keep_last_n", keep_last_n=2)
    orch = Orchestrator(
        [
            history_task(),
            answer_task(ScriptedChatModel(responses=["ok"]), deps=["history"], context=policy),
        ]
    )
    result = orch.invoke({"topic": "owls"}, {"callbacks": [recorder]})
    assert result.ok, result.error
    assert sent(recorder) == [
        ("system", "sys"),
        ("ai", "a2"),
        ("human", "q3"),
        ("human", "Answer the last question about owls"),
    ]
    info = result.tasks["answer"].compaction
    assert info is not None
    assert info["strategy"] == "keep_last_n" and info["changed"] is True
    assert info["tokens_before"] == tokens(HISTORY)
    assert info["tokens_after"] == tokens([HISTORY[0], HISTORY[4], HISTORY[5]])
    assert info["variables"]["history"]["action"] == "trimmed"
    assert [e.type for e in result.events].count("context_compacted") == 1


def test_truncate_cuts_a_routed_history_by_whole_messages_inside_a_run() -> None:
    long_history: list[BaseMessage] = [
        SystemMessage("be brief"),
        HumanMessage(words(50, "alpha")),
        AIMessage(words(50, "beta")),
        HumanMessage("final question"),
    ]
    recorder = Recorder()
    limit = tokens([long_history[0], long_history[3]]) + 5
    policy = RunPolicy(context=ContextPolicy(strategy="truncate", max_tokens=limit, keep="tail"))
    orch = Orchestrator(
        [
            Task("history", lambda _: list(long_history)),
            answer_task(ScriptedChatModel(responses=["ok"]), deps=["history"]),
        ],
        policy=policy,
    )
    result = orch.invoke({"topic": "owls"}, {"callbacks": [recorder]})
    assert result.ok, result.error
    kinds = sent(recorder)
    assert kinds[0] == ("system", "be brief")
    assert kinds[-2] == ("human", "final question")
    assert all("alpha" not in text for _, text in kinds)
    info = result.tasks["answer"].compaction
    assert info is not None and info["strategy"] == "truncate"
    assert info["tokens_before"] == tokens(long_history)
    assert info["tokens_after"] <= limit < info["tokens_before"]
