"""The sidecar's run records (:class:`~langchain_runtime.api.store.RunStore`) in PostgreSQL.

A mixin of :class:`~langchain_runtime.store.postgres.PostgresRunStore`: the tables
``run_records`` (one API record per run) and ``run_events`` (shared with the durable
runs). The same semantics as the SQLite store's
:class:`~langchain_runtime.store._records.RecordsMixin`.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from langchain_runtime.store._pg import Database

if TYPE_CHECKING:
    from psycopg import Connection

    from langchain_runtime.api.store import RunRecord

__all__ = ["PgRecordsMixin"]

_UNFINISHED = ["pending", "running", "aborting"]
_UPSERT = (
    "INSERT INTO run_records VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (run_id) DO UPDATE "
    "SET state = EXCLUDED.state, created_at = EXCLUDED.created_at, "
    "updated_at = EXCLUDED.updated_at, workflow = EXCLUDED.workflow, "
    "request = EXCLUDED.request, status = EXCLUDED.status"
)
_EVENT = "INSERT INTO run_events VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"


def _row(record: RunRecord) -> tuple[Any, ...]:
    return (
        record.run_id,
        record.state,
        record.created_at,
        record.updated_at,
        record.workflow,
        json.dumps(record.request, separators=(",", ":")),
        None if record.status is None else json.dumps(record.status, separators=(",", ":")),
    )


def _record(row: Sequence[Any]) -> RunRecord:
    from langchain_runtime.api.store import RunRecord

    return RunRecord(
        run_id=row[0],
        state=row[1],
        created_at=row[2],
        updated_at=row[3],
        workflow=row[4],
        request=json.loads(row[5]),
        status=None if row[6] is None else json.loads(row[6]),
    )


class PgRecordsMixin:
    """``create/save/load/events/list/counts/mark_interrupted`` over ``run_records``."""

    _db: Database

    if TYPE_CHECKING:

        def _ensure_open(self) -> None: ...

        def _notify(self, conn: Connection[Any], run_id: str, seq: int) -> None: ...

    def create(self, record: RunRecord) -> None:
        """Store a new run record; raise ``RunExistsError`` if the id is taken."""
        from langchain_runtime.api.errors import RunExistsError

        self._ensure_open()
        row = _row(record)

        def work(conn: Connection[Any]) -> bool:
            cur = conn.execute(
                "INSERT INTO run_records VALUES (%s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                row,
            )
            return cur.rowcount == 1

        if not self._db.run(work, transaction=False):
            raise RunExistsError(f"a run with id {record.run_id!r} already exists")

    def save(self, record: RunRecord, events: Sequence[Mapping[str, Any]] = ()) -> None:
        """Replace the record and append ``events`` (by ``seq``), in one transaction."""
        rows = [
            (record.run_id, int(e["seq"]), json.dumps(e, separators=(",", ":"))) for e in events
        ]
        self._ensure_open()
        row = _row(record)

        def work(conn: Connection[Any]) -> None:
            conn.execute(_UPSERT, row)
            if rows:
                with conn.cursor() as cur:
                    cur.executemany(_EVENT, rows)
                self._notify(conn, record.run_id, max(r[1] for r in rows))

        self._db.run(work)

    def load(self, run_id: str) -> RunRecord | None:
        """The run record, or None."""
        self._ensure_open()
        row = self._db.run(
            lambda c: c.execute(
                "SELECT * FROM run_records WHERE run_id = %s", (run_id,)
            ).fetchone(),
            transaction=False,
        )
        return None if row is None else _record(row)

    def events(self, run_id: str, after: int = -1) -> builtins.list[dict[str, Any]]:
        """The run's stored events with ``seq > after``, in order."""
        self._ensure_open()
        rows = self._db.run(
            lambda c: c.execute(
                "SELECT body FROM run_events WHERE run_id = %s AND seq > %s ORDER BY seq",
                (run_id, after),
            ).fetchall(),
            transaction=False,
        )
        return [json.loads(r[0]) for r in rows]

    def list(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        state: str | None = None,
        owner: str | None = None,
    ) -> tuple[builtins.list[RunRecord], int]:
        """A page of run records, newest first, and how many match.

        ``state``: only runs in that state; ``owner``: only runs submitted by that API
        key (the request's ``_owner``, found through an index).
        """
        clauses: builtins.list[str] = []
        params: builtins.list[Any] = []
        if state is not None:
            clauses.append("state = %s")
            params.append(state)
        if owner is not None:
            clauses.append("request::jsonb ->> '_owner' = %s")
            params.append(owner)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        args = tuple(params)
        self._ensure_open()

        def work(conn: Connection[Any]) -> tuple[int, builtins.list[Any]]:
            counted = conn.execute(f"SELECT COUNT(*) FROM run_records {where}", args).fetchone()
            rows = conn.execute(
                f"SELECT * FROM run_records {where} ORDER BY created_at DESC, run_id DESC "
                "LIMIT %s OFFSET %s",
                (*args, limit, offset),
            ).fetchall()
            return int(counted[0] if counted else 0), rows

        total, rows = self._db.run(work)
        return [_record(r) for r in rows], total

    def counts(self) -> dict[str, int]:
        """Number of run records per state."""
        self._ensure_open()
        rows = self._db.run(
            lambda c: c.execute(
                "SELECT state, COUNT(*) FROM run_records GROUP BY state"
            ).fetchall(),
            transaction=False,
        )
        return {state: int(n) for state, n in rows}

    def mark_interrupted(self, reason: str) -> builtins.list[str]:
        """Mark every unfinished run record ``failed`` with ``reason``; return their ids."""
        from langchain_runtime.api.store import interrupt_status

        self._ensure_open()

        def work(conn: Connection[Any]) -> builtins.list[str]:
            rows = conn.execute(
                "SELECT * FROM run_records WHERE state = ANY(%s) ORDER BY run_id FOR UPDATE",
                (_UNFINISHED,),
            ).fetchall()
            records = [interrupt_status(_record(r), reason) for r in rows]
            if records:
                with conn.cursor() as cur:
                    cur.executemany(_UPSERT, [_row(r) for r in records])
            return [r.run_id for r in records]

        return self._db.run(work)
