"""Which errors a task retries, and how long it waits between attempts."""

from __future__ import annotations

from langchain_runtime.domain import RunPolicy
from langchain_runtime.errors import LangChainRuntimeError

# Programming errors: another attempt would fail the same way.
_NEVER = (
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    NotImplementedError,
    AssertionError,
    ImportError,
)


def is_retryable(exc: BaseException) -> bool:
    """Whether another attempt could succeed.

    Runtime errors say so themselves (``is_retryable``; budget, validation and
    context-size errors never are). A provider error with an HTTP status is
    retried on 408, 409, 429 and 5xx only. Timeouts and connection errors are
    retried; programming errors (``ValueError``, ``TypeError``, ...) are not.
    """
    if isinstance(exc, LangChainRuntimeError):
        return type(exc).is_retryable
    flag = getattr(exc, "is_retryable", None)
    if isinstance(flag, bool):
        return flag
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status in (408, 409, 429) or status >= 500
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    return not isinstance(exc, _NEVER)


def backoff_delay(policy: RunPolicy, attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    Exponential and deterministic (no jitter), so batched runs stay reproducible.
    """
    return float(min(policy.retry_backoff * (2 ** (attempt - 1)), policy.retry_backoff_max))
