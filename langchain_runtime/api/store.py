"""Where the server keeps its runs: one small interface, an SQLite file by default.

A :class:`RunRecord` holds what the API reports about a run (the request, its
status as JSON, timestamps); its event log is stored beside it. The server writes a
run's final status and its remaining events in one transaction *before* it reports
the run finished, so a finished run is never lost, and a restart reads it back
as it was. Runs still ``pending``/``running`` when the server stopped were not
resumed: :meth:`RunStore.mark_interrupted` marks them ``failed`` (at-most-once).
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from langchain_runtime.api.errors import RunExistsError
from langchain_runtime.errors import ConfigurationError

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


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id     TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    workflow   TEXT,
    request    TEXT NOT NULL,
    status     TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_at DESC, run_id DESC);
CREATE INDEX IF NOT EXISTS runs_by_state ON runs (state, created_at DESC);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    body   TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
"""


def _lock_exclusively(path: str) -> Any:
    """Hold ``<path>.lock`` for this process: one server per store file.

    A second server on the same file would mark the first one's live runs as
    interrupted; it is refused instead. (POSIX only; elsewhere nothing is locked.)
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return None
    handle = open(f"{path}.lock", "a+")  # noqa: SIM115 - held for the store's lifetime
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ConfigurationError(
            f"run store {path} is in use by another server; give each server its own "
            "store file (--store)"
        ) from None
    return handle


class SqliteRunStore:
    """A :class:`RunStore` in an SQLite file (stdlib ``sqlite3``, WAL journal).

    One connection, guarded by a lock, serves every thread; each write is one
    transaction with ``synchronous=FULL``, so a saved result survives a crash of
    the process or of the machine. Use one server per file.

    Args:
        path: The database file (created with its tables if missing), or
            ``":memory:"``.

    Example:
        >>> store = SqliteRunStore(":memory:")
        >>> store.create(RunRecord("r1", "running", request={"tasks": []}))
        >>> store.save(RunRecord("r1", "completed"), events=[{"seq": 0, "type": "run_started"}])
        >>> store.load("r1").state, store.events("r1")[0]["type"]
        ('completed', 'run_started')
    """

    def __init__(self, path: str | Path, *, exclusive: bool = False) -> None:
        self.path = str(path)
        self._lock_file: Any = None
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            if exclusive:
                self._lock_file = _lock_exclusively(self.path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=10.0
        )
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)

    def __repr__(self) -> str:
        return f"SqliteRunStore({self.path!r})"

    @staticmethod
    def _row(record: RunRecord) -> tuple[Any, ...]:
        return (
            record.run_id,
            record.state,
            record.created_at.isoformat(),
            record.updated_at.isoformat(),
            record.workflow,
            json.dumps(record.request, separators=(",", ":")),
            None if record.status is None else json.dumps(record.status, separators=(",", ":")),
        )

    @staticmethod
    def _record(row: tuple[Any, ...]) -> RunRecord:
        return RunRecord(
            run_id=row[0],
            state=row[1],
            created_at=datetime.fromisoformat(row[2]),
            updated_at=datetime.fromisoformat(row[3]),
            workflow=row[4],
            request=json.loads(row[5]),
            status=None if row[6] is None else json.loads(row[6]),
        )

    def create(self, record: RunRecord) -> None:
        with self._lock:
            try:
                self._db.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)", self._row(record))
            except sqlite3.IntegrityError:
                raise RunExistsError(f"a run with id {record.run_id!r} already exists") from None

    def save(self, record: RunRecord, events: Sequence[Mapping[str, Any]] = ()) -> None:
        rows = [
            (record.run_id, int(e["seq"]), json.dumps(e, separators=(",", ":"))) for e in events
        ]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)", self._row(record)
                )
                self._db.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?)", rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def load(self, run_id: str) -> RunRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else self._record(row)

    def events(self, run_id: str, after: int = -1) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM events WHERE run_id = ? AND seq > ? ORDER BY seq",
                (run_id, after),
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def list(
        self, *, limit: int = 50, offset: int = 0, state: str | None = None
    ) -> tuple[list[RunRecord], int]:
        where, args = ("WHERE state = ?", (state,)) if state is not None else ("", ())
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM runs {where}", args).fetchone()[0]
            rows = self._db.execute(
                f"SELECT * FROM runs {where} ORDER BY created_at DESC, run_id DESC "
                "LIMIT ? OFFSET ?",
                (*args, limit, offset),
            ).fetchall()
        return [self._record(r) for r in rows], int(total)

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM runs GROUP BY state").fetchall()
        return {state: int(n) for state, n in rows}

    def mark_interrupted(self, reason: str) -> builtins.list[str]:
        marks = ", ".join("?" for _ in _UNFINISHED)
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM runs WHERE state IN ({marks}) ORDER BY run_id", _UNFINISHED
            ).fetchall()
        records = [interrupt_status(self._record(r), reason) for r in rows]
        for record in records:
            self.save(record)
        return [r.run_id for r in records]

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._lock_file is not None:
                self._lock_file.close()  # releases the flock
                self._lock_file = None
