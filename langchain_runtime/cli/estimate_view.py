"""How an estimate is shown: a table of ranges, what is exact, and the budget verdict."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.markup import escape

from langchain_runtime.cli._fit import Column, print_fitted
from langchain_runtime.cli.estimate import Bound, RunEstimate, TaskEstimate
from langchain_runtime.cli.render import format_money, format_tokens

__all__ = ["estimate_json", "print_estimate"]

#: The output bound's source: (short form in the table, its meaning in the legend).
_OUTPUT_BASIS = {
    "max_tokens": ("max", "the model's max_tokens"),
    "expected_output_tokens": ("exp", "the budget's expected_output_tokens"),
    "catalog max output": ("cat", "the model's max output in the catalog"),
    "unbounded": ("∞", "nothing (no max_tokens, no expected_output_tokens): unbounded"),
}


def _tokens(bound: Bound) -> str:
    return f"{format_tokens(bound.low)}-{format_tokens(bound.high)}"


def _money(low: Decimal | None, high: Decimal | None, currency: str) -> str:
    # on two lines, broken after the "-": an amount is never split
    if low is None:
        return "no price"
    return f"{format_money(low, currency)}-\n{format_money(high, currency)}"


def _prompt(task: TaskEstimate) -> str:
    """How the prompt was counted, in full: ``prompt exact``, ``prompt ≈ (from a, b)``."""
    if task.prompt_exact:
        return "prompt exact"
    if not task.fed_by:
        return "prompt ≈ (run memory)"
    return f"prompt ≈ (from {', '.join(task.fed_by)})"


def _how(task: TaskEstimate) -> str:
    """The table's short form (``= exp``, ``≈ max *``), explained by :func:`_legend`."""
    prompt = "=" if task.prompt_exact else "≈"
    return f"{prompt} {_OUTPUT_BASIS[task.output_basis][0]}" + (" *" if task.notes else "")


def _legend(est: RunEstimate) -> str:
    """What the "how" column's short forms mean, for those in this estimate."""
    parts = []
    if any(t.prompt_exact for t in est.tasks):
        parts.append("= prompt exact")
    approximate = [f"{t.task_id} {_prompt(t)[7:]}" for t in est.tasks if not t.prompt_exact]
    if approximate:
        parts.append(f"≈ the prompt holds upstream outputs: {'; '.join(approximate)}")
    bases = dict.fromkeys(t.output_basis for t in est.tasks)
    parts += [f"{_OUTPUT_BASIS[b][0]} output ≤ {_OUTPUT_BASIS[b][1]}" for b in bases]
    if any(t.notes for t in est.tasks):
        parts.append("* see the notes below")
    return "How: " + ". ".join(parts) + "."


def _verdict(est: RunEstimate) -> str:
    budget = est.budget
    if budget is None or (budget.max_cost is None and budget.max_tokens is None):
        return "No budget: nothing stops this run early. Set one with --max-cost AMOUNT."
    limits = []
    if budget.max_cost is not None:
        limits.append(format_money(budget.max_cost, budget.currency))
    if budget.max_tokens is not None:
        limits.append(f"{format_tokens(budget.max_tokens)} tokens")
    upper = f"{format_money(est.cost_high, est.currency)}, {format_tokens(est.tokens.high)} tokens"
    head = f"Budget {' and '.join(limits)}: the upper bound ({upper})"
    if est.lower_fits is False:
        return f"{head} does not fit, and neither does the lower bound: the run cannot finish."
    if est.fits is None:
        return f"{head} is unknown (see the notes), so whether it fits cannot be told."
    if not est.fits:
        return (
            f"{head} does not fit: the run may stop before its end (the runtime refuses a "
            "call that would overspend, before sending it)."
        )
    if not est.has_retries:
        return f"{head} fits."
    if est.fits_with_retries:
        return f"{head} fits, with every retry too."
    return f"{head} fits; with every retry it may not."


def print_estimate(console: Console, est: RunEstimate) -> None:
    """The estimate as a table, with what each range rests on and the budget verdict."""
    cur = est.currency
    rows = []
    for task in est.tasks:
        model = (
            escape(task.model)
            if task.priced_as in (None, task.model)
            else f"{escape(task.model)}\n({escape(task.priced_as or '')})"
        )
        rows.append(
            [
                escape(task.task_id),
                model,
                _tokens(task.input),
                _tokens(task.output),
                _money(task.cost_low, task.cost_high, cur),
                escape(_how(task)),
            ]
        )
    print_fitted(
        console,
        title=(
            f"Estimate for workflow {escape(est.workflow)!r} ({escape(est.source)}): "
            "no model is called"
        ),
        columns=[
            Column("task"),
            Column("model"),
            Column("input\ntokens", "right"),
            Column("output\ntokens", "right"),
            Column("cost", "right"),
            Column("how"),
        ],
        rows=rows,
        footer=[
            "total",
            "",
            _tokens(est.input),
            _tokens(est.output),
            _money(est.cost_low, est.cost_high, cur),
            "",
        ],
    )
    console.print(escape(_legend(est)), highlight=False)
    for task in est.tasks:
        for note in task.notes:
            console.print(f"Note ({escape(task.task_id)}): {escape(note)}", highlight=False)
    console.print(
        f"Input: prompt text counted exactly ({escape(est.counting)}). Each range adds the "
        "per-message framing (a few tokens; providers count it differently) and, for a "
        "prompt marked ≈, the upstream outputs: from 0 up to their output bound, ±1 token "
        "per inserted value. Output: from 0 up to the bound shown. Cost: the catalog's "
        "prices, the low end at the cheaper of the input and cached-input rates.",
        highlight=False,
    )
    if est.has_retries:
        retrying = ", ".join(f"{t.task_id} {t.max_retries}" for t in est.tasks if t.max_retries)
        console.print(
            f"Not in the ranges: retries (up to {escape(retrying)}). With every retry: up to "
            f"{format_tokens(est.retry_tokens_high)} tokens, "
            f"{format_money(est.retry_cost_high, cur)}.",
            highlight=False,
        )
    for note in est.notes:
        console.print(f"Note: {escape(note)}", highlight=False)
    console.print(_verdict(est), highlight=False)


def _bound_json(bound: Bound) -> dict[str, int | None]:
    return {"low": bound.low, "high": bound.high}


def _money_json(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:f}"


def estimate_json(est: RunEstimate) -> dict[str, Any]:
    """The estimate as JSON data (money as decimal strings, unknown as null)."""
    budget = est.budget
    return {
        "workflow": est.workflow,
        "source": est.source,
        "currency": est.currency,
        "counting": est.counting,
        "tasks": [
            {
                "task_id": t.task_id,
                "model": t.model,
                "priced_as": t.priced_as,
                "input_tokens": _bound_json(t.input),
                "output_tokens": _bound_json(t.output),
                "total_tokens": _bound_json(t.tokens),
                "cost": {"low": _money_json(t.cost_low), "high": _money_json(t.cost_high)},
                "prompt_exact": t.prompt_exact,
                "fed_by": list(t.fed_by),
                "output_basis": t.output_basis,
                "max_retries": t.max_retries,
                "notes": list(t.notes),
            }
            for t in est.tasks
        ],
        "total": {
            "input_tokens": _bound_json(est.input),
            "output_tokens": _bound_json(est.output),
            "total_tokens": _bound_json(est.tokens),
            "cost": {"low": _money_json(est.cost_low), "high": _money_json(est.cost_high)},
            "with_retries": {
                "total_tokens_high": est.retry_tokens_high,
                "cost_high": _money_json(est.retry_cost_high),
            },
        },
        "budget": None if budget is None else budget.model_dump(mode="json"),
        "fits_budget": est.fits,
        "fits_budget_with_retries": est.fits_with_retries,
        "lower_bound_fits_budget": est.lower_fits,
        "notes": list(est.notes),
    }
