"""Context policies, compaction and run memory through the orchestrator."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from langchain_runtime import Budget, ContextPolicy, Orchestrator, RunPolicy, RunState, Task
from langchain_runtime.context import current_memory
from langchain_runtime.context.memory import StagedMemory
from langchain_runtime.cost import TokenEstimator
from langchain_runtime.testing import SimulatedChatModel


def test_memory_key_stores_output_and_dependents_read_memory() -> None:
    seen: dict[str, Any] = {}
    orch = Orchestrator(
        [
            Task("facts", lambda x: ["owls hunt at night"], memory_key="facts"),
            Task(
                "use",
                lambda x: seen.update(x) or "ok",
                deps=["facts"],
                inputs={"remembered": "$memory.facts"},
            ),
        ]
    )
    result = orch.invoke({})
    assert result.memory == {"facts": ["owls hunt at night"]}
    assert seen["remembered"] == ["owls hunt at night"]
    writes = [(e.task_id, e.data["key"]) for e in result.events if e.type == "memory_write"]
    assert writes == [("facts", "facts")]


def test_task_code_reads_and_writes_run_memory() -> None:
    def writer(inp: dict[str, Any]) -> str:
        mem = current_memory()
        assert isinstance(mem, StagedMemory)
        mem.mset([("note", f"about {inp['topic']}")])
        return "w"

    def reader(_: dict[str, Any]) -> Any:
        return current_memory().get("note")

    result = Orchestrator([Task("w", writer), Task("r", reader, deps=["w"])]).invoke(
        {"topic": "owls"}
    )
    assert result["r"] == "about owls"
    assert result.memory["note"] == "about owls"
    ev = next(e for e in result.events if e.type == "memory_write")
    assert ev.task_id == "w"
    with pytest.raises(LookupError):
        current_memory()  # outside a run


def test_truncate_policy_keeps_the_prompt_within_budget() -> None:
    long_text = " ".join(["owl"] * 3000)
    prompts: list[str] = []

    class Capture(SimulatedChatModel):
        async def _agenerate(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
            prompts.append(messages[-1].text)
            return await super()._agenerate(messages, *args, **kwargs)

    orch = Orchestrator(
        [
            Task("big", lambda x: long_text),
            Task(
                "sum",
                prompt="Summarise: {big}",
                model=Capture(response_tokens=5),
                deps=["big"],
                context=ContextPolicy(max_tokens=200, strategy="truncate"),
            ),
        ]
    )
    result = orch.invoke({})
    assert result.ok
    est = TokenEstimator()
    assert est.count_text(prompts[0]) <= 200 + est.count_text("Summarise: ")
    assert "tokens truncated" in prompts[0]
    info = result.tasks["sum"].compaction
    assert info is not None and info["strategy"] == "truncate"
    assert info["tokens_before"] > 2000 and info["tokens_after"] <= 200
    assert any(e.type == "context_compacted" and e.task_id == "sum" for e in result.events)


def test_context_too_large_fails_before_any_model_call() -> None:
    calls: list[int] = []

    class Counting(SimulatedChatModel):
        async def _agenerate(self, *args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            return await super()._agenerate(*args, **kwargs)

    orch = Orchestrator(
        [
            Task("big", lambda x: "word " * 2000),
            Task(
                "use",
                prompt="{big}",
                model=Counting(),
                deps=["big"],
                context=ContextPolicy(max_tokens=50, strategy="none"),
            ),
        ]
    )
    result = orch.invoke({})
    assert result.state is RunState.FAILED
    assert result.tasks["use"].error is not None
    assert result.tasks["use"].error.code == "context_too_large"
    assert calls == []
    assert result.cost.amount == 0


def test_summarize_end_to_end_under_a_cost_budget() -> None:
    """Upstream tasks write far more than the downstream window; the summary fits,
    the summarizer's cost is in the totals, and the run stays under budget."""
    writer = SimulatedChatModel(response_tokens=1500, model_name="gpt-4o-mini")
    reader = SimulatedChatModel(response_tokens=30, model_name="gpt-4o-mini")
    policy = RunPolicy(
        budget=Budget(max_cost=Decimal("0.01"), expected_output_tokens=1500),
        context=ContextPolicy(max_tokens=400, strategy="summarize"),
    )
    orch = Orchestrator(
        [
            Task("chapter1", prompt="Write chapter 1 on {topic}", model=writer),
            Task("chapter2", prompt="Write chapter 2 on {topic}", model=writer),
            Task(
                "review",
                prompt="Review:\n{chapter1}\n{chapter2}",
                model=reader,
                deps=["chapter1", "chapter2"],
            ),
        ],
        policy=policy,
    )
    result = orch.invoke({"topic": "owls"})
    assert result.ok, result.error
    info = result.tasks["review"].compaction
    assert info is not None and info["strategy"] == "summarize"
    assert info["tokens_before"] >= 3000 and info["tokens_after"] <= 400
    assert info["summarizer_calls"] >= 1
    review_usage = result.tasks["review"].usage
    # the review task's usage includes its summarizer calls: more input than its prompt
    assert review_usage.input_tokens > 400 + 400
    assert result.models["gpt-4o-mini"].calls == 2 + info["summarizer_calls"] + 1
    assert result.cost.amount <= Decimal("0.01")
    assert result.cost.amount == sum(t.cost.amount for t in result.tasks.values())


def test_messages_from_memory_route_as_text() -> None:
    model = SimulatedChatModel(response_tokens=4)
    seen: dict[str, Any] = {}
    orch = Orchestrator(
        [
            Task("a", prompt="about {topic}", model=model, memory_key="a_out"),
            Task("b", lambda x: seen.update(x) or 1, deps=["a"], inputs={"m": "$memory.a_out"}),
        ]
    )
    result = orch.invoke({"topic": "owls"})
    assert seen["m"] == result["a"].text


def test_source_paths_read_data_never_attributes() -> None:
    from langchain_runtime import GraphValidationError

    with pytest.raises(GraphValidationError, match="may not be empty or start with '_'"):
        Orchestrator(
            [
                Task("a", lambda x: {"k": 1}),
                Task("b", lambda x: x, inputs={"v": "a.__class__.__init__.__globals__"}),
            ]
        )

    class Obj:
        secret = "s3cret"

    result = Orchestrator(
        [
            Task("a", lambda x: Obj()),
            Task("b", lambda x: x["v"], inputs={"v": "a.secret"}),
        ]
    ).invoke({})
    err = result.tasks["b"].error
    assert err is not None and "has no field 'secret'" in err.message
    assert "s3cret" not in err.message
    # data is reachable: dict keys, list indexes, message fields
    result = Orchestrator(
        [
            Task("a", lambda x: {"items": [{"n": 7}]}),
            Task("b", lambda x: x["v"], inputs={"v": "a.items.0.n"}),
        ]
    ).invoke({})
    assert result["b"] == 7


@pytest.mark.parametrize("delays", [(0.0, 0.05), (0.05, 0.0)])
def test_memory_writes_land_in_task_id_order_whatever_the_timing(
    delays: tuple[float, float],
) -> None:
    import asyncio

    from langchain_core.runnables import RunnableLambda

    def writer(name: str, delay: float) -> RunnableLambda[Any, Any]:
        async def body(_: Any) -> str:
            await asyncio.sleep(delay)
            current_memory().mset([("k", name)])
            assert current_memory().get("k") == name  # a task sees its own writes
            return name

        return RunnableLambda(body)

    result = Orchestrator(
        [
            Task("a", writer("a", delays[0])),
            Task("b", writer("b", delays[1])),
            Task("c", lambda x: current_memory().get("k"), deps=["a", "b"]),
        ]
    ).invoke({})
    assert result.memory == {"k": "b"}  # b commits after a, whoever finished first
    assert result["c"] == "b"
    writes = [e.task_id for e in result.events if e.type == "memory_write"]
    assert writes == ["a", "b"]


def test_a_failed_task_leaves_memory_untouched() -> None:
    def fail(_: Any) -> None:
        current_memory().mset([("half", "done")])
        raise RuntimeError("no")

    result = Orchestrator([Task("a", fail)]).invoke({})
    assert result.memory == {}
