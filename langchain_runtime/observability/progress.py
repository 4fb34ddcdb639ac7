"""A progress bar for runs, in a terminal and in Jupyter (``tqdm.auto``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from langchain_runtime.domain import TaskResult, TaskState

__all__ = ["ProgressBar"]


class ProgressBar:
    """Counts finished tasks and shows tokens and cost so far.

    Used by ``Orchestrator.invoke(..., progress=True)``; attach it to any run as a
    task listener. ``tqdm.auto`` picks a notebook widget in Jupyter and a text bar
    elsewhere.

    Example:
        >>> from langchain_runtime import Orchestrator, Task
        >>> result = Orchestrator([Task("a", lambda x: 1)]).invoke({}, progress=True)
        >>> result.ok
        True
    """

    def __init__(self, total: int, *, desc: str = "run", **tqdm_kwargs: Any) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=desc, unit="task", **tqdm_kwargs)
        self.tokens = 0
        self.cost = Decimal(0)
        self.failed = 0

    def __call__(self, result: TaskResult) -> None:
        self.tokens += result.usage.total_tokens
        self.cost += result.cost.amount
        if result.state in (TaskState.FAILED, TaskState.CANCELLED):
            self.failed += 1
        postfix = {"tokens": self.tokens, "cost": f"{self.cost:.6f}"}
        if self.failed:
            postfix["not ok"] = self.failed
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(1)

    def grow(self, n: int = 1) -> None:
        """Account for tasks added to a live run."""
        self._bar.total = (self._bar.total or 0) + n
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()
