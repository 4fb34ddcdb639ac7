"""A pre-run estimate of a workflow's tokens and cost, per task, as a range.

Nothing is called: no model is built and no provider is contacted. For each task,
in dependency order:

* **Input tokens.** The prompt template is formatted with what is known before the
  run (the run input) and counted with :class:`~langchain_runtime.cost.TokenEstimator`,
  the counter the budget uses. That count is exact for the text. The range around it:

  - *low* leaves out the per-message framing (role and separators), which providers
    count differently, and takes every upstream output as empty;
  - *high* adds OpenAI's framing (what the budget reserves) and, for each
    variable fed by an upstream task, that task's output upper bound (capped by the
    task's context policy ``max_tokens`` when it has one);
  - a value inserted into the text can merge with the tokens around it, so each
    insertion widens the range by one token on each side.

* **Output tokens.** Low: 0. High: the model's ``max_tokens``; else, under a budget,
  the policy's ``expected_output_tokens`` (the runtime caps every call at it);
  else the catalog's max output for the model; else unbounded.

* **Cost.** The catalog's prices for the model the task is priced as: low is the
  low input at the cheaper of the input and cached-input rates, no output; high is
  high input and high output at the model's rates (long-context tier included).

Retries, summarizer calls of a ``summarize`` context policy, and counts made with a
fallback encoding are reported as notes: the ranges do not include them.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from langchain_runtime.cli.options import (
    LoadedWorkflow,
    load,
    parse_budget,
    parse_run_input,
    priced_name,
    require_inputs,
    with_overrides,
)
from langchain_runtime.config import ModelSpec, TaskSpec
from langchain_runtime.context.router import ContextRouter
from langchain_runtime.cost import CostCalculator, ModelCatalog, TokenEstimator
from langchain_runtime.domain import Budget, ContextPolicy
from langchain_runtime.orchestration import Task, TaskGraph
from langchain_runtime.testing import SimulatedChatModel

__all__ = ["Bound", "RunEstimate", "TaskEstimate", "estimate", "estimate_file"]

_SIMULATED = "simulated"
_INPUT = "$input"
_MEMORY = "$memory"


@dataclass(frozen=True)
class Bound:
    """A range of token counts; ``high`` is None when nothing bounds it."""

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
        model: Its model registry id.
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


# --------------------------------------------------------------------------- estimating


def _occurrences(template: str) -> dict[str, int]:
    """How often each variable appears in an f-string template."""
    counts: dict[str, int] = {}
    try:
        for _, name, _, _ in string.Formatter().parse(template):
            if name:
                counts[name] = counts.get(name, 0) + 1
    except ValueError:  # not an f-string template: one of each
        return {}
    return counts


def _source_task(source: str, deps: Iterable[str]) -> str:
    """The upstream task an ``inputs`` source reads (``task`` or ``task.field``)."""
    best = source.split(".", 1)[0]
    for dep in deps:
        if (source == dep or source.startswith(dep + ".")) and len(dep) > len(best):
            best = dep
    return best


class _Estimator:
    def __init__(self, loaded: LoadedWorkflow, run_input: Mapping[str, Any]) -> None:
        self.config = loaded.config
        self.name = loaded.name
        self.workflow = loaded.config.workflow(loaded.name)
        self.policy = loaded.policy
        self.budget = loaded.policy.budget
        self.run_input = dict(run_input)
        self.catalog: ModelCatalog = loaded.config.catalog()
        self.calculator = CostCalculator(self.catalog)
        self.counter = TokenEstimator()
        self.router = ContextRouter()
        stand_in = SimulatedChatModel()  # only for the prompt templates; never called
        self.specs = {t.id: t for t in self.workflow.tasks}
        self.graph = TaskGraph(
            Task(t.id, prompt=t.prompt, model=stand_in, deps=t.deps, inputs=t.inputs)
            for t in self.workflow.tasks
        )
        self.memory_writers = {
            t.memory_key: t.id for t in self.workflow.tasks if t.memory_key is not None
        }
        self.outputs: dict[str, Bound] = {}
        self.notes: list[str] = []

    def model_of(self, spec: TaskSpec) -> tuple[str, ModelSpec, str]:
        """Registry id, registry entry, and the name the task's calls are priced as."""
        model_id = spec.model or self.workflow.model or _SIMULATED
        entry = self.config.models.get(model_id) or ModelSpec(provider=_SIMULATED)
        return model_id, entry, priced_name(self.config, model_id)

    def run(self) -> RunEstimate:
        require_inputs(self.router.validate(self.graph, self.workflow.input_keys), self.run_input)
        tasks = tuple(self.task(tid) for tid in self.graph.order)
        names = {self.model_of(spec)[2] for spec in self.specs.values()}
        counting = sorted({self.counter.method(name) for name in names})
        return RunEstimate(
            source=self.config.source,
            workflow=self.name,
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
            return self.run_input[var], None, None
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
        spec, task = self.specs[tid], self.graph[tid]
        model_id, entry, name = self.model_of(spec)
        context = spec.context.to_policy() if spec.context is not None else self.policy.context
        occurrences = _occurrences(spec.prompt)
        known: dict[str, Any] = {}
        fed = Bound(0, 0)
        inserted = 0
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
            known[var] = ""
            n = occurrences.get(var, 1)
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
        assert task.prompt is not None
        messages = task.prompt.invoke(known).to_messages()
        text = sum(self.counter.count_text(m.text, model=name) for m in messages)
        framed = self.counter.count_messages(messages, model=name)
        high_in = None if fed.high is None else framed + fed.high + inserted
        if high_in is not None and self.counter.input_margin(name) != 1.0:
            # the budget reserves this much more for tokenizers tiktoken cannot reproduce
            high_in = self.counter.reservation_tokens(high_in, name)
            notes.append(
                f"input upper bound includes the budget's {self.counter.input_margin(name):.2f}x "
                f"margin for {name or 'this model'}'s tokenizer"
            )
        prompt = Bound(max(text + fed.low - inserted, 0), high_in)
        output, basis = self.output_bound(entry, name)
        self.outputs[tid] = output
        notes += self.task_notes(spec, context, name, model_id)
        cost_low, cost_high = self.cost(name, prompt, output)
        return TaskEstimate(
            task_id=tid,
            model=model_id,
            priced_as=self.catalog.resolve(name),
            input=prompt,
            output=output,
            cost_low=cost_low,
            cost_high=cost_high,
            prompt_exact=not inserted,
            fed_by=tuple(dict.fromkeys(fed_by)),
            output_basis=basis,
            max_retries=spec.max_retries,
            notes=tuple(notes),
        )

    def output_bound(self, entry: ModelSpec, name: str) -> tuple[Bound, str]:
        own = entry.params.get("max_tokens")
        if isinstance(own, int) and own > 0:
            return Bound(0, own), "max_tokens"
        if self.budget is not None:
            return Bound(0, self.budget.expected_output_tokens), "expected_output_tokens"
        info = self.catalog.find(name)
        if info is not None and info.max_output_tokens:
            return Bound(0, info.max_output_tokens), "catalog max output"
        return Bound(0, None), "unbounded"

    def cost(
        self, name: str, prompt: Bound, output: Bound
    ) -> tuple[Decimal | None, Decimal | None]:
        info = self.catalog.find(name)
        if info is None:
            return None, None
        low = min(
            self.calculator.amount(info, prompt.low, 0),
            self.calculator.amount(info, prompt.low, 0, cache_read_tokens=prompt.low),
        )
        if prompt.high is None or output.high is None:
            return low, None
        return low, self.calculator.amount(info, prompt.high, output.high)

    def task_notes(
        self, spec: TaskSpec, context: ContextPolicy | None, name: str, model_id: str
    ) -> list[str]:
        notes = []
        if self.catalog.find(name) is None:
            notes.append(f"model {model_id!r} ({name}) has no price in the catalog: cost unknown")
        if context is not None and context.strategy == "summarize":
            notes.append("summarize context policy: summarizer calls are not included")
        method = self.counter.method(name)
        if not method.startswith("tiktoken:"):
            self.notes.append(
                f"tokens of {name} counted with {method}: counts are approximate, and so "
                "are the ranges"
            )
        return notes


def estimate(loaded: LoadedWorkflow, run_input: Mapping[str, Any]) -> RunEstimate:
    """Estimate a run of ``loaded`` on ``run_input`` without calling any model.

    Raises:
        ConfigurationError, GraphValidationError: The workflow is invalid.
        CliError: The run input lacks keys the prompts need.
    """
    loaded.config.check(loaded.name)
    return _Estimator(loaded, run_input).run()


def estimate_file(
    path: Path,
    *,
    inputs: Sequence[str] | None = None,
    input_file: Path | None = None,
    workflow: str | None = None,
    budget: str | None = None,
) -> RunEstimate:
    """:func:`estimate` from command-line values (``--budget`` replaces the cost limit).

    Raises:
        CliError: A bad ``--input``, ``--input-file`` or ``--budget``, or missing input.
        ConfigurationError, GraphValidationError: The file or workflow is invalid.
    """
    amount = parse_budget(budget)
    run_input = parse_run_input(inputs, input_file)
    loaded = load(path, workflow)
    if amount is not None:
        loaded = replace(loaded, policy=with_overrides(loaded.policy, budget=amount))
    return estimate(loaded, run_input)
