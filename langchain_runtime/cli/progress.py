"""The live view of a run while it goes: tasks running, done, tokens and cost so far.

Fed with each :class:`~langchain_runtime.domain.TaskResult` as the orchestrator's
``astream`` yields it. In a terminal it is a live line (rich); elsewhere (a log, a
pipe, CI) it writes one plain line per finished task, so nothing is redrawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from langchain_runtime.cli.render import format_duration, format_money, format_tokens
from langchain_runtime.domain import TaskResult, TaskState

__all__ = ["RunProgress"]

_MARKS = {
    TaskState.COMPLETED: "[green]✓[/]",
    TaskState.FAILED: "[red]✗[/]",
    TaskState.SKIPPED: "[yellow]-[/]",
    TaskState.CANCELLED: "[yellow]⊘[/]",
}


class RunProgress:
    """Tracks finished tasks and shows them on ``console`` (stderr).

    Args:
        console: Where to draw.
        order: Every task id, in dependency order.
        deps: Each task's dependencies, to tell which tasks are running now.
        currency: Currency of the costs shown.
    """

    def __init__(
        self,
        console: Console,
        order: Sequence[str],
        deps: Mapping[str, Sequence[str]],
        currency: str = "USD",
    ) -> None:
        self.console = console
        self.order = tuple(order)
        self.deps = deps
        self.currency = currency
        self.finished: dict[str, TaskResult] = {}
        self.tokens = 0
        self.cost = Decimal(0)
        self._progress: Progress | None = None
        self._bar: TaskID | None = None

    # ------------------------------------------------------------------ state
    def running(self) -> list[str]:
        """Tasks not finished whose dependencies all completed: running, or next."""
        done = {t for t, r in self.finished.items() if r.state is TaskState.COMPLETED}
        return [
            t
            for t in self.order
            if t not in self.finished and all(d in done for d in self.deps.get(t, ()))
        ]

    def _summary(self) -> str:
        return f"{format_tokens(self.tokens)} tokens · {format_money(self.cost, self.currency)}"

    def _description(self) -> str:
        running = self.running()
        if not running:
            return "finishing"
        shown = ", ".join(running[:4]) + (f" +{len(running) - 4}" if len(running) > 4 else "")
        return f"running {shown}"

    # ------------------------------------------------------------------ display
    def __enter__(self) -> RunProgress:
        if self.console.is_terminal:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[summary]}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
            self._bar = self._progress.add_task(
                self._description(), total=len(self.order), summary=self._summary()
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __call__(self, result: TaskResult) -> None:
        """Record a finished task and update the view."""
        self.finished[result.task_id] = result
        self.tokens += result.usage.total_tokens
        self.cost += result.cost.amount
        mark = _MARKS.get(result.state, "?")
        line = (
            f"{mark} {escape(result.task_id)} [dim]{result.state.value}[/] "
            f"{format_duration(result.duration)} · {format_tokens(result.usage.total_tokens)} "
            f"tokens · {format_money(result.cost.amount, self.currency)}"
        )
        if self._progress is not None and self._bar is not None:
            self._progress.update(
                self._bar,
                advance=1,
                description=self._description(),
                summary=self._summary(),
            )
            self._progress.console.print(line, highlight=False)
        else:
            done = len(self.finished)
            self.console.print(
                f"[{done}/{len(self.order)}] {line} (so far: {self._summary()})",
                highlight=False,
                soft_wrap=True,
            )
