"""Errors of the HTTP API, and the one table that maps error codes to HTTP statuses.

Every error response has the body ``{"code": ..., "message": ...}``. The server
turns an exception into that body through :data:`ERROR_TABLE` (by the exception's
``code``), and the client turns the body back into an exception through the same
table, so both sides agree by construction. Where the package has an error class
for a code, the client raises an :class:`ApiError` that *is also* an instance of
that class (``except BudgetExceededError`` works for a local and a remote run)::

    LangChainRuntimeError
    └── ApiError                          .status_code .code; raised by the client
        ├── RunNotFoundError(LookupError) 404 run_not_found
        ├── ScopeNotFoundError(LookupError) 404 scope_not_found (not this key's budget)
        ├── RunExistsError                409 run_exists (a client-chosen id is taken)
        ├── UnauthorizedError             401 unauthorized (missing or wrong token)
        ├── ForbiddenError                403 forbidden (a foreign Host, a cross-origin write)
        ├── PayloadTooLargeError          413 payload_too_large
        ├── TooManyRunsError              429 too_many_runs; retryable later
        ├── ServerError                   500 internal_error, 503 shutting_down/store_error
        ├── ReplicaUnavailableError       503 replica_unavailable; retryable (not added)
        ├── EnqueueUnknownError           504 enqueue_unknown; not retryable (maybe added)
        ├── ApiConnectionError(ConnectionError)  the server could not be reached
        │   └── ApiTimeoutError(TimeoutError)    no answer (or no end of run) in time
        └── ApiError + a package error (``except InvalidInputError`` catches both):
            ApiInvalidInputError           400 invalid_input
            ApiConfigurationError          422 invalid_config
            ApiGraphValidationError        422 dag_invalid, dag_cycle, dep_not_found
            ApiContextTooLargeError        422 context_too_large
            ApiBudgetExceededError         402 budget_exceeded
            ApiLedgerUnavailableError      503 ledger_unavailable (refused, fail closed)
            ApiRunFinishedError            409 run_completed
            ApiRunAbortedError             409 run_aborted
            ApiResumeError                 409 run_live, 422 resume_refused
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from langchain_runtime.errors import (
    BudgetExceededError,
    ConfigurationError,
    ContextTooLargeError,
    GraphValidationError,
    InvalidInputError,
    LangChainRuntimeError,
    LedgerUnavailableError,
    ResumeError,
    RunAbortedError,
    RunFinishedError,
)

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
    "EnqueueUnknownError",
    "ErrorKind",
    "ForbiddenError",
    "PayloadTooLargeError",
    "ReplicaUnavailableError",
    "RunExistsError",
    "RunNotFoundError",
    "ScopeNotFoundError",
    "ServerError",
    "TooManyRunsError",
    "UnauthorizedError",
    "code_for_status",
    "error_from_body",
    "status_for",
]


class ApiError(LangChainRuntimeError):
    """An error answered by the runtime server (or the failure to get an answer).

    Attributes:
        status_code: The HTTP status, or 0 when no response was received.
        code: The error code from the response body.

    Example:
        >>> err = error_from_body(404, {"code": "run_not_found", "message": "no run 'x'"})
        >>> isinstance(err, RunNotFoundError), err.status_code, str(err)
        (True, 404, "no run 'x'")
    """

    status_code: int = 0

    def __init__(self, message: str = "", *args: Any, **kwargs: Any) -> None:
        super().__init__(message, *args, **kwargs)


class RunNotFoundError(ApiError, LookupError):
    """No run has this id."""

    code = "run_not_found"
    status_code = 404


class ScopeNotFoundError(ApiError, LookupError):
    """No budget scope of this name that the request's API key may read or set."""

    code = "scope_not_found"
    status_code = 404


class RunExistsError(ApiError):
    """A run with the client-chosen id already exists."""

    code = "run_exists"
    status_code = 409


class UnauthorizedError(ApiError):
    """The request lacked the server's bearer token, or gave a wrong one."""

    code = "unauthorized"
    status_code = 401


class ForbiddenError(ApiError):
    """The server refused this client: a ``Host`` it does not serve, or a browser's
    cross-origin request to change something."""

    code = "forbidden"
    status_code = 403


class PayloadTooLargeError(ApiError):
    """The request body is larger than the server accepts."""

    code = "payload_too_large"
    status_code = 413


class TooManyRunsError(ApiError):
    """The server runs as many runs as it allows; try again when one has finished."""

    code = "too_many_runs"
    status_code = 429
    is_retryable = True


class ServerError(ApiError):
    """The server failed (a 5xx answer)."""

    code = "internal_error"
    status_code = 500


class ReplicaUnavailableError(ApiError):
    """The replica that executes the run did not answer a request forwarded to it
    in time (it is busy, cut off or stopping); the request had no effect: retry."""

    code = "replica_unavailable"
    status_code = 503
    is_retryable = True


class EnqueueUnknownError(ApiError):
    """A task forwarded to the replica that executes the run was taken by it, but no
    answer came in time (it is slow, or stopped while adding the task): whether the
    task was added is unknown. Do not retry blindly; ``GET /api/v1/runs/{id}`` shows
    whether the run has it."""

    code = "enqueue_unknown"
    status_code = 504


class ApiConnectionError(ApiError, ConnectionError):
    """The server could not be reached, or the connection broke before an answer."""

    code = "connection_error"
    is_retryable = True


class ApiTimeoutError(ApiConnectionError, TimeoutError):
    """No answer in time, or a run did not end within ``wait``'s timeout."""

    code = "timeout"


# A package error answered over HTTP: `except BudgetExceededError` and `except ApiError`
# both catch it.
class ApiInvalidInputError(InvalidInputError, ApiError):
    """``invalid_input`` (400) from the server: an :class:`InvalidInputError` too."""


class ApiConfigurationError(ConfigurationError, ApiError):
    """``invalid_config`` (422) from the server: a :class:`ConfigurationError` too."""


class ApiGraphValidationError(GraphValidationError, ApiError):
    """A refused task graph (422) from the server: a :class:`GraphValidationError` too."""


class ApiContextTooLargeError(ContextTooLargeError, ApiError):
    """``context_too_large`` (422) from the server: a :class:`ContextTooLargeError` too."""


class ApiBudgetExceededError(BudgetExceededError, ApiError):
    """``budget_exceeded`` (402) from the server: a :class:`BudgetExceededError` too."""


class ApiLedgerUnavailableError(LedgerUnavailableError, ApiError):
    """``ledger_unavailable`` (503): the server's budget ledger could not answer, so
    the call or run was refused (never sent unmetered); a :class:`LedgerUnavailableError`."""

    is_retryable = True


class ApiRunFinishedError(RunFinishedError, ApiError):
    """``run_completed`` (409) from the server: a :class:`RunFinishedError` too."""


class ApiRunAbortedError(RunAbortedError, ApiError):
    """``run_aborted`` (409) from the server: a :class:`RunAbortedError` too."""


class ApiResumeError(ResumeError, ApiError):
    """``run_live`` (409) or ``resume_refused`` (422) from the server: a
    :class:`ResumeError` too."""


class ErrorKind(NamedTuple):
    """One row of :data:`ERROR_TABLE`: the HTTP status and the client's error class."""

    status: int
    error: type[ApiError]


#: THE mapping of error code -> HTTP status (and the class the client raises).
ERROR_TABLE: Mapping[str, ErrorKind] = {
    # the request itself is wrong: bad JSON, a wrong type, an unknown model
    "invalid_input": ErrorKind(400, ApiInvalidInputError),
    # well-formed, but it can not run under the server's configuration
    # (e.g. a cost budget over a model with no known price)
    "invalid_config": ErrorKind(422, ApiConfigurationError),
    "dag_invalid": ErrorKind(422, ApiGraphValidationError),
    "dag_cycle": ErrorKind(422, ApiGraphValidationError),
    "dep_not_found": ErrorKind(422, ApiGraphValidationError),
    "context_too_large": ErrorKind(422, ApiContextTooLargeError),
    # the work can not be paid for within its budget
    "budget_exceeded": ErrorKind(402, ApiBudgetExceededError),
    "unauthorized": ErrorKind(401, UnauthorizedError),
    "forbidden": ErrorKind(403, ForbiddenError),
    "run_not_found": ErrorKind(404, RunNotFoundError),
    # a budget scope outside the API key's scopes (or unknown): 404, not 403, like runs
    "scope_not_found": ErrorKind(404, ScopeNotFoundError),
    "not_found": ErrorKind(404, ApiError),
    "method_not_allowed": ErrorKind(405, ApiError),
    "run_exists": ErrorKind(409, RunExistsError),
    "run_completed": ErrorKind(409, ApiRunFinishedError),
    "run_aborted": ErrorKind(409, ApiRunAbortedError),
    "request_timeout": ErrorKind(408, ApiError),
    # a resume of a run that is still executing (here or in another process)
    "run_live": ErrorKind(409, ApiResumeError),
    # a resume whose registered workflow differs from the stored run (the message
    # names the first difference)
    "resume_refused": ErrorKind(422, ApiResumeError),
    "payload_too_large": ErrorKind(413, PayloadTooLargeError),
    "too_many_runs": ErrorKind(429, TooManyRunsError),
    "internal_error": ErrorKind(500, ServerError),
    "shutting_down": ErrorKind(503, ServerError),
    # the run store cannot be read or written (damaged, deleted, disk trouble)
    "store_error": ErrorKind(503, ServerError),
    # the shared budget ledger cannot answer (database down, lock timeout): refused
    "ledger_unavailable": ErrorKind(503, ApiLedgerUnavailableError),
    # a task added through one replica to a run executing on another that did not
    # take it in time: withdrawn, not added
    "replica_unavailable": ErrorKind(503, ReplicaUnavailableError),
    # one the executing replica took but did not answer in time: maybe added (the
    # run's status tells), so not to be retried as if it had no effect
    "enqueue_unknown": ErrorKind(504, EnqueueUnknownError),
}


def status_for(code: str) -> int:
    """The HTTP status for an error code; unknown codes are server errors (500)."""
    kind = ERROR_TABLE.get(code)
    return kind.status if kind is not None else 500


def code_for_status(status: int) -> str:
    """The code of a bare HTTP error (no route, wrong method): the first with that status."""
    for code, kind in ERROR_TABLE.items():
        if kind.status == status and kind.error is ApiError:
            return code
    return "internal_error" if status >= 500 else "invalid_input"


def error_from_body(status: int, body: Any) -> ApiError:
    """The exception for an error response: by its ``code``, else by its status.

    Args:
        status: The HTTP status.
        body: The decoded JSON body (anything: a proxy may answer with HTML).
    """
    code = message = None
    if isinstance(body, Mapping):
        code = body.get("code") if isinstance(body.get("code"), str) else None
        message = body.get("message") if isinstance(body.get("message"), str) else None
    kind = ERROR_TABLE.get(code) if code is not None else None
    cls: type[ApiError]
    if kind is not None:
        cls = kind.error
    elif status >= 500:
        cls = ServerError
    else:
        by_status = [k.error for k in ERROR_TABLE.values() if k.status == status]
        cls = by_status[0] if by_status else ApiError
    exc = cls(message or f"HTTP {status}")
    exc.status_code = status
    if code is not None:
        exc.code = code
    return exc
