"""How results look: numbers, money, the task table, outputs, and JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.rule import Rule
from rich.table import Table

from langchain_runtime.context.router import as_text
from langchain_runtime.domain import RunResult, RunState, TaskResult, TaskState

__all__ = [
    "format_duration",
    "format_money",
    "format_tokens",
    "print_json",
    "print_run",
    "run_json",
    "to_jsonable",
]

_STATE_STYLE = {
    TaskState.COMPLETED: "green",
    TaskState.FAILED: "red",
    TaskState.SKIPPED: "yellow",
    TaskState.CANCELLED: "yellow",
    RunState.COMPLETED: "green",
    RunState.FAILED: "red",
    RunState.BUDGET_EXCEEDED: "red",
    RunState.TIMED_OUT: "red",
    RunState.ABORTED: "yellow",
}


def format_money(amount: Decimal | None, currency: str = "USD") -> str:
    """``$0.0001234``: every significant digit up to 1e-8, at least two decimals."""
    if amount is None:
        return "?"
    value = amount.quantize(Decimal("0.00000001")).normalize()
    text = f"{value:f}"
    whole, _, frac = text.partition(".")
    text = f"{whole}.{frac.ljust(2, '0')}"
    return f"${text}" if currency == "USD" else f"{text} {currency}"


def format_tokens(n: int | None) -> str:
    """``12,345``; ``?`` when unknown."""
    return "?" if n is None else f"{n:,}"


def format_duration(seconds: float | None) -> str:
    """``0.42s``, ``1m05s``; ``-`` for a task that never started."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def _styled(state: TaskState | RunState) -> str:
    style = _STATE_STYLE.get(state)
    return f"[{style}]{state.value}[/]" if style else state.value


# --------------------------------------------------------------------------- JSON


def to_jsonable(value: Any) -> Any:
    """``value`` with chat messages turned into their text, ready for ``json.dumps``."""
    value = as_text(value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def run_json(result: RunResult) -> dict[str, Any]:
    """The run result as JSON data, with every chat message as its text."""
    tasks = {
        tid: tr.model_copy(update={"output": to_jsonable(tr.output)})
        for tid, tr in result.tasks.items()
    }
    plain = result.model_copy(
        update={
            "outputs": to_jsonable(result.outputs),
            "memory": to_jsonable(result.memory),
            "tasks": tasks,
        }
    )
    data: dict[str, Any] = plain.model_dump(mode="json")
    return data


def print_json(data: Any) -> None:
    """Write ``data`` to stdout as JSON, uncoloured, for scripts."""
    import typer

    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


# --------------------------------------------------------------------------- a run


def task_table(result: RunResult, order: Sequence[str]) -> Table:
    """One row per task: state, duration, tokens, cost, and why it did not complete."""
    currency = result.cost.currency
    title = (
        f"Run {escape(result.run_id)} · {_styled(result.state)}"
        f" · {format_tokens(result.usage.total_tokens)} tokens"
        f" · {format_money(result.cost.amount, currency)}"
    )
    table = Table(title=title, title_justify="left", show_footer=True)
    table.add_column("task", footer="total")
    table.add_column("state")
    table.add_column("duration", justify="right")
    table.add_column("input", justify="right", footer=format_tokens(result.usage.input_tokens))
    table.add_column("output", justify="right", footer=format_tokens(result.usage.output_tokens))
    table.add_column("cost", justify="right", footer=format_money(result.cost.amount, currency))
    table.add_column("note", overflow="fold")
    ids = [t for t in order if t in result.tasks] + [t for t in result.tasks if t not in order]
    for tid in ids:
        tr: TaskResult = result.tasks[tid]
        note = tr.error.message if tr.error is not None else ""
        if tr.attempts > 1:
            note = f"{tr.attempts} attempts" + (f"; {note}" if note else "")
        table.add_row(
            escape(tid),
            _styled(tr.state),
            format_duration(tr.duration),
            format_tokens(tr.usage.input_tokens),
            format_tokens(tr.usage.output_tokens),
            format_money(tr.cost.amount, currency),
            escape(note),
        )
    return table


def _output_text(value: Any) -> str:
    value = as_text(value)
    if isinstance(value, str):
        return value
    try:
        return json.dumps(to_jsonable(value), indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def print_run(console: Console, result: RunResult, order: Sequence[str]) -> None:
    """The task table, then every completed task's output as text."""
    console.print(task_table(result, order))
    for tid in [t for t in order if t in result.outputs]:
        console.print(Rule(escape(tid), align="left"))
        console.print(_output_text(result.outputs[tid]), markup=False, highlight=False)
