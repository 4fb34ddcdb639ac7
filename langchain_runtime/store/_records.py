"""The sidecar's run records (:class:`~langchain_runtime.api.store.RunStore`) in SQLite.

A mixin of :class:`~langchain_runtime.store.sqlite.SQLiteRunStore`: the tables
``runs`` (one API record per run) and ``events`` (shared with the durable runs).
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_runtime.api.store import RunRecord

__all__ = ["RecordsMixin"]

_UNFINISHED = ("pending", "running", "aborting")


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


def _record(row: tuple[Any, ...]) -> RunRecord:
    from langchain_runtime.api.store import RunRecord

    return RunRecord(
        run_id=row[0],
        state=row[1],
        created_at=datetime.fromisoformat(row[2]),
        updated_at=datetime.fromisoformat(row[3]),
        workflow=row[4],
        request=json.loads(row[5]),
        status=None if row[6] is None else json.loads(row[6]),
    )


class RecordsMixin:
    """``create/save/load/events/list/counts/mark_interrupted`` over ``runs``/``events``."""

    _db: sqlite3.Connection
    _lock: threading.Lock

    if TYPE_CHECKING:

        def _write(self) -> AbstractContextManager[None]: ...

        def _ensure_open(self) -> None: ...

    def create(self, record: RunRecord) -> None:
        """Store a new run record; raise ``RunExistsError`` if the id is taken."""
        from langchain_runtime.api.errors import RunExistsError

        with self._lock:
            self._ensure_open()
            try:
                self._db.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)", _row(record))
            except sqlite3.IntegrityError:
                raise RunExistsError(f"a run with id {record.run_id!r} already exists") from None

    def save(self, record: RunRecord, events: Sequence[Mapping[str, Any]] = ()) -> None:
        """Replace the record and append ``events`` (by ``seq``), in one transaction."""
        rows = [
            (record.run_id, int(e["seq"]), json.dumps(e, separators=(",", ":"))) for e in events
        ]
        with self._write():
            self._db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)", _row(record)
            )
            self._db.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?)", rows)

    def load(self, run_id: str) -> RunRecord | None:
        """The run record, or None."""
        with self._lock:
            self._ensure_open()
            row = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else _record(row)

    def events(self, run_id: str, after: int = -1) -> builtins.list[dict[str, Any]]:
        """The run's stored events with ``seq > after``, in order."""
        with self._lock:
            self._ensure_open()
            rows = self._db.execute(
                "SELECT body FROM events WHERE run_id = ? AND seq > ? ORDER BY seq",
                (run_id, after),
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def list(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        state: str | None = None,
        owner: str | None = None,
    ) -> tuple[builtins.list[RunRecord], int]:
        """A page of run records, newest first, and how many match ``state``.

        ``owner``: only runs submitted by that API key (the request's ``_owner``).
        """
        clauses: builtins.list[str] = []
        params: builtins.list[Any] = []
        if state is not None:
            clauses.append("state = ?")
            params.append(state)
        if owner is not None:
            clauses.append("json_extract(request, '$._owner') = ?")
            params.append(owner)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        args = tuple(params)
        with self._lock:
            self._ensure_open()
            total = self._db.execute(f"SELECT COUNT(*) FROM runs {where}", args).fetchone()[0]
            rows = self._db.execute(
                f"SELECT * FROM runs {where} ORDER BY created_at DESC, run_id DESC "
                "LIMIT ? OFFSET ?",
                (*args, limit, offset),
            ).fetchall()
        return [_record(r) for r in rows], int(total)

    def counts(self) -> dict[str, int]:
        """Number of run records per state."""
        with self._lock:
            self._ensure_open()
            rows = self._db.execute("SELECT state, COUNT(*) FROM runs GROUP BY state").fetchall()
        return {state: int(n) for state, n in rows}

    def mark_interrupted(self, reason: str) -> builtins.list[str]:
        """Mark every unfinished run record ``failed`` with ``reason``; return their ids."""
        from langchain_runtime.api.store import interrupt_status

        marks = ", ".join("?" for _ in _UNFINISHED)
        with self._lock:
            self._ensure_open()
            rows = self._db.execute(
                f"SELECT * FROM runs WHERE state IN ({marks}) ORDER BY run_id", _UNFINISHED
            ).fetchall()
        records = [interrupt_status(_record(r), reason) for r in rows]
        if records:
            with self._write():
                for record in records:
                    self._db.execute(
                        "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)", _row(record)
                    )
        return [r.run_id for r in records]
