"""Durable runs: every commit stored before dependents start; resume never re-runs."""

from __future__ import annotations

import sqlite3
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
    OutputNotStorableError,
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
        self.gate: threading.Event | None = None

    def task(self, tid: str, value: Any) -> Any:
        def run(inp: dict[str, Any]) -> Any:
            self.counts[tid] = self.counts.get(tid, 0) + 1
            if tid in self.broken:
                raise RuntimeError(f"{tid} is broken")
            if self.gate is not None:
                self.gate.wait(10)
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


# -- defects found in review, each reproduced first ------------------------------------


class FailingStore(SQLiteRunStore):
    """Fails the first commit that carries ``task``, as a full disk would."""

    def __init__(self, path: Path, task: str) -> None:
        super().__init__(path)
        self.task, self.fails = task, 1

    def commit(self, run_id: str, tasks: Any, events: Any = (), memory: Any = None) -> None:
        if self.fails and any(t.task_id == self.task for t in tasks):
            self.fails -= 1
            raise sqlite3.OperationalError("database or disk is full")
        super().commit(run_id, tasks, events, memory)


@pytest.mark.parametrize("scheduling", ["batched", "eager"])
def test_a_failed_store_write_tells_nobody_and_loses_nothing(
    tmp_path: Path, scheduling: str
) -> None:
    store = FailingStore(tmp_path / "runs.db", "b")
    calls = Calls()
    tasks = [
        Task("a", calls.task("a", "A")),
        Task("b", calls.task("b", "B"), deps=["a"]),
        Task("c", calls.task("c", "C"), deps=["b"]),
    ]
    orch = Orchestrator(tasks, store=store, policy=RunPolicy(scheduling=scheduling))  # type: ignore[arg-type]
    told: list[str] = []  # the tasks callers heard of as completed
    result = None
    for chunk in orch.stream({}):
        if not hasattr(chunk, "task_id"):
            result = chunk
        elif chunk.state is TaskState.COMPLETED:
            told.append(chunk.task_id)
    assert result is not None and result.state is RunState.FAILED
    assert result.error is not None and result.error.code == "store_error"
    assert "disk is full" in result.error.message
    assert "c" not in told and calls.counts.get("c") is None  # nothing ran on an unsaved b
    stored = store.load_run(result.run_id)
    assert stored is not None
    # the run's last write kept b: what callers were told and what is stored agree
    assert set(told) <= {t for t, r in stored.tasks.items() if r.state == "completed"}
    again = orch.resume(result.run_id)
    assert again.state is RunState.COMPLETED
    assert calls.counts == {"a": 1, "b": 1, "c": 1}  # b was stored: never paid twice
    store.close()


def test_nan_inside_a_document_fails_its_task_not_the_run(store: SQLiteRunStore) -> None:
    from langchain_core.documents import Document

    doc = Document(page_content="p", metadata={"score": float("nan")})
    result = Orchestrator(
        [Task("a", lambda x: doc), Task("b", lambda x: "ok", deps=["a"])], store=store
    ).invoke({})
    err = result.tasks["a"].error
    assert err is not None and err.type == "OutputNotStorableError" and "'a'" in err.message
    assert "NaN" in err.message
    assert result.tasks["b"].state is TaskState.SKIPPED
    assert store.load_run(result.run_id).tasks["a"].state == "failed"  # type: ignore[union-attr]


def test_unstorable_memory_fails_the_writing_task_and_the_run_ends(
    store: SQLiteRunStore,
) -> None:
    from langchain_runtime import current_memory

    def bad(inp: dict[str, Any]) -> str:
        current_memory().mset([("obj", object())])
        return "fine"

    orch = Orchestrator([Task("a", bad), Task("b", lambda x: 1, deps=["a"])], store=store)
    result = orch.invoke({})
    err = result.tasks["a"].error
    assert err is not None and "'obj'" in err.message and "'a'" in err.message
    assert result.memory == {}
    stored = store.load_run(result.run_id)
    assert stored is not None and stored.state == "failed" and not stored.live


def test_resume_counts_what_failed_attempts_spent(store: SQLiteRunStore) -> None:
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnableLambda

    flaky = {"fail": True}

    def parse(msg: Any) -> str:
        if flaky.pop("fail", False):
            raise ValueError("unparseable")
        return str(msg.content)

    chain = (
        ChatPromptTemplate.from_template("write about {topic}")
        | SimulatedChatModel()
        | RunnableLambda(parse)
    )
    orch = Orchestrator([Task("a", chain)], store=store)
    first = orch.invoke({"topic": "owls"})
    assert first.state is RunState.FAILED and first.cost.amount > 0
    again = orch.resume(first.run_id)
    assert again.state is RunState.COMPLETED
    assert again.cost.amount == 2 * first.cost.amount  # both calls were paid for
    assert set(again.models) == set(first.models)


def test_a_terminal_result_never_shows_a_running_task(store: SQLiteRunStore) -> None:
    import datetime

    orch = Orchestrator([Task("a", lambda x: "A")], store=store)
    with pytest.raises(OutputNotStorableError, match="run input"):
        orch.invoke({"when": datetime.datetime(2024, 1, 1)})
    assert store.list_runs()[1] == 0  # nothing half-stored


def test_memory_deletes_are_stored(store: SQLiteRunStore) -> None:
    from langchain_runtime import current_memory

    calls = Calls()

    def a(x: Any) -> str:
        current_memory().mset([("draft", "v1")])
        return "A"

    def b(x: Any) -> str:
        current_memory().mdelete(["draft"])
        return "B"

    def c(x: Any) -> Any:
        calls.counts["c"] = calls.counts.get("c", 0) + 1
        if calls.counts["c"] == 1:
            raise RuntimeError("first time")
        return current_memory().get("draft", "<absent>")

    orch = Orchestrator(
        [Task("a", a), Task("b", b, deps=["a"]), Task("c", c, deps=["b"])], store=store
    )
    first = orch.invoke({})
    assert first.state is RunState.FAILED and first.memory == {}
    again = orch.resume(first.run_id)
    assert again["c"] == "<absent>" and again.memory == {}


def test_a_changed_chain_is_not_resumed_silently(store: SQLiteRunStore) -> None:
    from langchain_core.prompts import ChatPromptTemplate

    model = SimulatedChatModel()
    first = Orchestrator(
        [Task("c", ChatPromptTemplate.from_template("Chain {topic}") | model)], store=store
    ).invoke({"topic": "owls"})
    changed = Orchestrator(
        [Task("c", ChatPromptTemplate.from_template("Chain about {topic}") | model)], store=store
    )
    with pytest.raises(ResumeError, match=r"task 'c': its runnable changed .*Chain about"):
        changed.resume(first.run_id)
    # the same chain, built again (new objects), resumes
    same = Orchestrator(
        [Task("c", ChatPromptTemplate.from_template("Chain {topic}") | SimulatedChatModel())],
        store=store,
    )
    assert same.resume(first.run_id).tasks["c"].restored


def test_a_task_enqueued_before_the_run_begins_is_stored_with_its_spec(
    store: SQLiteRunStore,
) -> None:
    gate = threading.Event()
    orch = Orchestrator([Task("a", lambda x: gate.wait(10))], store=store)
    handle = orch.start({})
    handle.enqueue(Task("x", lambda x: 1, deps=["a"]), spec={"id": "x"})
    gate.set()
    assert handle.result(timeout=10).state is RunState.COMPLETED
    stored = store.load_run(handle.run_id)
    assert stored is not None
    assert [dict(e) for e in stored.header.enqueued] == [{"task_id": "x", "spec": {"id": "x"}}]


def test_a_snapshot_never_shows_a_task_that_is_not_stored_yet(tmp_path: Path) -> None:
    from langchain_runtime import current_memory

    release = threading.Event()
    writing = threading.Event()

    class SlowStore(SQLiteRunStore):
        def commit(self, run_id: str, tasks: Any, events: Any = (), memory: Any = None) -> None:
            if any(t.task_id == "a" for t in tasks):
                writing.set()
                release.wait(10)
            super().commit(run_id, tasks, events, memory)

    def a(x: Any) -> str:
        current_memory().mset([("mk", "A")])
        return "A"

    store = SlowStore(tmp_path / "runs.db")
    handle = Orchestrator([Task("a", a), Task("b", lambda x: "B", deps=["a"])], store=store).start(
        {}
    )
    seen: list[Any] = []
    try:
        assert writing.wait(10)
        # during the write a snapshot waits for it rather than show an unstored task
        reader = threading.Thread(target=lambda: seen.append(handle.snapshot()))
        reader.start()
        reader.join(0.3)
        assert reader.is_alive() and not seen
    finally:
        release.set()
    reader.join(10)
    snap = seen[0]
    stored = store.load_run(handle.run_id)
    assert stored is not None
    shown = {t for t, r in snap.tasks.items() if r.state is TaskState.COMPLETED}
    assert shown <= {t for t, r in stored.tasks.items() if r.state == "completed"}
    assert {e.task_id for e in snap.events if e.task_id} <= set(stored.tasks)
    done = handle.result(timeout=10)
    assert done.memory == {"mk": "A"} and done.tasks["b"].state is TaskState.COMPLETED
    store.close()


def test_a_losing_concurrent_resume_raises(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    store = SQLiteRunStore(path)
    calls = Calls()
    calls.broken.add("b")
    first = Orchestrator(diamond(calls), store=store).invoke({})
    assert first.state is RunState.FAILED
    calls.broken.clear()
    gate = threading.Event()
    calls.gate = gate  # b now waits: the resume stays live
    orch = Orchestrator(diamond(calls), store=store)
    handle = orch.start_resume(first.run_id)
    deadline = time.monotonic() + 10
    while not store.is_live(first.run_id) and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        with pytest.raises(ResumeError):
            orch.resume(first.run_id)
    finally:
        gate.set()
    assert handle.result(timeout=10).state is RunState.COMPLETED
    store.close()


def test_a_run_claimed_by_another_owner_is_not_resumed_here(store: SQLiteRunStore) -> None:
    import socket

    calls = Calls()
    calls.broken.add("c")
    orch = Orchestrator(diamond(calls), store=store)
    first = orch.invoke({})
    calls.broken.clear()
    # another process on this host (pid 1 is always alive) holds the run, e.g. a
    # replica that is resuming it right now
    assert store.claim(first.run_id, f"1@{socket.gethostname()}")
    with pytest.raises(ResumeError, match="still live"):
        orch.resume(first.run_id)
    assert calls.counts == {"a": 1, "b": 1, "c": 1}  # nothing ran from a stale copy
