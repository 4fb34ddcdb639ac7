"""OpenTelemetryCallbackHandler on real LangChain objects: spans, attributes, metrics."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from langchain_runtime import Budget, Orchestrator, RunPolicy, RunState, Task, Usage
from langchain_runtime.cost import CostCalculator
from tests.unit.observability.conftest import OpenAIMock, Telemetry, completion

USAGE = Usage(input_tokens=11, output_tokens=7, cache_read_tokens=4, reasoning_tokens=2)


def chat_model(**kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(model="gpt-4o-mini", max_retries=0, timeout=5, **kwargs)


def diamond(model: ChatOpenAI) -> list[Task]:
    return [
        Task("a", prompt="Research {topic}", model=model),
        Task("b", prompt="Criticise {topic}", model=model),
        Task("c", prompt="Merge {a} and {b}", model=model, deps=["a", "b"]),
    ]


def by_id(spans: list[ReadableSpan]) -> dict[int, ReadableSpan]:
    return {s.context.span_id: s for s in spans}


def parent_of(span: ReadableSpan, spans: list[ReadableSpan]) -> ReadableSpan | None:
    assert span.parent is not None or span.name.startswith("invoke_workflow")
    return by_id(spans).get(span.parent.span_id) if span.parent else None


def test_an_orchestrated_run_is_one_trace_run_task_chat_with_genai_attributes(
    telemetry: Telemetry, openai_mock: Any
) -> None:
    mock: OpenAIMock = openai_mock()
    orch = Orchestrator(
        diamond(chat_model()), policy=RunPolicy(budget=Budget(max_cost=Decimal("0.5")))
    )
    result = orch.invoke(
        {"topic": "owls"}, {"callbacks": [telemetry.handler], "run_name": "research"}
    )
    assert result.state is RunState.COMPLETED, result.error
    spans = telemetry.spans()
    assert len(spans) == 7 and len({s.context.trace_id for s in spans}) == 1
    [run] = telemetry.named("invoke_workflow")
    assert run.name == "invoke_workflow research" and run.parent is None
    assert run.attributes["langchain_runtime.run.state"] == "completed"
    assert run.attributes["gen_ai.usage.input_tokens"] == 33
    tasks = {s.attributes["langchain_runtime.task.id"]: s for s in telemetry.named("task ")}
    assert sorted(tasks) == ["a", "b", "c"]
    for tid, task_span in tasks.items():
        assert task_span.name == f"task {tid}"
        assert parent_of(task_span, spans) is run
        assert task_span.attributes["langchain_runtime.task.state"] == "completed"
        assert task_span.attributes["langchain_runtime.task.attempt"] == 1
    chats = telemetry.named("chat ")
    assert len(chats) == 3
    calc = CostCalculator()
    expected_cost = calc.cost("gpt-4o-mini", USAGE)
    sent_limits = sorted(b.get("max_tokens") or b.get("max_completion_tokens") for b in mock.bodies)
    seen_limits = []
    for chat in chats:
        tid = chat.attributes["langchain_runtime.task.id"]
        # each call nests under its own task, though a and b ran concurrently
        assert parent_of(chat, spans) is tasks[tid]
        assert chat.kind is SpanKind.CLIENT
        attrs = chat.attributes
        assert chat.name == "chat gpt-4o-mini"
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.provider.name"] == "openai"
        assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
        assert attrs["gen_ai.response.model"] == "gpt-4o-mini"
        assert attrs["gen_ai.usage.input_tokens"] == 11
        assert attrs["gen_ai.usage.output_tokens"] == 7
        assert attrs["gen_ai.usage.cache_read.input_tokens"] == 4
        assert attrs["gen_ai.usage.cache_creation.input_tokens"] == 0
        assert attrs["gen_ai.usage.reasoning.output_tokens"] == 2
        assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
        assert attrs["gen_ai.usage.cost.amount"] == float(expected_cost.amount)
        assert attrs["gen_ai.usage.cost.amount"] == float(result.tasks[tid].cost.amount)
        assert attrs["gen_ai.usage.cost.currency"] == "USD"
        assert "gen_ai.input.messages" not in attrs and "gen_ai.output.messages" not in attrs
        seen_limits.append(attrs["gen_ai.request.max_tokens"])
    # the limit on the span is the clamped one actually sent
    assert sorted(seen_limits) == sent_limits
    assert all(isinstance(n, int) and n > 0 for n in sent_limits)


def test_metrics_follow_the_genai_conventions(telemetry: Telemetry, openai_mock: Any) -> None:
    openai_mock()
    orch = Orchestrator(diamond(chat_model()))
    result = orch.invoke({"topic": "owls"}, {"callbacks": [telemetry.handler]})
    assert result.state is RunState.COMPLETED
    tokens = telemetry.metric_points("gen_ai.client.token.usage")
    by_type = {p.attributes["gen_ai.token.type"]: p for p in tokens}
    assert by_type["input"].sum == 33 and by_type["input"].count == 3
    assert by_type["output"].sum == 21 and by_type["output"].count == 3
    assert by_type["input"].attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert by_type["input"].attributes["gen_ai.provider.name"] == "openai"
    [duration] = telemetry.metric_points("gen_ai.client.operation.duration")
    assert duration.count == 3 and duration.sum > 0
    [cost] = telemetry.metric_points("langchain_runtime.client.cost")
    assert cost.value == pytest.approx(float(result.cost.amount))
    assert cost.attributes["gen_ai.usage.cost.currency"] == "USD"


@pytest.mark.anyio
async def test_parallel_async_tasks_overlap_and_keep_their_own_parents(
    telemetry: Telemetry, openai_mock: Any
) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        await asyncio.sleep(0.05)
        return httpx.Response(200, json=completion(f"re: {body['messages'][-1]['content']}"))

    mock: OpenAIMock = openai_mock()
    mock.route.side_effect = slow
    tasks = [Task(t, prompt=f"{t} about {{topic}}", model=chat_model()) for t in "pqrs"]
    orch = Orchestrator(tasks, policy=RunPolicy(max_parallelism=4))
    result = await orch.ainvoke({"topic": "owls"}, {"callbacks": [telemetry.handler]})
    assert result.state is RunState.COMPLETED
    spans = telemetry.spans()
    chats = telemetry.named("chat ")
    assert len(chats) == 4
    # they really ran at once: every call started before any ended
    assert max(c.start_time for c in chats) < min(c.end_time for c in chats)
    for chat in chats:
        parent = parent_of(chat, spans)
        assert (
            parent is not None
            and parent.name == f"task {chat.attributes['langchain_runtime.task.id']}"
        )


def test_a_failed_task_has_error_status(telemetry: Telemetry, openai_mock: Any) -> None:
    def answer(body: dict[str, Any]) -> httpx.Response:
        if "Criticise" in body["messages"][-1]["content"]:
            return httpx.Response(500, json={"error": {"message": "boom", "type": "server_error"}})
        return httpx.Response(200, json=completion())

    openai_mock(answer)
    orch = Orchestrator(diamond(chat_model()), policy=RunPolicy(fail_fast=False))
    result = orch.invoke({"topic": "owls"}, {"callbacks": [telemetry.handler]})
    assert result.state is RunState.FAILED
    assert result.tasks["a"].state.value == "completed"
    tasks = {s.attributes["langchain_runtime.task.id"]: s for s in telemetry.named("task ")}
    failed = tasks["b"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["langchain_runtime.task.state"] == "failed"
    assert any(e.name == "exception" for e in failed.events)
    assert tasks["a"].status.status_code is StatusCode.UNSET
    assert tasks["a"].attributes["langchain_runtime.task.state"] == "completed"
    [chat_b] = [
        c for c in telemetry.named("chat ") if c.attributes["langchain_runtime.task.id"] == "b"
    ]
    assert chat_b.status.status_code is StatusCode.ERROR
    # the provider's error class names both (langchain-openai wraps the SDK's error)
    assert str(failed.attributes["error.type"]).endswith("Error")
    assert failed.attributes["error.type"] == chat_b.attributes["error.type"]
    assert "boom" in str(chat_b.status.description)
    [run] = telemetry.named("invoke_workflow")
    assert run.status.status_code is StatusCode.ERROR
    assert "c" not in tasks  # skipped: it never started, so it has no span


def test_a_refused_call_sends_nothing_and_records_the_refusal(
    telemetry: Telemetry, openai_mock: Any
) -> None:
    mock: OpenAIMock = openai_mock()
    # a prebuilt chain is not planned by the run: its call reserves, and is refused,
    # inside the budget handler's on_chat_model_start
    chain = ChatPromptTemplate.from_template("Write about {topic}") | chat_model(max_tokens=4000)
    orch = Orchestrator(
        [Task("essay", chain, model="gpt-4o-mini")],
        policy=RunPolicy(budget=Budget(max_cost=Decimal("0.0001"))),
    )
    result = orch.invoke({"topic": "owls"}, {"callbacks": [telemetry.handler]})
    assert result.state is RunState.BUDGET_EXCEEDED
    assert mock.route.call_count == 0
    [chat] = telemetry.named("chat ")
    assert chat.status.status_code is StatusCode.ERROR
    [refusal] = [e for e in chat.events if e.name == "langchain_runtime.budget.refused"]
    assert refusal.attributes["langchain_runtime.budget.limit"] == pytest.approx(0.0001)
    assert refusal.attributes["langchain_runtime.budget.spent"] == 0
    assert "Budget exceeded" in refusal.attributes["langchain_runtime.budget.message"]
    assert chat.attributes["gen_ai.request.max_tokens"] == 4000
    [task] = telemetry.named("task ")
    assert task.status.status_code is StatusCode.ERROR
    assert task.attributes["error.type"] == "BudgetExceededError"
    # recorded once, on the call, not again on the task or the run
    all_refusals = [e for s in telemetry.spans() for e in s.events if e.name.endswith("refused")]
    assert len(all_refusals) == 1


def test_content_is_recorded_only_when_asked(telemetry: Telemetry, openai_mock: Any) -> None:
    from langchain_runtime.observability import OpenTelemetryCallbackHandler

    openai_mock()
    handler = OpenTelemetryCallbackHandler(
        tracer_provider=telemetry.tracer_provider, capture_content=True
    )
    chat_model().invoke("Tell me about owls", config={"callbacks": [handler]})
    [chat] = telemetry.named("chat ")
    inputs = json.loads(str(chat.attributes["gen_ai.input.messages"]))
    outputs = json.loads(str(chat.attributes["gen_ai.output.messages"]))
    assert inputs == [
        {"role": "user", "parts": [{"type": "text", "content": "Tell me about owls"}]}
    ]
    assert outputs[0]["parts"][0]["content"] == "re: Tell me about owls"
    assert outputs[0]["finish_reason"] == "stop"
    # a bare model call is a root span of its own
    assert chat.parent is None


def test_the_same_handler_traces_a_create_agent_agent(
    telemetry: Telemetry, openai_mock: Any
) -> None:
    from langchain.agents import create_agent
    from langchain_core.tools import tool

    @tool
    def lookup(city: str) -> str:
        """The weather in a city."""
        return f"{city}: 18C"

    def answer(body: dict[str, Any]) -> httpx.Response:
        if body["messages"][-1]["role"] == "tool":
            return httpx.Response(200, json=completion("Paris is 18C."))
        function = {"name": "lookup", "arguments": json.dumps({"city": "Paris"})}
        call = {"id": "t1", "type": "function", "function": function}
        return httpx.Response(200, json=completion("", tool_calls=[call]))

    mock: OpenAIMock = openai_mock(answer)
    agent = create_agent(chat_model(), tools=[lookup])
    out = agent.invoke(
        {"messages": [("user", "Weather in Paris?")]}, {"callbacks": [telemetry.handler]}
    )
    assert out["messages"][-1].content == "Paris is 18C."
    assert mock.route.call_count == 2
    spans = telemetry.spans()
    [root] = telemetry.named("invoke_workflow")
    chats = telemetry.named("chat ")
    [tool_span] = telemetry.named("execute_tool")
    assert len(chats) == 2 and tool_span.name == "execute_tool lookup"
    assert all(parent_of(s, spans) is root for s in [*chats, tool_span])
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    assert [c.attributes["gen_ai.response.finish_reasons"] for c in chats] in (
        [("tool_calls",), ("stop",)],
        [("stop",), ("tool_calls",)],
    )
    assert sum(c.attributes["gen_ai.usage.input_tokens"] for c in chats) == 22


def test_each_attempt_of_a_retried_task_is_a_span_numbered_in_order(
    telemetry: Telemetry,
) -> None:
    calls = {"n": 0}

    def flaky(inp: dict[str, Any]) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("transient")
        return "ok"

    orch = Orchestrator([Task("flaky", flaky, max_retries=2)], policy=RunPolicy(retry_backoff=0))
    result = orch.invoke({}, {"callbacks": [telemetry.handler]})
    assert result.state is RunState.COMPLETED and result.tasks["flaky"].attempts == 2
    attempts = sorted(telemetry.named("task "), key=lambda s: s.start_time)
    assert [s.attributes["langchain_runtime.task.attempt"] for s in attempts] == [1, 2]
    assert [s.attributes["langchain_runtime.task.state"] for s in attempts] == [
        "failed",
        "completed",
    ]
    assert attempts[0].status.status_code is StatusCode.ERROR


def test_instrument_langchain_traces_runs_that_pass_no_callbacks(telemetry: Telemetry) -> None:
    from langchain_runtime.observability import instrument_langchain, uninstrument_langchain
    from langchain_runtime.testing import SimulatedChatModel

    model = SimulatedChatModel()
    orch = Orchestrator([Task("a", prompt="Say {x}", model=model)])
    instrument_langchain(telemetry.handler)
    try:
        # a background run: the handler reaches the run's own thread too
        handle = orch.start({"x": "hi"}, {"metadata": {"api_run_id": "run-42"}})
        assert handle.result(timeout=10).state is RunState.COMPLETED
    finally:
        uninstrument_langchain()
    names = sorted(s.name for s in telemetry.spans())
    assert names == ["chat simulated", "invoke_workflow Orchestrator", "task a"]
    [run] = telemetry.named("invoke_workflow")
    assert telemetry.handler.trace_id_for("run-42") == format(run.context.trace_id, "032x")
    orch.invoke({"x": "again"})
    assert len(telemetry.spans()) == 3  # uninstrumented: nothing new


def test_a_task_refused_before_it_starts_is_a_refusal_on_the_run_span(
    telemetry: Telemetry,
) -> None:
    from langchain_runtime.testing import SimulatedChatModel

    orch = Orchestrator(
        [Task("essay", prompt="Write about {topic} " * 50, model=SimulatedChatModel())],
        policy=RunPolicy(budget=Budget(max_tokens=20)),
    )
    result = orch.invoke({"topic": "owls"}, {"callbacks": [telemetry.handler]})
    assert result.state is RunState.BUDGET_EXCEEDED
    assert telemetry.named("chat ") == []  # nothing was called
    [run] = telemetry.named("invoke_workflow")
    assert run.status.status_code is StatusCode.ERROR
    [refusal] = [e for e in run.events if e.name == "langchain_runtime.budget.refused"]
    assert refusal.attributes["langchain_runtime.task.id"] == "essay"
    message = str(refusal.attributes["langchain_runtime.budget.message"])
    assert "cannot pay for a single output token" in message


@pytest.mark.anyio
async def test_a_refusal_on_the_async_path_is_recorded_the_same_way(
    telemetry: Telemetry, openai_mock: Any
) -> None:
    mock: OpenAIMock = openai_mock()
    chain = ChatPromptTemplate.from_template("Write about {topic}") | chat_model(max_tokens=4000)
    orch = Orchestrator(
        [Task("essay", chain, model="gpt-4o-mini")],
        policy=RunPolicy(budget=Budget(max_cost=Decimal("0.0001"))),
    )
    result = await orch.ainvoke({"topic": "owls"}, {"callbacks": [telemetry.handler]})
    assert result.state is RunState.BUDGET_EXCEEDED and mock.route.call_count == 0
    [chat] = telemetry.named("chat ")
    assert [e.name for e in chat.events] == ["langchain_runtime.budget.refused", "exception"]
    assert chat.events[1].attributes["exception.type"].endswith("BudgetExceededError")
    assert chat.status.status_code is StatusCode.ERROR


def test_a_streamed_call_has_its_usage_and_cost(telemetry: Telemetry) -> None:
    from langchain_runtime.testing import SimulatedChatModel

    model = SimulatedChatModel(response_tokens=12)
    chunks = list(model.stream("hello there", config={"callbacks": [telemetry.handler]}))
    assert chunks
    [chat] = telemetry.named("chat ")
    assert chat.attributes["gen_ai.usage.output_tokens"] == 12
    expected = CostCalculator().cost("simulated", Usage(
        input_tokens=chat.attributes["gen_ai.usage.input_tokens"], output_tokens=12))  # fmt: skip
    assert chat.attributes["gen_ai.usage.cost.amount"] == float(expected.amount)
    assert chat.attributes["gen_ai.provider.name"] == "simulated"


def test_an_aborted_run_ends_every_span_and_marks_the_task_cancelled(
    telemetry: Telemetry,
) -> None:
    import threading

    from langchain_core.runnables import RunnableLambda

    started = threading.Event()

    async def long(_: Any) -> str:
        started.set()
        await asyncio.sleep(10)
        return "never"

    orch = Orchestrator([Task("long", RunnableLambda(long))])
    handle = orch.start({}, {"callbacks": [telemetry.handler]})
    assert started.wait(10)
    assert handle.abort()
    assert handle.result(timeout=10).state is RunState.ABORTED
    [task] = telemetry.named("task ")
    assert task.attributes["langchain_runtime.task.state"] == "cancelled"
    assert task.status.status_code is StatusCode.ERROR
    [run] = telemetry.named("invoke_workflow")
    assert run.status.status_code is StatusCode.ERROR
    assert run.end_time is not None and task.end_time is not None
