"""The runtime over HTTP: wire models, the client, the run store and a remote Runnable.

The client (``RuntimeClient``, ``AsyncRuntimeClient``) and ``RemoteOrchestrator``
need only ``httpx``; the server lives in :mod:`langchain_runtime.api.server` and
needs the ``server`` extra (``pip install 'langchain-runtime[server]'``). Nothing
here imports it.

Example:
    >>> from langchain_runtime.api import RuntimeClient
    >>> client = RuntimeClient("http://127.0.0.1:8000", token=None, timeout=5)
    >>> client.base_url
    'http://127.0.0.1:8000'
    >>> client.close()
"""

from langchain_runtime.api.client import AsyncRuntimeClient, RuntimeClient
from langchain_runtime.api.errors import (
    ERROR_TABLE,
    ApiBudgetExceededError,
    ApiConfigurationError,
    ApiConnectionError,
    ApiContextTooLargeError,
    ApiError,
    ApiGraphValidationError,
    ApiInvalidInputError,
    ApiLedgerUnavailableError,
    ApiResumeError,
    ApiRunAbortedError,
    ApiRunFinishedError,
    ApiTimeoutError,
    EnqueueUnknownError,
    ForbiddenError,
    PayloadTooLargeError,
    ReplicaUnavailableError,
    RunExistsError,
    RunNotFoundError,
    ScopeNotFoundError,
    ServerError,
    TooManyRunsError,
    UnauthorizedError,
)
from langchain_runtime.api.remote import RemoteOrchestrator
from langchain_runtime.api.schemas import (
    BudgetLimit,
    BudgetList,
    BudgetSet,
    BudgetStatus,
    ErrorBody,
    PolicyIn,
    RunAccepted,
    RunPage,
    RunRequest,
    RunStatus,
    RunSummary,
    TaskAccepted,
    TaskStatus,
)
from langchain_runtime.api.store import MemoryRunStore, RunRecord, RunStore, SqliteRunStore

__all__ = [
    "ERROR_TABLE",
    "ApiBudgetExceededError",
    "ApiConfigurationError",
    "ApiConnectionError",
    "ApiContextTooLargeError",
    "ApiError",
    "ApiGraphValidationError",
    "ApiInvalidInputError",
    "ApiLedgerUnavailableError",
    "ApiResumeError",
    "ApiRunAbortedError",
    "ApiRunFinishedError",
    "ApiTimeoutError",
    "AsyncRuntimeClient",
    "BudgetLimit",
    "BudgetList",
    "BudgetSet",
    "BudgetStatus",
    "EnqueueUnknownError",
    "ErrorBody",
    "ForbiddenError",
    "MemoryRunStore",
    "PayloadTooLargeError",
    "PolicyIn",
    "RemoteOrchestrator",
    "ReplicaUnavailableError",
    "RunAccepted",
    "RunExistsError",
    "RunNotFoundError",
    "RunPage",
    "RunRecord",
    "RunRequest",
    "RunStatus",
    "RunStore",
    "RunSummary",
    "RuntimeClient",
    "ScopeNotFoundError",
    "ServerError",
    "SqliteRunStore",
    "TaskAccepted",
    "TaskStatus",
    "TooManyRunsError",
    "UnauthorizedError",
]
