"""langchain-runtime: predictable LangChain workloads.

Run a graph of LLM tasks in a deterministic order with bounded parallelism, under
hard token and cost budgets, as a LangChain ``Runnable``.
"""

from typing import TYPE_CHECKING, Any

from langchain_runtime._version import __version__
from langchain_runtime.context import (
    ContextBuilder,
    ContextCompactor,
    ContextRouter,
    MemoryManager,
    current_memory,
)
from langchain_runtime.cost import (
    BudgetCallbackHandler,
    BudgetEnforcer,
    CostCalculator,
    ModelCatalog,
    ModelInfo,
    TokenEstimator,
    UsageTracker,
    with_budget,
)
from langchain_runtime.cost.ledger import (
    BudgetLedger,
    InMemoryLedger,
    PostgresLedger,
    SQLiteLedger,
)
from langchain_runtime.domain import (
    Budget,
    ContextPolicy,
    Cost,
    ModelUsage,
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
    ConfigurationError,
    ContextTooLargeError,
    DeadlockError,
    GraphValidationError,
    InvalidInputError,
    LangChainRuntimeError,
    LedgerUnavailableError,
    OutputNotStorableError,
    ResumeError,
    RunAbortedError,
    RunFinishedError,
    RunTimeoutError,
    StoreError,
    TaskExecutionError,
    TaskTimeoutError,
)
from langchain_runtime.orchestration import Orchestrator, RunHandle, Task, TaskGraph
from langchain_runtime.store import PostgresRunStore, SQLiteRunStore

if TYPE_CHECKING:
    from langchain_runtime.agents import BudgetMiddleware

__all__ = [
    "Budget",
    "BudgetCallbackHandler",
    "BudgetEnforcer",
    "BudgetExceededError",
    "BudgetLedger",
    "BudgetMiddleware",
    "ConfigurationError",
    "ContextBuilder",
    "ContextCompactor",
    "ContextPolicy",
    "ContextRouter",
    "ContextTooLargeError",
    "Cost",
    "CostCalculator",
    "DeadlockError",
    "GraphValidationError",
    "InMemoryLedger",
    "InvalidInputError",
    "LangChainRuntimeError",
    "LedgerUnavailableError",
    "MemoryManager",
    "ModelCatalog",
    "ModelInfo",
    "ModelUsage",
    "Orchestrator",
    "OutputNotStorableError",
    "PostgresLedger",
    "PostgresRunStore",
    "ResumeError",
    "RunAbortedError",
    "RunEvent",
    "RunFinishedError",
    "RunHandle",
    "RunPolicy",
    "RunResult",
    "RunState",
    "RunTimeoutError",
    "SQLiteLedger",
    "SQLiteRunStore",
    "StoreError",
    "Task",
    "TaskError",
    "TaskExecutionError",
    "TaskGraph",
    "TaskResult",
    "TaskState",
    "TaskTimeoutError",
    "TokenEstimator",
    "Usage",
    "UsageTracker",
    "__version__",
    "current_memory",
    "with_budget",
]


def __getattr__(name: str) -> Any:
    # BudgetMiddleware needs the langchain package: imported only when asked for.
    if name == "BudgetMiddleware":
        from langchain_runtime.agents import BudgetMiddleware

        return BudgetMiddleware
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
