"""The server's runs on a durable store: what a restart reports, and what resume needs.

With a :class:`~langchain_runtime.store.DurableRunStore` (the SQLite file by
default), every task a run commits is in the store before anything depends on it,
so after a crash the server knows exactly which tasks completed and what they
cost. A run that was in flight is reported ``failed`` with the error code
``interrupted`` (its committed tasks as they were, the others ``cancelled``) and
can be resumed with ``POST /api/v1/runs/{id}/resume``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from langchain_runtime.api.schemas import ResumeBudget, RunStatus
from langchain_runtime.api.store import INTERRUPTED_CODE, RunRecord
from langchain_runtime.domain import (
    Budget,
    Cost,
    RunResult,
    RunState,
    TaskError,
    TaskResult,
    TaskState,
    Usage,
)
from langchain_runtime.errors import StoreError
from langchain_runtime.store import StoredRun, decode

__all__ = ["interrupted_record", "resume_budget", "stored_result"]


def stored_result(stored: StoredRun, *, state: RunState, error: TaskError | None) -> RunResult:
    """The run as its store has it: committed tasks as they were, the others cancelled."""
    from langchain_runtime.orchestration._durable import stored_result as task_result

    tasks: dict[str, TaskResult] = {}
    for tid, record in stored.tasks.items():
        try:
            tasks[tid] = task_result(record, decode)[0]
        except StoreError:  # an output this process cannot read back: shown as missing
            tasks[tid] = task_result(record, lambda _blob: None)[0]
    for tid in stored.header.fingerprint:
        if tid not in tasks or tasks[tid].state not in (
            TaskState.COMPLETED,
            TaskState.FAILED,
            TaskState.SKIPPED,
            TaskState.CANCELLED,
        ):
            tasks[tid] = TaskResult(
                task_id=tid,
                state=TaskState.CANCELLED,
                error=TaskError(code="cancelled", message=f"task {tid!r} did not finish"),
            )
    return RunResult(
        run_id=stored.header.run_id,
        state=state,
        outputs={t: r.output for t, r in tasks.items() if r.state is TaskState.COMPLETED},
        tasks=tasks,
        usage=sum((t.usage for t in tasks.values()), Usage()),
        cost=sum((t.cost for t in tasks.values()), Cost()),
        error=error,
    )


def interrupted_record(record: RunRecord, stored: StoredRun, reason: str) -> RunRecord:
    """``record`` after a restart: ``failed``/``interrupted``, its tasks from the store."""
    error = TaskError(code=INTERRUPTED_CODE, message=reason)
    result = stored_result(stored, state=RunState.FAILED, error=error)
    now = datetime.now(timezone.utc)
    status = RunStatus.from_result(
        result,
        run_id=record.run_id,
        workflow=record.workflow,
        created_at=record.created_at,
        updated_at=now,
    )
    return replace(record, state="failed", updated_at=now, status=status.model_dump(mode="json"))


def resume_budget(policy: Mapping[str, Any], given: ResumeBudget | None) -> Budget | None:
    """The resumed run's budget: the stored one with the given fields replaced."""
    if given is None:
        return None
    raw = policy.get("budget")
    return given.apply(Budget.model_validate(raw) if isinstance(raw, Mapping) else None)
