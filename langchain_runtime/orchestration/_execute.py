"""Executing one task: build its input, plan its budget, invoke it, retry, time out."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import patch_config

from langchain_runtime.context.builder import enter_task, exit_task
from langchain_runtime.cost.handler import SCOPE_METADATA_KEY
from langchain_runtime.domain import Cost, TaskError, TaskResult, Usage
from langchain_runtime.errors import BudgetExceededError, TaskTimeoutError, error_code
from langchain_runtime.orchestration._accounting import model_name
from langchain_runtime.orchestration._commit import COMPLETED, FAILED, _Committer
from langchain_runtime.orchestration._results import (
    ZERO_COST,
    ZERO_USAGE,
    Prepared,
    describe,
    now,
    trusted,
)
from langchain_runtime.orchestration._retry import backoff_delay, is_retryable
from langchain_runtime.orchestration._sync import with_timeout
from langchain_runtime.orchestration.task import Task


class _Executor(_Committer):
    """Runs one task to a terminal result (recorded with ``_finish``)."""

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

    def _replan(
        self, task: Task, inp: dict[str, Any], runnable: Runnable[Any, Any]
    ) -> Runnable[Any, Any]:
        """The runnable for a retry, its output limit planned again from today's budget."""
        planned = self.accounting.plan(task, inp)
        return planned if planned is not None else runnable

    def _memory_view(self) -> dict[str, Any]:
        return self.memory.snapshot() if len(self.memory) else {}

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
            base_cfg = self._child_config(task)
            while True:
                attempts += 1
                self.accounting.release_plan(tid)
                # Each attempt's calls share a budget scope: a call the timeout cuts off
                # after it was sent is charged at its hold (never left holding, never freed).
                scope = f"{self.run_id}:{tid}:{attempts}"
                cfg = _with_scope(base_cfg, scope)
                try:
                    if task.timeout is None:
                        out = await runnable.ainvoke(inp, cfg)
                        break
                    timed_out, out = await with_timeout(runnable.ainvoke(inp, cfg), task.timeout)
                    if timed_out:
                        self.accounting.handler.charge_pending(scope)
                        raise TaskTimeoutError(
                            f"task {tid!r} timed out after {task.timeout}s (attempt {attempts})",
                            task_id=tid,
                        )
                except asyncio.CancelledError:
                    self.accounting.handler.charge_pending(scope)
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
                        # Others spent while this attempt ran and waited: clamp the next
                        # attempt to what is left now (or refuse it, naming the task).
                        runnable = self._replan(task, inp, runnable)
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
                restored=False,
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

    async def _cancel_inflight(self) -> None:
        futs = [f for f in self._inflight.values() if not f.done()]
        for f in futs:
            f.cancel()
        if futs:
            await asyncio.gather(*futs, return_exceptions=True)
        self._inflight.clear()


def _with_scope(config: RunnableConfig, scope: str) -> RunnableConfig:
    metadata = {**config.get("metadata", {}), SCOPE_METADATA_KEY: scope}
    return {**config, "metadata": metadata}
