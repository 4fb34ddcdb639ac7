"""Small pieces of a run's bookkeeping: results built fast, event data, errors."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, NamedTuple, TypeVar

from langchain_core.runnables import Runnable
from pydantic import BaseModel

from langchain_runtime.domain import Cost, RunResult, TaskResult, Usage

#: Shared zero values; identity with them marks "nothing to sum" on the hot path.
ZERO_USAGE = Usage()
ZERO_COST = Cost()


class Prepared(NamedTuple):
    """A task ready to start: its input, what to invoke, what compaction did."""

    input: dict[str, Any]
    runnable: Runnable[Any, Any]
    compaction: dict[str, Any] | None


def now() -> datetime:
    return datetime.now(timezone.utc)


_M = TypeVar("_M", bound=BaseModel)


_FIELDS: dict[type[BaseModel], set[str]] = {}


def _all_fields(cls: type[BaseModel]) -> set[str]:
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = set(cls.model_fields)
    return found


def trusted(cls: type[_M], **values: Any) -> _M:
    """Build a model from trusted values, every field given, without validation.

    ``model_construct`` costs ~7 µs as it fills defaults; this is the hot path of
    every task, and the values here are ours.
    """
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    # every field is set: one shared set per class saves a GC-tracked object per task
    object.__setattr__(obj, "__pydantic_fields_set__", _all_fields(cls))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


def result_data(tr: TaskResult) -> dict[str, Any]:
    data: dict[str, Any] = {"attempts": tr.attempts}
    if tr.error is not None:
        data["error"] = {"code": tr.error.code, "message": tr.error.message}
    if tr.usage.total_tokens:
        data["tokens"] = tr.usage.total_tokens
        data["cost"] = str(tr.cost.amount)
    return data


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def as_exception(result: RunResult) -> BaseException:
    from langchain_runtime.orchestration._errors import error_from_result

    return error_from_result(result)
