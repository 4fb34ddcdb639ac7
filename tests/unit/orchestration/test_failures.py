"""Failure policy, retries, timeouts, abort, enqueue, deadlock: every task ends terminal."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from langchain_core.runnables import RunnableLambda

from langchain_runtime import (
    BudgetExceededError,
    DeadlockError,
    GraphValidationError,
    InvalidInputError,
    Orchestrator,
    RunFinishedError,
    RunPolicy,
    RunState,
    Task,
    TaskGraph,
    TaskState,
)
from langchain_runtime.context.router import ContextRouter
from langchain_runtime.orchestration._retry import is_retryable
from langchain_runtime.orchestration._run import Run

from .conftest import Tracker, gated

FAST = RunPolicy(retry_backoff=0.001)


def assert_all_terminal(result: Any) -> None:
    assert all(tr.state.is_terminal for tr in result.tasks.values()), {
        k: v.state for k, v in result.tasks.items()
    }


def test_failed_task_skips_dependents_and_fail_fast_cancels_in_flight(tracker: Tracker) -> None:
    tasks = [
        Task("a_bad", tracker.task("a_bad", 0.01, fail=RuntimeError("boom"))),
        Task("b_slow", tracker.task("b_slow", 5.0)),
        Task("c_child", tracker.task("c_child"), deps=["a_bad"]),
        Task("d_grandchild", tracker.task("d_grandchild"), deps=["c_child"]),
        Task("e_after_slow", tracker.task("e_after_slow"), deps=["b_slow"]),
    ]
    start = time.perf_counter()
    result = Orchestrator(tasks).invoke({})
    assert time.perf_counter() - start < 2.0  # b_slow was cancelled, not awaited
    st = {k: v.state for k, v in result.tasks.items()}
    assert st == {
        "a_bad": TaskState.FAILED,
        "b_slow": TaskState.CANCELLED,
        "c_child": TaskState.SKIPPED,
        "d_grandchild": TaskState.SKIPPED,
        "e_after_slow": TaskState.SKIPPED,
    }
    assert result.state is RunState.FAILED
    assert result.error is not None and "task 'a_bad' failed" in result.error.message
    assert "dependency 'a_bad' failed" in result.tasks["c_child"].error.message  # type: ignore[union-attr]
    assert "c_child" not in tracker.started and "e_after_slow" not in tracker.started
    assert_all_terminal(result)


def test_without_fail_fast_independent_work_goes_on(tracker: Tracker) -> None:
    tasks = [
        Task("bad", tracker.task("bad", fail=RuntimeError("x"))),
        Task("child", tracker.task("child"), deps=["bad"]),
        Task("other", tracker.task("other", 0.02)),
        Task("after_other", tracker.task("after_other"), deps=["other"]),
    ]
    result = Orchestrator(tasks, policy=RunPolicy(fail_fast=False)).invoke({})
    assert result.state is RunState.FAILED
    assert result.tasks["after_other"].state is TaskState.COMPLETED
    assert result.tasks["child"].state is TaskState.SKIPPED


def test_retries_retryable_errors_with_backoff() -> None:
    calls = {"n": 0}

    def flaky(_: Any) -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionError("transient")
        return "ok"

    result = Orchestrator([Task("a", flaky, max_retries=3)], policy=FAST).invoke({})
    assert result["a"] == "ok" and result.tasks["a"].attempts == 3
    retries = [e for e in result.events if e.type == "task_retry"]
    assert [e.data["attempt"] for e in retries] == [1, 2]
    assert "ConnectionError: transient" in retries[0].data["error"]


def test_retries_stop_at_max_retries() -> None:
    def always(_: Any) -> None:
        raise ConnectionError("down")

    result = Orchestrator([Task("a", always, max_retries=2)], policy=FAST).invoke({})
    assert result.tasks["a"].state is TaskState.FAILED and result.tasks["a"].attempts == 3


@pytest.mark.parametrize(
    "exc", [BudgetExceededError("no money"), ValueError("bad"), TypeError("bug")]
)
def test_non_retryable_errors_are_not_retried(exc: Exception) -> None:
    calls = {"n": 0}

    def fail(_: Any) -> None:
        calls["n"] += 1
        raise exc

    result = Orchestrator([Task("a", fail, max_retries=5)], policy=FAST).invoke({})
    assert calls["n"] == 1 and result.tasks["a"].attempts == 1


def test_retryable_classification() -> None:
    class Status(Exception):
        def __init__(self, code: int) -> None:
            self.status_code = code

    assert is_retryable(Status(429)) and is_retryable(Status(503))
    assert not is_retryable(Status(400)) and not is_retryable(Status(401))
    assert is_retryable(TimeoutError()) and is_retryable(RuntimeError())
    assert not is_retryable(BudgetExceededError("x"))


def test_budget_error_ends_run_as_budget_exceeded_keeping_partial_results() -> None:
    def refuse(_: Any) -> None:
        raise BudgetExceededError("over", task_id="b")

    tasks = [
        Task("a", lambda x: 1),
        Task("b", refuse, deps=["a"]),
        Task("c", lambda x: 3, deps=["a"]),
        Task("d", lambda x: 4, deps=["c"]),
    ]
    result = Orchestrator(tasks, policy=RunPolicy(fail_fast=False)).invoke({})
    assert result.state is RunState.BUDGET_EXCEEDED
    assert result["a"] == 1 and result["c"] == 3  # same batch as b: let finish
    assert result.tasks["d"].state is TaskState.CANCELLED  # nothing new starts
    assert result.error is not None and result.error.code == "budget_exceeded"
    assert "task 'b'" in result.error.message


def test_task_timeout_then_retry_succeeds() -> None:
    calls = {"n": 0}

    async def slow_once(_: Any) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            await asyncio.sleep(5)
        return "ok"

    result = Orchestrator(
        [Task("a", RunnableLambda(slow_once), timeout=0.05, max_retries=1)], policy=FAST
    ).invoke({})
    assert result["a"] == "ok"
    retry = next(e for e in result.events if e.type == "task_retry")
    assert "TaskTimeoutError" in retry.data["error"]


def test_task_timeout_fails_task_with_timeout_code() -> None:
    async def slow(_: Any) -> None:
        await asyncio.sleep(5)

    result = Orchestrator([Task("a", RunnableLambda(slow), timeout=0.05)]).invoke({})
    assert result.tasks["a"].error is not None
    assert result.tasks["a"].error.code == "task_timeout"


def test_run_timeout_cancels_everything(tracker: Tracker) -> None:
    tasks = [Task("a", tracker.task("a", 5.0)), Task("b", tracker.task("b"), deps=["a"])]
    start = time.perf_counter()
    result = Orchestrator(tasks, policy=RunPolicy(timeout=0.1)).invoke({})
    assert time.perf_counter() - start < 2.0
    assert result.state is RunState.TIMED_OUT
    assert result.tasks["a"].state is TaskState.CANCELLED
    assert result.tasks["b"].state in (TaskState.CANCELLED, TaskState.SKIPPED)
    assert tracker.running == 0
    assert_all_terminal(result)


def test_cancellation_reaches_in_flight_calls() -> None:
    cancelled = threading.Event()

    async def waits(_: Any) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    handle = Orchestrator([Task("a", RunnableLambda(waits))]).start({})
    time.sleep(0.1)
    assert handle.abort() is True
    result = handle.result(timeout=5)
    assert cancelled.is_set()
    assert result.state is RunState.ABORTED and result.error is not None
    assert result.tasks["a"].state is TaskState.CANCELLED


def test_abort_mid_run_leaves_every_task_terminal(tracker: Tracker) -> None:
    tasks = [Task("first", tracker.task("first"))]
    tasks += [Task(f"mid{i}", tracker.task(f"mid{i}", 2.0), deps=["first"]) for i in range(5)]
    tasks += [Task("last", tracker.task("last"), deps=[f"mid{i}" for i in range(5)])]
    handle = Orchestrator(tasks, policy=RunPolicy(max_parallelism=2)).start({})
    deadline = time.time() + 5
    while tracker.running < 2 and time.time() < deadline:
        time.sleep(0.01)
    handle.abort()
    result = handle.result(timeout=5)
    assert result.state is RunState.ABORTED and handle.status() is RunState.ABORTED
    assert result.tasks["first"].state is TaskState.COMPLETED
    assert {result.tasks[f"mid{i}"].state for i in range(5)} == {TaskState.CANCELLED}
    assert result.tasks["last"].state in (TaskState.CANCELLED, TaskState.SKIPPED)
    assert_all_terminal(result)
    assert tracker.running == 0
    assert handle.abort() is False  # already finished


def test_enqueue_into_a_live_run(tracker: Tracker) -> None:
    gate = threading.Event()

    orch = Orchestrator([Task("a", gated(gate, "A"))])
    handle = orch.start({"x": 1})
    handle.enqueue(Task("b", lambda x: x["a"] + "B", deps=["a"]))
    handle.enqueue(Task("c", lambda x: x["b"] + "C", deps=["b"]))
    with pytest.raises(GraphValidationError, match="unknown task 'zz'"):
        handle.enqueue(Task("d", lambda x: 1, deps=["zz"]))
    with pytest.raises(GraphValidationError, match="duplicate"):
        handle.enqueue(Task("a", lambda x: 1))
    with pytest.raises(GraphValidationError, match="itself"):
        handle.enqueue(Task("e", lambda x: 1, deps=["e"]))
    gate.set()
    result = handle.result(timeout=5)
    assert result.ok and result["c"] == "ABC"
    assert sorted(result.tasks) == ["a", "b", "c"]
    assert [e.task_id for e in result.events if e.type == "task_enqueued"] == ["b", "c"]
    assert [e.type for e in handle.events()][-1] == "run_finished"
    with pytest.raises(RunFinishedError):
        handle.enqueue(Task("late", lambda x: 1))
    assert orch.graph.tasks.keys() == {"a"}  # the orchestrator's graph is untouched


def test_enqueue_in_eager_mode_wakes_the_scheduler() -> None:
    gate = threading.Event()

    handle = Orchestrator(
        [Task("slow", gated(gate, "slow"))], policy=RunPolicy(scheduling="eager")
    ).start({})
    ran = threading.Event()
    handle.enqueue(Task("quick", lambda x: ran.set() or "q"))
    assert ran.wait(5), "enqueued task did not start while another was running"
    gate.set()
    assert handle.result(timeout=5).ok


def test_enqueued_task_with_failed_dependency_is_skipped() -> None:
    gate = threading.Event()

    handle = Orchestrator([Task("a", gated(gate, fail=RuntimeError("no")))]).start({})
    handle.enqueue(Task("b", lambda x: 1, deps=["a"]))
    gate.set()
    result = handle.result(timeout=5)
    assert result.tasks["b"].state is TaskState.SKIPPED


def test_enqueue_refuses_prompt_needing_missing_input() -> None:
    from langchain_runtime.testing import SimulatedChatModel

    gate = threading.Event()

    handle = Orchestrator([Task("a", gated(gate))]).start({})
    with pytest.raises(InvalidInputError, match="topic"):
        handle.enqueue(Task("b", prompt="{topic}", model=SimulatedChatModel()))
    gate.set()
    assert sorted(handle.result(timeout=5).tasks) == ["a"]


def test_result_timeout_raises_and_run_goes_on() -> None:
    gate = threading.Event()

    handle = Orchestrator([Task("a", gated(gate))]).start({})
    with pytest.raises(TimeoutError):
        handle.result(timeout=0.05)
    assert handle.status() is RunState.RUNNING and not handle.done()
    gate.set()
    assert handle.result(timeout=5).ok


def test_deadlock_is_reported_not_a_hang() -> None:
    graph = TaskGraph([Task("a", lambda x: 1), Task("b", lambda x: 1, deps=["a"])])
    run = Run(graph, RunPolicy(), {}, {}, name="t", router=ContextRouter())
    # Simulate a lost wake-up: b believes it waits on one more dependency.
    original = run._admit

    def corrupt(tid: str) -> None:
        original(tid)
        if tid == "b":
            run._waiting["b"] += 1

    run._admit = corrupt  # type: ignore[method-assign]
    result = asyncio.run(asyncio.wait_for(run.execute(), 5))
    assert result.state is RunState.FAILED
    assert result.error is not None and result.error.code == "deadlock"
    assert "deadlock" in result.error.message and "'b'" in result.error.message
    assert result.tasks["b"].state is TaskState.CANCELLED
    with pytest.raises(DeadlockError):
        result.raise_for_error()


def test_external_cancellation_propagates_after_cleanup(tracker: Tracker) -> None:
    orch = Orchestrator([Task("a", tracker.task("a", 5.0))])

    async def main() -> None:
        t = asyncio.ensure_future(orch.ainvoke({}))
        await asyncio.sleep(0.05)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    asyncio.run(main())
    assert tracker.running == 0


def test_abort_right_after_start_is_not_lost(tracker: Tracker) -> None:
    for _ in range(20):
        handle = Orchestrator([Task("a", tracker.task("a", 2.0))]).start({})
        assert handle.abort() in (True, False)
        result = handle.result(timeout=5)
        assert result.state is RunState.ABORTED
        assert result.tasks["a"].state is TaskState.CANCELLED


def test_abort_racing_the_end_of_a_run_never_breaks_it() -> None:
    for _ in range(30):
        handle = Orchestrator([Task("a", lambda x: 1)]).start({})
        handle.abort()
        result = handle.result(timeout=5)
        assert result.state in (RunState.ABORTED, RunState.COMPLETED)
        assert all(t.state.is_terminal for t in result.tasks.values())


def test_a_stuck_sync_callable_does_not_hold_the_caller_past_the_timeout() -> None:
    release = threading.Event()

    def stuck(_: Any) -> None:
        release.wait(10)  # a sync call that cannot be cancelled

    try:
        start = time.perf_counter()
        result = Orchestrator([Task("a", stuck)], policy=RunPolicy(timeout=0.2)).invoke({})
        assert time.perf_counter() - start < 2.0
        assert result.state is RunState.TIMED_OUT
        start = time.perf_counter()
        handle = Orchestrator([Task("a", stuck)]).start({})
        time.sleep(0.1)
        handle.abort()
        assert handle.result(timeout=2).state is RunState.ABORTED
        assert time.perf_counter() - start < 2.5
    finally:
        release.set()


def test_failure_before_the_first_await_cancels_unstarted_siblings_cleanly() -> None:
    from langchain_core.runnables import Runnable

    class Boom(Runnable[Any, Any]):
        def invoke(self, input: Any, config: Any = None, **kwargs: Any) -> Any:
            raise RuntimeError("at once")

        async def ainvoke(self, input: Any, config: Any = None, **kwargs: Any) -> Any:
            raise RuntimeError("at once")

    for scheduling in ("batched", "eager"):
        tasks = [Task("a", Boom())] + [Task(f"b{i}", lambda x: 1) for i in range(5)]
        policy = RunPolicy(max_parallelism=2, scheduling=scheduling)
        result = Orchestrator(tasks, policy=policy).invoke({})
        assert result.state is RunState.FAILED
        assert result.tasks["a"].state is TaskState.FAILED
        assert all(t.state.is_terminal for t in result.tasks.values())


def test_a_live_snapshot_lists_every_task(tracker: Tracker) -> None:
    gate = threading.Event()
    handle = Orchestrator(
        [
            Task("a", tracker.task("a")),
            Task("b", gated(gate), deps=["a"]),
            Task("c", tracker.task("c"), deps=["b"]),
        ]
    ).start({})
    deadline = time.time() + 5
    while handle.snapshot().tasks["a"].state is not TaskState.COMPLETED:
        assert time.time() < deadline
        time.sleep(0.01)
    snap = handle.snapshot()
    assert set(snap.tasks) == {"a", "b", "c"}
    assert snap.tasks["c"].state is TaskState.PENDING
    gate.set()
    assert handle.result(timeout=5).ok
