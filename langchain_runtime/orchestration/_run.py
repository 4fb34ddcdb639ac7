"""The run loop: one execution of a task graph.

Scheduling is batched by default: the ready set, sorted by task id, runs with at
most ``max_parallelism`` tasks at once; the batch ends when all of it ends; then
results, outputs and events are committed in task-id order. So two runs whose
tasks produce the same outputs commit the same event log, whatever the timing.
``eager`` scheduling starts each task as soon as its dependencies complete and
commits in completion order.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from langchain_core.callbacks.manager import AsyncCallbackManagerForChainRun
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import get_async_callback_manager_for_config, patch_config

from langchain_runtime.context.builder import (
    ContextBuilder,
    bind_memory,
    current_task_id,
    enter_task,
    exit_task,
    unbind_memory,
)
from langchain_runtime.context.memory import MemoryManager, MemoryScope
from langchain_runtime.context.router import ContextRouter
from langchain_runtime.domain import (
    Cost,
    RunEvent,
    RunPolicy,
    RunResult,
    RunState,
    TaskError,
    TaskResult,
    TaskState,
    Usage,
)
from langchain_runtime.errors import (
    BudgetExceededError,
    DeadlockError,
    InvalidInputError,
    LangChainRuntimeError,
    RunFinishedError,
    TaskTimeoutError,
    error_code,
)
from langchain_runtime.orchestration._accounting import RunAccounting, check_prices, model_name
from langchain_runtime.orchestration._results import (
    ZERO_COST,
    ZERO_USAGE,
    Prepared,
    as_exception,
    describe,
    now,
    result_data,
    trusted,
)
from langchain_runtime.orchestration._retry import backoff_delay, is_retryable
from langchain_runtime.orchestration._sync import with_timeout
from langchain_runtime.orchestration.graph import TaskGraph
from langchain_runtime.orchestration.task import Task

logger = logging.getLogger(__name__)

COMPLETED, FAILED, SKIPPED, CANCELLED = (
    TaskState.COMPLETED,
    TaskState.FAILED,
    TaskState.SKIPPED,
    TaskState.CANCELLED,
)
_DOOMED = (FAILED, SKIPPED, CANCELLED)

TaskListener = Callable[[TaskResult], None]


class Run:
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
    ):
        self.graph = graph.copy() if live else graph
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
        self.outputs: dict[str, Any] = {}
        self.memory = MemoryManager(on_write=self._on_memory_write)
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
            policy, catalog, self.run_id, {t.id: t.budget for t in graph if t.budget is not None}
        )
        self._prepared: dict[str, Prepared] = {}
        self.limit = policy.max_parallelism
        max_conc = config.get("max_concurrency")
        if max_conc is not None:
            self.limit = max(1, min(self.limit, int(max_conc)))

    # ------------------------------------------------------------------ control
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

    def enqueue(self, task: Task) -> None:
        """Add ``task`` to the live run (validated now, scheduled in the next batch)."""
        with self._lock:
            if self._closed or self.done.is_set() or self._abort_requested:
                raise RunFinishedError(
                    f"run {self.run_id} has finished ({self.state.value}); "
                    f"cannot add task {task.id!r}"
                )
            needed = self.router.validate_task(task, self.graph)
            check_prices([task], self.policy.budget, self._catalog)  # as at construction
            missing = sorted(k for k in needed if k not in self.run_input)
            if missing:
                raise InvalidInputError(
                    f"task {task.id!r}: its prompt uses {missing}, which no dependency, "
                    "inputs entry or the run input provides"
                )
            self.graph.add(task)
            if task.budget is not None:
                self.accounting.task_budgets[task.id] = task.budget
            self.states[task.id] = TaskState.PENDING
            self._topo[task.id] = len(self._topo)
            self._inbox.append(task.id)
            loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            loop.call_soon_threadsafe(wake.set)

    # ------------------------------------------------------------------ main
    async def execute(self, *, defer_end: bool = False) -> RunResult:
        """Run the graph to a terminal state and return the result.

        With ``defer_end`` the run's own callback run is ended by a later
        :meth:`end_callbacks` (a stream yields its last chunk before the run ends).
        """
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._main = asyncio.current_task()
            aborted_early = self._abort_requested  # abort() before the loop existed
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
        self._emit(
            "run_started",
            None,
            {
                "tasks": len(self.graph),
                "scheduling": self.policy.scheduling,
                "max_parallelism": self.limit,
            },
        )
        external_cancel: BaseException | None = None
        try:
            if aborted_early:
                raise asyncio.CancelledError
            self._check_input()
            with self._lock:
                for tid in self.graph.order:
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
            result = self.result()
            self._pending_end = result
            if not defer_end or external_cancel is not None:
                await self.end_callbacks()
        finally:
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
        tasks = dict(self.results)
        if len(tasks) < len(self.states):  # live: tasks still pending or running
            for tid, state in list(self.states.items()):
                if tid not in tasks:
                    tasks[tid] = TaskResult(task_id=tid, state=state)
        return RunResult(
            run_id=self.run_id,
            state=self.state,
            outputs=dict(self.outputs),
            tasks=tasks,
            usage=usage,
            cost=cost,
            events=list(self.events),
            error=self.error,
            memory=self.memory.snapshot(),
            models=self.accounting.by_model(),
            scheduling=self.policy.scheduling,
        )

    # ------------------------------------------------------------------ scheduling
    async def _run_batched(self) -> None:
        batch_no = 0
        while True:
            with self._lock:
                self._absorb_inbox()
                if self._stop_reason is not None or not self._ready:
                    self._check_deadlock()
                    self._closed = True
                    return
                batch = sorted(self._ready)
                self._ready.clear()
            batch_no += 1
            self._emit("batch_started", None, {"batch": batch_no, "tasks": batch})
            startable = await self._prepare_batch(batch, batch_no)
            for tid in startable:
                self.states[tid] = TaskState.RUNNING
            if startable:
                await self._gather(startable, batch_no)
            with self._lock:
                for tid in batch:
                    self._commit(self._result_of(tid, batch_no))

    async def _prepare_batch(self, batch: list[str], batch_no: int) -> list[str]:
        """Build inputs and plan budgets in task-id order; drop what cannot start.

        Budget plans (and context summaries) are made here, one task at a time,
        before anything in the batch starts, so which task a budget refuses never
        depends on timing. After a refusal the rest of the batch does not start.
        """
        startable: list[str] = []
        for tid in batch:
            if self._stop_reason is not None:
                self._finish(tid, self._cancelled_result(tid, None, 0, batch_no))
                continue
            try:
                self._prepared[tid] = await self._prepare(tid)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._finish(tid, self._failed_result(tid, exc, None, 0, batch_no))
                self._on_failure(tid)
                continue
            startable.append(tid)
        return startable

    async def _prepare(self, tid: str) -> Prepared:
        task = self.graph[tid]
        policy = task.context or self.policy.context
        if policy is None:  # the common case: no coroutine, no compaction
            variables = self.router.route(task, self.outputs, self.run_input, self._memory_view())
            inp = {**self.run_input, **variables} if variables else dict(self.run_input)
            info = None
        else:
            inp, compaction = await self.builder.abuild(
                task,
                self.outputs,
                self.run_input,
                self._memory_view(),
                policy=policy,
                model=model_name(task),
                config=self._child_config(task),
            )
            info = compaction.as_event_data() if compaction is not None else None
            if compaction is not None and compaction.changed:
                self._buffer(tid, "context_compacted", info or {})
        planned = self.accounting.plan(task, inp)
        return Prepared(inp, planned if planned is not None else task.runnable, info)

    def _memory_view(self) -> dict[str, Any]:
        return self.memory.snapshot() if len(self.memory) else {}

    async def _gather(self, batch: list[str], batch_no: int) -> None:
        if len(batch) == 1:  # a chain: no task or gather to pay for
            await self._guarded(batch[0], batch_no, None)
            return
        sem = asyncio.Semaphore(self.limit) if len(batch) > self.limit else None
        for tid in batch:
            self._inflight[tid] = asyncio.ensure_future(self._guarded(tid, batch_no, sem))
        try:
            await asyncio.gather(*self._inflight.values(), return_exceptions=True)
        finally:
            self._inflight.clear()

    async def _guarded(
        self, tid: str, batch_no: int | None, sem: asyncio.Semaphore | None
    ) -> TaskResult:
        if sem is None:
            tr = await self._execute(tid, batch_no)
        else:
            try:
                async with sem:
                    if self._stop_reason is not None:  # stopped while waiting for a slot
                        return self._finish(tid, self._cancelled_result(tid, None, 0, batch_no))
                    tr = await self._execute(tid, batch_no)
            except asyncio.CancelledError:
                if tid not in self.results:  # cancelled while waiting for a slot
                    self._finish(tid, self._cancelled_result(tid, None, 0, batch_no))
                raise
        if tr.state is FAILED:
            self._on_failure(tid)
        return tr

    async def _run_eager(self) -> None:
        running: dict[asyncio.Task[TaskResult], str] = {}
        waker: asyncio.Task[Any] | None = None
        try:
            while True:
                with self._lock:
                    self._absorb_inbox()
                    if self._stop_reason is None:
                        free = self.limit - len(running)
                        for tid in sorted(self._ready)[: max(free, 0)]:
                            self._ready.discard(tid)
                            self.states[tid] = TaskState.RUNNING
                            fut = asyncio.ensure_future(self._guarded(tid, None, None))
                            self._inflight[tid] = fut
                            running[fut] = tid
                    if not running:
                        self._check_deadlock()
                        self._closed = True
                        return
                wait_on: set[asyncio.Future[Any]] = set(running)
                if self._wake is not None:
                    if waker is None or waker.done():
                        self._wake.clear()
                        waker = asyncio.ensure_future(self._wake.wait())
                    wait_on.add(waker)
                done, _ = await asyncio.wait(wait_on, return_when=asyncio.FIRST_COMPLETED)
                finished = sorted((running.pop(f), f) for f in done if f in running)
                with self._lock:
                    for tid, _fut in finished:
                        self._inflight.pop(tid, None)
                        self._commit(self._result_of(tid, None))
        finally:
            if waker is not None:
                waker.cancel()

    # ------------------------------------------------------------------ one task
    async def _execute(self, tid: str, batch_no: int | None) -> TaskResult:
        # attributes memory writes to the task; reset, as a chain runs in the main task
        token = enter_task(tid)  # its memory view and writes; reset: a chain runs inline
        try:
            return await self._execute_task(tid, batch_no)
        finally:
            exit_task(token)

    async def _execute_task(self, tid: str, batch_no: int | None) -> TaskResult:
        task = self.graph[tid]
        started = now()
        attempts = 0
        try:
            prepared = self._prepared.pop(tid, None) or await self._prepare(tid)
            inp, runnable = prepared.input, prepared.runnable
            cfg = self._child_config(task)
            while True:
                attempts += 1
                self.accounting.release_plan(tid)
                try:
                    if task.timeout is None:
                        out = await runnable.ainvoke(inp, cfg)
                        break
                    timed_out, out = await with_timeout(runnable.ainvoke(inp, cfg), task.timeout)
                    if timed_out:
                        raise TaskTimeoutError(
                            f"task {tid!r} timed out after {task.timeout}s (attempt {attempts})",
                            task_id=tid,
                        )
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if attempts <= task.max_retries and is_retryable(exc):
                        delay = backoff_delay(self.policy, attempts)
                        self._buffer(
                            tid,
                            "task_retry",
                            {"attempt": attempts, "error": describe(exc), "delay": delay},
                        )
                        await asyncio.sleep(delay)
                        continue
                    raise
                break
        except asyncio.CancelledError:
            self.accounting.release_plan(tid)
            self._finish(tid, self._cancelled_result(tid, started, attempts, batch_no))
            raise
        except Exception as exc:
            self.accounting.release_plan(tid)
            return self._finish(tid, self._failed_result(tid, exc, started, attempts, batch_no))
        usage, cost = self._usage(tid)
        return self._finish(
            tid,
            trusted(
                TaskResult,
                task_id=tid,
                state=COMPLETED,
                output=out,
                error=None,
                usage=usage,
                cost=cost,
                attempts=attempts,
                batch=batch_no,
                started_at=started,
                ended_at=now(),
                compaction=prepared.compaction,
            ),
        )

    def _usage(self, tid: str) -> tuple[Usage, Cost]:
        found = self.accounting.task_usage(tid)
        if found is None:
            return ZERO_USAGE, ZERO_COST  # identity marks "nothing to sum"
        return found

    def _failed_result(
        self,
        tid: str,
        exc: BaseException,
        started: datetime | None,
        attempts: int,
        batch_no: int | None,
    ) -> TaskResult:
        self.exceptions[tid] = exc
        if isinstance(exc, BudgetExceededError):
            self._budget_stop = True
        usage, cost = self._usage(tid)
        return TaskResult(
            task_id=tid,
            state=FAILED,
            attempts=attempts,
            batch=batch_no,
            error=TaskError(code=error_code(exc), message=describe(exc), type=type(exc).__name__),
            usage=usage,
            cost=cost,
            started_at=started,
            ended_at=now() if started else None,
        )

    def _child_config(self, task: Task) -> RunnableConfig:
        assert self._run_manager is not None
        cfg = patch_config(self.config, callbacks=self._run_manager.get_child(), run_name=task.id)
        metadata = {**cfg.get("metadata", {}), **task.metadata, "lcr_task_id": task.id}
        if task.model_id is not None:
            metadata["lcr_model"] = task.model_id
        cfg["metadata"] = metadata
        return cfg

    def _result_of(self, tid: str, batch_no: int | None) -> TaskResult:
        """The task's result; a task cancelled before its code ever ran has none yet."""
        found = self.results.get(tid)
        if found is not None:
            return found
        return self._finish(tid, self._cancelled_result(tid, None, 0, batch_no))

    def _cancelled_result(
        self, tid: str, started: datetime | None, attempts: int, batch_no: int | None
    ) -> TaskResult:
        reason = self._stop_reason or "the run was stopped"
        return TaskResult(
            task_id=tid,
            state=CANCELLED,
            attempts=attempts,
            batch=batch_no,
            error=TaskError(code="cancelled", message=f"task {tid!r} cancelled: {reason}"),
            started_at=started,
            ended_at=now() if started else None,
        )

    def _finish(self, tid: str, tr: TaskResult) -> TaskResult:
        """Record a terminal result now (live listeners); the log commits later."""
        self.results[tid] = tr
        self.states[tid] = tr.state
        for listener in self.listeners:
            try:
                listener(tr)
            except Exception:  # a listener must not break the run
                logger.exception("task listener failed for %s", tid)
        return tr

    def _on_failure(self, tid: str) -> None:
        if isinstance(self.exceptions.get(tid), BudgetExceededError):
            # Calls already in flight have reserved their cost: let them finish,
            # start nothing new.
            self._stop_reason = self._stop_reason or f"budget exceeded in task {tid!r}"
            return
        if self.policy.fail_fast:
            self._stop_reason = self._stop_reason or f"task {tid!r} failed (fail_fast)"
            for other, fut in list(self._inflight.items()):
                if other != tid and not fut.done():
                    fut.cancel()

    async def _cancel_inflight(self) -> None:
        futs = [f for f in self._inflight.values() if not f.done()]
        for f in futs:
            f.cancel()
        if futs:
            await asyncio.gather(*futs, return_exceptions=True)
        self._inflight.clear()

    # ------------------------------------------------------------------ bookkeeping
    def _admit(self, tid: str) -> None:
        """Start tracking a pending task (lock held)."""
        task = self.graph[tid]
        doomed = sorted(d for d in task.deps if self.states[d] in _DOOMED)
        if doomed:
            self._skip(tid, doomed[0])
            return
        waiting = sum(1 for d in task.deps if self.states[d] is not COMPLETED)
        self._waiting[tid] = waiting
        if waiting == 0:
            self._ready.add(tid)

    def _absorb_inbox(self) -> None:
        inbox, self._inbox = self._inbox, []
        for tid in inbox:
            self._emit("task_enqueued", tid, {"deps": list(self.graph[tid].deps)})
            self._admit(tid)

    def _commit(self, tr: TaskResult) -> None:
        """Commit a finished task's events and output, then release or doom dependents."""
        tid = tr.task_id
        if tid in self._committed:
            return
        self._committed.add(tid)
        for etype, data in self._buffers.pop(tid, ()):
            self._emit(etype, tid, data)
        self._emit(f"task_{tr.state.value}", tid, result_data(tr))
        staged = self._memory_scope.pop(tid)
        if tr.state is COMPLETED:
            self.outputs[tid] = tr.output
            task = self.graph[tid]
            self._committing = tid
            try:
                if staged is not None:
                    staged.commit()  # the task's own writes, in commit order
                if task.memory_key is not None:
                    self.memory.mset([(task.memory_key, tr.output)])
            finally:
                self._committing = None
            for child in self.graph.dependents(tid):
                if child in self._waiting:
                    self._waiting[child] -= 1
                    if self._waiting[child] == 0 and self.states[child] is TaskState.PENDING:
                        self._ready.add(child)
            return
        if tr.state is FAILED and self.error is None:
            assert tr.error is not None
            self.error = TaskError(
                code=tr.error.code,
                type=tr.error.type,
                message=f"task {tid!r} failed: {tr.error.message}",
                task_id=tid,
            )
        self._doom_descendants(tid)

    def _doom_descendants(self, root: str) -> None:
        stack, seen = [root], set()
        doomed: list[str] = []
        while stack:
            for child in self.graph.dependents(stack.pop()):
                if child not in seen and self.states.get(child) is TaskState.PENDING:
                    seen.add(child)
                    doomed.append(child)
                    stack.append(child)
        for child in sorted(doomed, key=self._topo.__getitem__):
            deps = sorted(d for d in self.graph[child].deps if self.states[d] in _DOOMED)
            self._skip(child, deps[0] if deps else root)

    def _skip(self, tid: str, because: str) -> None:
        self._committed.add(tid)
        self._waiting.pop(tid, None)
        self._ready.discard(tid)
        state = self.states[because].value
        tr = TaskResult(
            task_id=tid,
            state=SKIPPED,
            error=TaskError(
                code="skipped", message=f"task {tid!r} skipped: dependency {because!r} {state}"
            ),
        )
        self._finish(tid, tr)
        self._emit("task_skipped", tid, {"because": because})

    def _finish_untouched(self) -> None:
        """Every task ends terminal: never-started tasks are skipped or cancelled."""
        for tid in sorted(self.results):  # finished in a batch that was interrupted
            if tid not in self._committed:
                self._commit(self.results[tid])
        for tid in sorted(self.states, key=self._topo.__getitem__):
            if self.states[tid].is_terminal:
                continue
            deps = sorted(d for d in self.graph[tid].deps if self.states[d] in _DOOMED)
            if deps and self.states[deps[0]] is not CANCELLED:
                self._skip(tid, deps[0])
                continue
            tr = self._cancelled_result(tid, None, 0, None)
            self._committed.add(tid)
            self._finish(tid, tr)
            self._emit("task_cancelled", tid, {"reason": self._stop_reason or "run stopped"})

    def _check_deadlock(self) -> None:
        if self._stop_reason is not None or self._inflight:
            return
        stuck = sorted(
            t for t, s in self.states.items() if s is TaskState.PENDING and t not in self._inbox
        )
        if stuck:
            waits = {
                t: [d for d in self.graph[t].deps if self.states[d] is not COMPLETED]
                for t in stuck[:5]
            }
            raise DeadlockError(
                f"deadlock: {len(stuck)} task(s) pending with nothing ready or running; "
                f"waiting on: {waits}"
            )

    def _check_input(self) -> None:
        missing = sorted(k for k in self.required_inputs if k not in self.run_input)
        if missing:
            users = {
                k: sorted(t.id for t in self.graph if k in t.prompt_variables) for k in missing
            }
            detail = "; ".join(f"{k!r} (used by {', '.join(v)})" for k, v in users.items())
            raise InvalidInputError(f"the run input is missing {detail}")

    def _on_memory_write(self, key: str, value: Any) -> None:
        if self._committing is not None:  # a memory_key write, in commit order
            self._emit("memory_write", self._committing, {"key": key})
            return
        tid = current_task_id()
        if tid is not None:  # written by a task's code: committed with the task
            self._buffer(tid, "memory_write", {"key": key})
        else:
            self._emit("memory_write", None, {"key": key})

    def _buffer(self, tid: str, etype: str, data: dict[str, Any]) -> None:
        self._buffers.setdefault(tid, []).append((etype, data))

    def _emit(self, etype: str, tid: str | None, data: dict[str, Any]) -> None:
        self.events.append(
            trusted(
                RunEvent,
                seq=len(self.events),
                type=etype,
                run_id=self.run_id,
                task_id=tid,
                data=data,
                ts=now(),
            )
        )
