"""Turning a finished run back into the exception a caller would expect."""

from __future__ import annotations

from typing import TYPE_CHECKING

from langchain_runtime.errors import (
    BudgetExceededError,
    DeadlockError,
    LangChainRuntimeError,
    RunAbortedError,
    RunTimeoutError,
    TaskExecutionError,
)

if TYPE_CHECKING:
    from langchain_runtime.domain import RunResult


def error_from_result(result: RunResult, task_id: str | None = None) -> LangChainRuntimeError:
    """The exception that best describes why ``result`` (or ``task_id`` in it) failed."""
    from langchain_runtime.domain import RunState

    err = result.error
    message = err.message if err else f"run {result.run_id} ended as {result.state.value}"
    failed_task = None
    own = result.tasks.get(task_id) if task_id is not None else None
    if own is not None and own.error is not None and own.state.value == "failed":
        terr = own.error
        message, failed_task = terr.message, task_id
        if terr.code == "budget_exceeded":
            return BudgetExceededError(message, task_id=task_id)
    if result.state is RunState.BUDGET_EXCEEDED:
        return BudgetExceededError(message, task_id=failed_task or (err.task_id if err else None))
    if result.state is RunState.ABORTED:
        return RunAbortedError(message)
    if result.state is RunState.TIMED_OUT:
        return RunTimeoutError(message)
    if err is not None and err.code == "deadlock":
        return DeadlockError(message)
    tid = failed_task or task_id or (err.task_id if err else None) or "?"
    return TaskExecutionError(message, task_id=tid)
