"""Scheduling: which tasks start when, batched (deterministic) or eager."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_runtime.domain import TaskResult, TaskState
from langchain_runtime.orchestration._commit import FAILED
from langchain_runtime.orchestration._execute import _Executor


class _Scheduler(_Executor):
    """The two scheduling loops over :class:`~._execute._Executor`."""

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
                self._save()  # durable before the next batch can depend on it

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
                    self._save()
        finally:
            if waker is not None:
                waker.cancel()
