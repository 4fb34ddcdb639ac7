"""Usage, cost and hard budgets through the orchestrator."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.runnables import RunnableLambda

from langchain_runtime import (
    Budget,
    BudgetExceededError,
    ConfigurationError,
    Orchestrator,
    RunPolicy,
    RunState,
    Task,
    TaskState,
)
from langchain_runtime.cost import CostCalculator, ModelCatalog
from langchain_runtime.testing import SimulatedChatModel


def test_usage_per_task_equals_what_the_model_reported() -> None:
    model = SimulatedChatModel(response_tokens=20)
    orch = Orchestrator(
        [
            Task("a", prompt="Facts about {topic}", model=model),
            Task("b", prompt="Summarise {a}", model=model, deps=["a"]),
        ]
    )
    result = orch.invoke({"topic": "owls"})
    calc = CostCalculator(ModelCatalog.default())
    total_in = total_out = 0
    for tid in ("a", "b"):
        reported = result[tid].usage_metadata
        tr = result.tasks[tid]
        assert tr.usage.input_tokens == reported["input_tokens"]
        assert tr.usage.output_tokens == reported["output_tokens"] == 20
        assert tr.cost == calc.cost("simulated", tr.usage)
        assert tr.cost.amount > 0
        total_in += reported["input_tokens"]
        total_out += reported["output_tokens"]
    assert result.usage.input_tokens == total_in and result.usage.output_tokens == total_out
    assert result.cost.amount == sum(t.cost.amount for t in result.tasks.values())
    assert result.models["simulated"].calls == 2
    assert result.models["simulated"].usage == result.usage
    done = [e for e in result.events if e.type == "task_completed"]
    assert all(e.data["tokens"] > 0 for e in done)


def test_budget_refusal_ends_run_keeping_partial_results() -> None:
    model = SimulatedChatModel(response_tokens=50)
    tasks = [Task("a", prompt="Start {topic}", model=model)]
    tasks += [
        Task(f"step{i}", prompt=f"Step {i}: {{a}}", model=model, deps=["a"]) for i in range(6)
    ]
    # room for "a" and a few steps, not all of them
    policy = RunPolicy(budget=Budget(max_tokens=400, expected_output_tokens=50), max_parallelism=2)
    result = Orchestrator(tasks, policy=policy).invoke({"topic": "owls"})
    assert result.state is RunState.BUDGET_EXCEEDED
    assert result.usage.total_tokens <= 400
    assert result.tasks["a"].state is TaskState.COMPLETED
    refused = [t for t, r in result.tasks.items() if r.error and r.error.code == "budget_exceeded"]
    assert len(refused) == 1
    assert result.error is not None and f"task {refused[0]!r}" in result.error.message
    later = sorted(t for t in result.tasks if t > refused[0])
    assert all(result.tasks[t].state is TaskState.CANCELLED for t in later)
    with pytest.raises(BudgetExceededError) as err:
        result.raise_for_error()
    assert err.value.task_id == refused[0]


def test_max_tokens_is_clamped_to_what_the_budget_can_pay_for() -> None:
    model = SimulatedChatModel(response_tokens=500)
    policy = RunPolicy(budget=Budget(max_tokens=120))
    result = Orchestrator(
        [Task("a", prompt="Write a long essay on {topic}", model=model)], policy=policy
    ).invoke({"topic": "owls"})
    assert result.ok
    usage = result.tasks["a"].usage
    assert 0 < usage.output_tokens < 120  # clamped, the long answer was cut short
    assert usage.total_tokens <= 120


def test_cost_budget_is_a_hard_ceiling() -> None:
    model = SimulatedChatModel(response_tokens=400, model_name="gpt-4o")
    limit = Decimal("0.005")
    tasks = [Task(f"t{i}", prompt=f"Essay {i} on {{topic}}", model=model) for i in range(8)]
    result = Orchestrator(tasks, policy=RunPolicy(budget=Budget(max_cost=limit))).invoke(
        {"topic": "owls"}
    )
    assert result.cost.amount <= limit
    assert result.state is RunState.BUDGET_EXCEEDED
    assert result.tasks["t0"].state is TaskState.COMPLETED


def test_unknown_model_price_under_cost_budget_is_refused_at_construction() -> None:
    model = SimulatedChatModel(model_name="my-private-model")
    with pytest.raises(ConfigurationError, match="my-private-model") as err:
        Orchestrator(
            [Task("a", prompt="hi", model=model)],
            policy=RunPolicy(budget=Budget(max_cost=Decimal(1))),
        )
    assert "task 'a'" in str(err.value)
    # a catalog that knows it is fine
    catalog = ModelCatalog.default().copy()
    catalog.add("my-private-model", input=1, output=2)
    Orchestrator(
        [Task("a", prompt="hi", model=model)],
        catalog=catalog,
        policy=RunPolicy(budget=Budget(max_cost=Decimal(1))),
    )


def test_runnable_task_with_model_id_is_priced() -> None:
    from langchain_core.language_models import FakeListChatModel

    async def call(inp: dict[str, Any], config: Any) -> Any:
        # a model whose name cannot be discovered: priced by the task's model id
        return await FakeListChatModel(responses=["hello there"]).ainvoke("hi", config)

    orch = Orchestrator([Task("a", RunnableLambda(call), model="gpt-4o-mini")])
    result = orch.invoke({})
    assert result.tasks["a"].cost.amount > 0


def test_budget_errors_are_not_retried() -> None:
    model = SimulatedChatModel(response_tokens=10)
    policy = RunPolicy(budget=Budget(max_tokens=5), retry_backoff=0.001)
    result = Orchestrator(
        [Task("a", prompt="hello {x}", model=model, max_retries=3)], policy=policy
    ).invoke({"x": "y"})
    assert result.state is RunState.BUDGET_EXCEEDED
    assert result.tasks["a"].attempts <= 1
    assert not [e for e in result.events if e.type == "task_retry"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.integers(1, 120), min_size=2, max_size=12),
    st.integers(1, 6),
    st.integers(150, 1500),
    st.randoms(),
    st.randoms(),
)
def test_parallel_tasks_never_overrun_and_decisions_do_not_depend_on_timing(
    lengths: list[int], par: int, limit: int, r1: random.Random, r2: random.Random
) -> None:
    outcomes = []
    for rnd in (r1, r2):
        tasks = [
            Task(
                f"t{i:02d}",
                prompt=f"Task {i}: {{topic}}",
                model=SimulatedChatModel(response_tokens=n, latency=rnd.uniform(0, 0.002)),
            )
            for i, n in enumerate(lengths)
        ]
        policy = RunPolicy(
            max_parallelism=par, budget=Budget(max_tokens=limit, expected_output_tokens=60)
        )
        result = Orchestrator(tasks, policy=policy).invoke({"topic": "owls"})
        assert result.usage.total_tokens <= limit
        assert all(r.state.is_terminal for r in result.tasks.values())
        outcomes.append({t: (r.state, r.usage.total_tokens) for t, r in result.tasks.items()})
    assert outcomes[0] == outcomes[1]


def test_eager_mode_also_never_overruns() -> None:
    tasks = [
        Task(
            f"t{i}",
            prompt=f"Task {i} {{x}}",
            model=SimulatedChatModel(response_tokens=80, latency=0.001 * i),
        )
        for i in range(10)
    ]
    policy = RunPolicy(
        scheduling="eager",
        max_parallelism=4,
        budget=Budget(max_tokens=600, expected_output_tokens=80),
    )
    result = Orchestrator(tasks, policy=policy).invoke({"x": "y"})
    assert result.usage.total_tokens <= 600
    assert result.state is RunState.BUDGET_EXCEEDED


@pytest.mark.anyio
async def test_async_and_sync_paths_agree() -> None:
    model = SimulatedChatModel(response_tokens=7)
    orch = Orchestrator(
        [Task("a", prompt="x {y}", model=model)], policy=RunPolicy(budget=Budget(max_tokens=1000))
    )
    r1 = await orch.ainvoke({"y": 1})
    r2 = await asyncio.to_thread(orch.invoke, {"y": 1})
    assert r1.usage == r2.usage and r1.cost == r2.cost


def test_a_task_budget_caps_that_task_only() -> None:
    model = SimulatedChatModel(response_tokens=300)
    orch = Orchestrator(
        [
            Task("capped", prompt="Essay on {topic}", model=model, budget=Budget(max_tokens=100)),
            Task("free", prompt="Essay on {topic}", model=model),
        ]
    )
    result = orch.invoke({"topic": "owls"})
    assert result.ok
    assert result.tasks["capped"].usage.total_tokens <= 100
    assert result.tasks["free"].usage.output_tokens == 300


def test_a_task_cost_budget_needs_a_price() -> None:
    with pytest.raises(ConfigurationError, match="task 'a'"):
        Orchestrator(
            [
                Task(
                    "a",
                    prompt="x",
                    model=SimulatedChatModel(model_name="nope-model"),
                    budget=Budget(max_cost=Decimal("0.1")),
                )
            ]
        )


def test_enqueue_checks_prices_like_construction() -> None:
    import threading

    from .conftest import gated

    gate = threading.Event()
    handle = Orchestrator(
        [Task("a", gated(gate))], policy=RunPolicy(budget=Budget(max_cost=Decimal(1)))
    ).start({})
    try:
        with pytest.raises(ConfigurationError, match="unpriced-model"):
            handle.enqueue(
                Task("x", prompt="hi", model=SimulatedChatModel(model_name="unpriced-model"))
            )
    finally:
        gate.set()
    assert sorted(handle.result(timeout=5).tasks) == ["a"]
