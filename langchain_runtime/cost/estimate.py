"""A pre-run estimate of a run's tokens and cost, per task, as a range; and admission.

Nothing is called: no model is contacted. For each task, in dependency order:

* **Input tokens.** The prompt template is formatted with what is known before the
  run (the run input) and counted with :class:`~langchain_runtime.cost.TokenEstimator`,
  the counter the budget uses. That count is exact for the text. The range around it:

  - *low* leaves out the per-message framing (role and separators), which providers
    count differently, and takes every upstream output as empty;
  - *high* adds OpenAI's framing (what the budget reserves) and, for each
    variable fed by an upstream task, that task's output upper bound (capped by the
    task's context policy ``max_tokens`` when it has one);
  - a value inserted into the text can merge with the tokens around it, so each
    insertion widens the range by one token on each side (a message list inserted
    into a ``MessagesPlaceholder`` by one message's framing).

* **Output tokens.** Low: 0. High: the model's ``max_tokens``; else, under a budget,
  the policy's ``expected_output_tokens`` (the runtime caps every call it makes at
  it); else the catalog's max output for the model; else unbounded.

* **Cost.** The catalog's prices for the model the task is priced as: low is the
  low input at the cheaper of the input and cached-input rates, no output; high is
  high input and high output at the model's rates (long-context tier included).

A task that is not a prompt piped into a model (any other Runnable or callable) has
no upper bound: what it calls cannot be seen before it runs. Retries, summarizer
calls of a ``summarize`` context policy, and counts made with a fallback encoding
are reported as notes: the ranges do not include them.

:func:`admit` is the whole-plan admission of ``RunPolicy(admission="worst_case")``:
a run whose upper bound (every retry included) does not fit its budget, or has no
upper bound, is refused before any call with :class:`AdmissionError`.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.prompts import (
    BasePromptTemplate,
    ChatPromptTemplate,
    MessagesPlaceholder,
    PromptTemplate,
)

from langchain_runtime.context.router import ContextRouter, message_variables, routed
from langchain_runtime.cost.catalog import ModelCatalog
from langchain_runtime.cost.pricing import CostCalculator
from langchain_runtime.cost.tokens import TokenEstimator
from langchain_runtime.domain import Budget, ContextPolicy, RunPolicy
from langchain_runtime.errors import BudgetExceededError, InvalidInputError

if TYPE_CHECKING:
    from langchain_runtime.orchestration.graph import TaskGraph
    from langchain_runtime.orchestration.task import Task

__all__ = [
    "AdmissionError",
    "Bound",
    "PricedTask",
    "RunEstimate",
    "TaskEstimate",
    "admit",
    "admit_run",
    "estimate_priced",
    "estimate_run",
]

_INPUT = "$input"
_MEMORY = "$memory"


@dataclass(frozen=True)
class Bound:
    """A range of token counts; ``high`` is None when nothing bounds it.

    Example:
        >>> Bound(1, 5) + Bound(2, None)
        Bound(low=3, high=None)
    """

    low: int
    high: int | None

    def __add__(self, other: Bound) -> Bound:
        high = None if self.high is None or other.high is None else self.high + other.high
        return Bound(self.low + other.low, high)

    def contains(self, value: int) -> bool:
        return self.low <= value and (self.high is None or value <= self.high)


@dataclass(frozen=True)
class TaskEstimate:
    """The estimate for one task (one attempt).

    Attributes:
        task_id: The task.
        model: Its model (registry id, or the model name it is priced as).
        priced_as: The catalog model it is priced as, or None when it has no price.
        input: Input tokens.
        output: Output tokens.
        cost_low: Lowest cost, or None without a price.
        cost_high: Highest cost, or None without a price or upper bound.
        prompt_exact: True when every prompt variable was known before the run.
        fed_by: Upstream tasks whose outputs go into the prompt (estimated).
        output_basis: Where the output upper bound comes from.
        max_retries: Extra attempts the task may make (not in the ranges).
        notes: What the ranges leave out or approximate.
        unbounded_calls: Why the task may make model calls the ranges leave out
            (a summarizer, a Runnable the estimate cannot see into), or None.
    """

    task_id: str
    model: str
    priced_as: str | None
    input: Bound
    output: Bound
    cost_low: Decimal | None
    cost_high: Decimal | None
    prompt_exact: bool
    fed_by: tuple[str, ...]
    output_basis: str
    max_retries: int = 0
    notes: tuple[str, ...] = ()
    unbounded_calls: str | None = None

    @property
    def tokens(self) -> Bound:
        return self.input + self.output


def _sum_money(values: Iterable[Decimal | None]) -> Decimal | None:
    total = Decimal(0)
    for value in values:
        if value is None:
            return None
        total += value
    return total


@dataclass(frozen=True)
class RunEstimate:
    """The estimate for a whole run, with the budget it runs under."""

    source: str
    workflow: str
    tasks: tuple[TaskEstimate, ...]
    budget: Budget | None
    currency: str
    counting: str
    notes: tuple[str, ...] = field(default=())

    @property
    def input(self) -> Bound:
        return sum((t.input for t in self.tasks), Bound(0, 0))

    @property
    def output(self) -> Bound:
        return sum((t.output for t in self.tasks), Bound(0, 0))

    @property
    def tokens(self) -> Bound:
        return self.input + self.output

    @property
    def cost_low(self) -> Decimal | None:
        return _sum_money(t.cost_low for t in self.tasks)

    @property
    def cost_high(self) -> Decimal | None:
        return _sum_money(t.cost_high for t in self.tasks)

    @property
    def retry_tokens_high(self) -> int | None:
        """Upper bound on tokens if every retryable task used all its retries."""
        highs = [t.tokens.high for t in self.tasks]
        if any(h is None for h in highs):
            return None
        return sum((t.max_retries + 1) * (t.tokens.high or 0) for t in self.tasks)

    @property
    def retry_cost_high(self) -> Decimal | None:
        """Upper bound on cost if every retryable task used all its retries."""
        return _sum_money(
            None if t.cost_high is None else t.cost_high * (t.max_retries + 1) for t in self.tasks
        )

    @property
    def has_retries(self) -> bool:
        return any(t.max_retries for t in self.tasks)

    def _fits(self, cost: Decimal | None, tokens: int | None) -> bool | None:
        """Whether ``cost`` and ``tokens`` fit every limit (None: no budget, or unknown)."""
        if self.budget is None:
            return None
        checks: list[bool | None] = []
        if self.budget.max_cost is not None:
            checks.append(None if cost is None else cost <= self.budget.max_cost)
        if self.budget.max_tokens is not None:
            checks.append(None if tokens is None else tokens <= self.budget.max_tokens)
        if False in checks:
            return False
        return None if None in checks else True

    @property
    def fits(self) -> bool | None:
        """Whether the upper bound fits the budget (None: no budget, or no upper bound)."""
        return self._fits(self.cost_high, self.tokens.high)

    @property
    def fits_with_retries(self) -> bool | None:
        """Whether the upper bound with every retry fits the budget."""
        return self._fits(self.retry_cost_high, self.retry_tokens_high)

    @property
    def lower_fits(self) -> bool | None:
        """Whether even the lower bound fits the budget (False: the run cannot finish)."""
        return self._fits(self.cost_low, self.tokens.low)


@dataclass(frozen=True)
class PricedTask:
    """A task with what the estimate needs to know about its model.

    Attributes:
        task: The task (its prompt, dependencies, sources, context policy, retries).
        model: The model as shown (a registry id, or the priced name).
        priced_as: The name its calls are counted and priced as, or None.
        max_tokens: The model's own output limit, or None.
        clamped: The runtime itself invokes the model (a prompt into a chat model),
            so under a budget each call's output is capped.
    """

    task: Task
    model: str
    priced_as: str | None
    max_tokens: int | None = None
    clamped: bool = True


# --------------------------------------------------------------------------- estimating


def _templates(prompt: BasePromptTemplate[Any]) -> list[str]:
    """The f-string templates inside a prompt (empty for other formats)."""
    if isinstance(prompt, PromptTemplate):
        return [prompt.template] if prompt.template_format == "f-string" else []
    found: list[str] = []
    if isinstance(prompt, ChatPromptTemplate):
        for message in prompt.messages:
            inner = getattr(message, "prompt", None)
            for part in inner if isinstance(inner, list) else [inner]:
                if isinstance(part, PromptTemplate):
                    found += _templates(part)
    return found


def _occurrences(prompt: BasePromptTemplate[Any]) -> dict[str, int]:
    """How often each variable appears in the prompt's f-string templates."""
    counts: dict[str, int] = {}
    for template in _templates(prompt):
        try:
            for _, name, _, _ in string.Formatter().parse(template):
                if name:
                    counts[name] = counts.get(name, 0) + 1
        except ValueError:  # not an f-string template: one of each
            return {}
    if isinstance(prompt, ChatPromptTemplate):
        for message in prompt.messages:
            if isinstance(message, MessagesPlaceholder):
                counts[message.variable_name] = counts.get(message.variable_name, 0) + 1
    return counts


def _source_task(source: str, deps: Iterable[str]) -> str:
    """The upstream task an ``inputs`` source reads (``task`` or ``task.field``)."""
    best = source.split(".", 1)[0]
    for dep in deps:
        if (source == dep or source.startswith(dep + ".")) and len(dep) > len(best):
            best = dep
    return best


class _Estimator:
    def __init__(
        self,
        priced: Sequence[PricedTask],
        run_input: Mapping[str, Any],
        policy: RunPolicy,
        catalog: ModelCatalog,
        source: str,
        workflow: str,
    ) -> None:
        self.items = {p.task.id: p for p in priced}
        self.policy = policy
        self.budget = policy.budget
        self.run_input = dict(run_input)
        self.catalog = catalog
        self.calculator = CostCalculator(catalog)
        self.counter = TokenEstimator()
        self.router = ContextRouter()
        self.source = source
        self.workflow = workflow
        self.memory_writers = {
            p.task.memory_key: p.task.id for p in priced if p.task.memory_key is not None
        }
        self.outputs: dict[str, Bound] = {}
        self.notes: list[str] = []

    def run(self, order: Sequence[str]) -> RunEstimate:
        tasks = tuple(self.task(tid) for tid in order)
        names = {p.priced_as for p in self.items.values() if p.priced_as is not None}
        counting = sorted({self.counter.method(name) for name in names})
        return RunEstimate(
            source=self.source,
            workflow=self.workflow,
            tasks=tasks,
            budget=self.budget,
            currency=self.catalog.currency,
            counting=", ".join(counting),
            notes=tuple(dict.fromkeys(self.notes)),
        )

    def variable_bound(self, task: Task, var: str) -> tuple[Any, Bound | None, str | None]:
        """A prompt variable's value when known, else its bound and the task feeding it."""
        source = task.inputs.get(var)
        if source is None:
            if var in task.deps:
                return None, self.outputs[var], var
            return routed(task, var, self.run_input[var]), None, None
        if source == _INPUT or source.startswith(_INPUT + "."):
            return self.router.resolve(task, var, source, {}, self.run_input, {}), None, None
        if source == _MEMORY or source.startswith(_MEMORY + "."):
            key = source[len(_MEMORY) + 1 :].split(".", 1)[0]
            writer = self.memory_writers.get(key)
            if writer is None or writer not in self.outputs:
                return None, Bound(0, None), None
            return None, self.outputs[writer], writer
        dep = _source_task(source, task.deps)
        return None, self.outputs[dep], dep

    def task(self, tid: str) -> TaskEstimate:
        item = self.items[tid]
        task = item.task
        if task.prompt is None:
            return self.opaque(item)
        name = item.priced_as
        context = task.context or self.policy.context
        occurrences = _occurrences(task.prompt)
        placeholders = message_variables(task)
        known: dict[str, Any] = {}
        fed = Bound(0, 0)
        inserted = 0  # text insertions: each may merge with a token on either side
        framed_in = 0  # message lists inserted: each adds one message's framing
        fed_by: list[str] = []
        notes: list[str] = []
        capped = context is not None and context.max_tokens is not None
        for var in task.prompt_variables:
            value, bound, upstream = self.variable_bound(task, var)
            if bound is None:
                known[var] = value
                if capped and var in task.inputs:
                    notes.append(f"the context policy may shorten {{{var}}}; counted whole")
                continue
            n = occurrences.get(var, 1)
            if var in placeholders:
                known[var] = []
                framed_in += n
            else:
                known[var] = ""
                inserted += n
            high = bound.high
            if context is not None and context.max_tokens is not None:
                high = context.max_tokens if high is None else min(high, context.max_tokens)
            fed = fed + Bound(bound.low * n, None if high is None else high * n)
            if upstream is not None:
                fed_by.append(upstream)
            else:
                unbounded = "" if high is not None else ": unbounded"
                notes.append(f"{{{var}}} reads run memory no upstream task writes{unbounded}")
        messages = task.prompt.invoke(known).to_messages()
        text = sum(self.counter.count_text(m.text, model=name) for m in messages)
        framed = self.counter.count_messages(messages, model=name)
        slack = inserted + framed_in * self.message_framing(name)
        high_in = None if fed.high is None else framed + fed.high + slack
        if high_in is not None and self.counter.input_margin(name) != 1.0:
            # the budget reserves this much more for tokenizers tiktoken cannot reproduce
            high_in = self.counter.reservation_tokens(high_in, name)
            notes.append(
                f"input upper bound includes the budget's {self.counter.input_margin(name):.2f}x "
                f"margin for {name or 'this model'}'s tokenizer"
            )
        prompt = Bound(max(text + fed.low - inserted, 0), high_in)
        output, basis = self.output_bound(item)
        self.outputs[tid] = output
        notes += self.task_notes(item, context)
        cost_low, cost_high = self.cost(name, prompt, output)
        summarizes = context is not None and context.strategy == "summarize"
        return TaskEstimate(
            task_id=tid,
            model=item.model,
            priced_as=self.catalog.resolve(name) if name is not None else None,
            input=prompt,
            output=output,
            cost_low=cost_low,
            cost_high=cost_high,
            prompt_exact=not (inserted or framed_in),
            fed_by=tuple(dict.fromkeys(fed_by)),
            output_basis=basis,
            max_retries=task.max_retries,
            notes=tuple(notes),
            unbounded_calls=(
                "its summarize context policy makes summarizer calls" if summarizes else None
            ),
        )

    def message_framing(self, name: str | None) -> int:
        """Tokens one chat message adds around its text (an inserted message's slack)."""
        count = self.counter.count_messages
        return count([AIMessage("")], name) - count([], name)

    def opaque(self, item: PricedTask) -> TaskEstimate:
        """A task that is not a prompt into a model: nothing bounds what it calls."""
        why = (
            "it runs a Runnable or callable, whose model calls the estimate cannot see "
            "before it runs"
        )
        self.outputs[item.task.id] = Bound(0, None)
        return TaskEstimate(
            task_id=item.task.id,
            model=item.model,
            priced_as=(
                self.catalog.resolve(item.priced_as) if item.priced_as is not None else None
            ),
            input=Bound(0, None),
            output=Bound(0, None),
            cost_low=Decimal(0),
            cost_high=None,
            prompt_exact=False,
            fed_by=(),
            output_basis="unbounded",
            max_retries=item.task.max_retries,
            notes=(f"no upper bound: {why}",),
            unbounded_calls=why,
        )

    def output_bound(self, item: PricedTask) -> tuple[Bound, str]:
        if item.max_tokens is not None and item.max_tokens > 0:
            return Bound(0, item.max_tokens), "max_tokens"
        if self.budget is not None and item.clamped:
            return Bound(0, self.budget.expected_output_tokens), "expected_output_tokens"
        info = self.catalog.find(item.priced_as) if item.priced_as is not None else None
        if info is not None and info.max_output_tokens:
            return Bound(0, info.max_output_tokens), "catalog max output"
        return Bound(0, None), "unbounded"

    def cost(
        self, name: str | None, prompt: Bound, output: Bound
    ) -> tuple[Decimal | None, Decimal | None]:
        info = self.catalog.find(name) if name is not None else None
        if info is None:
            return None, None
        low = min(
            self.calculator.amount(info, prompt.low, 0),
            self.calculator.amount(info, prompt.low, 0, cache_read_tokens=prompt.low),
        )
        if prompt.high is None or output.high is None:
            return low, None
        return low, self.calculator.amount(info, prompt.high, output.high)

    def task_notes(self, item: PricedTask, context: ContextPolicy | None) -> list[str]:
        notes = []
        name = item.priced_as
        if name is None or self.catalog.find(name) is None:
            notes.append(
                f"model {item.model!r} ({name or 'unknown'}) has no price in the catalog: "
                "cost unknown"
            )
        if context is not None and context.strategy == "summarize":
            notes.append("summarize context policy: summarizer calls are not included")
        method = self.counter.method(name)
        if not method.startswith("tiktoken:"):
            self.notes.append(
                f"tokens of {name} counted with {method}: counts are approximate, and so "
                "are the ranges"
            )
        return notes


def estimate_priced(
    priced: Sequence[PricedTask],
    order: Sequence[str],
    run_input: Mapping[str, Any],
    *,
    policy: RunPolicy | None = None,
    catalog: ModelCatalog | None = None,
    source: str = "<tasks>",
    workflow: str = "",
) -> RunEstimate:
    """Estimate tasks whose models are already described (the CLI's entry point).

    Args:
        priced: Every task, with its model's pricing name and output limit.
        order: The task ids in dependency order.
        run_input: The run input (keys the prompts need must be present).
        policy: The run's policy (its budget and default context policy).
        catalog: Prices (default: the bundled catalog).
        source: Where the tasks come from, as shown.
        workflow: The workflow's name, as shown.
    """
    estimator = _Estimator(
        priced,
        run_input,
        policy or RunPolicy(),
        catalog or ModelCatalog.default(),
        source,
        workflow,
    )
    return estimator.run(order)


def _priced(task: Task) -> PricedTask:
    from langchain_runtime.orchestration._accounting import model_name

    name = model_name(task) if task.model is not None or task.model_id else None
    own = getattr(task.model, "max_tokens", None)
    return PricedTask(
        task=task,
        model=name or "-",
        priced_as=name,
        max_tokens=own if isinstance(own, int) and own > 0 else None,
        clamped=task.prompt is not None and isinstance(task.model, BaseChatModel),
    )


def estimate_run(
    tasks: TaskGraph | Iterable[Task] | Any,
    run_input: Mapping[str, Any] | None = None,
    *,
    policy: RunPolicy | None = None,
    catalog: ModelCatalog | None = None,
) -> RunEstimate:
    """Estimate a run of ``tasks`` (an ``Orchestrator``, a ``TaskGraph`` or tasks).

    Nothing is called. An ``Orchestrator`` brings its own policy and catalog unless
    ``policy``/``catalog`` are given.

    Example:
        >>> from langchain_runtime import Budget, RunPolicy, Task
        >>> from langchain_runtime.testing import SimulatedChatModel
        >>> model = SimulatedChatModel()
        >>> est = estimate_run(
        ...     [Task("a", prompt="Research {topic}", model=model),
        ...      Task("b", prompt="Summarise: {a}", model=model, deps=["a"])],
        ...     {"topic": "owls"},
        ...     policy=RunPolicy(budget=Budget(max_cost=1, expected_output_tokens=100)),
        ... )
        >>> est.output, est.fits
        (Bound(low=0, high=200), True)

    Raises:
        InvalidInputError: The run input lacks keys the prompts need.
        GraphValidationError: The tasks do not form a valid graph.
    """
    from langchain_runtime.orchestration.graph import TaskGraph

    if hasattr(tasks, "graph") and hasattr(tasks, "policy"):  # an Orchestrator
        orchestrator: Any = tasks
        policy = policy or orchestrator.policy
        catalog = catalog or orchestrator.catalog
        tasks = orchestrator.graph
    graph = tasks if isinstance(tasks, TaskGraph) else TaskGraph(tasks)
    run_input = dict(run_input or {})
    needed = ContextRouter().validate(graph)
    missing = sorted(k for k in needed if k not in run_input)
    if missing:
        raise InvalidInputError(f"the run input is missing {', '.join(map(repr, missing))}")
    priced = [_priced(graph[tid]) for tid in graph.order]
    return estimate_priced(priced, graph.order, run_input, policy=policy, catalog=catalog)


# --------------------------------------------------------------------------- admission


class AdmissionError(BudgetExceededError):
    """A run refused before any call: its worst-case cost does not fit its budget.

    Raised by ``RunPolicy(admission="worst_case")``; a :class:`BudgetExceededError`.

    Attributes:
        estimate: The run's estimate (:class:`RunEstimate`), upper bounds included.
    """

    def __init__(
        self,
        message: str,
        *,
        estimate: RunEstimate,
        limit: Decimal | int | None = None,
    ) -> None:
        super().__init__(message, limit=limit, spent=0)
        self.estimate = estimate


def _money(amount: Decimal, currency: str) -> str:
    return f"{amount.normalize():f} {currency}"


def admit(estimate: RunEstimate) -> None:
    """Refuse a run whose worst case does not fit its budget, before any call.

    The worst case is the estimate's upper bound with every retry used. A run with
    no upper bound (a task the estimate cannot see into, a summarizer, a model with
    no price or output limit) is refused too: it cannot be shown to fit.

    Raises:
        AdmissionError: The upper bound exceeds the budget, or there is none.
    """
    budget = estimate.budget
    if budget is None or (budget.max_cost is None and budget.max_tokens is None):
        return
    cost, tokens = estimate.retry_cost_high, estimate.retry_tokens_high
    retries = " (every retry included)" if estimate.has_retries else ""
    limit: Decimal | int | None = budget.max_cost if budget.max_cost is not None else None
    unbounded = [t for t in estimate.tasks if t.unbounded_calls is not None]
    problems: list[str] = []
    if budget.max_cost is not None:
        if cost is None:
            unpriced = [t.task_id for t in estimate.tasks if t.cost_high is None]
            problems.append(f"its cost has no upper bound (tasks: {', '.join(unpriced)})")
        elif cost > budget.max_cost:
            problems.append(
                f"its cost may reach {_money(cost, estimate.currency)}{retries}, over the "
                f"budget of {_money(budget.max_cost, budget.currency)}"
            )
    if budget.max_tokens is not None:
        if tokens is None:
            open_ended = [t.task_id for t in estimate.tasks if t.tokens.high is None]
            problems.append(f"its tokens have no upper bound (tasks: {', '.join(open_ended)})")
        elif tokens > budget.max_tokens:
            limit = budget.max_tokens if limit is None else limit
            problems.append(
                f"it may use {tokens} tokens{retries}, over the budget of "
                f"{budget.max_tokens} tokens"
            )
    for t in unbounded:
        problems.append(
            f"task {t.task_id!r} may make calls the estimate cannot bound: {t.unbounded_calls}"
        )
    if problems:
        low = estimate.cost_low
        lower = f"; its lower bound is {_money(low, estimate.currency)}" if low is not None else ""
        raise AdmissionError(
            "run refused before any call (admission='worst_case'): "
            + "; ".join(dict.fromkeys(problems))
            + lower,
            estimate=estimate,
            limit=limit,
        )


def admit_run(
    graph: TaskGraph,
    run_input: Mapping[str, Any],
    policy: RunPolicy,
    catalog: ModelCatalog | None,
) -> RunEstimate | None:
    """Whole-plan admission for a run about to start (None when the policy does not ask).

    Raises:
        AdmissionError: ``policy.admission == "worst_case"`` and the run's upper
            bound does not fit its budget.
    """
    if policy.admission != "worst_case":
        return None
    estimate = estimate_run(graph, run_input, policy=policy, catalog=catalog)
    admit(estimate)
    return estimate
