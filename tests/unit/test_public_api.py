"""The public names are a contract: changing them must be deliberate."""

from __future__ import annotations

import subprocess
import sys

import langchain_runtime
from langchain_runtime import errors

EXPECTED = {
    "Budget",
    "BudgetExceededError",
    "ConfigurationError",
    "ContextPolicy",
    "ContextRouter",
    "ContextTooLargeError",
    "Cost",
    "DeadlockError",
    "GraphValidationError",
    "InvalidInputError",
    "LangChainRuntimeError",
    "Orchestrator",
    "OutputNotStorableError",
    "ResumeError",
    "StoreError",
    "SQLiteRunStore",
    "PostgresRunStore",
    "RunAbortedError",
    "RunEvent",
    "RunFinishedError",
    "RunHandle",
    "RunPolicy",
    "RunResult",
    "RunState",
    "RunTimeoutError",
    "Task",
    "TaskError",
    "TaskExecutionError",
    "TaskGraph",
    "TaskResult",
    "TaskState",
    "TaskTimeoutError",
    "Usage",
    "__version__",
    # cost and budgets
    "BudgetCallbackHandler",
    "BudgetEnforcer",
    "BudgetMiddleware",
    "CostCalculator",
    "ModelCatalog",
    "ModelInfo",
    "ModelUsage",
    "TokenEstimator",
    "UsageTracker",
    "with_budget",
    # shared budgets
    "BudgetLedger",
    "InMemoryLedger",
    "LedgerUnavailableError",
    "PostgresLedger",
    "SQLiteLedger",
    # context
    "ContextBuilder",
    "ContextCompactor",
    "MemoryManager",
    "current_memory",
}


def test_all_is_frozen() -> None:
    assert set(langchain_runtime.__all__) == EXPECTED
    for name in langchain_runtime.__all__:
        assert hasattr(langchain_runtime, name), name


def test_every_error_is_exported_and_has_a_retry_flag() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert getattr(langchain_runtime, name) is cls
        assert isinstance(cls.is_retryable, bool)
        assert issubclass(cls, errors.LangChainRuntimeError)
    assert not errors.BudgetExceededError.is_retryable
    assert not errors.GraphValidationError.is_retryable
    assert not errors.ContextTooLargeError.is_retryable
    assert issubclass(errors.TaskTimeoutError, TimeoutError)
    assert issubclass(errors.ConfigurationError, ValueError)
    assert issubclass(errors.LedgerUnavailableError, errors.BudgetExceededError)
    assert not errors.LedgerUnavailableError.is_retryable


def test_import_is_light() -> None:
    code = (
        "import sys, langchain_runtime; "
        "heavy = [m for m in ('fastapi', 'uvicorn', 'langgraph', 'openai', 'langchain_openai', "
        "'psycopg', 'psycopg_pool', 'langchain', 'langchain.agents') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
