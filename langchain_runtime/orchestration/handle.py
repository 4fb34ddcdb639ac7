"""``RunHandle``: a run going on in the background."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from langchain_runtime.domain import RunEvent, RunResult, RunState
from langchain_runtime.orchestration._sync import run_loop

if TYPE_CHECKING:
    from langchain_runtime.orchestration._run import Run
    from langchain_runtime.orchestration.task import Task

__all__ = ["RunHandle"]


class RunHandle:
    """Watch and steer a run started with :meth:`Orchestrator.start`.

    The run executes on its own event loop in a daemon thread, so a handle works
    the same from sync code, from async code and in Jupyter.

    Example:
        >>> from langchain_runtime import Orchestrator, Task
        >>> handle = Orchestrator([Task("a", lambda x: 1)]).start({})
        >>> handle.result(timeout=10).state.value
        'completed'
    """

    def __init__(self, run: Run):
        self._run = run
        self._thread: threading.Thread | None = None
        self._result: RunResult | None = None
        self._error: BaseException | None = None
        self._finished = threading.Event()

    @classmethod
    def launch(cls, run: Run) -> RunHandle:
        handle = cls(run)
        handle._thread = threading.Thread(
            target=handle._main, name=f"langchain-runtime-run-{run.run_id[:8]}", daemon=True
        )
        handle._thread.start()
        return handle

    def _main(self) -> None:
        try:
            self._result = run_loop(self._run.execute())
        except BaseException as exc:  # surfaced by result()
            self._error = exc
        finally:
            self._finished.set()

    @property
    def run_id(self) -> str:
        return self._run.run_id

    def status(self) -> RunState:
        """The run's state now."""
        return self._run.state

    def snapshot(self) -> RunResult:
        """Every task's result so far (a consistent copy)."""
        if self._result is not None:
            return self._result
        return self._run.result()

    def done(self) -> bool:
        return self._finished.is_set()

    def result(self, timeout: float | None = None) -> RunResult:
        """Wait for the run to end and return its result.

        Raises:
            TimeoutError: The run did not end within ``timeout`` seconds (the run
                goes on; call again or ``abort()``).
        """
        if not self._finished.wait(timeout):
            raise TimeoutError(f"run {self.run_id} still {self.status().value} after {timeout}s")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def abort(self) -> bool:
        """Abort the run: in-flight tasks are cancelled, pending ones never start.

        Returns False when the run had already finished.
        """
        return self._run.abort()

    def enqueue(self, task: Task, spec: Any = None) -> None:
        """Add a task to the live run, scheduled in the next batch.

        Validated against the live graph: an unknown dependency, a duplicate id or
        a self-dependency raises ``GraphValidationError``; a finished run raises
        ``RunFinishedError``.
        """
        self._run.enqueue(task, spec)

    def events(self) -> list[RunEvent]:
        """The committed event log so far."""
        return self._run.committed_events()

    def __repr__(self) -> str:
        return f"RunHandle(run_id={self.run_id!r}, state={self.status().value!r})"
