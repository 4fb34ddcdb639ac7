"""A run as HTML for Jupyter: a summary, its tasks in commit order, and a timeline.

Everything is inline HTML and SVG: no JavaScript, no stylesheet or font from the
network, so it renders the same in JupyterLab, VS Code, nbconvert's HTML and a
page opened offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from html import escape
from typing import TYPE_CHECKING

from langchain_runtime.observability._svg import _FONT, STATE_COLOURS

if TYPE_CHECKING:
    from langchain_runtime.domain import Cost, RunResult, TaskResult

__all__ = ["commit_order", "money", "run_result_html", "timeline_svg"]

_TERMINAL = {"completed", "failed", "skipped", "cancelled"}
_ROW_H, _BAR_H, _LABEL_W, _AXIS_H, _PLOT_W = 24, 16, 140, 26, 640


def money(cost: Cost, digits: int = 6) -> str:
    """``$0.000123`` for dollars, ``0.000123 EUR`` for any other currency."""
    amount = f"{cost.amount.quantize(Decimal(1).scaleb(-digits)):f}"
    return f"${amount}" if cost.currency == "USD" else f"{amount} {cost.currency}"


def commit_order(result: RunResult) -> list[TaskResult]:
    """The run's tasks in the order their results were committed to the event log.

    Tasks with no commit event yet (a live snapshot) follow, in their own order.
    """
    seen: dict[str, int] = {}
    for event in result.events:
        kind = event.type.removeprefix("task_")
        if event.task_id is not None and kind in _TERMINAL and event.task_id not in seen:
            seen[event.task_id] = event.seq
    last = len(result.events) + len(result.tasks)
    indexed = sorted(
        enumerate(result.tasks.values()), key=lambda p: (seen.get(p[1].task_id, last), p[0])
    )
    return [tr for _, tr in indexed]


def _seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


def _tick_step(span: float) -> float:
    for step in (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60,
                 120, 300, 600, 1800, 3600):  # fmt: skip
        if span / step <= 8:
            return step
    return span / 8


def _fmt_s(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s".replace(".00 s", " s")
    return f"{seconds / 60:.1f} min"


def timeline_svg(tasks: Sequence[TaskResult], *, width: int = _PLOT_W) -> str:
    """A Gantt chart of ``tasks``: one row each, a bar from its start to its end.

    Bars are coloured by state and carry a tooltip with the state, duration, tokens
    and cost; overlapping bars are tasks that ran at once. A task that never started
    (skipped, or cancelled before it ran) has a row and no bar. Returns ``""`` when no
    task has started.

    Example:
        >>> from datetime import datetime, timedelta, timezone
        >>> from langchain_runtime.domain import TaskResult
        >>> t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> svg = timeline_svg([TaskResult(task_id="a", state="completed", started_at=t0,
        ...                                ended_at=t0 + timedelta(seconds=2))])
        >>> svg.count("class='lcr-bar'")
        1
    """
    timed = [t for t in tasks if t.started_at is not None]
    if not timed:
        return ""
    t0 = min(t.started_at for t in timed if t.started_at is not None)
    ends = [t.ended_at or t.started_at for t in timed]
    t1 = max(e for e in ends if e is not None)
    span = max(_seconds(t0, t1), 1e-6)
    scale = width / span
    height = _AXIS_H + _ROW_H * len(tasks) + 8
    total_w = _LABEL_W + width + 24
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{total_w}' height='{height}' "
        f"viewBox='0 0 {total_w} {height}' role='img' class='lcr-timeline'>",
        "<title>task timeline</title>",
    ]
    step = _tick_step(span)
    tick = 0.0
    while tick <= span + 1e-9:
        x = _LABEL_W + tick * scale
        out.append(
            f"<line x1='{x:.1f}' y1='{_AXIS_H - 6}' x2='{x:.1f}' y2='{height - 4}' "
            "stroke='#e3e7ed' stroke-width='1'/>"
            f"<text x='{x:.1f}' y='{_AXIS_H - 10}' text-anchor='middle' fill='#5f6b7a' "
            f"{_FONT}>{escape(_fmt_s(tick))}</text>"
        )
        tick += step
    for row, tr in enumerate(tasks):
        y = _AXIS_H + row * _ROW_H
        state = tr.state.value
        out.append(
            f"<text x='{_LABEL_W - 8}' y='{y + _ROW_H / 2 + 4:.1f}' text-anchor='end' "
            f"fill='#1f2933' {_FONT}>{escape(tr.task_id)}</text>"
        )
        if tr.started_at is None:
            out.append(
                f"<text x='{_LABEL_W + 4}' y='{y + _ROW_H / 2 + 4:.1f}' fill='#9aa0a6' "
                f"font-style='italic' {_FONT}>{escape(state)}</text>"
            )
            continue
        start = _seconds(t0, tr.started_at)
        end = _seconds(t0, tr.ended_at) if tr.ended_at is not None else span
        x = _LABEL_W + start * scale
        w = max((end - start) * scale, 1.5)  # an instant still shows
        tip = (
            f"{tr.task_id}: {state}, {_fmt_s(end - start)}, {tr.usage.total_tokens} tokens, "
            f"{money(tr.cost)}"
        )
        if tr.error is not None:
            tip += f" - {tr.error.code}: {tr.error.message}"
        out.append(
            f"<rect class='lcr-bar' data-task='{escape(tr.task_id, quote=True)}' "
            f"data-start='{start:.6f}' data-end='{end:.6f}' x='{x:.2f}' "
            f"y='{y + (_ROW_H - _BAR_H) / 2:.1f}' width='{w:.2f}' height='{_BAR_H}' rx='3' "
            f"fill='{STATE_COLOURS.get(state, '#9aa0a6')}'><title>{escape(tip)}</title></rect>"
        )
    out.append("</svg>")
    return "".join(out)


_CSS = (
    # specific enough to win over JupyterLab's and nbconvert's own table rules
    "<style>.lcr-run table.lcr-tasks{border-collapse:collapse;margin:6px 0}"
    ".lcr-run table.lcr-tasks th,.lcr-run table.lcr-tasks td{padding:3px 10px;"
    "border-bottom:1px solid #e3e7ed;text-align:left}"
    ".lcr-run table.lcr-tasks td.num,.lcr-run table.lcr-tasks th.num{text-align:right;"
    "font-variant-numeric:tabular-nums}"
    ".lcr-state{display:inline-block;padding:0 7px;border-radius:9px;color:#fff}</style>"
)


def _badge(state: str) -> str:
    colour = STATE_COLOURS.get(state, "#9aa0a6")
    return f"<span class='lcr-state' style='background:{colour}'>{escape(state)}</span>"


def run_result_html(result: RunResult) -> str:
    """The HTML a notebook shows for ``result``: summary, task table, timeline."""
    tasks = commit_order(result)
    rows = []
    for tr in tasks:
        dur = f"{tr.duration:.3f} s" if tr.duration is not None else ""
        err = escape(f"{tr.error.code}: {tr.error.message}") if tr.error else ""
        rows.append(
            f"<tr><td><code>{escape(tr.task_id)}</code></td><td>{_badge(tr.state.value)}</td>"
            f"<td class='num'>{dur}</td><td class='num'>{tr.attempts}</td>"
            f"<td class='num'>{tr.usage.input_tokens}</td>"
            f"<td class='num'>{tr.usage.output_tokens}</td>"
            f"<td class='num'>{escape(money(tr.cost))}</td><td>{err}</td></tr>"
        )
    error = (
        f"<p style='color:{STATE_COLOURS['failed']}'>{escape(result.error.message)}</p>"
        if result.error is not None
        else ""
    )
    head = (
        f"<p><b>Run</b> <code>{escape(result.run_id)}</code> {_badge(result.state.value)} "
        f"{len(tasks)} tasks, {result.usage.total_tokens} tokens "
        f"({result.usage.input_tokens} in, {result.usage.output_tokens} out), "
        f"cost <b>{escape(money(result.cost))}</b></p>{error}"
    )
    table = (
        "<table class='lcr-tasks'><thead><tr><th>task</th><th>state</th>"
        "<th class='num'>duration</th><th class='num'>attempts</th>"
        "<th class='num'>input tokens</th><th class='num'>output tokens</th>"
        "<th class='num'>cost</th><th>error</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
    timeline = timeline_svg(tasks)
    return f"<div class='lcr-run'>{_CSS}{head}{table}{timeline}</div>"
