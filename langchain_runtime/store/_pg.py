"""The PostgreSQL store's plumbing: its pool, timeouts, schema, errors and value helpers.

Every statement runs with a ``statement_timeout`` and a ``lock_timeout``, and taking
a connection from the pool has a timeout, so nothing waits for ever; any failure of
the database (unreachable, too slow, a lock held too long) is one
:class:`~langchain_runtime.errors.StoreError` line naming the server without its
password.

The schema is created and migrated by the store under a transaction-scoped advisory
lock, in one transaction (PostgreSQL's DDL is transactional), so two replicas that
start at once never both migrate, and a migration that fails leaves nothing behind;
that transaction alone has no statement timeout (an index over a large table takes
what it takes) and a lock timeout of :data:`MIGRATION_LOCK_TIMEOUT` seconds.
JSON documents are ``TEXT`` (``JSONB`` would rewrite them: ``1e20`` comes back as an
integer, and keys are reordered); money is ``NUMERIC``; times are ``TIMESTAMPTZ``.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypeVar

from langchain_runtime.errors import StoreError

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg_pool import ConnectionPool

__all__ = [
    "MIGRATION_LOCK_TIMEOUT",
    "SCHEMA_VERSION",
    "Database",
    "dumps",
    "redact",
    "repeatable",
    "task_cost",
    "utc",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The schema this version writes (and migrates older databases to).
SCHEMA_VERSION = 3
#: An arbitrary constant: the advisory lock that serialises schema migrations.
_SCHEMA_LOCK = 7_301_913_023
#: Seconds a migration (or a replica waiting for another's) may wait for a lock.
MIGRATION_LOCK_TIMEOUT = 60

#: ``version -> statements`` that bring a database from ``version - 1`` to ``version``.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        # the sidecar's API records (``RunStore``)
        """CREATE TABLE run_records (
    run_id     TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    workflow   TEXT,
    request    TEXT NOT NULL,
    status     TEXT
)""",
        "CREATE INDEX run_records_by_created ON run_records (created_at DESC, run_id DESC)",
        "CREATE INDEX run_records_by_state ON run_records (state, created_at DESC)",
        # one event log, shared by the API records and the durable runs; the primary
        # key is the index ``seq > after`` reads
        """CREATE TABLE run_events (
    run_id TEXT NOT NULL,
    seq    BIGINT NOT NULL,
    body   TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
)""",
        """CREATE TABLE durable_runs (
    run_id        TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    state         TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    input         TEXT NOT NULL,
    policy        TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    task_count    INTEGER NOT NULL,
    error         TEXT,
    resumes       INTEGER NOT NULL,
    owner         TEXT,
    owner_started TEXT
)""",
        "CREATE INDEX durable_runs_by_created ON durable_runs (created_at DESC, run_id DESC)",
        "CREATE INDEX durable_runs_by_state ON durable_runs (state, created_at DESC)",
        """CREATE TABLE run_tasks (
    run_id  TEXT NOT NULL,
    task_id TEXT NOT NULL,
    state   TEXT NOT NULL,
    cost    NUMERIC,
    result  TEXT NOT NULL,
    PRIMARY KEY (run_id, task_id)
)""",
        """CREATE TABLE run_enqueued (
    run_id      TEXT NOT NULL,
    pos         INTEGER NOT NULL,
    task_id     TEXT NOT NULL,
    spec        TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    PRIMARY KEY (run_id, pos)
)""",
        """CREATE TABLE run_memory (
    run_id TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
)""",
        """CREATE TABLE run_sources (
    run_id TEXT PRIMARY KEY,
    source TEXT NOT NULL
)""",
        # the small row every commit updates (the header row's fingerprint grows with
        # the graph); its heartbeat is the database's clock, so replicas on hosts with
        # skewed clocks agree on how old it is
        """CREATE TABLE run_beats (
    run_id       TEXT PRIMARY KEY,
    updated_at   TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL
)""",
    ),
    2: (
        # a key's own runs (``GET /runs`` with a non-admin API key) are found by index,
        # not by reading every record: the owner is the request's ``_owner``
        "CREATE INDEX run_records_by_owner ON run_records "
        "((request::jsonb ->> '_owner'), created_at DESC, run_id DESC)",
    ),
    3: (
        # requests to the replica executing a run (``store/_pg_requests.py``); each
        # expires at its poster's deadline (the database's clock). IF NOT EXISTS (and
        # the ADD COLUMN): a development build had this table, without ``expires_at``,
        # at version 2, before the owner index above took that number
        """CREATE TABLE IF NOT EXISTS run_requests (
    id          BIGSERIAL PRIMARY KEY,
    run_id      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'taken', 'answered')),
    answer      TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    expires_at  TIMESTAMPTZ NOT NULL,
    taken_at    TIMESTAMPTZ,
    answered_at TIMESTAMPTZ
)""",
        # that build's rows expire at once (their posters are long gone)
        "ALTER TABLE run_requests ADD COLUMN IF NOT EXISTS expires_at TIMESTAMPTZ NOT NULL "
        "DEFAULT '-infinity'",
        "ALTER TABLE run_requests ALTER COLUMN expires_at DROP DEFAULT",
        # what the executing replicas poll for: small, whatever the table holds
        "CREATE INDEX IF NOT EXISTS run_requests_pending ON run_requests (run_id) "
        "WHERE state = 'pending'",
        # that build's version 2 had no owner index (migration 2 is skipped there)
        "CREATE INDEX IF NOT EXISTS run_records_by_owner ON run_records "
        "((request::jsonb ->> '_owner'), created_at DESC, run_id DESC)",
    ),
}

_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS run_store_schema_version (
    version  INTEGER NOT NULL,
    store_id TEXT NOT NULL
)"""


def redact(dsn: str) -> str:
    """``dsn`` without its password (URL or ``key=value`` form), for messages."""
    dsn = re.sub(r"(://[^:/@?]*):[^@/?]*@", r"\1:***@", dsn)
    dsn = re.sub(r"(password=)('(?:[^'\\]|\\.)*'|[^\s&]+)", r"\1***", dsn)
    return dsn


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no detail"


class Database:
    """A pool of connections to one database, and the store's schema in it.

    Args:
        dsn: A libpq URL or ``key=value`` string.
        timeout: Seconds to wait for a connection or a lock; a statement may run twice
            as long.
        pool_size: The most connections opened.
        name: The pool's name (in logs).
    """

    def __init__(self, dsn: str, *, timeout: float, pool_size: int, name: str) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "PostgresRunStore needs psycopg 3 and psycopg-pool: "
                "pip install 'langchain-runtime[postgres]'"
            ) from exc
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        if pool_size < 1:
            raise ValueError(f"pool_size must be >= 1, got {pool_size!r}")
        self.dsn = dsn
        self.where = redact(dsn)
        self.timeout = timeout
        self.psycopg = psycopg
        millis = max(int(timeout * 1000), 1)
        self.connect_kwargs: dict[str, Any] = {
            # single statements commit on their own; others run in conn.transaction()
            "autocommit": True,
            "connect_timeout": max(int(timeout + 0.999), 2),
            "options": (
                f"-c statement_timeout={2 * millis} -c lock_timeout={millis} "
                f"-c idle_in_transaction_session_timeout={4 * millis} -c TimeZone=UTC"
            ),
        }
        self.pool: ConnectionPool[Connection[Any]] = ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            timeout=timeout,
            open=False,
            check=ConnectionPool.check_connection,
            kwargs=self.connect_kwargs,
            name=name,
        )
        try:
            self.pool.open(wait=True, timeout=timeout)
        except Exception as exc:
            self.pool.close(timeout=1.0)
            raise self.error(exc) from None
        try:
            self.store_id = self.run(self._migrate)
        except BaseException:
            self.pool.close(timeout=1.0)
            raise

    def close(self) -> None:
        self.pool.close(timeout=self.timeout)

    def error(self, exc: BaseException) -> StoreError:
        """A one-line :class:`StoreError` for a failure of the database."""
        errors = self.psycopg.errors
        if isinstance(exc, errors.LockNotAvailable):
            why = f"a lock was held by another transaction for more than {self.timeout:g}s"
        elif isinstance(exc, errors.QueryCanceled):
            why = f"a statement ran longer than {2 * self.timeout:g}s"
        elif isinstance(exc, self.psycopg.OperationalError | _pool_timeout()):
            why = f"the database could not be reached within {self.timeout:g}s"
        else:
            why = "the database refused a statement"
        return StoreError(
            f"run store at {self.where} cannot be used: {why} "
            f"({type(exc).__name__}: {_first_line(exc)})"
        )

    def run(self, work: Callable[[Connection[Any]], T], *, transaction: bool = True) -> T:
        """``work`` in one transaction (or, for one statement, on its own).

        Errors of the database become :class:`StoreError`; the store's own errors
        (``ResumeError``, ``RunExistsError``...) pass through, the transaction rolled back.
        """
        psycopg = self.psycopg
        try:
            try:
                with self.pool.connection() as conn:
                    return _within(conn, work, transaction)
            except _pool_timeout():
                # No connection in the pool: after an outage it reconnects with a growing
                # backoff, so ask the server directly rather than wait for the pool.
                with psycopg.connect(self.dsn, **self.connect_kwargs) as direct:
                    result = _within(direct, work, transaction)
                self.pool.check()
                return result
        except (psycopg.Error, _pool_timeout()) as exc:
            raise self.error(exc) from None

    def _migrate(self, conn: Connection[Any]) -> str:
        # A migration may build an index over every run record, far longer than the
        # pool's statement timeout, and a replica that starts meanwhile waits for it
        # on the advisory lock: no statement timeout here, a lock timeout of minutes.
        conn.execute("SET LOCAL statement_timeout = 0")
        conn.execute(f"SET LOCAL lock_timeout = '{MIGRATION_LOCK_TIMEOUT}s'")
        try:
            return self._migrate_locked(conn)
        except self.psycopg.errors.LockNotAvailable as exc:
            raise StoreError(
                f"run store at {self.where} cannot be used: its schema could not be "
                f"checked or migrated: a lock was held for more than "
                f"{MIGRATION_LOCK_TIMEOUT} s (another replica migrating a large "
                f"database, or a long transaction on the store's tables) "
                f"({type(exc).__name__}: {_first_line(exc)})"
            ) from None

    def _migrate_locked(self, conn: Connection[Any]) -> str:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        conn.execute(_VERSION_TABLE)
        row = conn.execute(
            "SELECT MAX(version), MIN(store_id) FROM run_store_schema_version"
        ).fetchone()
        version = 0 if row is None or row[0] is None else int(row[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"run store at {self.where} has schema version {version}, newer than this "
                f"langchain-runtime reads ({SCHEMA_VERSION}); upgrade langchain-runtime"
            )
        store_id = str(row[1]) if row is not None and row[1] is not None else uuid.uuid4().hex
        if version == SCHEMA_VERSION:
            return store_id
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[step]:
                conn.execute(statement)
        conn.execute("DELETE FROM run_store_schema_version")
        conn.execute(
            "INSERT INTO run_store_schema_version (version, store_id) VALUES (%s, %s)",
            (SCHEMA_VERSION, store_id),
        )
        logger.info("run store at %s: schema %s -> %s", self.where, version, SCHEMA_VERSION)
        return store_id


def _within(conn: Connection[Any], work: Callable[[Connection[Any]], T], transaction: bool) -> T:
    if not transaction:
        return work(conn)
    with conn.transaction():
        return work(conn)


def _pool_timeout() -> type[Exception]:
    from psycopg_pool import PoolTimeout

    return PoolTimeout


def dumps(value: Any, what: str) -> str:
    """``value`` as compact JSON text; :class:`StoreError` naming ``what`` if it is not JSON."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} is not JSON data: {exc}") from None


def task_cost(result: Mapping[str, Any]) -> Decimal | None:
    """A task result's cost amount for the ``NUMERIC`` column (None if not a finite number)."""
    cost = result.get("cost")
    amount = cost.get("amount") if isinstance(cost, Mapping) else None
    if amount is None:
        return None
    try:
        value = Decimal(str(amount))
    except InvalidOperation:  # a cost that is not a number is not summed
        return None
    return value if value.is_finite() else None


def utc(when: datetime) -> datetime:
    """``when``, a naive time read as UTC."""
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when


def repeatable(conn: Connection[Any], work: Any) -> Any:
    """``work`` in a read-only transaction with one snapshot for all its statements."""
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
    return work(conn)
