from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import RunnableLambda

from langchain_runtime import (
    ConfigurationError,
    InvalidInputError,
    Orchestrator,
    RunPolicy,
    RunResult,
    RunState,
    Task,
    TaskExecutionError,
    TaskResult,
    TaskState,
)
from langchain_runtime.testing import SimulatedChatModel

from .conftest import Tracker


def test_invoke_routes_outputs_by_task_id() -> None:
    seen: dict[str, Any] = {}

    def b(inp: dict[str, Any]) -> str:
        seen.update(inp)
        return inp["a"] + "+b"

    orch = Orchestrator([Task("a", lambda x: "A"), Task("b", b, deps=["a"])])
    result = orch.invoke({"topic": "owls"})
    assert result.state is RunState.COMPLETED
    assert result["b"] == "A+b"
    assert seen == {"topic": "owls", "a": "A"}


def test_inputs_rename_select_fields_and_read_run_input() -> None:
    got: dict[str, Any] = {}
    orch = Orchestrator(
        [
            Task("research", lambda x: {"summary": "S", "facts": ["f1"]}),
            Task(
                "draft",
                lambda x: got.update(x) or "ok",
                inputs={"notes": "research.summary", "t": "$input.topic", "all": "research"},
            ),
        ]
    )
    orch.invoke({"topic": "owls"})
    assert got["notes"] == "S"
    assert got["t"] == "owls"
    assert got["all"] == {"summary": "S", "facts": ["f1"]}


def test_missing_field_is_a_task_failure_naming_task_and_variable() -> None:
    orch = Orchestrator(
        [
            Task("research", lambda x: {"summary": "S"}),
            Task("draft", lambda x: x, inputs={"notes": "research.nope"}),
        ]
    )
    result = orch.invoke({})
    assert result.state is RunState.FAILED
    err = result.tasks["draft"].error
    assert err is not None and "task 'draft'" in err.message and "'notes'" in err.message
    assert "'nope'" in err.message


def test_chat_message_routes_as_text_into_prompt() -> None:
    model = SimulatedChatModel(response_tokens=3)
    prompts: list[str] = []

    def capture(inp: dict[str, Any]) -> str:
        prompts.append(inp["first"])
        return "done"

    orch = Orchestrator(
        [
            Task("first", prompt="Say something about {topic}", model=model),
            Task("second", capture, deps=["first"]),
        ]
    )
    result = orch.invoke({"topic": "owls"})
    assert isinstance(result["first"], AIMessage)
    assert prompts == [result["first"].text]


def test_missing_run_input_is_refused_before_anything_runs(tracker: Tracker) -> None:
    model = SimulatedChatModel()
    orch = Orchestrator([Task("a", prompt="About {topic}", model=model)])
    assert orch.required_inputs == {"topic"}
    with pytest.raises(InvalidInputError, match=r"'topic' \(used by a\)"):
        orch.invoke({"other": 1})
    schema = orch.get_input_schema().model_json_schema()
    assert schema["required"] == ["topic"]


def test_output_selects_a_task_and_composes_in_a_chain() -> None:
    model = SimulatedChatModel(response_tokens=4)
    orch = Orchestrator(
        [
            Task("a", prompt="Topic {topic}", model=model),
            Task("b", prompt="Expand {a}", model=model, deps=["a"]),
        ],
        output="b",
    )
    chain = RunnableLambda(lambda s: {"topic": s}) | orch | StrOutputParser()
    text = chain.invoke("owls")
    assert isinstance(text, str) and len(text.split()) == 4
    assert chain.invoke("owls") == text  # deterministic


def test_output_naming_unknown_task_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="output='zz'"):
        Orchestrator([Task("a", lambda x: 1)], output="zz")


def test_output_task_failure_raises_with_cause() -> None:
    def boom(_: Any) -> None:
        raise KeyError("bad")

    orch = Orchestrator([Task("a", boom)], output="a")
    with pytest.raises(TaskExecutionError) as err:
        orch.invoke({})
    assert err.value.task_id == "a"
    assert isinstance(err.value.__cause__, KeyError)


def test_batch_and_abatch() -> None:
    orch = Orchestrator([Task("echo", lambda x: x["n"] * 2)], output="echo")
    assert orch.batch([{"n": 1}, {"n": 2}, {"n": 3}]) == [2, 4, 6]
    assert asyncio.run(orch.abatch([{"n": 4}, {"n": 5}])) == [8, 10]


@pytest.mark.anyio
async def test_astream_yields_each_task_then_the_result(tracker: Tracker) -> None:
    orch = Orchestrator(
        [
            Task("a", tracker.task("a", 0.01)),
            Task("b", tracker.task("b", 0.01), deps=["a"]),
            Task("c", tracker.task("c", 0.01), deps=["a"]),
        ]
    )
    items = [item async for item in orch.astream({})]
    assert next(i.task_id for i in items[:-1] if isinstance(i, TaskResult)) == "a"
    assert sorted(i.task_id for i in items[:-1]) == ["a", "b", "c"]
    assert isinstance(items[-1], RunResult) and items[-1].ok


def test_sync_stream_and_early_close(tracker: Tracker) -> None:
    orch = Orchestrator([Task(f"t{i}", tracker.task(f"t{i}", 0.01)) for i in range(3)])
    items = list(orch.stream({}))
    assert len(items) == 4 and isinstance(items[-1], RunResult)
    it = orch.stream({})
    first = next(it)
    assert isinstance(first, TaskResult)
    it.close()  # cancels the run behind it without hanging


def test_stream_with_output_yields_only_that_output() -> None:
    orch = Orchestrator([Task("a", lambda x: "A")], output="a")
    assert list(orch.stream({})) == ["A"]


@pytest.mark.anyio
async def test_astream_events_tasks_are_child_runs_named_by_task_id() -> None:
    model = SimulatedChatModel(response_tokens=3)
    orch = Orchestrator(
        [
            Task("research", prompt="About {topic}", model=model),
            Task("summary", prompt="Sum {research}", model=model, deps=["research"]),
        ]
    )
    starts: dict[str, dict[str, Any]] = {}
    root_id = None
    async for ev in orch.astream_events(
        {"topic": "owls"}, version="v2", config={"tags": ["mytag"], "metadata": {"who": "me"}}
    ):
        if ev["event"] == "on_chain_start":
            if root_id is None:
                root_id = ev["run_id"]
                assert ev["name"] == "Orchestrator"
            starts.setdefault(ev["name"], ev)
    assert {"research", "summary"} <= set(starts)
    for name in ("research", "summary"):
        ev = starts[name]
        assert root_id in ev["parent_ids"]
        assert "mytag" in ev["tags"]
        assert ev["metadata"]["who"] == "me"
        assert ev["metadata"]["lcr_task_id"] == name


def test_callbacks_see_parent_and_child_runs() -> None:
    class Recorder(BaseCallbackHandler):
        def __init__(self) -> None:
            self.chains: list[tuple[str | None, UUID | None]] = []

        def on_chain_start(
            self,
            serialized: Any,
            inputs: Any,
            *,
            run_id: UUID,
            parent_run_id: UUID | None = None,
            **kwargs: Any,
        ) -> None:
            self.chains.append((kwargs.get("name"), parent_run_id))

    rec = Recorder()
    Orchestrator([Task("a", lambda x: 1), Task("b", lambda x: 2)]).invoke(
        {}, config={"callbacks": [rec], "run_name": "my-run"}
    )
    names = [n for n, _ in rec.chains]
    assert names[0] == "my-run" and {"a", "b"} <= set(names)


def test_max_parallelism_is_a_hard_bound(tracker: Tracker) -> None:
    orch = Orchestrator(
        [Task(f"t{i:02d}", tracker.task(f"t{i:02d}", 0.01)) for i in range(20)],
        policy=RunPolicy(max_parallelism=3),
    )
    result = orch.invoke({})
    assert result.ok and tracker.peak == 3
    # batched: tasks start in id order
    assert tracker.started == sorted(tracker.started)


def test_max_concurrency_from_config_caps_parallelism(tracker: Tracker) -> None:
    orch = Orchestrator(
        [Task(f"t{i}", tracker.task(f"t{i}", 0.01)) for i in range(10)],
        policy=RunPolicy(max_parallelism=8),
    )
    orch.invoke({}, config={"max_concurrency": 2})
    assert tracker.peak == 2


@pytest.mark.parametrize("scheduling", ["batched", "eager"])
def test_eager_and_batched_bound_parallelism(tracker: Tracker, scheduling: str) -> None:
    tasks = [Task("root", tracker.task("root"))]
    tasks += [
        Task(f"m{i}", tracker.task(f"m{i}", 0.005 * (i % 3)), deps=["root"]) for i in range(12)
    ]
    tasks += [Task("sink", tracker.task("sink"), deps=[f"m{i}" for i in range(12)])]
    result = Orchestrator(tasks, policy=RunPolicy(max_parallelism=4, scheduling=scheduling)).invoke(
        {}
    )
    assert result.ok and result.scheduling == scheduling
    assert tracker.peak == 4
    assert tracker.started[0] == "root" and tracker.started[-1] == "sink"


def test_eager_starts_dependents_without_waiting_for_the_batch(tracker: Tracker) -> None:
    tasks = [
        Task("slow", tracker.task("slow", 0.2)),
        Task("fast", tracker.task("fast")),
        Task("after_fast", tracker.task("after_fast"), deps=["fast"]),
    ]
    Orchestrator(tasks, policy=RunPolicy(scheduling="eager")).invoke({})
    assert tracker.finished.index("after_fast") < tracker.finished.index("slow")
    tracker2 = Tracker()
    tasks = [
        Task("slow", tracker2.task("slow", 0.2)),
        Task("fast", tracker2.task("fast")),
        Task("after_fast", tracker2.task("after_fast"), deps=["fast"]),
    ]
    Orchestrator(tasks).invoke({})
    assert tracker2.finished.index("after_fast") > tracker2.finished.index("slow")


@pytest.mark.anyio
async def test_sync_invoke_inside_a_running_event_loop() -> None:
    asyncio.get_running_loop()  # as in Jupyter: a loop is running in this thread
    orch = Orchestrator([Task("a", lambda x: 41), Task("b", lambda x: x["a"] + 1, deps=["a"])])
    assert orch.invoke({})["b"] == 42


def test_get_graph_draws_offline() -> None:
    orch = Orchestrator(
        [
            Task("a", lambda x: 1),
            Task("b", lambda x: 1, deps=["a"]),
            Task("c", lambda x: 1, deps=["a"]),
        ]
    )
    graph = orch.get_graph()
    assert set(graph.nodes) == {"__start__", "a", "b", "c", "__end__"}
    mermaid = graph.draw_mermaid()
    assert "a --> b;" in mermaid and "a --> c;" in mermaid and "__start__ --> a;" in mermaid


def test_repr_html_is_a_task_table() -> None:
    def boom(_: Any) -> None:
        raise RuntimeError("<nope>")

    result = Orchestrator(
        [Task("a", lambda x: 1), Task("b", boom)], policy=RunPolicy(fail_fast=False)
    ).invoke({})
    page = result._repr_html_()
    assert "<table class='lcr-tasks'>" in page
    assert "<td><code>a</code></td><td><span class='lcr-state'" in page
    assert "&lt;nope&gt;" in page and ">failed</span>" in page and "<nope>" not in page


def test_events_log_shape() -> None:
    result = Orchestrator(
        [Task("b", lambda x: 1), Task("a", lambda x: 1), Task("c", lambda x: 1, deps=["a", "b"])]
    ).invoke({})
    kinds = [(e.type, e.task_id) for e in result.events]
    assert kinds == [
        ("run_started", None),
        ("batch_started", None),
        ("task_completed", "a"),
        ("task_completed", "b"),
        ("batch_started", None),
        ("task_completed", "c"),
        ("run_finished", None),
    ]
    assert [e.seq for e in result.events] == list(range(len(kinds)))


def test_non_dict_input_is_available_as_input_key() -> None:
    orch = Orchestrator([Task("a", lambda x: x["input"].upper())], output="a")
    assert orch.invoke("owls") == "OWLS"


def test_task_states_all_terminal_on_success() -> None:
    result = Orchestrator([Task("a", lambda x: 1)]).invoke({})
    assert all(tr.state is TaskState.COMPLETED for tr in result.tasks.values())
    assert result.tasks["a"].duration is not None and result.tasks["a"].attempts == 1


def test_hot_path_models_equal_validated_ones() -> None:
    result = Orchestrator([Task("a", lambda x: 1)]).invoke({})
    tr = result.tasks["a"]
    assert TaskResult.model_validate(tr.model_dump()) == tr
    for ev in result.events:
        assert type(ev).model_validate(ev.model_dump()) == ev
    assert result.model_dump_json()  # serialises without warnings


def test_progress_bar_counts_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    result = Orchestrator([Task("a", lambda x: 1), Task("b", lambda x: 2, deps=["a"])]).invoke(
        {}, progress=True
    )
    assert result.ok
    err = capsys.readouterr().err
    assert "2/2" in err and "task" in err


@pytest.mark.anyio
async def test_astream_events_root_stream_comes_before_its_end() -> None:
    orch = Orchestrator([Task("a", lambda x: 1)])
    root = None
    order: list[str] = []
    async for ev in orch.astream_events({}, version="v2"):
        if root is None:
            root = ev["run_id"]
        if ev["run_id"] == root:
            order.append(ev["event"])
    assert order[0] == "on_chain_start" and order[-1] == "on_chain_end"
    assert "on_chain_stream" in order
