"""Usage, cost and budget for one run: the bridge from the run loop to ``cost``.

Every run tracks usage per task and per model with a ``BudgetCallbackHandler``
attached to the run's callbacks (it ignores chain events, so it only sees model
calls). With a budget, each chat model task that the runtime itself invokes
(``prompt`` piped into a chat model) is *planned* before it starts: its input is
counted on the real prompt, its ``max_tokens`` is clamped to what the remaining
budget can pay for, and that reservation is held until the call makes its own.
In batched mode the plans are made in task-id order at the start of the batch,
so every budget decision is the same whatever the completion timing.

With ``RunPolicy(scopes=...)`` and the orchestrator's ledger, the enforcer holds
every reservation (plans included) in those shared scopes too, all or nothing with
the run's own budget, and clamps ``max_tokens`` to what the scopes have left.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import BaseCallbackManager
from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable, RunnableConfig

from langchain_runtime.cost.pricing import cache_write_ttl
from langchain_runtime.domain import Budget, Cost, ModelUsage, RunPolicy, Usage
from langchain_runtime.errors import BudgetExceededError, ConfigurationError

if TYPE_CHECKING:
    from langchain_runtime.cost import BudgetCallbackHandler, ModelCatalog
    from langchain_runtime.cost.ledger import BudgetLedger
    from langchain_runtime.orchestration.graph import TaskGraph
    from langchain_runtime.orchestration.task import Task


def model_name(task: Task) -> str | None:
    """The model id a task's calls are priced by, when it can be discovered."""
    model = task.model
    for attr in ("model_name", "model", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return task.model_id


def check_prices(
    graph: TaskGraph | Iterable[Task],
    budget: Budget | None,
    catalog: ModelCatalog | None,
    *,
    shared: bool = False,
) -> None:
    """A cost budget (or shared scopes) over a task whose model has no known price is
    refused up front."""
    run_cost = shared or (budget is not None and budget.max_cost is not None)
    if not run_cost and not any(t.budget and t.budget.max_cost is not None for t in graph):
        return
    from langchain_runtime.cost import ModelCatalog

    cat = catalog or ModelCatalog.default()
    for task in graph:
        if not run_cost and (task.budget is None or task.budget.max_cost is None):
            continue
        name = model_name(task) if task.model is not None or task.model_id else None
        if name is not None:
            try:
                cat.get(name)
            except ConfigurationError as exc:
                raise ConfigurationError(f"task {task.id!r}: {exc}") from None


def lease_holder(run_id: str, attempt: int) -> str:
    """The ledger holder of one attempt's calls: ``run_id#attempt`` (0 for the first
    run, ``n`` for its ``n``-th resume).

    A dead attempt's leases are charged at their hold
    (:meth:`~langchain_runtime.cost.ledger.BudgetLedger.charge_held`); naming the
    attempt keeps the charge off the calls of a resume that already runs.

    >>> lease_holder("r1", 0), dead_holders("r1", resumes=2, live=True)
    ('r1#0', ['r1#0', 'r1#1'])
    """
    return f"{run_id}#{attempt}"


def dead_holders(run_id: str, *, resumes: int, live: bool) -> list[str]:
    """The holders of a stored run's attempts that no process runs any more: every
    attempt up to its latest (``resumes``), that one too unless it is ``live``."""
    last = resumes - 1 if live else resumes
    return [lease_holder(run_id, n) for n in range(last + 1)]


class RunAccounting:
    """The run's usage tracker and, with a budget, its enforcer and planner."""

    def __init__(
        self,
        policy: RunPolicy,
        catalog: ModelCatalog | None,
        run_id: str,
        task_budgets: dict[str, Budget] | None = None,
        *,
        ledger: BudgetLedger | None = None,
        holder: str | None = None,
    ):
        from langchain_runtime.cost import BudgetCallbackHandler, BudgetEnforcer
        from langchain_runtime.cost.budget import ledger_gate

        self.budget = policy.budget
        #: Per-task limits; the enforcer reads this dict, so tasks added later count.
        self.task_budgets: dict[str, Budget] = task_budgets if task_budgets is not None else {}
        scopes = policy.scopes if ledger is not None or policy.scopes else ()
        # the run's leases name the run's attempt (``holder``, see lease_holder): when
        # its process is known dead (a sweep, a restart, a resume), charge_held(holder)
        # charges its calls in flight
        holder = holder if holder is not None else lease_holder(run_id, 0)
        gate = ledger_gate(ledger if scopes else None, scopes, "Orchestrator", holder=holder)
        enforcer = BudgetEnforcer(policy.budget, catalog, per_task=self.task_budgets, gate=gate)
        self.handler: BudgetCallbackHandler = BudgetCallbackHandler(enforcer=enforcer)
        self.shared = self.handler.enforcer.gate is not None
        self._run_id = run_id
        self._plans: dict[str, str] = {}

    def attach(self, config: RunnableConfig) -> RunnableConfig:
        """``config`` with the handler added to its (inheritable) callbacks."""
        callbacks = config.get("callbacks")
        new = dict(config)
        if callbacks is None:
            new["callbacks"] = [self.handler]
        elif isinstance(callbacks, list):
            new["callbacks"] = [*callbacks, self.handler]
        elif isinstance(callbacks, BaseCallbackManager):
            manager = callbacks.copy()
            manager.add_handler(self.handler, inherit=True)
            new["callbacks"] = manager
        return new  # type: ignore[return-value]

    # ------------------------------------------------------------------ planning
    def plan(self, task: Task, inp: dict[str, Any]) -> Runnable[Any, Any] | None:
        """Reserve for a chat model task and clamp its ``max_tokens``.

        Returns the runnable to invoke instead of ``task.runnable``, or None when
        the task is not planned (no budget, or not a prompt into a chat model).

        Raises:
            BudgetExceededError: Not even one output token fits: the task must not
                start.
        """
        budget = self.budget or task.budget or (Budget() if self.shared else None)
        if budget is None or task.prompt is None:
            return None
        model = task.model
        if not isinstance(model, BaseChatModel):
            return None
        name = model_name(task)
        enforcer = self.handler.enforcer
        messages = task.prompt.invoke(inp).to_messages()
        estimator = self.handler.estimator
        counted = estimator.count_messages(messages, model=name)
        # the same inflation the handler applies to the call's own reservation
        input_tokens = estimator.reservation_tokens(counted, name)
        own = getattr(model, "max_tokens", None)
        wanted = own if isinstance(own, int) and own > 0 else budget.expected_output_tokens
        cache_write = cache_write_ttl(messages)  # cache_control marks: held at that rate
        affordable = enforcer.affordable_output_tokens(
            name, input_tokens, task.id, cache_write=cache_write
        )
        limit = wanted if affordable is None else min(wanted, affordable)
        if limit < 1 and self.shared:
            local = enforcer.affordable_output_tokens(name, input_tokens, task.id, ledger=False)
            if local is None or local >= 1:
                limit = 1  # a shared scope is what is short: its refusal below names it
        if limit < 1:
            left = enforcer.remaining
            raise BudgetExceededError(
                f"task {task.id!r} not started: its prompt takes {input_tokens} input tokens "
                f"and the budget cannot pay for a single output token after that "
                f"(left: {left if left is not None else enforcer.remaining_tokens})",
                limit=budget.max_cost if budget.max_cost is not None else budget.max_tokens,
                spent=enforcer.spent.amount,
                task_id=task.id,
            )
        # unique per attempt: a resumed run (same run id) or a retried task must not
        # reuse an id the ledger has seen released
        call_id = f"plan:{self._run_id}:{task.id}:{uuid.uuid4().hex[:12]}"
        # a placeholder: released before the call is sent, never charged for a dead run
        enforcer.reserve(
            call_id,
            name,
            input_tokens,
            limit,
            task_id=task.id,
            cache_write=cache_write,
            placeholder=True,
        )
        self._plans[task.id] = call_id
        return task.prompt | model.bind(max_tokens=limit)

    def close(self) -> None:
        """Stop renewing ledger leases (the run is over); no-op without a ledger."""
        self.handler.close()

    def release_plan(self, task_id: str) -> None:
        """Drop a task's plan just before its call reserves for itself."""
        call_id = self._plans.pop(task_id, None)
        if call_id is not None:
            self.handler.enforcer.release(call_id)

    # ------------------------------------------------------------------ reporting
    def task_usage(self, task_id: str) -> tuple[Usage, Cost] | None:
        """The task's usage and cost, or None when it made no model call."""
        tracker = self.handler.tracker
        if not tracker.has_task(task_id):
            return None
        totals = tracker.task_totals(task_id)
        return totals.usage, totals.cost

    def by_model(self) -> dict[str, ModelUsage]:
        return {
            name: ModelUsage(usage=t.usage, cost=t.cost, calls=t.calls)
            for name, t in sorted(self.handler.by_model().items())
        }

    def overrun(self) -> str | None:
        """Why settled spending is past the run's budget, or None when it is within.

        Only a call that ignored its ``max_tokens`` (or a provider that counts far
        more input than estimated) can get here; the run reports it, never hides it.
        """
        if self.budget is None:
            return None
        usage, cost = self.totals()
        if self.budget.max_cost is not None and cost.amount > self.budget.max_cost:
            return (
                f"spent {cost} of a {self.budget.max_cost} {self.budget.currency} budget: "
                "a model call used more than it reserved (did it ignore max_tokens?)"
            )
        if self.budget.max_tokens is not None and usage.total_tokens > self.budget.max_tokens:
            return (
                f"used {usage.total_tokens} of a {self.budget.max_tokens}-token budget: "
                "a model call used more than it reserved (did it ignore max_tokens?)"
            )
        return None

    def totals(self) -> tuple[Usage, Cost]:
        return self.handler.usage, self.handler.spent
