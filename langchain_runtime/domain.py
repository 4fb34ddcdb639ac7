"""The domain model: states, usage, money, budgets, policies and results.

Money is always :class:`decimal.Decimal`. All models are pydantic v2 models, so
they validate input, serialise to JSON and round-trip through the HTTP API. Every
model refuses unknown fields: ``Budget(max_cst=1)`` raises a
:class:`~langchain_runtime.errors.ConfigurationError` that names the field and the
closest known one, instead of building a budget with no limit.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.config import ExtraValues
from typing_extensions import Self

from langchain_runtime._fields import unknown_fields_error

__all__ = [
    "Budget",
    "ContextPolicy",
    "Cost",
    "ModelUsage",
    "RunEvent",
    "RunPolicy",
    "RunResult",
    "RunState",
    "TaskError",
    "TaskResult",
    "TaskState",
    "Usage",
]


class TaskState(str, Enum):
    """Lifecycle of one task. The last four are terminal."""

    PENDING = "pending"
    READY = "ready"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL_TASK_STATES

    def __str__(self) -> str:
        return self.value


_TERMINAL_TASK_STATES = frozenset(
    {TaskState.COMPLETED, TaskState.FAILED, TaskState.SKIPPED, TaskState.CANCELLED}
)


class RunState(str, Enum):
    """Lifecycle of a run. Everything but ``pending`` and ``running`` is terminal."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    ABORTED = "aborted"
    BUDGET_EXCEEDED = "budget_exceeded"
    TIMED_OUT = "timed_out"

    @property
    def is_terminal(self) -> bool:
        return self not in (RunState.PENDING, RunState.RUNNING)

    def __str__(self) -> str:
        return self.value


def _refuse_bool(value: Any) -> Any:
    """``True`` is not a number of tokens or an amount of money (pydantic reads it as 1)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    return value


def _currency(value: Any) -> Any:
    """Currency codes compare upper-case: ``"usd"`` is ``"USD"``."""
    if isinstance(value, str):
        code = value.strip().upper()
        if not code:
            raise ValueError("currency must not be empty (a code such as 'USD')")
        return code
    return value


#: Numbers a bool must not pass for.
_Int = Annotated[int, BeforeValidator(_refuse_bool)]
_Money = Annotated[Decimal, BeforeValidator(_refuse_bool)]
_Float = Annotated[float, BeforeValidator(_refuse_bool)]
_Currency = Annotated[str, BeforeValidator(_currency)]


class _Model(BaseModel):
    """A domain model: unknown fields are refused, with a did-you-mean."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def model_validate(
        cls,
        obj: Any,
        *,
        strict: bool | None = None,
        extra: ExtraValues | None = None,
        from_attributes: bool | None = None,
        context: Any | None = None,
        by_alias: bool | None = None,
        by_name: bool | None = None,
    ) -> Self:
        """Validate ``obj``; an unknown field is a ConfigurationError with a did-you-mean.

        Example:
            >>> Budget.model_validate({"max_cst": 1})
            Traceback (most recent call last):
            ...
            langchain_runtime.errors.ConfigurationError: Budget: max_cst: unknown field; did you mean 'max_cost'? ...
        """  # noqa: E501
        try:
            return super().model_validate(
                obj,
                strict=strict,
                extra=extra,
                from_attributes=from_attributes,
                context=context,
                by_alias=by_alias,
                by_name=by_name,
            )
        except ValidationError as exc:
            error = unknown_fields_error(cls, exc)
            if error is None:
                raise
            raise error from None

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            error = unknown_fields_error(type(self), exc)
            if error is None:
                raise
            raise error from None

    # Validation of nested values and ``model_validate`` keep pydantic's own path (fast,
    # and its ``extra_forbidden`` errors are what the config loader reports with lines);
    # only a direct constructor call turns them into a ConfigurationError.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]


class Usage(_Model):
    """Token usage of one or more model calls.

    ``input_tokens`` already includes cache reads and writes, and ``output_tokens``
    already includes reasoning tokens, as providers report them: the detail fields
    are breakdowns, never added on top. Likewise ``cache_creation_1h_tokens`` (cache
    writes kept for one hour, which Anthropic bills at a higher rate than its
    5-minute writes) is a part of ``cache_creation_tokens``.

    Example:
        >>> total = Usage(input_tokens=10, output_tokens=5) + Usage(input_tokens=1, output_tokens=1)
        >>> total.total_tokens
        17
        >>> Usage(input_tokens=100, cache_creation_tokens=60, cache_creation_1h_tokens=40)
        Usage(input_tokens=100, ..., cache_creation_tokens=60, cache_creation_1h_tokens=40, ...)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    total_tokens: int = Field(default=0, ge=0)
    cache_read_tokens: int = Field(default=0, ge=0)
    cache_creation_tokens: int = Field(default=0, ge=0)
    #: The part of ``cache_creation_tokens`` written to a 1-hour cache.
    cache_creation_1h_tokens: int = Field(default=0, ge=0)
    reasoning_tokens: int = Field(default=0, ge=0)
    #: True when any part of this usage was estimated rather than reported.
    estimated: bool = False

    @model_validator(mode="after")
    def _fill_total(self) -> Usage:
        if self.cache_creation_1h_tokens > self.cache_creation_tokens:
            raise ValueError(
                f"cache_creation_1h_tokens ({self.cache_creation_1h_tokens}) is a part of "
                f"cache_creation_tokens ({self.cache_creation_tokens}) and cannot exceed it"
            )
        if self.total_tokens == 0 and (self.input_tokens or self.output_tokens):
            object.__setattr__(self, "total_tokens", self.input_tokens + self.output_tokens)
        return self

    @property
    def cache_creation_5m_tokens(self) -> int:
        """Cache writes that are not 1-hour writes (Anthropic's 5-minute cache)."""
        return self.cache_creation_tokens - self.cache_creation_1h_tokens

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_creation_tokens=self.cache_creation_tokens + other.cache_creation_tokens,
            cache_creation_1h_tokens=(
                self.cache_creation_1h_tokens + other.cache_creation_1h_tokens
            ),
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            estimated=self.estimated or other.estimated,
        )

    @classmethod
    def from_usage_metadata(cls, metadata: Any, *, estimated: bool = False) -> Usage:
        """Build from LangChain's ``UsageMetadata`` dict (``AIMessage.usage_metadata``).

        Cache writes are read whichever way the integration reports them: as
        ``input_token_details.cache_creation``, or (langchain-anthropic, when the API
        sends the 5-minute/1-hour breakdown) as ``ephemeral_5m_input_tokens`` and
        ``ephemeral_1h_input_tokens`` with ``cache_creation`` set to 0.

        Example:
            >>> Usage.from_usage_metadata({"input_tokens": 5050, "output_tokens": 200,
            ...     "input_token_details": {"cache_read": 3000, "cache_creation": 0,
            ...         "ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 1500}})
            Usage(..., cache_creation_tokens=2000, cache_creation_1h_tokens=1500, ...)
        """
        md = dict(metadata or {})
        inp = dict(md.get("input_token_details") or {})
        out = dict(md.get("output_token_details") or {})
        input_tokens = _count(md.get("input_tokens"))
        output_tokens = _count(md.get("output_tokens"))
        five_min = _count(inp.get("ephemeral_5m_input_tokens"))
        one_hour = _count(inp.get("ephemeral_1h_input_tokens"))
        # The breakdown replaces the generic count when given (langchain-anthropic
        # zeroes it then); max() also reads an integration that reports both right.
        creation = max(_count(inp.get("cache_creation")), five_min + one_hour)
        return cls(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=_count(md.get("total_tokens")) or input_tokens + output_tokens,
            cache_read_tokens=_count(inp.get("cache_read")),
            cache_creation_tokens=creation,
            cache_creation_1h_tokens=one_hour,
            reasoning_tokens=_count(out.get("reasoning")),
            estimated=estimated,
        )


def _count(value: Any) -> int:
    """A reported token count as an int; absent, None, negative or non-numeric is 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    return max(int(value), 0)


class Cost(_Model):
    """An amount of money in one currency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: _Money = Field(default=Decimal("0"), ge=0)
    currency: _Currency = "USD"

    def __add__(self, other: Cost) -> Cost:
        if not isinstance(other, Cost):
            return NotImplemented
        if other.currency != self.currency and other.amount and self.amount:
            raise ValueError(f"cannot add {other.currency} to {self.currency}")
        currency = self.currency if self.amount or not other.amount else other.currency
        return Cost(amount=self.amount + other.amount, currency=currency)

    def __str__(self) -> str:
        return f"{self.amount:f} {self.currency}"


class ModelUsage(_Model):
    """Usage and cost of the calls to one model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    usage: Usage = Field(default_factory=Usage)
    cost: Cost = Field(default_factory=Cost)
    calls: int = 0


class Budget(_Model):
    """Hard limits on what a run (or a wrapped runnable) may spend.

    Attributes:
        max_cost: Most money that may be spent, or None for no cost limit.
        max_tokens: Most tokens (input + output) that may be used, or None.
        currency: Currency of ``max_cost``.
        expected_output_tokens: Output tokens reserved for a call that states no
            ``max_tokens`` of its own.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_cost: _Money | None = Field(default=None, ge=0)
    max_tokens: _Int | None = Field(default=None, ge=0)
    currency: _Currency = "USD"
    expected_output_tokens: _Int = Field(default=1024, ge=0)


class ContextPolicy(_Model):
    """How a task's routed context is kept inside a token budget.

    Attributes:
        max_tokens: Most tokens the routed variables may take, or None for no limit.
        strategy: ``none``, ``truncate``, ``keep_last_n`` or ``summarize``.
        keep_last_n: Messages kept by ``keep_last_n`` (the system message is kept too).
        truncate_to: Tokens each variable is cut to by ``truncate`` (default: max_tokens).
        keep: Which end of a truncated text is kept.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tokens: _Int | None = Field(default=None, gt=0)
    strategy: Literal["none", "truncate", "keep_last_n", "summarize"] = "none"
    keep_last_n: _Int = Field(default=10, ge=0)
    truncate_to: _Int | None = Field(default=None, gt=0)
    keep: Literal["head", "tail"] = "head"


class RunPolicy(_Model):
    """How a run is scheduled and bounded.

    Attributes:
        max_parallelism: Most tasks running at once (a hard bound).
        timeout: Seconds the whole run may take, or None.
        budget: Spending limits for the run, or None.
        context: Default context policy for every task, or None.
        fail_fast: After a failure, start nothing new and cancel what is running.
        scheduling: ``batched`` (deterministic; default) or ``eager``.
        retry_backoff: Seconds before the first retry; doubles per attempt.
        retry_backoff_max: Upper bound on one retry delay.
        admission: ``per_call`` (default): each model call is checked against the
            budget before it is sent. ``worst_case``: also, before any call, the
            run's cost estimate is computed and a run whose upper bound (every retry
            included) exceeds the budget, or has none, is refused with
            ``BudgetExceededError`` carrying the estimate.
        scopes: Shared-budget scopes (``"team:research"``, ``"user:42"``) every model
            call of the run also reserves in, all at once with the run's own budget
            or not at all; the ledger is the orchestrator's (``Orchestrator(...,
            ledger=...)``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_parallelism: _Int = Field(default=4, ge=1)
    timeout: _Float | None = Field(default=None, gt=0)
    budget: Budget | None = None
    context: ContextPolicy | None = None
    fail_fast: bool = True
    scheduling: Literal["batched", "eager"] = "batched"
    retry_backoff: float = Field(default=0.5, ge=0)
    retry_backoff_max: float = Field(default=10.0, ge=0)
    admission: Literal["per_call", "worst_case"] = "per_call"
    scopes: tuple[str, ...] = ()

    @field_validator("scopes", mode="before")
    @classmethod
    def _check_scopes(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = (value,)
        if isinstance(value, (list, tuple)):
            for scope in value:
                if not isinstance(scope, str) or not scope.strip() or scope != scope.strip():
                    raise ValueError(
                        "each scope is a non-empty string without outer spaces, such as "
                        f"'team:research'; got {scope!r}"
                    )
            return tuple(dict.fromkeys(value))
        return value


class TaskError(_Model):
    """Why a task did not complete."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    message: str
    type: str | None = None
    #: The task that failed, on a run's error.
    task_id: str | None = None


class TaskResult(_Model):
    """The outcome of one task."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    task_id: str
    state: TaskState
    output: Any = None
    error: TaskError | None = None
    usage: Usage = Field(default_factory=Usage)
    cost: Cost = Field(default_factory=Cost)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    attempts: int = 0
    batch: int | None = None
    #: What context compaction did before the call (strategy, tokens before/after).
    compaction: dict[str, Any] | None = None
    #: True when the task came back from a run store on resume (it was not run again).
    restored: bool = False

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, or None if the task never started."""
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


class RunEvent(_Model):
    """One entry of a run's event log.

    In batched mode the log is committed in task-id order per batch, so two runs
    whose tasks produce the same outputs have the same sequence of
    ``(seq, type, task_id)`` whatever the timing.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    seq: int
    type: str
    run_id: str
    task_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    ts: datetime


class RunResult(_Model):
    """The outcome of a run: every task's result, totals and the event log.

    ``result["task_id"]`` gives that task's output.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    run_id: str
    state: RunState
    outputs: dict[str, Any] = Field(default_factory=dict)
    tasks: dict[str, TaskResult] = Field(default_factory=dict)
    usage: Usage = Field(default_factory=Usage)
    cost: Cost = Field(default_factory=Cost)
    events: list[RunEvent] = Field(default_factory=list)
    error: TaskError | None = None
    memory: dict[str, Any] = Field(default_factory=dict)
    #: Usage and cost per model id.
    models: dict[str, ModelUsage] = Field(default_factory=dict)
    scheduling: Literal["batched", "eager"] = "batched"

    @field_validator("tasks")
    @classmethod
    def _sorted(cls, v: dict[str, TaskResult]) -> dict[str, TaskResult]:
        return dict(sorted(v.items()))

    def __getitem__(self, task_id: str) -> Any:
        try:
            return self.outputs[task_id]
        except KeyError:
            if task_id in self.tasks:
                state = self.tasks[task_id].state.value
                raise KeyError(f"task {task_id!r} has no output (state: {state})") from None
            raise KeyError(f"no task {task_id!r} in this run") from None

    @property
    def ok(self) -> bool:
        """True when the run completed."""
        return self.state is RunState.COMPLETED

    def raise_for_error(self) -> None:
        """Raise the run's error if it did not complete; do nothing otherwise."""
        if self.ok:
            return
        from langchain_runtime.orchestration._errors import error_from_result

        raise error_from_result(self)

    def _repr_html_(self) -> str:
        from langchain_runtime.observability._html import run_result_html

        return run_result_html(self)

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for tr in self.tasks.values():
            counts[tr.state.value] = counts.get(tr.state.value, 0) + 1
        summary = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
        return f"RunResult(run_id={self.run_id!r}, state={self.state.value!r}, tasks: {summary})"

    __str__ = __repr__
