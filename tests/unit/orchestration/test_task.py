from __future__ import annotations

import pytest
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnableSequence

from langchain_runtime import GraphValidationError, Orchestrator, Task
from langchain_runtime.testing import SimulatedChatModel


def test_callable_is_wrapped_and_named() -> None:
    task = Task("a", lambda x: 1)
    assert isinstance(task.runnable, RunnableLambda)
    assert task.runnable.invoke({}) == 1


def test_prompt_text_pipes_into_model() -> None:
    task = Task("a", prompt="Tell me about {topic}", model=SimulatedChatModel())
    assert isinstance(task.runnable, RunnableSequence)
    assert task.prompt_variables == ("topic",)


def test_prompt_template_and_model_as_runnable() -> None:
    tmpl = ChatPromptTemplate.from_messages([("system", "Be brief"), ("human", "{q}")])
    task = Task("a", SimulatedChatModel(), prompt=tmpl)
    assert task.prompt_variables == ("q",)
    assert task.model is not None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give a runnable"),
        ({"prompt": "x {y}"}, "prompt= needs a model"),
        ({"prompt": "x", "model": "gpt-4o"}, "got the model id 'gpt-4o'"),
        ({"timeout": 0, "runnable": lambda x: x}, "timeout must be > 0"),
        ({"max_retries": -1, "runnable": lambda x: x}, "max_retries"),
        ({"runnable": 42}, "must be a Runnable or a callable"),
        ({"runnable": lambda x: x, "inputs": {"v": ""}}, "source string"),
    ],
)
def test_bad_task_arguments_are_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(GraphValidationError, match=message):
        Task("t", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "   ", "$x", 3])
def test_bad_ids(bad: object) -> None:
    with pytest.raises(GraphValidationError):
        Task(bad, lambda x: x)  # type: ignore[arg-type]


def test_inputs_make_implicit_dependencies() -> None:
    task = Task("b", lambda x: x, inputs={"notes": "research.summary", "t": "$input.topic"})
    assert task.deps == ("research",)


def test_model_id_string_is_kept_for_pricing() -> None:
    task = Task("a", lambda x: x, model="gpt-4o-mini")
    assert task.model_id == "gpt-4o-mini"


def test_prompt_variable_from_non_dependency_task_is_refused_at_build() -> None:
    m = SimulatedChatModel()
    with pytest.raises(GraphValidationError, match=r"\{a\}.*add deps=\['a'\]"):
        Orchestrator([Task("a", prompt="x", model=m), Task("b", prompt="use {a}", model=m)])


def test_prompt_variable_unknown_with_input_keys_is_refused_at_build() -> None:
    m = SimulatedChatModel()
    with pytest.raises(GraphValidationError, match=r"task 'b'.*\{topc\}"):
        Orchestrator(
            [Task("a", prompt="{topic}", model=m), Task("b", prompt="{topc}", model=m)],
            input_keys=["topic"],
        )


def test_inputs_naming_unknown_task_is_refused() -> None:
    with pytest.raises(GraphValidationError, match="unknown task 'ghost'"):
        Orchestrator([Task("b", lambda x: x, inputs={"v": "ghost.field"})])


def test_inputs_with_unknown_dollar_source_is_refused() -> None:
    with pytest.raises(GraphValidationError, match="not a known source"):
        Orchestrator([Task("b", lambda x: x, inputs={"v": "$env.HOME"})])


def test_a_chat_model_alone_answers_the_run_input() -> None:
    model = SimulatedChatModel(response_tokens=3)
    for task in (Task("a", model), Task("a", model=model)):
        assert task.prompt_variables == ("input",)
        orch = Orchestrator([task], output="a")
        assert (
            orch.invoke("Tell me about owls").content == model.invoke("Tell me about owls").content
        )
