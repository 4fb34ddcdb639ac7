"""Committing a run's results: the run log, outputs, memory, and who may start next.

A finished task is *recorded* at once (:meth:`_Committer._finish`) and *committed*
later (:meth:`_Committer._commit`): in task-id order at the end of a batch in
batched runs, in completion order in eager runs. Committing emits the task's
buffered events, publishes its output and memory writes, and releases (or dooms)
its dependents. This is where a run becomes durable.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from langchain_runtime.context.builder import current_task_id
from langchain_runtime.domain import (
    RunEvent,
    RunPolicy,
    RunState,
    TaskError,
    TaskResult,
    TaskState,
)
from langchain_runtime.errors import (
    BudgetExceededError,
    DeadlockError,
    OutputNotStorableError,
    StoreError,
)
from langchain_runtime.orchestration._results import describe, now, result_data, trusted
from langchain_runtime.store._base import DELETED

if TYPE_CHECKING:
    from langchain_core.callbacks.manager import AsyncCallbackManagerForChainRun
    from langchain_core.runnables import RunnableConfig

    from langchain_runtime.context.builder import ContextBuilder
    from langchain_runtime.context.memory import MemoryManager, MemoryScope, StagedMemory
    from langchain_runtime.context.router import ContextRouter
    from langchain_runtime.orchestration._accounting import RunAccounting
    from langchain_runtime.orchestration._results import Prepared
    from langchain_runtime.orchestration.graph import TaskGraph
    from langchain_runtime.store import DurableRunStore, TaskRecord

logger = logging.getLogger(__name__)

COMPLETED, FAILED, SKIPPED, CANCELLED = (
    TaskState.COMPLETED,
    TaskState.FAILED,
    TaskState.SKIPPED,
    TaskState.CANCELLED,
)
_DOOMED = (FAILED, SKIPPED, CANCELLED)

TaskListener = Callable[[TaskResult], None]


class _Committer:
    """The run's state and its commit path; the base of :class:`~._run.Run`."""

    graph: TaskGraph
    policy: RunPolicy
    run_input: dict[str, Any]
    config: RunnableConfig
    name: str
    router: ContextRouter
    required_inputs: frozenset[str]
    run_id: str
    live: bool
    state: RunState
    states: dict[str, TaskState]
    results: dict[str, TaskResult]
    outputs: dict[str, Any]
    memory: MemoryManager
    _memory_scope: MemoryScope
    builder: ContextBuilder
    _committing: str | None
    events: list[RunEvent]
    error: TaskError | None
    listeners: list[TaskListener]
    exceptions: dict[str, BaseException]
    _committed: set[str]
    _buffers: dict[str, list[tuple[str, dict[str, Any]]]]
    _waiting: dict[str, int]
    _ready: set[str]
    _topo: dict[str, int]
    _inbox: list[str]
    _lock: threading.Lock
    _closed: bool
    _stop_reason: str | None
    _budget_stop: bool
    _abort_requested: bool
    _inflight: dict[str, asyncio.Task[TaskResult]]
    _wake: asyncio.Event | None
    _run_manager: AsyncCallbackManagerForChainRun | None
    accounting: RunAccounting
    _prepared: dict[str, Prepared]
    limit: int
    #: The durable store, or None for a run that lives in memory only.
    store: DurableRunStore | None
    _unsaved: list[TaskRecord]
    _unannounced: list[TaskResult]
    _saved_seq: int
    _durable: set[str]
    #: Memory changes since the last store write: key -> encoded value, and deletions.
    _memory_upserts: dict[str, Any]
    _memory_deletes: set[str]
    #: Run memory as last stored: what callers may see of a durable run.
    _saved_memory: dict[str, Any]

    def _finish(self, tid: str, tr: TaskResult) -> TaskResult:
        """Record a terminal result now; the log commits later.

        Listeners hear of it now, or, in a durable run, once its commit is stored:
        a caller never sees a task finished that a crash could still lose.
        """
        self.results[tid] = tr
        self.states[tid] = tr.state
        if self.store is not None:
            self._unannounced.append(tr)
            return tr
        self._announce(tr)
        return tr

    def _announce(self, tr: TaskResult) -> None:
        for listener in self.listeners:
            try:
                listener(tr)
            except Exception:  # a listener must not break the run
                logger.exception("task listener failed for %s", tr.task_id)

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
        staged = self._memory_scope.pop(tid)
        if self.store is not None:
            tr = self._stage(tr, staged)
        for etype, data in self._buffers.pop(tid, ()):
            self._emit(etype, tid, data)
        self._emit(f"task_{tr.state.value}", tid, result_data(tr))
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

    def _stage(self, tr: TaskResult, staged: StagedMemory | None = None) -> TaskResult:
        """Queue ``tr`` for the next store write; what it cannot encode fails the task.

        The output and the task's memory writes are encoded here, before the task
        counts as completed, so no dependent ever starts from something that a
        resumed run could not get back.
        """
        from langchain_runtime.orchestration._durable import task_record
        from langchain_runtime.store._codec import encode

        encoded = None
        if tr.state is COMPLETED:
            tid = tr.task_id
            try:
                encoded = encode(tr.output, what=f"task {tid!r} output")
                writes = staged.pending_writes() if staged is not None else {}
                memory_key = self.graph[tid].memory_key
                upserts = {
                    key: encode(value, what=f"run memory {key!r} written by task {tid!r}")
                    for key, value in writes.items()
                }
                if memory_key is not None:
                    upserts[memory_key] = encoded
            except OutputNotStorableError as exc:
                tr = self._fail_at_commit(tr, exc)
                encoded = None  # a failed task's staged writes never reach the run
            else:
                for key in upserts:
                    self._memory_deletes.discard(key)
                self._memory_upserts.update(upserts)
        tracker = self.accounting.handler.tracker
        models = tracker.task_models(tr.task_id) if tracker.has_task(tr.task_id) else None
        self._unsaved.append(task_record(tr, encoded, models))
        return tr

    def _fail_at_commit(self, tr: TaskResult, exc: OutputNotStorableError) -> TaskResult:
        tid = tr.task_id
        self.exceptions[tid] = exc
        failed = tr.model_copy(
            update={
                "state": FAILED,
                "output": None,
                "error": TaskError(code=exc.code, message=str(exc), type=type(exc).__name__),
            }
        )
        self.results[tid] = failed
        self.states[tid] = FAILED
        self._on_failure(tid)
        self._unannounced = [failed if u.task_id == tid else u for u in self._unannounced]
        return failed

    def _save(self) -> None:
        """Write what was committed since the last write, in one transaction; then tell.

        Called at the end of every commit step (a batch, or eager completions) before
        the scheduler starts anything that depends on it. If the write fails, nothing
        is lost from memory and nobody is told: the records stay queued for the run's
        last write, and the run fails with :class:`StoreError`.
        """
        store = self.store
        if store is None or (not self._unsaved and self._saved_seq == len(self.events)):
            return
        events = [e.model_dump(mode="json") for e in self.events[self._saved_seq :]]
        memory = dict(self._memory_upserts)
        for key in self._memory_deletes:
            memory[key] = DELETED
        try:
            store.commit(self.run_id, list(self._unsaved), events, memory or None)
        except StoreError:
            raise
        except Exception as exc:  # the backend's own error: say which store and run
            raise StoreError(
                f"run store {store!r} could not save run {self.run_id}: {describe(exc)}"
            ) from exc
        records, self._unsaved = self._unsaved, []
        self._saved_seq += len(events)
        for key in self._memory_deletes:
            self._saved_memory.pop(key, None)
        for key in self._memory_upserts:
            self._saved_memory[key] = self.memory.get(key)
        self._memory_upserts.clear()
        self._memory_deletes.clear()
        for record in records:
            self._durable.add(record.task_id)
        told, self._unannounced = self._unannounced, []
        for tr in told:
            self._announce(tr)

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
        if self.store is not None:
            self._stage(tr)
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
            if self.store is not None:
                self._stage(tr)
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

    def _on_memory_delete(self, key: str) -> None:
        if self.store is not None:
            self._memory_upserts.pop(key, None)
            self._memory_deletes.add(key)

    def _on_memory_write(self, key: str, value: Any) -> None:
        if self.store is not None and self._committing is None and current_task_id() is None:
            # written outside any task (a task's writes were encoded when staged)
            from langchain_runtime.store._codec import encode

            self._memory_upserts[key] = encode(value, what=f"run memory {key!r}")
            self._memory_deletes.discard(key)
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
