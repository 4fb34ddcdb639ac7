"""The error table is the contract between server and client: it is held here, once."""

from __future__ import annotations

import pytest

from langchain_runtime import (
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
from langchain_runtime.api.errors import (
    ERROR_TABLE,
    ApiError,
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
    code_for_status,
    error_from_body,
    status_for,
)

#: code -> (HTTP status, what the client raises)
EXPECTED: dict[str, tuple[int, type[LangChainRuntimeError]]] = {
    "invalid_input": (400, InvalidInputError),
    "invalid_config": (422, ConfigurationError),
    "dag_invalid": (422, GraphValidationError),
    "dag_cycle": (422, GraphValidationError),
    "dep_not_found": (422, GraphValidationError),
    "context_too_large": (422, ContextTooLargeError),
    "budget_exceeded": (402, BudgetExceededError),
    "unauthorized": (401, UnauthorizedError),
    "forbidden": (403, ForbiddenError),
    "request_timeout": (408, ApiError),
    "run_not_found": (404, RunNotFoundError),
    "not_found": (404, ApiError),
    "method_not_allowed": (405, ApiError),
    "run_exists": (409, RunExistsError),
    "run_completed": (409, RunFinishedError),
    "run_aborted": (409, RunAbortedError),
    "run_live": (409, ResumeError),
    "resume_refused": (422, ResumeError),
    "payload_too_large": (413, PayloadTooLargeError),
    "too_many_runs": (429, TooManyRunsError),
    "internal_error": (500, ServerError),
    "shutting_down": (503, ServerError),
    "store_error": (503, ServerError),
    "scope_not_found": (404, ScopeNotFoundError),
    "ledger_unavailable": (503, LedgerUnavailableError),
    "replica_unavailable": (503, ReplicaUnavailableError),
    "enqueue_unknown": (504, EnqueueUnknownError),
}


def test_the_error_table() -> None:
    assert {code: kind.status for code, kind in ERROR_TABLE.items()} == {
        code: status for code, (status, _) in EXPECTED.items()
    }
    for code, (status, cls) in EXPECTED.items():
        assert status_for(code) == status
        err = error_from_body(status, {"code": code, "message": f"why {code}"})
        # the package's own class where there is one, and always an ApiError
        assert isinstance(err, cls), code
        assert isinstance(err, ApiError), code
        assert (err.status_code, err.code, str(err)) == (status, code, f"why {code}")
    # the package's errors keep their codes, so the server maps them through the table
    assert status_for(GraphValidationError("x", code="dag_cycle").code) == 422
    assert status_for(BudgetExceededError("x").code) == 402
    assert status_for(RunFinishedError("x").code) == 409
    assert status_for(InvalidInputError("x").code) == 400


def test_unknown_codes_and_bodies_fall_back_on_the_status() -> None:
    assert status_for("no_such_code") == 500
    assert isinstance(error_from_body(502, "<html>bad gateway</html>"), ServerError)
    assert isinstance(error_from_body(404, None), RunNotFoundError)
    odd = error_from_body(418, {"code": "teapot", "message": "short and stout"})
    assert type(odd) is ApiError
    assert (odd.status_code, odd.code) == (418, "teapot")
    assert code_for_status(404) == "not_found"
    assert code_for_status(405) == "method_not_allowed"


@pytest.mark.parametrize("cls", [RunNotFoundError, TooManyRunsError, PayloadTooLargeError])
def test_api_errors_have_codes_statuses_and_retry_flags(cls: type[ApiError]) -> None:
    assert ERROR_TABLE[cls.code].status == cls.status_code
    assert isinstance(cls.is_retryable, bool)
    assert TooManyRunsError.is_retryable
    assert issubclass(RunNotFoundError, LookupError)


def test_every_error_class_a_user_sees_is_a_public_name() -> None:
    import langchain_runtime.api as api

    for kind in ERROR_TABLE.values():
        cls = kind.error
        assert not cls.__name__.startswith("_"), cls
        assert getattr(api, cls.__name__) is cls
    err = error_from_body(402, {"code": "budget_exceeded", "message": "over"})
    assert type(err).__name__ == "ApiBudgetExceededError"
    assert isinstance(err, BudgetExceededError) and isinstance(err, ApiError)
