"""Wire models of the HTTP API: what requests carry and what responses return.

Requests refuse unknown fields (a typo is an error naming the field, never a
silently ignored setting); responses ignore unknown fields, so an older client
keeps working against a newer server.

A task of a request is a :class:`~langchain_runtime.config.TaskSpec`, the model of a
task in a configuration file, so a request's tasks are validated exactly like a
file's. Models are named by id and resolved only through the server's own
configuration: a request can not name a provider, a URL or code to import.

Task outputs travel as JSON. A chat message output (``AIMessage``...) is sent in
LangChain's plain dict form (``message_to_dict``, no class loading) with
``output_type="message"`` and its text in ``output_text``;
:meth:`TaskStatus.output_value` turns it back into the message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import to_jsonable_python

from langchain_runtime.config.schema import ContextSpec, TaskSpec
from langchain_runtime.domain import (
    Budget,
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

__all__ = [
    "ApiRunState",
    "BudgetLimit",
    "BudgetList",
    "BudgetSet",
    "BudgetStatus",
    "ErrorBody",
    "Health",
    "PolicyIn",
    "ResumeBudget",
    "ResumeRequest",
    "RunAccepted",
    "RunPage",
    "RunRequest",
    "RunStatus",
    "RunSummary",
    "TaskAccepted",
    "TaskSpec",
    "TaskStatus",
    "decode_output",
    "encode_output",
]

#: A run's state on the wire: :class:`RunState` plus ``aborting`` (abort requested,
#: the run not yet ended).
ApiRunState = Literal[
    "pending",
    "running",
    "aborting",
    "completed",
    "failed",
    "aborted",
    "budget_exceeded",
    "timed_out",
]
TERMINAL_STATES: frozenset[str] = frozenset(s.value for s in RunState if s.is_terminal)

#: A client-chosen run id: letters, digits and ``. _ : -``, at most 128 characters.
RunId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
_Name = Annotated[str, Field(min_length=1, max_length=200)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


class BudgetLimit(_In):
    """A cost limit, as the seed API wrote it: ``{"amount": 0.5, "currency": "USD"}``."""

    amount: Decimal = Field(ge=0, allow_inf_nan=False)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")


class PolicyIn(_In):
    """Policy fields of a request; each one given overrides the workflow's policy.

    Attributes:
        max_parallelism: Most tasks running at once.
        timeout_ms: Milliseconds the whole run may take.
        budget_limit: Most money the run may spend.
        token_limit: Most tokens the run may use.
        context_policy: Default context policy for every task.
        fail_fast: After a failure, start nothing new.
        scheduling: ``batched`` (deterministic) or ``eager``.
        admission: ``per_call`` or ``worst_case`` (refuse the run before any call
            when its cost estimate's upper bound exceeds the budget).

    Example:
        >>> p = PolicyIn(timeout_ms=1500, budget_limit={"amount": "0.10"})
        >>> policy = p.apply(RunPolicy())
        >>> policy.timeout, policy.budget.max_cost
        (1.5, Decimal('0.10'))
    """

    max_parallelism: int | None = Field(default=None, ge=1, le=1024)
    timeout_ms: int | None = Field(default=None, gt=0, le=7 * 24 * 3600 * 1000)
    budget_limit: BudgetLimit | None = None
    token_limit: int | None = Field(default=None, ge=0)
    context_policy: ContextSpec | None = None
    fail_fast: bool | None = None
    scheduling: Literal["batched", "eager"] | None = None
    admission: Literal["per_call", "worst_case"] | None = None

    def apply(self, base: RunPolicy) -> RunPolicy:
        """``base`` with the fields given here replaced."""
        changes: dict[str, Any] = {}
        if self.max_parallelism is not None:
            changes["max_parallelism"] = self.max_parallelism
        if self.timeout_ms is not None:
            changes["timeout"] = self.timeout_ms / 1000
        if self.context_policy is not None:
            changes["context"] = self.context_policy.to_policy()
        if self.fail_fast is not None:
            changes["fail_fast"] = self.fail_fast
        if self.scheduling is not None:
            changes["scheduling"] = self.scheduling
        if self.admission is not None:
            changes["admission"] = self.admission
        if self.budget_limit is not None or self.token_limit is not None:
            budget = base.budget or Budget()
            fields: dict[str, Any] = {}
            if self.budget_limit is not None:
                fields["max_cost"] = self.budget_limit.amount
                fields["currency"] = self.budget_limit.currency
            if self.token_limit is not None:
                fields["max_tokens"] = self.token_limit
            changes["budget"] = budget.model_copy(update=fields)
        return base.model_copy(update=changes)


class RunRequest(_In):
    """A run submission: a declarative workflow (``tasks``) or a registered one.

    Attributes:
        id: A run id chosen by the client (makes the submission safe to retry);
            the server picks one when absent.
        workflow: The name of a workflow registered on the server.
        tasks: The tasks of an ad-hoc workflow, as in a configuration file.
        model: Default model id for ``tasks`` that name none.
        policy: Policy fields overriding the workflow's (or the server's default).
        policy_name: A policy defined in the server's configuration.
        input: The run input.

    Example:
        >>> req = RunRequest(tasks=[{"id": "a", "prompt": "Hi {name}", "model": "simulated"}],
        ...                  input={"name": "Ada"})
        >>> req.tasks[0].id
        'a'
    """

    id: RunId | None = None
    workflow: _Name | None = None
    tasks: tuple[TaskSpec, ...] | None = Field(default=None, min_length=1, max_length=10_000)
    model: _Name | None = None
    policy: PolicyIn | None = None
    policy_name: _Name | None = None
    input: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> RunRequest:
        if (self.workflow is None) == (self.tasks is None):
            raise ValueError("give exactly one of `workflow` (a registered name) or `tasks`")
        return self


class ResumeBudget(_In):
    """Budget fields of a resume; each one given replaces the stored budget's.

    Example:
        >>> b = ResumeBudget(max_cost="0.50").apply(Budget(max_cost="0.10", max_tokens=900))
        >>> b.max_cost, b.max_tokens
        (Decimal('0.50'), 900)
    """

    max_cost: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)
    max_tokens: int | None = Field(default=None, ge=0)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")

    def apply(self, base: Budget | None) -> Budget:
        """``base`` (or no limit) with the fields given here replaced."""
        return (base or Budget()).model_copy(update=self.model_dump(exclude_none=True))


class ResumeRequest(_In):
    """The body of ``POST /api/v1/runs/{id}/resume`` (optional).

    Attributes:
        budget: A new budget for the resumed run (a top-up after ``budget_exceeded``):
            the fields given replace the stored budget's, the others stay.
    """

    budget: ResumeBudget | None = None


class RunAccepted(_Out):
    """The answer to a submission or an abort: the run's id and state."""

    run_id: str
    state: ApiRunState


class TaskAccepted(_Out):
    """The answer to adding a task to a live run."""

    run_id: str
    task_id: str
    state: TaskState = TaskState.PENDING


def encode_output(value: Any) -> tuple[Any, Literal["json", "message"], str | None]:
    """A task output as ``(JSON value, output_type, text)`` for the wire."""
    if isinstance(value, BaseMessage):
        return to_jsonable_python(message_to_dict(value), fallback=str), "message", value.text
    text = value if isinstance(value, str) else None
    return to_jsonable_python(value, fallback=str), "json", text


def decode_output(value: Any, output_type: str) -> Any:
    """The inverse of :func:`encode_output` (a message comes back as a message)."""
    if output_type == "message" and isinstance(value, Mapping):
        return messages_from_dict([dict(value)])[0]
    return value


class TaskStatus(_Out):
    """One task of a run, as the API reports it."""

    task_id: str
    state: TaskState
    output: Any = None
    output_type: Literal["json", "message"] = "json"
    output_text: str | None = None
    error: TaskError | None = None
    usage: Usage = Field(default_factory=Usage)
    cost: Cost = Field(default_factory=Cost)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    attempts: int = 0
    batch: int | None = None
    #: What context compaction did before the call (as in ``TaskResult``).
    compaction: dict[str, Any] | None = None
    #: Completed in an earlier run of a resumed run, restored from the store (not re-run).
    restored: bool = False

    @classmethod
    def from_result(cls, tr: TaskResult) -> TaskStatus:
        output, output_type, text = encode_output(tr.output)
        return cls(
            task_id=tr.task_id,
            state=tr.state,
            output=output,
            output_type=output_type,
            output_text=text,
            error=tr.error,
            usage=tr.usage,
            cost=tr.cost,
            started_at=tr.started_at,
            ended_at=tr.ended_at,
            attempts=tr.attempts,
            batch=tr.batch,
            compaction=tr.compaction,
            restored=tr.restored,
        )

    def output_value(self) -> Any:
        """The output as the task returned it (a chat message comes back as one)."""
        return decode_output(self.output, self.output_type)


class RunStatus(_Out):
    """A run as the API reports it: state, every task, totals.

    :meth:`to_result` turns it into the :class:`RunResult` a local run returns.

    Example:
        >>> status = RunStatus.model_validate({
        ...     "run_id": "r1", "state": "completed",
        ...     "tasks": {"a": {"task_id": "a", "state": "completed", "output": {"n": 1}}},
        ... })
        >>> status.finished, status.to_result()["a"]
        (True, {'n': 1})
    """

    run_id: str
    state: ApiRunState
    workflow: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    tasks: dict[str, TaskStatus] = Field(default_factory=dict)
    usage: Usage = Field(default_factory=Usage)
    cost: Cost = Field(default_factory=Cost)
    error: TaskError | None = None
    memory: dict[str, Any] = Field(default_factory=dict)
    models: dict[str, ModelUsage] = Field(default_factory=dict)
    scheduling: Literal["batched", "eager"] = "batched"

    @property
    def finished(self) -> bool:
        """True once the run has ended (and its result is stored)."""
        return self.state in TERMINAL_STATES

    @classmethod
    def from_result(
        cls,
        result: RunResult,
        *,
        run_id: str,
        state: ApiRunState | None = None,
        workflow: str | None = None,
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
    ) -> RunStatus:
        """The wire form of ``result`` under the API's run id (and, if given, state).

        An error that names the engine's own run id names the API's instead.
        """
        error = result.error
        if error is not None and result.run_id != run_id and result.run_id in error.message:
            message = error.message.replace(result.run_id, run_id)
            error = error.model_copy(update={"message": message})
        return cls(
            run_id=run_id,
            state=state or result.state.value,
            workflow=workflow,
            created_at=created_at,
            updated_at=updated_at,
            tasks={tid: TaskStatus.from_result(tr) for tid, tr in result.tasks.items()},
            usage=result.usage,
            cost=result.cost,
            error=error,
            memory=to_jsonable_python(result.memory, fallback=str),
            models=result.models,
            scheduling=result.scheduling,
        )

    def to_result(self, events: Iterable[RunEvent] = ()) -> RunResult:
        """This status as a :class:`RunResult` (``aborting`` reads as ``running``)."""
        state = RunState.RUNNING if self.state == "aborting" else RunState(self.state)
        tasks = {
            tid: TaskResult(
                task_id=ts.task_id,
                state=ts.state,
                output=ts.output_value(),
                error=ts.error,
                usage=ts.usage,
                cost=ts.cost,
                started_at=ts.started_at,
                ended_at=ts.ended_at,
                attempts=ts.attempts,
                batch=ts.batch,
                compaction=ts.compaction,
                restored=ts.restored,
            )
            for tid, ts in self.tasks.items()
        }
        return RunResult(
            run_id=self.run_id,
            state=state,
            outputs={
                tid: tr.output for tid, tr in tasks.items() if tr.state is TaskState.COMPLETED
            },
            tasks=tasks,
            usage=self.usage,
            cost=self.cost,
            events=list(events),
            error=self.error,
            memory=dict(self.memory),
            models=dict(self.models),
            scheduling=self.scheduling,
        )


class RunSummary(_Out):
    """One row of the run list."""

    run_id: str
    state: ApiRunState
    workflow: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    tasks: int = 0
    total_tokens: int = 0
    cost: Cost = Field(default_factory=Cost)


class RunPage(_Out):
    """A page of the run list, newest first."""

    items: list[RunSummary]
    total: int
    limit: int
    offset: int


class ErrorBody(_Out):
    """Every error response: a stable code and a message for people."""

    code: str
    message: str


class Health(_Out):
    """``GET /healthz``."""

    status: Literal["ok"] = "ok"
    version: str
    active_runs: int = 0


#: A scope's window on the wire: a calendar window in UTC, or a length in seconds.
WireWindow = Literal["hour", "day", "week", "month"] | Annotated[int, Field(gt=0, le=10**9)]


class BudgetSet(_In):
    """The body of ``PUT /api/v1/budgets/{scope}``: the scope's limits (all replaced).

    Attributes:
        max_cost: Most money per window (None: no cost limit).
        max_tokens: Most tokens per window (None: no token limit).
        window: ``hour``, ``day``, ``week``, ``month`` (calendar, UTC), a length in
            seconds, or None (one window for ever).

    Example:
        >>> BudgetSet(max_cost="5", window="day").window
        'day'
    """

    max_cost: Decimal | None = Field(default=None, ge=0, le=10**12, allow_inf_nan=False)
    max_tokens: int | None = Field(default=None, ge=0, le=10**15)
    window: WireWindow | None = None

    def ledger_window(self) -> Any:
        """The window as the ledger takes it (``timedelta`` for seconds)."""
        from datetime import timedelta

        if isinstance(self.window, int):
            return timedelta(seconds=self.window)
        return self.window


class BudgetStatus(_Out):
    """Where a shared-budget scope stands in its current window.

    Attributes:
        scope: The scope's name.
        max_cost, max_tokens, window: Its limits (None: none).
        window_start: When the current window began (None: no window).
        spent, spent_tokens: Settled spend in the window.
        reserved, reserved_tokens: Held by live leases (calls in flight).
        remaining, remaining_tokens: What new calls may still take (None: no limit).
    """

    scope: str
    max_cost: Decimal | None = None
    max_tokens: int | None = None
    window: WireWindow | None = None
    window_start: datetime | None = None
    spent: Decimal = Decimal(0)
    spent_tokens: int = 0
    reserved: Decimal = Decimal(0)
    reserved_tokens: int = 0
    remaining: Decimal | None = None
    remaining_tokens: int | None = None

    @classmethod
    def from_status(cls, status: Any) -> BudgetStatus:
        """From a ledger's ``ScopeStatus``."""
        from datetime import timedelta

        window = status.window
        if isinstance(window, timedelta):
            window = max(1, int(window.total_seconds()))
        return cls(
            scope=status.scope,
            max_cost=status.max_cost,
            max_tokens=status.max_tokens,
            window=window,
            window_start=status.window_start,
            spent=status.spent,
            spent_tokens=status.spent_tokens,
            reserved=status.reserved,
            reserved_tokens=status.reserved_tokens,
            remaining=status.remaining,
            remaining_tokens=status.remaining_tokens,
        )


class BudgetList(_Out):
    """``GET /api/v1/budgets``: the scopes this key may read (an admin: all known)."""

    items: list[BudgetStatus] = Field(default_factory=list)
