"""A progress bar for runs, in a terminal and in Jupyter (``tqdm.auto``)."""

from __future__ import annotations

import importlib.util
import sys
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
        bar_class, defaults = _bar_class()
        self._bar = bar_class(total=total, desc=desc, unit="task", **{**defaults, **tqdm_kwargs})
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


def _in_kernel() -> bool:
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if get is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _bar_class() -> tuple[Any, dict[str, Any]]:
    """tqdm's notebook widget in Jupyter with ipywidgets (the ``notebook`` extra);
    otherwise its text bar, on stdout inside Jupyter so it is not drawn as an error
    box, and never tqdm's "IProgress not found" warning."""
    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm

        return tqdm, {}
    from tqdm.std import tqdm as text_bar

    return text_bar, ({"file": sys.stdout} if _in_kernel() else {})
