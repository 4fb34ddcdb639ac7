"""``PostgresRunStore``: the run store on a PostgreSQL server, shared by every replica.

The same two interfaces as :class:`~langchain_runtime.store.sqlite.SQLiteRunStore`
(the durable runs of :class:`~langchain_runtime.store.DurableRunStore` and the
sidecar's :class:`~langchain_runtime.api.store.RunStore` records, with one event
log), with the same semantics, so any number of processes on any number of hosts
can share runs:

* a run is executed by one owner at a time: :meth:`PostgresRunStore.claim` and
  ``begin_run(resume=True)`` lock the run's row (``SELECT ... FOR UPDATE``) and take
  it only when no live owner has it, so of two replicas resuming the same run one
  gets :class:`~langchain_runtime.errors.ResumeError`;
* every write of an owner is fenced: it checks, under a lock on the run's row, that
  the run is still ``running`` under the claim this store made. A replica that was
  declared dead (its heartbeat went stale and another replica marked its run
  interrupted or resumed it) gets :class:`~langchain_runtime.errors.StoreError` and
  writes nothing;
* liveness across hosts is the heartbeat (written by every commit and by
  ``heartbeat``) with the *database's* clock, compared with the database's clock,
  so skewed host clocks do not matter; a surviving replica calls
  :meth:`PostgresRunStore.mark_interrupted_stale` periodically.
* a replica asks the one executing a run for something (add a task) through the
  mailbox of :class:`~langchain_runtime.store.RunMailbox` (``run_requests``, in
  ``_pg_requests.py``): each request is taken by one replica and answered once.

Needs the ``postgres`` extra (``psycopg`` 3 and ``psycopg-pool``), imported only when
a store is created.
"""

from __future__ import annotations

import builtins
import json
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from langchain_runtime.errors import ResumeError, StoreError
from langchain_runtime.store import _owner
from langchain_runtime.store._base import DELETED, RunHeader, RunSummary, StoredRun, TaskRecord
from langchain_runtime.store._pg import (
    SCHEMA_VERSION,
    Database,
    dumps,
    redact,
    repeatable,
    task_cost,
    utc,
)
from langchain_runtime.store._pg_claims import (
    _BEAT,
    _FENCE,
    _LIVENESS,
    _RUNS,
    PgClaimsMixin,
    _LiveError,
)
from langchain_runtime.store._pg_records import PgRecordsMixin
from langchain_runtime.store._pg_requests import PgRequestsMixin

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = ["SCHEMA_VERSION", "PostgresRunStore"]

#: The NOTIFY channel of new events: the payload is ``"<seq> <run_id>"``.
EVENTS_CHANNEL = "langchain_runtime_events"

_RUN_COLUMNS = (
    "run_id, name, state, created_at, updated_at, input, policy, fingerprint, task_count, "
    "error, resumes, owner, owner_started"
)
_READ_COLUMNS = (
    "d.run_id, d.name, d.state, d.created_at, b.updated_at, d.input, d.policy, "
    "d.fingerprint, d.task_count, d.error, d.resumes, d.owner, d.owner_started, "
    "b.heartbeat_at, clock_timestamp()"
)
#: The fence and the beat in one statement: a row back if this store may write.
_FENCED_BEAT = (
    f"WITH fence AS ({_FENCE} FOR SHARE) "
    "UPDATE run_beats SET updated_at = clock_timestamp(), heartbeat_at = clock_timestamp() "
    "WHERE run_id = %s AND EXISTS (SELECT 1 FROM fence) RETURNING 1"
)
_TASK = (
    "INSERT INTO run_tasks VALUES (%s, %s, %s, %s, %s) ON CONFLICT (run_id, task_id) "
    "DO UPDATE SET state = EXCLUDED.state, cost = EXCLUDED.cost, result = EXCLUDED.result"
)
_EVENT = "INSERT INTO run_events VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"
_MEMORY = (
    "INSERT INTO run_memory VALUES (%s, %s, %s) ON CONFLICT (run_id, key) "
    "DO UPDATE SET value = EXCLUDED.value"
)
_ENQUEUED = "INSERT INTO run_enqueued VALUES (%s, %s, %s, %s, %s)"


class PostgresRunStore(PgRecordsMixin, PgClaimsMixin, PgRequestsMixin):
    """Durable runs (and the sidecar's run records) in a PostgreSQL database.

    The tables are created (and migrated, under an advisory lock, in one transaction)
    when the store opens; a ``run_store_schema_version`` table records the version.
    Every write is one transaction; a connection pool serves every thread.

    A run is *live* while its owner executes it: this process (from :meth:`begin_run`
    or :meth:`claim` to :meth:`finish_run`), another process of this host that still
    exists, or, on another host, one whose last heartbeat is less than ``stale_after``
    old by the database's clock. A stored ``running`` run whose owner is gone reads as
    ``interrupted`` and can be resumed (and :meth:`mark_interrupted_stale` writes so).

    Args:
        dsn: A libpq URL or ``key=value`` string (``postgresql://app@db/app``).
        stale_after: Seconds without a heartbeat after which a run owned by another
            host is no longer live. Runs beat every ``stale_after / 4`` seconds.
        timeout: Seconds an operation may wait for a connection or a lock (statements
            may run twice as long) before it fails with ``StoreError``.
        pool_size: The most connections this store opens.

    Raises:
        ImportError: The ``postgres`` extra is not installed.
        StoreError: The database cannot be reached (one line, the DSN without its
            password), or its schema is newer than this version reads.

    Example (it needs a live server, so it is not run as a doctest)::

        store = PostgresRunStore("postgresql://app@db.internal/app")
        orch = Orchestrator(tasks, store=store)
        result = orch.invoke({"q": "hi"})
        # on any replica, later:
        orch.resume(result.run_id)
    """

    def __init__(
        self,
        dsn: str,
        *,
        stale_after: float = 120.0,
        timeout: float = 5.0,
        pool_size: int = 4,
    ) -> None:
        if stale_after <= 0:
            raise ValueError(f"stale_after must be > 0 seconds, got {stale_after!r}")
        self.dsn = dsn
        self.stale_after = timedelta(seconds=stale_after)
        self._closed = False
        self._lock = threading.Lock()
        #: run id -> the claim (``resumes``) this store holds on it, until finish_run
        self._begun: dict[str, int] = {}
        #: runs claimed with claim() that begin_run has not taken over yet
        #: run id -> (state, error) it had before this store claimed it
        self._claimed: dict[str, tuple[str, str | None]] = {}
        self._db = Database(
            dsn, timeout=timeout, pool_size=pool_size, name="langchain-runtime-run-store"
        )
        self._identity = f"pg:{self._db.store_id}"

    def __repr__(self) -> str:
        return f"PostgresRunStore({redact(self.dsn)!r})"

    def _ensure_open(self) -> None:
        if self._closed:
            raise StoreError(f"run store at {self._db.where} is closed")

    # -- health -------------------------------------------------------------------------
    def check(self) -> str | None:
        """What is wrong with the store now, or None when it can be read and written."""
        if self._closed:
            return f"run store at {self._db.where} is closed"

        def work(conn: Connection[Any]) -> None:
            conn.execute("SELECT version FROM run_store_schema_version").fetchall()
            with conn.transaction(force_rollback=True):
                conn.execute("UPDATE run_store_schema_version SET version = version")

        try:
            self._db.run(work, transaction=False)
        except StoreError as exc:
            return str(exc)
        return None

    # -- ownership ------------------------------------------------------------------------
    def begin_run(self, header: RunHeader, *, resume: bool = False) -> None:
        self._ensure_open()
        run_id = header.run_id
        fingerprint = dict(header.fingerprint)
        values = (
            header.name,
            dumps(dict(header.input), f"run {run_id!r} input"),
            dumps(dict(header.policy), f"run {run_id!r} policy"),
            dumps(fingerprint, f"run {run_id!r} fingerprint"),
            len(fingerprint),
        )
        enqueued = [
            (
                run_id,
                pos,
                str(item["task_id"]),
                dumps(item.get("spec"), f"enqueued task {item['task_id']!r}"),
                dumps(fingerprint.get(str(item["task_id"])), "fingerprint"),
            )
            for pos, item in enumerate(header.enqueued)
        ]
        owner = header.owner

        def work(conn: Connection[Any]) -> int:
            if not resume:
                inserted = conn.execute(
                    f"INSERT INTO durable_runs ({_RUN_COLUMNS}) VALUES (%s, %s, 'running', %s, "
                    "clock_timestamp(), %s, %s, %s, %s, NULL, 0, %s, %s) ON CONFLICT DO NOTHING",
                    (
                        run_id,
                        values[0],
                        utc(header.created_at),
                        *values[1:],
                        owner,
                        self._started(owner),
                    ),
                )
                if inserted.rowcount != 1:
                    from langchain_runtime.api.errors import RunExistsError

                    raise RunExistsError(f"a run with id {run_id!r} already exists")
                conn.execute(
                    "INSERT INTO run_beats VALUES (%s, clock_timestamp(), clock_timestamp())",
                    (run_id,),
                )
                resumes = 0
            else:
                resumes = self._take(conn, run_id, owner, claimed=True)
                conn.execute(
                    "UPDATE durable_runs SET name = %s, input = %s, policy = %s, "
                    "fingerprint = %s, task_count = %s, owner = %s, owner_started = %s "
                    "WHERE run_id = %s",
                    (*values, owner, self._started(owner), run_id),
                )
                conn.execute("DELETE FROM run_enqueued WHERE run_id = %s", (run_id,))
            if enqueued:
                with conn.cursor() as cur:
                    cur.executemany(_ENQUEUED, enqueued)
            return resumes

        try:
            self._taking(run_id, work)
        except _LiveError as exc:
            raise ResumeError(str(exc)) from None
        with self._lock:
            self._claimed.pop(run_id, None)

    def commit(
        self,
        run_id: str,
        tasks: Sequence[TaskRecord],
        events: Sequence[Mapping[str, Any]] = (),
        memory: Mapping[str, Any] | None = None,
    ) -> None:
        task_rows = [
            (
                run_id,
                t.task_id,
                t.state,
                task_cost(t.result),
                dumps(dict(t.result), f"task {t.task_id!r} result"),
            )
            for t in tasks
        ]
        event_rows = self._event_rows(run_id, events)
        memory_rows = [
            (run_id, key, dumps(value, f"memory {key!r}"))
            for key, value in (memory or {}).items()
            if value != DELETED
        ]
        deleted = [key for key, value in (memory or {}).items() if value == DELETED]
        self._ensure_open()

        with self._lock:
            resumes = self._begun.get(run_id)

        def work(conn: Connection[Any]) -> None:
            # the fence is read last: a refused commit raises there, rolled back whole
            if resumes is None:  # not an owner's write (a run this store did not begin)
                beat = conn.execute(_BEAT + " RETURNING 1", (run_id,))
            else:
                beat = conn.execute(_FENCED_BEAT, (run_id, resumes, run_id))
            with conn.cursor() as cur:
                if task_rows:
                    cur.executemany(_TASK, task_rows)
                if event_rows:
                    cur.executemany(_EVENT, event_rows)
                if memory_rows:
                    cur.executemany(_MEMORY, memory_rows)
            if deleted:
                conn.execute(
                    "DELETE FROM run_memory WHERE run_id = %s AND key = ANY(%s)", (run_id, deleted)
                )
            if event_rows:
                self._notify(conn, run_id, max(r[1] for r in event_rows))
            if beat.fetchone() is None:
                exists = conn.execute(
                    "SELECT 1 FROM durable_runs WHERE run_id = %s", (run_id,)
                ).fetchone()
                if exists is None:
                    raise StoreError(
                        f"commit to run {run_id!r}, which run store at {self._db.where} lacks"
                    )
                raise self._refused(run_id, "a commit")

        self._db.run(work)

    def enqueue(self, run_id: str, task: Mapping[str, Any], fingerprint: Mapping[str, Any]) -> None:
        """Record a task added to a live run.

        ``fingerprint`` is the task's own entry (``{"deps": ..., "prompt": ...}``);
        ``{task_id: entry}`` is accepted too.
        """
        task_id = str(task["task_id"])
        entry = fingerprint
        if set(fingerprint) == {task_id} and isinstance(fingerprint[task_id], Mapping):
            entry = fingerprint[task_id]
        spec = dumps(task.get("spec"), f"enqueued task {task_id!r}")
        entry_json = dumps(dict(entry), f"enqueued task {task_id!r} fingerprint")
        self._ensure_open()

        def work(conn: Connection[Any]) -> None:
            self._fenced(conn, run_id, "an enqueue")
            counted = conn.execute(
                "UPDATE durable_runs SET task_count = task_count + 1 WHERE run_id = %s",
                (run_id,),
            )
            if counted.rowcount != 1 or conn.execute(_BEAT, (run_id,)).rowcount != 1:
                raise StoreError(
                    f"enqueue to run {run_id!r}, which run store at {self._db.where} lacks"
                )
            row = conn.execute(
                "SELECT COALESCE(MAX(pos) + 1, 0) FROM run_enqueued WHERE run_id = %s", (run_id,)
            ).fetchone()
            pos = int(row[0]) if row else 0
            conn.execute(_ENQUEUED, (run_id, pos, task_id, spec, entry_json))

        self._db.run(work)

    def save_source(self, run_id: str, source: Mapping[str, Any]) -> None:
        """Keep what an entry point rebuilds run ``run_id``'s graph from (JSON data)."""
        text = dumps(dict(source), f"run {run_id!r} source")
        self._ensure_open()
        self._db.run(
            lambda c: c.execute(
                "INSERT INTO run_sources VALUES (%s, %s) ON CONFLICT (run_id) "
                "DO UPDATE SET source = EXCLUDED.source",
                (run_id, text),
            ),
            transaction=False,
        )

    def load_source(self, run_id: str) -> dict[str, Any] | None:
        """What :meth:`save_source` kept for ``run_id``, or None."""
        self._ensure_open()
        row = self._db.run(
            lambda c: c.execute(
                "SELECT source FROM run_sources WHERE run_id = %s", (run_id,)
            ).fetchone(),
            transaction=False,
        )
        return None if row is None else dict(json.loads(row[0]))

    def match_run_ids(self, prefix: str, limit: int = 10) -> builtins.list[str]:
        """Durable run ids that start with ``prefix`` (to accept a unique prefix)."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        self._ensure_open()
        rows = self._db.run(
            lambda c: c.execute(
                "SELECT run_id FROM durable_runs WHERE run_id LIKE %s ESCAPE '\\' "
                "ORDER BY run_id LIMIT %s",
                (escaped + "%", limit),
            ).fetchall(),
            transaction=False,
        )
        return [r[0] for r in rows if r[0].startswith(prefix)]

    def interrupt_run(self, run_id: str) -> bool:
        """Record that ``run_id`` no longer executes (its owner died): ``interrupted``.

        For a caller that knows the owner is gone without asking it (a replica that
        restarts and finds its own runs in flight). True if the run was ``running``.
        """
        self._ensure_open()
        return self._db.run(
            lambda c: (
                c.execute(
                    "UPDATE durable_runs SET state = 'interrupted', updated_at = clock_timestamp() "
                    "WHERE run_id = %s AND state = 'running'",
                    (run_id,),
                ).rowcount
                == 1
            ),
            transaction=False,
        )

    def heartbeat(self, run_id: str) -> None:
        """Show that this run's owner is alive (a commit does it too): for long calls.

        Raises:
            StoreError: This process no longer owns the run.
        """
        self._ensure_open()

        def work(conn: Connection[Any]) -> None:
            self._fenced(conn, run_id, "a heartbeat")
            conn.execute(_BEAT, (run_id,))

        self._db.run(work)

    def finish_run(
        self,
        run_id: str,
        state: str,
        error: Mapping[str, Any] | None = None,
        events: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        event_rows = self._event_rows(run_id, events)
        error_json = None if error is None else dumps(dict(error), f"run {run_id!r} error")

        def work(conn: Connection[Any]) -> None:
            self._fenced(conn, run_id, "the finish")
            cur = conn.execute(
                "UPDATE durable_runs SET state = %s, error = %s, updated_at = clock_timestamp() "
                "WHERE run_id = %s",
                (state, error_json, run_id),
            )
            if cur.rowcount != 1:
                raise StoreError(
                    f"finish of run {run_id!r}, which run store at {self._db.where} lacks"
                )
            conn.execute(
                "UPDATE run_beats SET updated_at = clock_timestamp() WHERE run_id = %s", (run_id,)
            )
            if event_rows:
                with conn.cursor() as c:
                    c.executemany(_EVENT, event_rows)
                self._notify(conn, run_id, max(r[1] for r in event_rows))

        try:
            self._ensure_open()
            self._db.run(work)
        finally:
            _owner.unregister(self._identity, run_id)
            with self._lock:
                self._begun.pop(run_id, None)
                self._claimed.pop(run_id, None)

    @staticmethod
    def _event_rows(run_id: str, events: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        return [(run_id, int(e["seq"]), dumps(dict(e), f"run {run_id!r} event")) for e in events]

    def _notify(self, conn: Connection[Any], run_id: str, seq: int) -> None:
        """Tell listeners (:meth:`wait_for_events`) of events up to ``seq``, at commit."""
        conn.execute("SELECT pg_notify(%s, %s)", (EVENTS_CHANNEL, f"{seq} {run_id}"))

    def load_run(self, run_id: str) -> StoredRun | None:
        self._ensure_open()

        def work(conn: Connection[Any]) -> tuple[Any, ...] | None:
            row = conn.execute(
                f"SELECT {_READ_COLUMNS} FROM {_RUNS} WHERE d.run_id = %s", (run_id,)
            ).fetchone()
            if row is None:
                return None
            tasks = conn.execute(
                "SELECT task_id, state, result FROM run_tasks WHERE run_id = %s ORDER BY task_id",
                (run_id,),
            ).fetchall()
            memory = conn.execute(
                "SELECT key, value FROM run_memory WHERE run_id = %s ORDER BY key", (run_id,)
            ).fetchall()
            enqueued = conn.execute(
                "SELECT task_id, spec, fingerprint FROM run_enqueued WHERE run_id = %s "
                "ORDER BY pos",
                (run_id,),
            ).fetchall()
            return tuple(row), tasks, memory, enqueued

        # one snapshot: a commit landing meanwhile is seen whole or not at all
        found = self._db.run(lambda c: repeatable(c, work))
        if found is None:
            return None
        row, tasks, memory, enqueued = found
        fingerprint: dict[str, Any] = json.loads(row[7])
        queued = []
        for task_id, spec, entry in enqueued:
            queued.append({"task_id": task_id, "spec": json.loads(spec)})
            fingerprint.setdefault(task_id, json.loads(entry))
        header = RunHeader(
            run_id=row[0],
            name=row[1],
            input=json.loads(row[5]),
            policy=json.loads(row[6]),
            fingerprint=fingerprint,
            created_at=row[3],
            enqueued=tuple(queued),
            owner=row[11],
        )
        live = row[2] == "running" and self._alive(row[0], row[11], row[12], row[13], row[14])
        return StoredRun(
            header=header,
            state="interrupted" if row[2] == "running" and not live else row[2],
            updated_at=row[4],
            tasks={t[0]: TaskRecord(t[0], t[1], json.loads(t[2])) for t in tasks},
            memory={k: json.loads(v) for k, v in memory},
            error=None if row[9] is None else json.loads(row[9]),
            resumes=int(row[10]),
            live=live,
        )

    def run_events(self, run_id: str, after: int = -1) -> builtins.list[dict[str, Any]]:
        return self.events(run_id, after)

    def wait_for_events(
        self, run_id: str, after: int = -1, timeout: float = 10.0, *, poll: float = 1.0
    ) -> builtins.list[dict[str, Any]]:
        """The run's events with ``seq > after``, waiting up to ``timeout`` seconds for one.

        Returns as soon as a commit of this run's events is notified (``LISTEN``), and
        otherwise reads the table every ``poll`` seconds (a notification can be lost
        when a connection drops): an empty list means nothing new within ``timeout``.
        """
        if timeout < 0 or poll <= 0:
            raise ValueError("timeout must be >= 0 and poll > 0 seconds")
        found = self.events(run_id, after)
        if found or timeout == 0:
            return found
        deadline = time.monotonic() + timeout
        psycopg = self._db.psycopg
        try:
            with psycopg.connect(self.dsn, **self._db.connect_kwargs) as conn:
                conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                while True:
                    found = self.events(run_id, after)  # after LISTEN: nothing slips by
                    left = deadline - time.monotonic()
                    if found or left <= 0:
                        return found
                    for note in conn.notifies(timeout=min(poll, left)):
                        seq, _, rid = note.payload.partition(" ")
                        if rid == run_id and int(seq) > after:
                            break
        except psycopg.Error as exc:
            raise self._db.error(exc) from None

    def is_live(self, run_id: str) -> bool:
        self._ensure_open()
        row = self._db.run(
            lambda c: c.execute(
                f"SELECT {_LIVENESS} FROM {_RUNS} WHERE d.run_id = %s", (run_id,)
            ).fetchone(),
            transaction=False,
        )
        if row is None or row[0] != "running":
            return False
        return self._alive(run_id, row[1], row[2], row[3], row[5])

    def list_runs(
        self, *, limit: int = 50, offset: int = 0, state: str | None = None
    ) -> tuple[builtins.list[RunSummary], int]:
        columns = (
            "d.run_id, d.name, d.state, d.created_at, b.updated_at, d.task_count, d.owner, "
            "d.owner_started, b.heartbeat_at, clock_timestamp()"
        )
        order = "ORDER BY d.created_at DESC, d.run_id DESC"
        self._ensure_open()

        def work(conn: Connection[Any]) -> tuple[builtins.list[Any], int, dict[str, Any]]:
            total = 0
            if state in ("running", "interrupted"):
                # whether a running run is live is decided here, not in SQL
                rows = conn.execute(
                    f"SELECT {columns} FROM {_RUNS} WHERE d.state IN ('running', %s) {order}",
                    (state,),
                ).fetchall()
            elif state is not None:
                rows = conn.execute(
                    f"SELECT {columns} FROM {_RUNS} WHERE d.state = %s {order} LIMIT %s OFFSET %s",
                    (state, limit, offset),
                ).fetchall()
                counted = conn.execute(
                    "SELECT COUNT(*) FROM durable_runs WHERE state = %s", (state,)
                ).fetchone()
                total = int(counted[0]) if counted else 0
            else:
                rows = conn.execute(
                    f"SELECT {columns} FROM {_RUNS} {order} LIMIT %s OFFSET %s", (limit, offset)
                ).fetchall()
                counted = conn.execute("SELECT COUNT(*) FROM durable_runs").fetchone()
                total = int(counted[0]) if counted else 0
            ids = [r[0] for r in rows]
            sums = conn.execute(
                "SELECT run_id, COUNT(*) FILTER (WHERE state = 'completed'), SUM(cost) "
                "FROM run_tasks WHERE run_id = ANY(%s) GROUP BY run_id",
                (ids,),
            ).fetchall()
            return rows, total, {r[0]: (int(r[1]), r[2]) for r in sums}

        rows, total, totals = self._db.run(lambda c: repeatable(c, work))
        effective = [
            (r, "interrupted" if r[2] == "running" and not self._alive(r[0], *r[6:]) else r[2])
            for r in rows
        ]
        if state in ("running", "interrupted"):
            effective = [(r, s) for r, s in effective if s == state]
            total = len(effective)
            effective = effective[offset : offset + limit]
        page = []
        for r, s in effective:
            completed, cost = totals.get(r[0], (0, None))
            page.append(
                RunSummary(
                    run_id=r[0],
                    name=r[1],
                    state=s,
                    created_at=r[3],
                    updated_at=r[4],
                    tasks=int(r[5]),
                    completed=completed,
                    cost=None if cost is None else str(cost),
                )
            )
        return page, total

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            begun, self._begun = list(self._begun), {}
            self._claimed.clear()
        for run_id in begun:  # a closed store executes nothing
            _owner.unregister(self._identity, run_id)
        self._db.close()
