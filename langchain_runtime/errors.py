"""The errors langchain-runtime raises.

Every error derives from :class:`LangChainRuntimeError`, itself a LangChain
``LangChainException``, and carries an ``is_retryable`` class attribute that the
orchestrator's retry logic reads::

    LangChainRuntimeError                      root (a LangChainException)
    ├── ConfigurationError(ValueError)         bad config, unknown model price, bad policy
    ├── GraphValidationError(ValueError)       duplicate id, unknown dependency, cycle
    ├── InvalidInputError(ValueError)          the run input lacks what a task needs
    ├── TaskExecutionError                     .task_id; the original error as __cause__
    │   └── TaskTimeoutError(TimeoutError)     a task ran past its timeout
    ├── BudgetExceededError                    .limit .spent .task_id; never retried
    │   └── LedgerUnavailableError             the budget ledger cannot answer: refused
    ├── ContextTooLargeError                   raised before the model call
    ├── RunAbortedError                        the run was aborted
    ├── RunTimeoutError(TimeoutError)          the run ran past its timeout
    ├── RunFinishedError                       a live-run operation on a finished run
    ├── DeadlockError                          pending tasks, none ready, none running
    ├── ResumeError                            a stored run that cannot be resumed
    └── StoreError                             a run store that cannot be used
        └── OutputNotStorableError(TypeError)  a task output the store cannot encode
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from langchain_core.exceptions import LangChainException

__all__ = [
    "BudgetExceededError",
    "ConfigurationError",
    "ContextTooLargeError",
    "DeadlockError",
    "GraphValidationError",
    "InvalidInputError",
    "LangChainRuntimeError",
    "LedgerUnavailableError",
    "OutputNotStorableError",
    "ResumeError",
    "RunAbortedError",
    "RunFinishedError",
    "RunTimeoutError",
    "StoreError",
    "TaskExecutionError",
    "TaskTimeoutError",
]


class LangChainRuntimeError(LangChainException):
    """Root of every error raised by langchain-runtime."""

    is_retryable: bool = False
    #: Stable machine-readable code, used by the HTTP API and in ``TaskResult.error``.
    code: str = "internal_error"


class ConfigurationError(LangChainRuntimeError, ValueError):
    """A configuration, policy or price table is invalid or incomplete."""

    code = "invalid_config"


class GraphValidationError(LangChainRuntimeError, ValueError):
    """The task graph is invalid: duplicate id, unknown dependency or a cycle.

    Attributes:
        task_ids: The ids involved, in the order that explains the problem
            (for a cycle, the path, first id repeated at the end).
    """

    code = "dag_invalid"

    def __init__(self, message: str, *, task_ids: tuple[str, ...] = (), code: str | None = None):
        super().__init__(message)
        self.task_ids = task_ids
        if code is not None:
            self.code = code


class InvalidInputError(LangChainRuntimeError, ValueError):
    """The run input is not what the workflow needs (a missing key, a wrong type)."""

    code = "invalid_input"


class TaskExecutionError(LangChainRuntimeError):
    """A task failed; the original error is attached as ``__cause__``."""

    is_retryable = True
    code = "task_failed"

    def __init__(self, message: str, *, task_id: str):
        super().__init__(message)
        self.task_id = task_id


class TaskTimeoutError(TaskExecutionError, TimeoutError):
    """A task ran longer than its timeout."""

    code = "task_timeout"


class BudgetExceededError(LangChainRuntimeError):
    """A model call was refused because it could not fit in the remaining budget.

    Raised *before* the call is sent. Never retried.

    Attributes:
        limit: The budget limit that would have been crossed (money or tokens).
        spent: What had been spent (settled plus reserved) when the call was refused.
        task_id: The task whose call was refused, when known.
    """

    code = "budget_exceeded"

    def __init__(
        self,
        message: str,
        *,
        limit: Decimal | int | None = None,
        spent: Decimal | int | None = None,
        task_id: str | None = None,
    ):
        super().__init__(message)
        self.limit = limit
        self.spent = spent
        self.task_id = task_id


class LedgerUnavailableError(BudgetExceededError):
    """The shared budget ledger could not be reached or did not answer in time.

    Raised instead of sending a call unmetered (the ledger fails closed): a database
    that is down, a lock held past the timeout, a ledger file locked by another process.
    It is a :class:`BudgetExceededError`, so everything that stops on a budget refusal
    stops on it too; it is never retried by the orchestrator.
    """

    code = "ledger_unavailable"


class ContextTooLargeError(LangChainRuntimeError):
    """A task's context does not fit its token budget, even after compaction."""

    code = "context_too_large"

    def __init__(
        self,
        message: str,
        *,
        task_id: str | None = None,
        tokens: int | None = None,
        max_tokens: int | None = None,
    ):
        super().__init__(message)
        self.task_id = task_id
        self.tokens = tokens
        self.max_tokens = max_tokens


class RunAbortedError(LangChainRuntimeError):
    """The run was aborted before this work could finish."""

    code = "run_aborted"


class RunTimeoutError(LangChainRuntimeError, TimeoutError):
    """The run as a whole ran longer than its policy's timeout."""

    code = "run_timeout"


class RunFinishedError(LangChainRuntimeError):
    """An operation that needs a live run (enqueue, abort) was given a finished one."""

    code = "run_completed"


class DeadlockError(LangChainRuntimeError):
    """Tasks are pending but none is ready and none is running."""

    code = "deadlock"


class ResumeError(LangChainRuntimeError):
    """A stored run cannot be resumed: unknown, still live, or its graph changed."""

    code = "resume_refused"


class StoreError(LangChainRuntimeError):
    """A run store cannot be opened or used: damaged, foreign, locked or unreachable."""

    code = "store_error"


class OutputNotStorableError(StoreError, TypeError):
    """A task's output has a type the run store cannot encode; names the task and type."""

    code = "output_not_storable"


def error_code(exc: BaseException) -> str:
    """The stable code for ``exc``: its own for runtime errors, else ``task_failed``."""
    code: Any = getattr(exc, "code", None)
    if isinstance(exc, LangChainRuntimeError) and isinstance(code, str):
        return code
    if isinstance(exc, TimeoutError):
        return "task_timeout"
    return "task_failed"
