"""Where the server keeps its runs: one small interface, an SQLite file by default.

A :class:`RunRecord` holds what the API reports about a run (the request, its
status as JSON, timestamps); its event log is stored beside it. The server writes a
run's final status and its remaining events in one transaction *before* it reports
the run finished, so a finished run is never lost, and a restart reads it back
as it was. Runs still ``pending``/``running`` when the server stopped are not
resumed by themselves: :meth:`RunStore.mark_interrupted` marks them ``failed``
with the error code ``interrupted`` (at-most-once).

The SQLite store (:class:`~langchain_runtime.store.SQLiteRunStore`, aliased here as
``SqliteRunStore``) is also the durable run store: in it a run's tasks are stored
as they commit, so an interrupted run keeps its completed tasks and can be resumed
(``POST /api/v1/runs/{id}/resume``). :class:`MemoryRunStore` keeps no durable runs.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Protocol, runtime_checkable

from langchain_runtime.api.errors import RunExistsError
from langchain_runtime.store.sqlite import SQLiteRunStore

__all__ = [
    "INTERRUPTED_CODE",
    "MemoryRunStore",
    "RunRecord",
    "RunStore",
    "SqliteRunStore",
    "interrupt_status",
]

#: The error code given to runs that were in flight when the server stopped.
INTERRUPTED_CODE = "interrupted"
_UNFINISHED = ("pending", "running", "aborting")
_TERMINAL_TASK_STATES = frozenset({"completed", "failed", "skipped", "cancelled"})


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class RunRecord:
    """A stored run.

    Attributes:
        run_id: The API's run id.
        state: The API state (``running``, ``completed``...).
        created_at: When it was submitted.
        updated_at: When the record last changed.
        workflow: The registered workflow's name, or None for ad-hoc tasks.
        request: The submission as JSON.
        status: The last status (a ``RunStatus`` as JSON), or None before the first.

    Example:
        >>> RunRecord("r1", "completed", workflow="hello").workflow
        'hello'
    """

    run_id: str
    state: str
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)
    workflow: str | None = None
    request: Mapping[str, Any] = field(default_factory=dict)
    status: Mapping[str, Any] | None = None


def interrupt_status(record: RunRecord, reason: str) -> RunRecord:
    """``record`` marked ``failed`` because the server stopped while it ran.

    Its tasks that had not ended are marked ``cancelled``, so every task of a
    stored run ends in a terminal state.
    """
    error = {"code": INTERRUPTED_CODE, "message": reason, "type": None, "task_id": None}
    status: dict[str, Any] = dict(record.status or {"run_id": record.run_id, "tasks": {}})
    tasks = {}
    for tid, task in dict(status.get("tasks") or {}).items():
        task = dict(task)
        if task.get("state") not in _TERMINAL_TASK_STATES:
            task["state"] = "cancelled"
            task["error"] = {"code": "cancelled", "message": f"task {tid!r} cancelled: {reason}"}
        tasks[tid] = task
    now = _now()
    status.update(state="failed", error=error, tasks=tasks, updated_at=now.isoformat())
    return replace(record, state="failed", updated_at=now, status=status)


@runtime_checkable
class RunStore(Protocol):
    """Persistence of runs and their event logs. Implementations are thread-safe."""

    def create(self, record: RunRecord) -> None:
        """Store a new run; raise :class:`RunExistsError` if the id is taken."""

    def save(self, record: RunRecord, events: Sequence[Mapping[str, Any]] = ()) -> None:
        """Replace the record and append ``events`` (by ``seq``), in one transaction."""

    def load(self, run_id: str) -> RunRecord | None:
        """The run, or None."""

    def events(self, run_id: str, after: int = -1) -> list[dict[str, Any]]:
        """The run's stored events with ``seq > after``, in order."""

    def list(
        self, *, limit: int = 50, offset: int = 0, state: str | None = None
    ) -> tuple[list[RunRecord], int]:
        """A page of runs, newest first, and the number of runs matching ``state``."""

    def counts(self) -> dict[str, int]:
        """Number of runs per state."""

    def mark_interrupted(self, reason: str) -> builtins.list[str]:
        """Mark every unfinished run ``failed`` with ``reason``; return their ids."""

    def close(self) -> None:
        """Release resources."""


class MemoryRunStore:
    """A :class:`RunStore` in memory: fast, and gone with the process.

    Example:
        >>> store = MemoryRunStore()
        >>> store.create(RunRecord("r1", "running"))
        >>> store.load("r1").state
        'running'
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, RunRecord] = {}
        self._events: dict[str, dict[int, dict[str, Any]]] = {}

    def create(self, record: RunRecord) -> None:
        with self._lock:
            if record.run_id in self._runs:
                raise RunExistsError(f"a run with id {record.run_id!r} already exists")
            self._runs[record.run_id] = record
            self._events[record.run_id] = {}

    def save(self, record: RunRecord, events: Sequence[Mapping[str, Any]] = ()) -> None:
        with self._lock:
            self._runs[record.run_id] = record
            log = self._events.setdefault(record.run_id, {})
            for event in events:
                log.setdefault(int(event["seq"]), dict(event))

    def load(self, run_id: str) -> RunRecord | None:
        with self._lock:
            return self._runs.get(run_id)

    def events(self, run_id: str, after: int = -1) -> list[dict[str, Any]]:
        with self._lock:
            log = self._events.get(run_id, {})
            return [dict(log[seq]) for seq in sorted(log) if seq > after]

    def list(
        self, *, limit: int = 50, offset: int = 0, state: str | None = None
    ) -> tuple[list[RunRecord], int]:
        with self._lock:
            rows = [r for r in self._runs.values() if state is None or r.state == state]
        rows.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
        return rows[offset : offset + limit], len(rows)

    def counts(self) -> dict[str, int]:
        with self._lock:
            out: dict[str, int] = {}
            for r in self._runs.values():
                out[r.state] = out.get(r.state, 0) + 1
            return out

    def mark_interrupted(self, reason: str) -> builtins.list[str]:
        with self._lock:
            ids = sorted(k for k, r in self._runs.items() if r.state in _UNFINISHED)
            for run_id in ids:
                self._runs[run_id] = interrupt_status(self._runs[run_id], reason)
            return ids

    def close(self) -> None:
        pass


#: The sidecar's SQLite store is the one run store of every entry point (durable
#: runs and API records in one file); this name is kept for existing callers.
SqliteRunStore = SQLiteRunStore
