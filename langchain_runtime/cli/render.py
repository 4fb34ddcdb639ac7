"""How results look: numbers, money, the task table, outputs, and JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.rule import Rule
from rich.text import Text

from langchain_runtime.cli._fit import Column, print_fitted, summary_title
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


def _wall_time(result: RunResult) -> float | None:
    """Seconds from the first task's start to the last task's end."""
    starts = [t.started_at for t in result.tasks.values() if t.started_at is not None]
    ends = [t.ended_at for t in result.tasks.values() if t.ended_at is not None]
    if not starts or not ends:
        return None
    return (max(ends) - min(starts)).total_seconds()


def _note(tr: TaskResult) -> str:
    note = tr.error.message if tr.error is not None else ""
    if tr.attempts > 1:
        note = f"{tr.attempts} attempts" + (f"; {note}" if note else "")
    return note


def print_task_table(console: Console, result: RunResult, order: Sequence[str]) -> None:
    """One row per task: state, duration, tokens, cost, and (when any) why it did not
    complete. The title gives the run's wall time: less than the sum of the task
    durations when tasks ran side by side. Nothing is cut to fit the console (see
    :func:`langchain_runtime.cli._fit.print_fitted`)."""
    currency = result.cost.currency
    wall = _wall_time(result)
    summary = (
        _styled(result.state)
        + (f" · {format_duration(wall)}" if wall is not None else "")
        + f" · {format_tokens(result.usage.total_tokens)} tokens"
        f" · {format_money(result.cost.amount, currency)}"
    )
    title = summary_title(console, f"Run {escape(result.run_id)}", summary)
    ids = [t for t in order if t in result.tasks] + [t for t in result.tasks if t not in order]
    columns = [
        Column("task"),
        Column("state"),
        Column("duration", "right"),
        Column("input", "right"),
        Column("output", "right"),
        Column("cost", "right"),
    ]
    rows = []
    for tid in ids:
        tr: TaskResult = result.tasks[tid]
        rows.append(
            [
                escape(tid),
                _styled(tr.state),
                format_duration(tr.duration),
                format_tokens(tr.usage.input_tokens),
                format_tokens(tr.usage.output_tokens),
                format_money(tr.cost.amount, currency),
            ]
        )
    footer = [
        "total",
        "",
        "",
        format_tokens(result.usage.input_tokens),
        format_tokens(result.usage.output_tokens),
        format_money(result.cost.amount, currency),
    ]
    notes = {i: escape(_note(result.tasks[tid])) for i, tid in enumerate(ids)}
    print_fitted(console, title=title, columns=columns, rows=rows, notes=notes, footer=footer)


def _output_text(value: Any) -> str:
    value = as_text(value)
    if isinstance(value, str):
        return value
    try:
        return json.dumps(to_jsonable(value), indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def print_run(
    console: Console,
    result: RunResult,
    order: Sequence[str],
    *,
    full: bool = False,
    placeholder: Collection[str] = (),
) -> None:
    """The task table, then each completed task's output: its first line (cut to the
    width), or all of it with ``full``.

    Args:
        placeholder: Tasks whose output is the simulated model's placeholder text;
            their outputs are labelled so.
    """
    print_task_table(console, result, order)
    shown = [t for t in order if t in result.outputs]
    cut = False
    for tid in shown:
        label = f"{tid} (simulated: placeholder text)" if tid in placeholder else tid
        console.print(Rule(escape(label), align="left"))
        text = _output_text(result.outputs[tid])
        if full:
            console.print(text, markup=False, highlight=False)
            continue
        first, _, rest = text.strip().partition("\n")
        cut = cut or bool(rest.strip()) or len(first) > console.width
        console.print(Text(first), no_wrap=True, overflow="ellipsis", highlight=False, markup=False)
    if cut:
        console.print("(first line of each output; --full shows them whole)", highlight=False)
