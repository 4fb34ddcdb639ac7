"""The run: one execution of a task graph, behind one class.

:class:`Run` is assembled from three layers, each in its own module:

* :mod:`._schedule` decides which tasks start when. Batched scheduling (the
  default) runs the ready set, sorted by task id, with at most ``max_parallelism``
  tasks at once; the batch ends when all of it ends; then results, outputs and
  events are committed in task-id order, so two runs whose tasks produce the same
  outputs commit the same event log, whatever the timing. ``eager`` scheduling
  starts each task as soon as its dependencies complete and commits in completion
  order.
* :mod:`._execute` runs one task: input, budget plan, invoke, retries, timeout.
* :mod:`._commit` records and commits results (the run log, outputs, memory,
  dependents); persistence lands there.

This module holds what spans a run: its state, control from other threads
(``abort``, ``enqueue``), the main coroutine and the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Awaitable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks.manager import AsyncCallbackManagerForChainRun
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import get_async_callback_manager_for_config

from langchain_runtime.context.builder import ContextBuilder, bind_memory, unbind_memory
from langchain_runtime.context.memory import MemoryManager, MemoryScope
from langchain_runtime.context.router import ContextRouter
from langchain_runtime.domain import (
    RunEvent,
    RunPolicy,
    RunResult,
    RunState,
    TaskError,
    TaskResult,
    TaskState,
)
from langchain_runtime.errors import (
    InvalidInputError,
    LangChainRuntimeError,
    RunFinishedError,
    StoreError,
)
from langchain_runtime.orchestration._accounting import RunAccounting, check_prices, lease_holder
from langchain_runtime.orchestration._commit import FAILED, TaskListener
from langchain_runtime.orchestration._results import Prepared, as_exception, describe
from langchain_runtime.orchestration._schedule import _Scheduler
from langchain_runtime.orchestration._sync import with_timeout
from langchain_runtime.orchestration.graph import TaskGraph
from langchain_runtime.orchestration.task import Task
from langchain_runtime.store import DurableRunStore, StoredRun

if TYPE_CHECKING:
    from langchain_runtime.cost.ledger import BudgetLedger

logger = logging.getLogger(__name__)

__all__ = ["Run", "TaskListener"]


class Run(_Scheduler):
    """One execution of a graph. Not reusable; create one per run."""

    def __init__(
        self,
        graph: TaskGraph,
        policy: RunPolicy,
        run_input: Mapping[str, Any],
        config: RunnableConfig,
        *,
        name: str,
        router: ContextRouter,
        required_inputs: frozenset[str] = frozenset(),
        run_id: str | None = None,
        live: bool = False,
        catalog: Any = None,
        store: DurableRunStore | None = None,
        restored: StoredRun | None = None,
        ledger: BudgetLedger | None = None,
        attempt: int = 0,
    ):
        self.graph = graph.copy() if live or restored is not None else graph
        self.policy = policy
        self.run_input = dict(run_input)
        self.config = config
        self.name = name
        self.router = router
        self.required_inputs = required_inputs
        self.run_id = run_id or str(uuid.uuid4())
        self.live = live
        self.state = RunState.PENDING
        self.states: dict[str, TaskState] = dict.fromkeys(graph.tasks, TaskState.PENDING)
        self.results: dict[str, TaskResult] = {}
        #: results of tasks not finished yet, as snapshots show them (see _placeholder)
        self._placeholders: dict[str, TaskResult] = {}
        self.outputs: dict[str, Any] = {}
        self.memory = MemoryManager(
            on_write=self._on_memory_write, on_delete=self._on_memory_delete
        )
        self._memory_scope = MemoryScope(self.memory)
        self._pending_end: RunResult | None = None
        self.builder = ContextBuilder(router)
        self._committing: str | None = None
        self.events: list[RunEvent] = []
        self.error: TaskError | None = None
        self.listeners: list[TaskListener] = []
        #: The exception behind each failed task, for callers that re-raise it.
        self.exceptions: dict[str, BaseException] = {}
        self._committed: set[str] = set()
        self._buffers: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self._waiting: dict[str, int] = {}
        self._ready: set[str] = set()
        self._topo: dict[str, int] = {tid: i for i, tid in enumerate(self.graph.order)}
        self._inbox: list[str] = []
        self._lock = threading.Lock()
        self._closed = False
        self._stop_reason: str | None = None
        self._budget_stop = False
        self._abort_requested = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[Any] | None = None
        self._wake: asyncio.Event | None = None
        self._inflight: dict[str, asyncio.Task[TaskResult]] = {}
        self._run_manager: AsyncCallbackManagerForChainRun | None = None
        self.done = threading.Event()
        self._catalog = catalog
        self.accounting = RunAccounting(
            policy,
            catalog,
            self.run_id,
            {t.id: t.budget for t in graph if t.budget is not None},
            ledger=ledger,
            holder=lease_holder(self.run_id, attempt),  # 0, or which resume this is
        )
        self._prepared: dict[str, Prepared] = {}
        self.limit = policy.max_parallelism
        max_conc = config.get("max_concurrency")
        if max_conc is not None:
            self.limit = max(1, min(self.limit, int(max_conc)))
        self.store = store
        self._restored = restored
        self._began = False
        self._unsaved = []
        self._unannounced = []
        self._saved_seq = 0
        self._durable = set()
        self._memory_upserts = {}
        self._memory_deletes = set()
        self._saved_memory = {}
        self._early_enqueued: list[dict[str, Any]] = []
        if restored is not None:
            self._restore(restored)

    def _restore(self, stored: StoredRun) -> None:
        """Start from a stored run: its completed tasks, memory, spend and event log."""
        from langchain_runtime.orchestration._durable import restored_events, stored_result
        from langchain_runtime.store._codec import decode

        assert self.store is not None
        tracker = self.accounting.handler.tracker
        for tid, record in stored.tasks.items():
            if tid not in self.states:
                continue
            tr, models = stored_result(record, decode)
            # paid for once, completed or not: it stays in the totals and the budget
            for model, used in models.items():
                tracker.record(
                    f"restored:{tid}:{model}",
                    used.usage,
                    cost=used.cost,
                    model=model,
                    task_id=tid,
                    calls=used.calls,
                )
            if not models and (tr.usage.total_tokens or tr.cost.amount):  # older records
                tracker.record(f"restored:{tid}", tr.usage, cost=tr.cost, task_id=tid)
            if tr.state is not TaskState.COMPLETED:
                continue  # runs again
            tr = tr.model_copy(update={"restored": True})
            self.results[tid] = tr
            self.states[tid] = TaskState.COMPLETED
            self.outputs[tid] = tr.output
            self._committed.add(tid)
            self._durable.add(tid)
        if stored.memory:  # what the completed tasks had committed; no write events again
            initial = {k: decode(v) for k, v in stored.memory.items()}
            self.memory = MemoryManager(
                initial=initial, on_write=self._on_memory_write, on_delete=self._on_memory_delete
            )
            self._saved_memory = dict(initial)
            self._memory_scope = MemoryScope(self.memory)
        self.events = restored_events(self.store.run_events(stored.header.run_id))
        self._saved_seq = len(self.events)

    def _begin_durable(self) -> None:
        if self.store is None:
            return
        from langchain_runtime.orchestration._durable import header
        from langchain_runtime.store._codec import encode

        stored = self._restored
        encoded_input = encode(self.run_input, what="the run input")
        with self._lock:  # enqueue() waits: a task added now is in the header or after it
            enqueued = [*(stored.header.enqueued if stored else ()), *self._early_enqueued]
            self.store.begin_run(
                header(
                    self.run_id,
                    self.name,
                    encoded_input,
                    self.policy.model_dump(mode="json"),
                    self.graph,
                    created_at=stored.header.created_at if stored is not None else None,
                    enqueued=enqueued,
                ),
                resume=stored is not None,
            )
            self._began = True

    def _start_heartbeat(self) -> asyncio.Task[None] | None:
        """Keep a durable run visibly alive during long calls (commits beat too)."""
        beat = getattr(self.store, "heartbeat", None)
        if not self._began or not callable(beat):
            return None
        stale = getattr(self.store, "stale_after", None)
        interval = stale.total_seconds() / 4 if isinstance(stale, timedelta) else 30.0

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await asyncio.to_thread(beat, self.run_id)
                except Exception:  # a missed beat is logged; the next commit beats again
                    logger.warning("run %s: heartbeat to its store failed", self.run_id)

        return asyncio.ensure_future(loop())

    def _end_durable(self) -> None:
        if self.store is None or not self._began:
            return
        try:
            with self._lock:
                self._save()
        except StoreError as exc:
            if self.error is None or self.state is not RunState.FAILED:
                self.state = RunState.FAILED
                self.error = TaskError(code=exc.code, message=str(exc), type=type(exc).__name__)
            raise
        finally:  # the run is over either way: its owner lets go
            error = self.error.model_dump(mode="json") if self.error is not None else None
            self.store.finish_run(self.run_id, self.state.value, error)

    def committed_events(self) -> list[RunEvent]:
        """The event log as callers may see it: in a durable run, only what is stored."""
        if self.store is None:
            return list(self.events)
        return self.events[: self._saved_seq]

    def abort(self) -> bool:
        """Request an abort from any thread; False if the run already finished."""
        with self._lock:
            if self._closed or self.done.is_set():
                return False
            self._abort_requested = True
            loop, main = self._loop, self._main
        if loop is not None and main is not None:
            loop.call_soon_threadsafe(main.cancel)
        return True

    def enqueue(self, task: Task, spec: Any = None) -> None:
        """Add ``task`` to the live run (validated now, scheduled in the next batch).

        ``spec`` is stored with it in a durable run: what the caller can rebuild the
        task from on resume (the sidecar's declarative task), or None.
        """
        with self._lock:
            if self._closed or self.done.is_set() or self._abort_requested:
                raise RunFinishedError(
                    f"run {self.run_id} has finished ({self.state.value}); "
                    f"cannot add task {task.id!r}"
                )
            needed = self.router.validate_task(task, self.graph)
            check_prices(
                [task], self.policy.budget, self._catalog, shared=bool(self.policy.scopes)
            )  # as at construction
            missing = sorted(k for k in needed if k not in self.run_input)
            if missing:
                raise InvalidInputError(
                    f"task {task.id!r}: its prompt uses {missing}, which no dependency, "
                    "inputs entry or the run input provides"
                )
            if self.store is not None:
                # stored first: a resumed run must know every task the live run had
                entry = {"task_id": task.id, "spec": spec}
                if self._began:
                    from langchain_runtime.orchestration._durable import task_fingerprint

                    self.store.enqueue(self.run_id, entry, task_fingerprint(task))
                else:  # the run has not begun: its header will carry it
                    self._early_enqueued.append(entry)
            self.graph.add(task)
            if task.budget is not None:
                self.accounting.task_budgets[task.id] = task.budget
            self.states[task.id] = TaskState.PENDING
            self._topo[task.id] = len(self._topo)
            self._inbox.append(task.id)
            loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            loop.call_soon_threadsafe(wake.set)

    async def execute(self, *, defer_end: bool = False) -> RunResult:
        """Run the graph to a terminal state and return the result.

        With ``defer_end`` the run's own callback run is ended by a later
        :meth:`end_callbacks` (a stream yields its last chunk before the run ends).
        """
        try:
            # first of all: a run the store refuses (it exists, another resume won the
            # race, the input cannot be stored) never starts, and says why
            self._begin_durable()
        except BaseException:
            self.state = RunState.FAILED
            self.accounting.close()
            self.done.set()
            release = getattr(self.store, "release", None)
            if self._restored is not None and not self._began and callable(release):
                with contextlib.suppress(Exception):  # give back the claim resume made
                    release(self.run_id)
            raise
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._main = asyncio.current_task()
            aborted_early = self._abort_requested  # abort() before the loop existed
        beat = self._start_heartbeat()
        self._wake = asyncio.Event() if self.live else None
        self.config = self.accounting.attach(self.config)
        memory_token = bind_memory(self._memory_scope)  # for current_memory() inside tasks
        cm = get_async_callback_manager_for_config(self.config)
        self._run_manager = await cm.on_chain_start(
            None,
            self.run_input,
            name=self.config.get("run_name") or self.name,
            run_id=self.config.get("run_id"),
        )
        self.state = RunState.RUNNING
        external_cancel: BaseException | None = None
        try:
            self._emit(
                "run_started",
                None,
                {
                    "tasks": len(self.graph),
                    "scheduling": self.policy.scheduling,
                    "max_parallelism": self.limit,
                },
            )
            if self._restored is not None:
                restored = sorted(self._durable)
                self._emit("run_resumed", None, {"restored": restored})
            if aborted_early:
                raise asyncio.CancelledError
            self._check_input()
            with self._lock:
                for tid in self.graph.order:
                    if tid not in self._committed:  # restored tasks are done
                        self._admit(tid)
            batched = self.policy.scheduling == "batched"
            runner = self._run_batched() if batched else self._run_eager()
            timed_out, _ = await with_timeout(runner, self.policy.timeout)
            if timed_out:
                self.state = RunState.TIMED_OUT
                self.error = TaskError(
                    code="run_timeout",
                    message=f"run {self.run_id} exceeded its timeout of {self.policy.timeout}s",
                    type="RunTimeoutError",
                )
        except asyncio.CancelledError as exc:
            if not self._abort_requested:
                external_cancel = exc
            self.state = RunState.ABORTED
            self.error = TaskError(
                code="run_aborted", message=f"run {self.run_id} was aborted", type="RunAbortedError"
            )
            task = asyncio.current_task()
            if task is not None and hasattr(task, "uncancel"):
                task.uncancel()
        except LangChainRuntimeError as exc:
            self.state = RunState.FAILED
            self.error = TaskError(code=exc.code, message=str(exc), type=type(exc).__name__)
        except Exception as exc:  # a defect of ours: still end every task, and say so
            logger.exception("run %s failed inside the runtime", self.run_id)
            self.state = RunState.FAILED
            self.error = TaskError(
                code="internal_error", message=describe(exc), type=type(exc).__name__
            )
        finally:
            with self._lock:
                self._closed = True  # from here on abort() is a no-op
            await self._settle(self._cancel_inflight())
            with self._lock:
                self._finish_untouched()
        if self.state is RunState.RUNNING:
            if self._budget_stop:
                self.state = RunState.BUDGET_EXCEEDED
            elif any(s is FAILED for s in self.states.values()) or self.error is not None:
                self.state = RunState.FAILED
            else:
                self.state = RunState.COMPLETED
        try:
            overrun = self.accounting.overrun()
            if overrun is not None and self.state is RunState.COMPLETED:
                # a call ignored its max_tokens; the run must not claim it stayed inside
                self.state = RunState.BUDGET_EXCEEDED
                self.error = TaskError(
                    code="budget_exceeded", message=overrun, type="BudgetExceededError"
                )
            self._emit("run_finished", None, {"state": self.state.value})
            self._end_durable()
            result = self.result()
            self._pending_end = result
            if not defer_end or external_cancel is not None:
                await self.end_callbacks()
        finally:
            if beat is not None:
                beat.cancel()
            self.accounting.close()  # no ledger lease renewer outlives the run
            self.done.set()
            unbind_memory(memory_token)
        if external_cancel is not None:
            raise external_cancel
        return result

    async def end_callbacks(self) -> None:
        """End the run's callback run (once), with its result or its error."""
        result, self._pending_end = self._pending_end, None
        if result is None or self._run_manager is None:
            return
        if result.state is RunState.COMPLETED:
            await self._settle(self._run_manager.on_chain_end(result))
        else:
            await self._settle(self._run_manager.on_chain_error(as_exception(result)))

    async def _settle(self, aw: Awaitable[Any]) -> None:
        """Await clean-up even if an abort's cancellation lands on it.

        ``abort()`` may have scheduled a cancellation just before the run closed;
        it must not cut the clean-up short. Any other cancellation propagates.
        """
        fut = asyncio.ensure_future(aw)
        while True:
            try:
                await asyncio.shield(fut)
                return
            except asyncio.CancelledError:
                if not self._abort_requested or fut.cancelled():
                    raise
                task = asyncio.current_task()
                if task is not None and hasattr(task, "uncancel"):
                    task.uncancel()

    def result(self) -> RunResult:
        """A snapshot of the run as it stands: every task, finished or not."""
        usage, cost = self.accounting.totals()
        with self._lock:
            tasks = dict(self.results)
            outputs = dict(self.outputs)
            events = self.committed_events()
            durable_live = self.store is not None and self.state is RunState.RUNNING
            memory = dict(self._saved_memory) if durable_live else self.memory.snapshot()
        if durable_live and len(self._durable) < len(tasks):
            # finished but not stored yet: to callers it is still running
            for tid in [t for t in tasks if t not in self._durable]:
                tasks[tid] = self._placeholder(tid, TaskState.RUNNING)
                outputs.pop(tid, None)
        if len(tasks) < len(self.states):  # live: tasks still pending or running
            for tid, state in list(self.states.items()):
                if tid not in tasks:
                    tasks[tid] = self._placeholder(tid, state)
        return RunResult(
            run_id=self.run_id,
            state=self.state,
            outputs=outputs,
            tasks=tasks,
            usage=usage,
            cost=cost,
            events=events,
            error=self.error,
            memory=memory,
            models=self.accounting.by_model(),
            scheduling=self.policy.scheduling,
        )

    def _placeholder(self, tid: str, state: TaskState) -> TaskResult:
        """The result of a task not finished (or not stored) yet: one object per task
        and state, so polling a long run does not build one per task per snapshot."""
        held = self._placeholders.get(tid)
        if held is None or held.state is not state:
            held = self._placeholders[tid] = TaskResult(task_id=tid, state=state)
        return held

    def _check_input(self) -> None:
        missing = sorted(k for k in self.required_inputs if k not in self.run_input)
        if missing:
            users = {
                k: sorted(t.id for t in self.graph if k in t.prompt_variables) for k in missing
            }
            detail = "; ".join(f"{k!r} (used by {', '.join(v)})" for k, v in users.items())
            raise InvalidInputError(f"the run input is missing {detail}")
