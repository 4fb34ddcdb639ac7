"""``SQLiteRunStore``: every run of the Python API, the CLI and the sidecar in one file.

The file holds the durable runs (:class:`~langchain_runtime.store.DurableRunStore`)
and the sidecar's API records (:class:`~langchain_runtime.api.store.RunStore`), which
share one event log. Schema versions:

* **1** — the sidecar's store before durable runs (tables ``runs`` and ``events``);
  such a file is migrated in place when it is opened, its runs stay readable;
* **2** — adds ``schema_version``, ``durable_runs``, ``tasks``, ``enqueued`` and
  ``memory``;
* **3** — adds ``run_sources`` (what the CLI resumes a run from) and ``run_beats``
  (the small row a commit updates).

An older file is migrated in place when it is opened (tables are only added).

Statements are small and portable (``INSERT``/``UPDATE`` by primary key, JSON in
``TEXT`` columns) so the PostgreSQL store can mirror them.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from langchain_runtime.errors import ResumeError, StoreError
from langchain_runtime.store import _files, _owner
from langchain_runtime.store._base import DELETED, RunHeader, RunSummary, StoredRun, TaskRecord
from langchain_runtime.store._records import RecordsMixin
from langchain_runtime.store._sqlite_shared import SharedMixin, _LiveError

__all__ = ["SCHEMA_VERSION", "SQLiteRunStore"]

#: The schema this version writes (and migrates older files to).
SCHEMA_VERSION = 3

_V1_TABLES = frozenset({"runs", "events"})
_V2_TABLES = frozenset({"schema_version", "durable_runs", "tasks", "enqueued", "memory"})
_V3_TABLES = frozenset({"run_sources", "run_beats"})
#: Every table of a store at each version.
_TABLES = {
    1: _V1_TABLES,
    2: _V1_TABLES | _V2_TABLES,
    3: _V1_TABLES | _V2_TABLES | _V3_TABLES,
}

_V1 = (
    """CREATE TABLE IF NOT EXISTS runs (
    run_id     TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    workflow   TEXT,
    request    TEXT NOT NULL,
    status     TEXT
)""",
    "CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_at DESC, run_id DESC)",
    "CREATE INDEX IF NOT EXISTS runs_by_state ON runs (state, created_at DESC)",
    """CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    body   TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID""",
)

_V2 = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS durable_runs (
    run_id        TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    state         TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    input         TEXT NOT NULL,
    policy        TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    task_count    INTEGER NOT NULL,
    error         TEXT,
    resumes       INTEGER NOT NULL,
    owner         TEXT,
    owner_started TEXT,
    heartbeat_at  TEXT
)""",
    "CREATE INDEX IF NOT EXISTS durable_runs_by_created "
    "ON durable_runs (created_at DESC, run_id DESC)",
    "CREATE INDEX IF NOT EXISTS durable_runs_by_state ON durable_runs (state, created_at DESC)",
    """CREATE TABLE IF NOT EXISTS tasks (
    run_id  TEXT NOT NULL,
    task_id TEXT NOT NULL,
    state   TEXT NOT NULL,
    cost    TEXT,
    result  TEXT NOT NULL,
    PRIMARY KEY (run_id, task_id)
) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS enqueued (
    run_id      TEXT NOT NULL,
    pos         INTEGER NOT NULL,
    task_id     TEXT NOT NULL,
    spec        TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    PRIMARY KEY (run_id, pos)
) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS memory (
    run_id TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID""",
)

_V3 = (
    # what an entry point rebuilds a run's graph from on resume (the CLI's file)
    """CREATE TABLE IF NOT EXISTS run_sources (
    run_id TEXT PRIMARY KEY,
    source TEXT NOT NULL
)""",
    # written by every commit: a small row, so a commit never rewrites the run's
    # header (whose fingerprint grows with the graph)
    """CREATE TABLE IF NOT EXISTS run_beats (
    run_id       TEXT PRIMARY KEY,
    updated_at   TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL
) WITHOUT ROWID""",
)

_RUN_COLUMNS = (
    "run_id, name, state, created_at, updated_at, input, policy, fingerprint, task_count, "
    "error, resumes, owner, owner_started, heartbeat_at"
)
#: ``durable_runs`` joined with its beat: the latest ``updated_at``/``heartbeat_at``.
_RUNS = "durable_runs d LEFT JOIN run_beats b ON b.run_id = d.run_id"
_READ_COLUMNS = (
    "d.run_id, d.name, d.state, d.created_at, COALESCE(b.updated_at, d.updated_at), "
    "d.input, d.policy, d.fingerprint, d.task_count, d.error, d.resumes, d.owner, "
    "d.owner_started, COALESCE(b.heartbeat_at, d.heartbeat_at)"
)
_LIVENESS = "d.state, d.owner, d.owner_started, COALESCE(b.heartbeat_at, d.heartbeat_at)"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat()


def _dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} is not JSON data: {exc}") from None


def _cost(result: Mapping[str, Any]) -> str | None:
    cost = result.get("cost")
    amount = cost.get("amount") if isinstance(cost, Mapping) else None
    return None if amount is None else str(amount)


class SQLiteRunStore(SharedMixin, RecordsMixin):
    """Durable runs (and the sidecar's run records) in one SQLite file.

    Standard library ``sqlite3`` with a WAL journal: one connection, guarded by a
    lock, serves every thread, and every write is one transaction, made durable
    before the call returns (``synchronous=FULL``). Opening a file checks it: a
    damaged, truncated or foreign file is refused with a one-line
    :class:`~langchain_runtime.errors.StoreError` naming it, and a store of an
    older version is migrated in place.

    A run is *live* while its owner executes it: this process (from
    :meth:`begin_run` to :meth:`finish_run`), another process of this host that
    still exists, or, on another host, one whose last commit is less than
    ``stale_after`` old. A stored ``running`` run whose owner is gone is reported
    as ``interrupted`` (by :meth:`load_run` and :meth:`list_runs`; the file keeps
    ``running`` until the run is resumed or finished).

    Args:
        path: The database file (created with its folder if missing), or ``":memory:"``.
        exclusive: Claim the file for this store (a server): another exclusive store
            on the same file, through any path, symlink or hard link, is refused.
        synchronous: ``"full"`` (the default) survives a power loss; ``"normal"``
            survives a crash of the process only, and commits faster.
        integrity_check: Run ``PRAGMA quick_check`` when an existing file is opened.
        stale_after: Seconds without a heartbeat after which a run owned by another
            host is no longer live.

    Raises:
        StoreError: The file is damaged, empty, not an SQLite database, a database
            that is not a run store, from a newer version, or claimed (``exclusive``).

    Example:
        >>> from datetime import datetime, timezone
        >>> store = SQLiteRunStore(":memory:")
        >>> header = RunHeader("r1", "demo", {"q": "hi"}, {}, {"a": {"deps": []}},
        ...                    datetime.now(timezone.utc))
        >>> store.begin_run(header)
        >>> store.commit("r1", [TaskRecord("a", "completed", {"output": "ok"})])
        >>> store.finish_run("r1", "completed")
        >>> run = store.load_run("r1")
        >>> run.state, run.tasks["a"].result["output"], run.live
        ('completed', 'ok', False)
        >>> store.close()
    """

    def __init__(
        self,
        path: str | Path,
        *,
        exclusive: bool = False,
        synchronous: Literal["full", "normal"] = "full",
        integrity_check: bool = True,
        stale_after: float = 120.0,
    ) -> None:
        if synchronous not in ("full", "normal"):
            raise ValueError(f"synchronous must be 'full' or 'normal', got {synchronous!r}")
        self.path = str(path)
        self.stale_after = timedelta(seconds=stale_after)
        self._exclusive = exclusive
        self._hold: _files.FileHold | None = None
        self._lock = threading.Lock()
        self._closed = False
        #: run id -> the claim (``resumes``) this store holds on it, until finish_run
        self._begun: dict[str, int] = {}
        #: runs claimed with claim() that begin_run has not taken over yet
        self._claimed: dict[str, tuple[str, str | None]] = {}
        memory = self.path == ":memory:"
        file = Path(self.path)
        existed = False
        if not memory:
            existed = _files.check_file(file)
            try:
                file.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"run store {file}: cannot create its folder: {exc}") from None
        try:
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=10.0
            )
        except sqlite3.Error as exc:
            raise StoreError(f"run store {file} cannot be opened: {exc}") from None
        try:
            if existed and integrity_check:
                _files.quick_check(self._db, file)
            if not memory:
                self._hold = _files.hold(file, exclusive=exclusive)
                st = file.stat()
                self._identity = f"{st.st_dev}:{st.st_ino}"
            else:
                self._identity = f"memory:{id(self)}"
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._migrate(file)
        except sqlite3.DatabaseError as exc:
            self._abort_open()
            raise _files.damaged(file, str(exc)) from None
        except BaseException:
            self._abort_open()
            raise

    def _abort_open(self) -> None:
        self._db.close()
        if self._hold is not None:
            _files.release(self._hold, exclusive=self._exclusive)
            self._hold = None

    def __repr__(self) -> str:
        return f"SQLiteRunStore({self.path!r})"

    # -- schema -------------------------------------------------------------------------
    def _migrate(self, file: Path) -> None:
        with self._write():
            tables = {
                r[0]
                for r in self._db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%'"
                )
            }
            if "schema_version" in tables:
                row = self._db.execute("SELECT MAX(version) FROM schema_version").fetchone()
                version = row[0] if row and row[0] is not None else 0
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"run store {file} has schema version {version}, newer than this "
                        f"langchain-runtime reads ({SCHEMA_VERSION}); upgrade langchain-runtime"
                    )
                missing = _TABLES.get(version, _TABLES[SCHEMA_VERSION]) - tables
                if missing:
                    raise _files.damaged(file, f"table(s) {', '.join(sorted(missing))} missing")
            elif not tables:
                version = 0  # a new (or empty) database
            elif tables == _V1_TABLES and self._is_v1():
                version = 1
            else:
                raise StoreError(
                    f"run store {file} is an SQLite database but not a run store "
                    f"(its tables: {', '.join(sorted(tables)[:6])})"
                )
            if version == SCHEMA_VERSION:
                return
            for statement in (*_V1, *_V2, *_V3):
                self._db.execute(statement)
            self._db.execute("DELETE FROM schema_version")
            self._db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))

    def _is_v1(self) -> bool:
        columns = [r[1] for r in self._db.execute("PRAGMA table_info(runs)")]
        events = [r[1] for r in self._db.execute("PRAGMA table_info(events)")]
        return columns == [
            "run_id",
            "state",
            "created_at",
            "updated_at",
            "workflow",
            "request",
            "status",
        ] and events == ["run_id", "seq", "body"]

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction (the caller holds no lock)."""
        with self._lock:
            self._ensure_open()
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _ensure_open(self) -> None:
        if self._closed:
            raise StoreError(f"run store {self.path} is closed")

    # -- health -------------------------------------------------------------------------
    def check(self) -> str | None:
        """What is wrong with the store now, or None when it can be read and written.

        A cheap probe for a health endpoint: reads the schema, takes the write lock
        and rolls back, and checks that the file is still the one that was opened.
        """
        if self._closed:
            return f"run store {self.path} is closed"
        if self._hold is not None:
            try:
                st = Path(self.path).stat()
                same = f"{st.st_dev}:{st.st_ino}" == self._identity
            except OSError:
                same = False
            if not same:
                return f"run store {self.path} was deleted or replaced while in use"
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.execute("SELECT version FROM schema_version").fetchall()
                    self._db.execute("UPDATE schema_version SET version = version")
                finally:
                    self._db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            return f"run store {self.path} cannot be used: {exc}"
        return None

    # -- durable runs ---------------------------------------------------------------------
    def begin_run(self, header: RunHeader, *, resume: bool = False) -> None:
        now = _iso(_now())
        owner = header.owner
        started = None
        if owner is not None and owner == _owner.local_owner():
            started = _owner.process_started(int(owner.partition("@")[0]))
        fingerprint = dict(header.fingerprint)
        values = {
            "name": header.name,
            "input": _dumps(dict(header.input), f"run {header.run_id!r} input"),
            "policy": _dumps(dict(header.policy), f"run {header.run_id!r} policy"),
            "fingerprint": _dumps(fingerprint, f"run {header.run_id!r} fingerprint"),
        }
        enqueued = [
            (
                header.run_id,
                pos,
                str(item["task_id"]),
                _dumps(item.get("spec"), f"enqueued task {item['task_id']!r}"),
                _dumps(fingerprint.get(str(item["task_id"])), "fingerprint"),
            )
            for pos, item in enumerate(header.enqueued)
        ]
        with self._write():
            row = self._db.execute(
                f"SELECT {_LIVENESS}, d.resumes FROM {_RUNS} WHERE d.run_id = ?", (header.run_id,)
            ).fetchone()
            resumes = 0
            if not resume:
                if row is not None:
                    from langchain_runtime.api.errors import RunExistsError

                    raise RunExistsError(f"a run with id {header.run_id!r} already exists")
                self._db.execute(
                    f"INSERT INTO durable_runs ({_RUN_COLUMNS}) "
                    "VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, NULL, 0, ?, ?, ?)",
                    (
                        header.run_id,
                        values["name"],
                        _iso(header.created_at),
                        now,
                        values["input"],
                        values["policy"],
                        values["fingerprint"],
                        len(fingerprint),
                        owner,
                        started,
                        now,
                    ),
                )
            else:
                # taken over as it is if this store claimed it (claim()) and still has it
                claimed = header.run_id in self._claimed and row is not None
                claimed = claimed and self._begun.get(header.run_id) == row[4]
                try:
                    resumes = self._take(header.run_id, row, held=claimed)
                except _LiveError as exc:
                    raise ResumeError(str(exc)) from None
                self._db.execute(
                    "UPDATE durable_runs SET name = ?, state = 'running', updated_at = ?, "
                    "input = ?, policy = ?, fingerprint = ?, task_count = ?, error = NULL, "
                    "resumes = ?, owner = ?, owner_started = ?, heartbeat_at = ? "
                    "WHERE run_id = ?",
                    (
                        values["name"],
                        now,
                        values["input"],
                        values["policy"],
                        values["fingerprint"],
                        len(fingerprint),
                        resumes,
                        owner,
                        started,
                        now,
                        header.run_id,
                    ),
                )
                self._db.execute("DELETE FROM enqueued WHERE run_id = ?", (header.run_id,))
            self._db.executemany("INSERT INTO enqueued VALUES (?, ?, ?, ?, ?)", enqueued)
            self._db.execute(
                "INSERT OR REPLACE INTO run_beats VALUES (?, ?, ?)", (header.run_id, now, now)
            )
            _owner.register(self._identity, header.run_id)
            self._begun[header.run_id] = resumes
            self._claimed.pop(header.run_id, None)

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
                _cost(t.result),
                _dumps(dict(t.result), f"task {t.task_id!r} result"),
            )
            for t in tasks
        ]
        event_rows = self._event_rows(run_id, events)
        memory_rows = [
            (run_id, key, _dumps(value, f"memory {key!r}"))
            for key, value in (memory or {}).items()
            if value != DELETED
        ]
        deleted = [(run_id, key) for key, value in (memory or {}).items() if value == DELETED]
        now = _iso(_now())
        with self._write():
            self._fenced(run_id, "a commit")
            if not self._touch(run_id, now):
                raise StoreError(f"commit to run {run_id!r}, which run store {self.path} lacks")
            self._db.executemany("INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?)", task_rows)
            self._db.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?)", event_rows)
            self._db.executemany("INSERT OR REPLACE INTO memory VALUES (?, ?, ?)", memory_rows)
            self._db.executemany("DELETE FROM memory WHERE run_id = ? AND key = ?", deleted)

    def enqueue(self, run_id: str, task: Mapping[str, Any], fingerprint: Mapping[str, Any]) -> None:
        """Record a task added to a live run.

        ``fingerprint`` is the task's own entry (``{"deps": ..., "prompt": ...}``);
        ``{task_id: entry}`` is accepted too.
        """
        task_id = str(task["task_id"])
        entry = fingerprint
        if set(fingerprint) == {task_id} and isinstance(fingerprint[task_id], Mapping):
            entry = fingerprint[task_id]
        spec = _dumps(task.get("spec"), f"enqueued task {task_id!r}")
        entry_json = _dumps(dict(entry), f"enqueued task {task_id!r} fingerprint")
        now = _iso(_now())
        with self._write():
            self._fenced(run_id, "an enqueue")
            counted = self._db.execute(
                "UPDATE durable_runs SET task_count = task_count + 1 WHERE run_id = ?", (run_id,)
            )
            if counted.rowcount != 1 or not self._touch(run_id, now):
                raise StoreError(f"enqueue to run {run_id!r}, which run store {self.path} lacks")
            pos = self._db.execute(
                "SELECT COALESCE(MAX(pos) + 1, 0) FROM enqueued WHERE run_id = ?", (run_id,)
            ).fetchone()[0]
            self._db.execute(
                "INSERT INTO enqueued VALUES (?, ?, ?, ?, ?)",
                (run_id, pos, task_id, spec, entry_json),
            )

    def save_source(self, run_id: str, source: Mapping[str, Any]) -> None:
        """Keep what an entry point rebuilds run ``run_id``'s graph from (JSON data).

        The CLI stores its workflow file and options here, so ``resume`` needs only
        the run id. Written before the run starts; replaced if written again.
        """
        text = _dumps(dict(source), f"run {run_id!r} source")
        with self._write():
            self._db.execute("INSERT OR REPLACE INTO run_sources VALUES (?, ?)", (run_id, text))

    def load_source(self, run_id: str) -> dict[str, Any] | None:
        """What :meth:`save_source` kept for ``run_id``, or None."""
        with self._lock:
            self._ensure_open()
            row = self._db.execute(
                "SELECT source FROM run_sources WHERE run_id = ?", (run_id,)
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def match_run_ids(self, prefix: str, limit: int = 10) -> builtins.list[str]:
        """Durable run ids that start with ``prefix`` (to accept a unique prefix)."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self._lock:
            self._ensure_open()
            rows = self._db.execute(
                "SELECT run_id FROM durable_runs WHERE run_id LIKE ? ESCAPE '\\' "
                "ORDER BY run_id LIMIT ?",
                (escaped + "%", limit),
            ).fetchall()
        return [r[0] for r in rows if r[0].startswith(prefix)]  # LIKE ignores case

    def interrupt_run(self, run_id: str) -> bool:
        """Record that ``run_id`` no longer executes (its owner died): ``interrupted``.

        For a caller that knows the owner is gone without asking it: a server that
        restarts on its (exclusively held) store and finds its own runs in flight.
        True if the run was ``running``.
        """
        with self._write():
            cursor = self._db.execute(
                "UPDATE durable_runs SET state = 'interrupted' "
                "WHERE run_id = ? AND state = 'running'",
                (run_id,),
            )
        return cursor.rowcount == 1

    def heartbeat(self, run_id: str) -> None:
        """Show that this run's owner is alive (a commit does it too): for long calls."""
        with self._write():
            self._fenced(run_id, "a heartbeat")
            self._touch(run_id, _iso(_now()))

    def finish_run(
        self,
        run_id: str,
        state: str,
        error: Mapping[str, Any] | None = None,
        events: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        event_rows = self._event_rows(run_id, events)
        error_json = None if error is None else _dumps(dict(error), f"run {run_id!r} error")
        try:
            with self._write():
                self._fenced(run_id, "the finish")
                cursor = self._db.execute(
                    "UPDATE durable_runs SET state = ?, error = ?, updated_at = ? WHERE run_id = ?",
                    (state, error_json, _iso(_now()), run_id),
                )
                if cursor.rowcount != 1:
                    raise StoreError(f"finish of run {run_id!r}, which run store {self.path} lacks")
                self._db.execute(
                    "UPDATE run_beats SET updated_at = ? WHERE run_id = ?", (_iso(_now()), run_id)
                )
                self._db.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?)", event_rows)
        finally:
            _owner.unregister(self._identity, run_id)
            with self._lock:
                self._begun.pop(run_id, None)
                self._claimed.pop(run_id, None)

    def _touch(self, run_id: str, now: str) -> bool:
        """Beat for ``run_id`` (in the write transaction); False if there is no such run."""
        cursor = self._db.execute(
            "UPDATE run_beats SET updated_at = ?, heartbeat_at = ? WHERE run_id = ?",
            (now, now, run_id),
        )
        if cursor.rowcount == 1:
            return True
        # a run stored before schema 3 has no beat yet
        exists = self._db.execute(
            "SELECT 1 FROM durable_runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        if exists is None:
            return False
        self._db.execute("INSERT INTO run_beats VALUES (?, ?, ?)", (run_id, now, now))
        return True

    @staticmethod
    def _event_rows(run_id: str, events: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        return [(run_id, int(e["seq"]), _dumps(dict(e), f"run {run_id!r} event")) for e in events]

    def _alive(
        self, run_id: str, owner: str | None, started: str | None, heartbeat: str | None
    ) -> bool:
        beat = datetime.fromisoformat(heartbeat) if heartbeat else None
        return _owner.alive(self._identity, run_id, owner, started, beat, _now(), self.stale_after)

    def load_run(self, run_id: str) -> StoredRun | None:
        with self._lock:
            self._ensure_open()
            row = self._db.execute(
                f"SELECT {_READ_COLUMNS} FROM {_RUNS} WHERE d.run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                return None
            tasks = self._db.execute(
                "SELECT task_id, state, result FROM tasks WHERE run_id = ? ORDER BY task_id",
                (run_id,),
            ).fetchall()
            memory = self._db.execute(
                "SELECT key, value FROM memory WHERE run_id = ? ORDER BY key", (run_id,)
            ).fetchall()
            enqueued = self._db.execute(
                "SELECT task_id, spec, fingerprint FROM enqueued WHERE run_id = ? ORDER BY pos",
                (run_id,),
            ).fetchall()
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
            created_at=datetime.fromisoformat(row[3]),
            enqueued=tuple(queued),
            owner=row[11],
        )
        live = row[2] == "running" and self._alive(row[0], row[11], row[12], row[13])
        return StoredRun(
            header=header,
            state="interrupted" if row[2] == "running" and not live else row[2],
            updated_at=datetime.fromisoformat(row[4]),
            tasks={t[0]: TaskRecord(t[0], t[1], json.loads(t[2])) for t in tasks},
            memory={k: json.loads(v) for k, v in memory},
            error=None if row[9] is None else json.loads(row[9]),
            resumes=int(row[10]),
            live=live,
        )

    def run_events(self, run_id: str, after: int = -1) -> builtins.list[dict[str, Any]]:
        return self.events(run_id, after)

    def is_live(self, run_id: str) -> bool:
        with self._lock:
            self._ensure_open()
            row = self._db.execute(
                f"SELECT {_LIVENESS} FROM {_RUNS} WHERE d.run_id = ?", (run_id,)
            ).fetchone()
        return row is not None and row[0] == "running" and self._alive(run_id, *row[1:])

    def list_runs(
        self, *, limit: int = 50, offset: int = 0, state: str | None = None
    ) -> tuple[builtins.list[RunSummary], int]:
        columns = (
            "d.run_id, d.name, d.state, d.created_at, COALESCE(b.updated_at, d.updated_at), "
            "d.task_count, d.owner, d.owner_started, COALESCE(b.heartbeat_at, d.heartbeat_at)"
        )
        order = "ORDER BY d.created_at DESC, d.run_id DESC"
        with self._lock:
            self._ensure_open()
            if state in ("running", "interrupted"):
                # whether a running run is live is decided here, not in SQL
                rows = self._db.execute(
                    f"SELECT {columns} FROM {_RUNS} WHERE d.state IN ('running', ?) {order}",
                    (state,),
                ).fetchall()
            elif state is not None:
                rows = self._db.execute(
                    f"SELECT {columns} FROM {_RUNS} WHERE d.state = ? {order} LIMIT ? OFFSET ?",
                    (state, limit, offset),
                ).fetchall()
                total = self._db.execute(
                    "SELECT COUNT(*) FROM durable_runs WHERE state = ?", (state,)
                ).fetchone()[0]
            else:
                rows = self._db.execute(
                    f"SELECT {columns} FROM {_RUNS} {order} LIMIT ? OFFSET ?", (limit, offset)
                ).fetchall()
                total = self._db.execute("SELECT COUNT(*) FROM durable_runs").fetchone()[0]
        effective = [
            (r, "interrupted" if r[2] == "running" and not self._alive(r[0], *r[6:]) else r[2])
            for r in rows
        ]
        if state in ("running", "interrupted"):
            effective = [(r, s) for r, s in effective if s == state]
            total = len(effective)
            effective = effective[offset : offset + limit]
        totals = self._task_totals([r[0] for r, _ in effective])
        page = [
            RunSummary(
                run_id=r[0],
                name=r[1],
                state=s,
                created_at=datetime.fromisoformat(r[3]),
                updated_at=datetime.fromisoformat(r[4]),
                tasks=int(r[5]),
                completed=totals.get(r[0], (0, None))[0],
                cost=totals.get(r[0], (0, None))[1],
            )
            for r, s in effective
        ]
        return page, int(total)

    def _task_totals(self, run_ids: Sequence[str]) -> dict[str, tuple[int, str | None]]:
        if not run_ids:
            return {}
        marks = ", ".join("?" for _ in run_ids)
        with self._lock:
            rows = self._db.execute(
                f"SELECT run_id, state, cost FROM tasks WHERE run_id IN ({marks})", tuple(run_ids)
            ).fetchall()
        completed: dict[str, int] = {}
        costs: dict[str, Decimal] = {}
        for run_id, state, cost in rows:
            completed[run_id] = completed.get(run_id, 0) + (state == "completed")
            if cost is not None:
                with suppress(InvalidOperation):  # a cost that is not a number is not summed
                    costs[run_id] = costs.get(run_id, Decimal(0)) + Decimal(cost)
        return {
            run_id: (completed.get(run_id, 0), str(costs[run_id]) if run_id in costs else None)
            for run_id in set(completed) | set(costs)
        }

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for run_id in self._begun:  # a closed store executes nothing
                _owner.unregister(self._identity, run_id)
            self._begun.clear()
            self._claimed.clear()
            self._db.close()
            if self._hold is not None:
                _files.release(self._hold, exclusive=self._exclusive)
                self._hold = None
