"""Durable runs: every commit stored before dependents start; resume never re-runs."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from langchain_runtime import (
    Budget,
    Orchestrator,
    ResumeError,
    RunPolicy,
    RunState,
    SQLiteRunStore,
    Task,
    TaskState,
)
from langchain_runtime.testing import SimulatedChatModel


class Calls:
    """Counts how often each task's code ran; can make a task fail while ``broken``."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.broken: set[str] = set()

    def task(self, tid: str, value: Any) -> Any:
        def run(inp: dict[str, Any]) -> Any:
            self.counts[tid] = self.counts.get(tid, 0) + 1
            if tid in self.broken:
                raise RuntimeError(f"{tid} is broken")
            return value

        return run


@pytest.fixture
def store(tmp_path: Path) -> SQLiteRunStore:
    s = SQLiteRunStore(tmp_path / "runs.db")
    yield s
    s.close()


def diamond(calls: Calls) -> list[Task]:
    return [
        Task("a", calls.task("a", {"n": 1}), memory_key="facts"),
        Task("b", calls.task("b", AIMessage(content="from b")), deps=["a"]),
        Task("c", calls.task("c", [1, 2, 3]), deps=["a"]),
        Task("d", calls.task("d", "done"), deps=["b", "c"]),
    ]


def test_a_run_is_stored_task_by_task_and_resume_restores_everything(
    store: SQLiteRunStore,
) -> None:
    calls = Calls()
    orch = Orchestrator(diamond(calls), store=store)
    first = orch.invoke({"topic": "owls"})
    assert first.state is RunState.COMPLETED
    stored = store.load_run(first.run_id)
    assert stored is not None and stored.state == "completed"
    assert {t: r.state for t, r in stored.tasks.items()} == dict.fromkeys("abcd", "completed")

    again = orch.resume(first.run_id)
    assert again.state is RunState.COMPLETED
    assert all(tr.restored for tr in again.tasks.values())
    assert calls.counts == dict.fromkeys("abcd", 1)  # nothing ran twice
    assert again.outputs == first.outputs
    assert isinstance(again["b"], AIMessage) and again["b"].content == "from b"
    assert again.memory == {"facts": {"n": 1}}
    assert again.run_id == first.run_id
    assert [e.type for e in again.events].count("run_resumed") == 1


def test_a_failed_run_resumes_with_completed_tasks_restored(store: SQLiteRunStore) -> None:
    calls = Calls()
    calls.broken.add("c")
    orch = Orchestrator(diamond(calls), store=store)
    first = orch.invoke({})
    assert first.state is RunState.FAILED
    assert first.tasks["c"].state is TaskState.FAILED
    assert first.tasks["d"].state is TaskState.SKIPPED

    calls.broken.clear()
    again = orch.resume(first.run_id)
    assert again.state is RunState.COMPLETED
    assert again.tasks["a"].restored and not again.tasks["c"].restored
    assert calls.counts["a"] == 1  # a was paid for once
    assert calls.counts["c"] == 2 and calls.counts["d"] == 1
    # b completed in the first run (it does not depend on c): restored, not re-run
    assert again.tasks["b"].state is TaskState.COMPLETED
    assert calls.counts["b"] == 1 and again.tasks["b"].restored
    # resume of a resumed run works and runs nothing
    third = orch.resume(first.run_id)
    assert third.state is RunState.COMPLETED and all(t.restored for t in third.tasks.values())
    assert calls.counts == {"a": 1, "b": 1, "c": 2, "d": 1}
    assert store.load_run(first.run_id).resumes == 2  # type: ignore[union-attr]


def test_a_dependent_starts_only_after_its_dependency_is_stored(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    store = SQLiteRunStore(path)
    seen: dict[str, Any] = {}

    def check(inp: dict[str, Any]) -> str:
        reader = SQLiteRunStore(path)  # a second connection: what a crash would leave
        try:
            run = reader.list_runs()[0][0]
            stored = reader.load_run(run.run_id)
            assert stored is not None
            seen["a"] = stored.tasks["a"].state
        finally:
            reader.close()
        return "b"

    orch = Orchestrator([Task("a", lambda x: "a"), Task("b", check, deps=["a"])], store=store)
    assert orch.invoke({}).state is RunState.COMPLETED
    assert seen == {"a": "completed"}
    store.close()


def test_callers_hear_of_a_task_only_once_it_is_stored(store: SQLiteRunStore) -> None:
    orch = Orchestrator([Task("a", lambda x: 1), Task("b", lambda x: 2, deps=["a"])], store=store)
    stored_when_told: list[tuple[str, str | None]] = []
    for chunk in orch.stream({}):
        if hasattr(chunk, "task_id"):
            runs, _ = store.list_runs()
            record = store.load_run(runs[0].run_id)
            assert record is not None
            task = record.tasks.get(chunk.task_id)
            stored_when_told.append((chunk.task_id, task.state if task else None))
    assert stored_when_told == [("a", "completed"), ("b", "completed")]


def test_budget_exceeded_then_resume_with_a_higher_budget(store: SQLiteRunStore) -> None:
    model = SimulatedChatModel()
    tasks = [
        Task("t1", prompt="Write about {topic}.", model=model),
        Task("t2", prompt="Expand: {t1}", model=model, deps=["t1"]),
        Task("t3", prompt="Expand: {t2}", model=model, deps=["t2"]),
    ]
    tight = RunPolicy(budget=Budget(max_tokens=80, expected_output_tokens=60))
    orch = Orchestrator(tasks, policy=tight, store=store)
    first = orch.invoke({"topic": "owls"})
    assert first.state is RunState.BUDGET_EXCEEDED
    done = [t for t, r in first.tasks.items() if r.state is TaskState.COMPLETED]
    assert done  # something was paid for
    paid = first.usage.total_tokens

    again = orch.resume(first.run_id, budget=Budget(max_tokens=5_000, expected_output_tokens=60))
    assert again.state is RunState.COMPLETED
    for tid in done:
        assert again.tasks[tid].restored
        assert again.tasks[tid].usage == first.tasks[tid].usage
    new_tokens = sum(r.usage.total_tokens for r in again.tasks.values() if not r.restored)
    assert again.usage.total_tokens == paid + new_tokens  # nothing billed twice
    assert again.usage.total_tokens <= 5_000


def test_resume_refuses_a_changed_graph_an_unknown_run_and_a_live_run(
    store: SQLiteRunStore,
) -> None:
    calls = Calls()
    orch = Orchestrator(diamond(calls), store=store)
    first = orch.invoke({})

    changed = diamond(calls)
    changed[3] = Task("d", calls.task("d", "done"), deps=["b"])
    with pytest.raises(ResumeError, match=r"task 'd': its deps changed"):
        Orchestrator(changed, store=store).resume(first.run_id)
    with pytest.raises(ResumeError, match=r"task 'e' is in this graph but not in the stored"):
        Orchestrator([*diamond(calls), Task("e", lambda x: 1)], store=store).resume(first.run_id)
    with pytest.raises(ResumeError, match="no run 'nope'"):
        orch.resume("nope")

    gate = threading.Event()
    slow = Orchestrator([Task("s", lambda x: gate.wait(10))], store=store)
    handle = slow.start({})
    try:
        deadline = time.monotonic() + 10
        while store.load_run(handle.run_id) is None and time.monotonic() < deadline:
            time.sleep(0.01)  # the run is stored by its own thread as it begins
        with pytest.raises(ResumeError, match="still live"):
            slow.resume(handle.run_id)
    finally:
        gate.set()
        assert handle.result(timeout=10).state is RunState.COMPLETED


def test_an_output_the_store_cannot_keep_fails_its_task_by_name(store: SQLiteRunStore) -> None:
    orch = Orchestrator(
        [Task("sock", lambda x: threading.Lock()), Task("after", lambda x: 1, deps=["sock"])],
        store=store,
    )
    result = orch.invoke({})
    assert result.state is RunState.FAILED
    err = result.tasks["sock"].error
    assert err is not None and err.type == "OutputNotStorableError"
    assert "'sock'" in err.message and "lock" in err.message.lower()
    assert result.tasks["after"].state is TaskState.SKIPPED


def test_enqueued_tasks_are_stored_and_resumed(store: SQLiteRunStore) -> None:
    gate = threading.Event()
    calls = Calls()
    orch = Orchestrator([Task("a", lambda x: gate.wait(10))], store=store)
    handle = orch.start({})
    extra = Task("late", calls.task("late", "x"), deps=["a"])
    handle.enqueue(extra)
    handle.abort()
    gate.set()
    assert handle.result(timeout=10).state is RunState.ABORTED
    with pytest.raises(ResumeError, match="'late' is in the stored run but not in this graph"):
        orch.resume(handle.run_id)
    again = orch.resume(handle.run_id, tasks=[extra])
    assert again.state is RunState.COMPLETED
    assert calls.counts == {"late": 1}


def test_a_resumed_run_counts_restored_cost_against_the_budget(store: SQLiteRunStore) -> None:
    model = SimulatedChatModel()
    tasks = [
        Task("t1", prompt="Write about {topic}.", model=model),
        Task("t2", prompt="Expand: {t1}", model=model, deps=["t1"]),
    ]
    policy = RunPolicy(budget=Budget(max_cost=Decimal("1"), expected_output_tokens=40))
    first = Orchestrator(tasks, policy=policy, store=store).invoke({"topic": "owls"})
    assert first.state is RunState.COMPLETED and first.cost.amount > 0
    again = Orchestrator(tasks, policy=policy, store=store).resume(first.run_id)
    assert again.cost == first.cost
    assert again.usage == first.usage
