"""A ledger in PostgreSQL, shared by any number of processes and machines.

A reservation is one transaction that locks the rows of its scopes with
``SELECT ... FOR UPDATE`` in sorted order (so two transactions never wait on each other
in a cycle), reads spend and live holds in one statement (one snapshot), and writes the
hold only if every scope has room: two replicas can never both pass a check they would
fail together. A settlement, a release and a renewal are each one statement that
locks the lease's row, so a second settlement of the same id finds it settled; a
reservation sees a settlement that commits meanwhile whole or not at all (and then
counts its hold instead, which is what the order "reserve, then settle" gives anyway).
Every statement has a ``statement_timeout`` and a
``lock_timeout`` and the pool a connection timeout, so nothing waits for ever: when
PostgreSQL cannot answer in time, the operation fails with
:class:`~langchain_runtime.errors.LedgerUnavailableError`. Money is ``NUMERIC``.

Needs the ``postgres`` extra (``psycopg`` 3 and ``psycopg-pool``), imported only when a
:class:`PostgresLedger` is created.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from langchain_runtime.cost.ledger._base import DEFAULT_LEASE_TTL, BudgetLedger, Written
from langchain_runtime.cost.ledger._journal import SettleJournal
from langchain_runtime.cost.ledger._model import (
    Clock,
    Lease,
    ScopeLimit,
    ScopeStatus,
    check_fits,
    decode_window,
    encode_window,
    from_micros,
    to_micros,
)
from langchain_runtime.errors import ConfigurationError, LedgerUnavailableError

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg_pool import ConnectionPool

__all__ = ["PostgresLedger"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: 2: leases name their holder (``charge_held``); version-1 tables are migrated on open
_SCHEMA_VERSION = "2"
#: an arbitrary constant: the advisory lock that serialises schema creation
_SCHEMA_LOCK = 7_301_913_022
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS ledger_scopes (scope TEXT PRIMARY KEY, max_cost NUMERIC, "
    "max_tokens BIGINT, window_kind TEXT)",
    "CREATE TABLE IF NOT EXISTS ledger_spend (scope TEXT NOT NULL, window_key BIGINT NOT NULL, "
    "cost NUMERIC NOT NULL, tokens BIGINT NOT NULL, PRIMARY KEY (scope, window_key))",
    "CREATE TABLE IF NOT EXISTS ledger_leases (id TEXT PRIMARY KEY, state TEXT NOT NULL, "
    "expires_at BIGINT NOT NULL, cost NUMERIC NOT NULL, tokens BIGINT NOT NULL, "
    "windows JSONB NOT NULL, holder TEXT)",
    "CREATE TABLE IF NOT EXISTS ledger_holds (scope TEXT NOT NULL, window_key BIGINT NOT NULL, "
    "lease_id TEXT NOT NULL, cost NUMERIC NOT NULL, tokens BIGINT NOT NULL, "
    "expires_at BIGINT NOT NULL, PRIMARY KEY (scope, lease_id))",
    "CREATE INDEX IF NOT EXISTS ledger_holds_lease ON ledger_holds (lease_id)",
)
# version 1 -> 2 (idempotent, under the schema lock): existing leases have no holder
_MIGRATE_2 = "ALTER TABLE ledger_leases ADD COLUMN IF NOT EXISTS holder TEXT"
# after the migration: a version-1 table has no holder column until then
_HOLDER_INDEX = (
    "CREATE INDEX IF NOT EXISTS ledger_leases_holder ON ledger_leases (holder) "
    "WHERE holder IS NOT NULL"
)
# Spend and live holds of each (scope, window) in one statement, so one snapshot: a
# settlement committing meanwhile is seen whole or not at all.
_TOTALS = """
SELECT w.scope, COALESCE(s.cost, 0), COALESCE(s.tokens, 0),
       COALESCE(h.cost, 0), COALESCE(h.tokens, 0),
       (SELECT state FROM ledger_leases WHERE id = %s)
FROM unnest(%s::text[], %s::bigint[]) AS w(scope, wkey)
LEFT JOIN ledger_spend s ON s.scope = w.scope AND s.window_key = w.wkey
LEFT JOIN LATERAL (
    SELECT SUM(cost) AS cost, SUM(tokens) AS tokens FROM ledger_holds
    WHERE scope = w.scope AND window_key = w.wkey AND expires_at > %s AND lease_id <> %s
) h ON TRUE
"""
# The lease and its holds; expired holds in these scopes are swept on the way.
_HOLD = """
WITH swept AS (
    DELETE FROM ledger_holds
    WHERE (lease_id <> %(id)s AND scope = ANY(%(scopes)s) AND expires_at <= %(now)s)
       OR (lease_id = %(id)s AND NOT scope = ANY(%(scopes)s))
), lease AS (
    INSERT INTO ledger_leases (id, state, expires_at, cost, tokens, windows, holder)
    VALUES (%(id)s, 'held', %(expires)s, %(cost)s, %(tokens)s, %(windows)s::jsonb, %(holder)s)
    ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at, cost = EXCLUDED.cost,
        tokens = EXCLUDED.tokens, windows = EXCLUDED.windows, holder = EXCLUDED.holder
    WHERE ledger_leases.state = 'held'
    RETURNING id
)
INSERT INTO ledger_holds (scope, window_key, lease_id, cost, tokens, expires_at)
SELECT w.scope, w.wkey, lease.id, %(cost)s, %(tokens)s, %(expires)s
FROM lease, unnest(%(scopes)s::text[], %(keys)s::bigint[]) AS w(scope, wkey)
ON CONFLICT (scope, lease_id) DO UPDATE SET window_key = EXCLUDED.window_key,
    cost = EXCLUDED.cost, tokens = EXCLUDED.tokens, expires_at = EXCLUDED.expires_at
RETURNING 1
"""
# One statement. ``old`` locks the lease's row first and reads its latest committed
# state (FOR UPDATE waits for a concurrent settle or charge_held, then sees what it
# wrote): a second settle of the same id finds it settled, and a settle of a lease
# charge_held charged adds real minus hold. Spend rows are added to under their own
# row locks.
_SETTLE = """
WITH old AS (
    SELECT state, cost, tokens FROM ledger_leases WHERE id = %(id)s FOR UPDATE
), lease AS (
    UPDATE ledger_leases SET state = 'settled'
    WHERE id = %(id)s AND (SELECT state FROM old) <> 'settled' RETURNING windows
), dropped AS (
    DELETE FROM ledger_holds WHERE lease_id = %(id)s AND EXISTS (SELECT 1 FROM lease)
), charge AS (
    SELECT CASE WHEN state = 'charged' THEN cost ELSE 0 END AS cost,
           CASE WHEN state = 'charged' THEN tokens ELSE 0 END AS tokens
    FROM old
), spent AS (
    INSERT INTO ledger_spend (scope, window_key, cost, tokens)
    SELECT w.key, w.value::bigint, %(cost)s - charge.cost, %(tokens)s - charge.tokens
    FROM lease, charge, jsonb_each_text(lease.windows) AS w
    ON CONFLICT (scope, window_key) DO UPDATE SET cost = ledger_spend.cost + EXCLUDED.cost,
        tokens = ledger_spend.tokens + EXCLUDED.tokens
)
SELECT (SELECT state FROM old), EXISTS (SELECT 1 FROM lease)
"""
# One statement: the holder's held leases become charged under their row locks (a
# concurrent settle either went first -- the lease is no longer held -- or waits and
# then corrects the charge); their holds are added to spend per (scope, window), one
# row each (ON CONFLICT cannot touch a row twice), in jsonb key order as settle locks them.
_CHARGE_HELD = """
WITH lease AS (
    UPDATE ledger_leases SET state = 'charged'
    WHERE holder = %(holder)s AND state = 'held' RETURNING id, cost, tokens, windows
), dropped AS (
    DELETE FROM ledger_holds WHERE lease_id IN (SELECT id FROM lease)
), spent AS (
    INSERT INTO ledger_spend (scope, window_key, cost, tokens)
    SELECT w.key, w.value::bigint, SUM(lease.cost), SUM(lease.tokens)
    FROM lease, jsonb_each_text(lease.windows) AS w
    GROUP BY w.key, w.value::bigint
    ORDER BY octet_length(w.key), w.key COLLATE "C"
    ON CONFLICT (scope, window_key) DO UPDATE SET cost = ledger_spend.cost + EXCLUDED.cost,
        tokens = ledger_spend.tokens + EXCLUDED.tokens
)
SELECT COUNT(*) FROM lease
"""
_RENEW = """
WITH lease AS (
    UPDATE ledger_leases SET expires_at = %(expires)s
    WHERE id = %(id)s AND state = 'held' AND expires_at > %(now)s RETURNING id
)
UPDATE ledger_holds SET expires_at = %(expires)s
WHERE lease_id IN (SELECT id FROM lease) RETURNING 1
"""
_RELEASE = """
WITH lease AS (
    UPDATE ledger_leases SET state = 'released'
    WHERE id = %(id)s AND state = 'held' RETURNING expires_at
), dropped AS (
    DELETE FROM ledger_holds WHERE lease_id = %(id)s AND EXISTS (SELECT 1 FROM lease)
)
SELECT expires_at FROM lease
"""
_LOCK_SCOPES = (
    "SELECT scope, max_cost, max_tokens, window_kind FROM ledger_scopes "
    "WHERE scope = ANY(%s) ORDER BY scope FOR UPDATE"
)


def _redact(dsn: str) -> str:
    """The DSN without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", re.sub(r"password=\S+", "password=***", dsn))


def _limit(row: Sequence[Any]) -> ScopeLimit:
    return ScopeLimit(
        row[0], row[1], None if row[2] is None else int(row[2]), decode_window(row[3])
    )


class PostgresLedger(BudgetLedger):
    """A :class:`BudgetLedger` in a PostgreSQL database, shared by every replica.

    The tables (``ledger_*``) are created on first use.

    Args:
        dsn: A libpq connection string or URL (``postgresql://user@host:5432/db``).
        timeout: Seconds an operation may wait for a connection, a lock or a statement
            before it fails with ``LedgerUnavailableError``.
        pool_size: The most connections this ledger opens.
        clock, lease_ttl, journal, settle_attempts, retry_delay: As for
            :class:`BudgetLedger`. Replicas compare
            lease expiries with their own clocks: keep them in sync (NTP), far closer
            than ``lease_ttl``.

    Raises:
        ImportError: The ``postgres`` extra is not installed.
        LedgerUnavailableError: The database cannot be reached at start.

    Example (it needs a live server, so it is not run as a doctest)::

        ledger = PostgresLedger("postgresql://app@db.internal/app")
        ledger.set_limit("team:research", max_cost="100", window="month")
        lease = ledger.reserve(["team:research", "user:42"], cost="0.02", tokens=1500)
        ledger.settle(lease.id, cost="0.013", tokens=1100)
    """

    def __init__(
        self,
        dsn: str,
        *,
        timeout: float = 5.0,
        pool_size: int = 4,
        clock: Clock | None = None,
        lease_ttl: timedelta = DEFAULT_LEASE_TTL,
        journal: SettleJournal | str | Path | None = None,
        settle_attempts: int = 3,
        retry_delay: float = 0.05,
    ) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "PostgresLedger needs psycopg 3 and psycopg-pool: "
                "pip install 'langchain-runtime[postgres]'"
            ) from exc
        super().__init__(
            clock=clock,
            lease_ttl=lease_ttl,
            journal=journal,
            settle_attempts=settle_attempts,
            retry_delay=retry_delay,
        )
        if timeout <= 0:
            raise ValueError("timeout must be > 0 seconds")
        self.dsn = dsn
        self.timeout = timeout
        self._psycopg = psycopg
        millis = max(int(timeout * 1000), 1)
        self._connect_kwargs: dict[str, Any] = {
            # single statements commit on their own; others run in conn.transaction()
            "autocommit": True,
            "connect_timeout": max(int(timeout + 0.999), 2),
            # the lock timeout fires first, so a held lock is reported as such
            "options": f"-c statement_timeout={2 * millis} -c lock_timeout={millis}",
        }
        self._pool: ConnectionPool[Connection[Any]] = ConnectionPool(
            dsn,
            min_size=1,
            max_size=max(pool_size, 1),
            timeout=timeout,
            open=False,
            check=ConnectionPool.check_connection,
            kwargs=self._connect_kwargs,
            name="langchain-runtime-ledger",
        )
        try:
            self._pool.open(wait=True, timeout=timeout)
        except psycopg.Error as exc:
            self._pool.close(timeout=1.0)
            raise self._unavailable(exc) from exc
        except Exception:
            self._pool.close(timeout=1.0)
            raise
        try:
            self._run(self._create_schema)
        except BaseException:
            self._pool.close(timeout=1.0)
            raise

    def __repr__(self) -> str:
        return f"PostgresLedger({_redact(self.dsn)!r})"

    def close(self) -> None:
        """Close the connection pool (and the journal)."""
        self._pool.close(timeout=self.timeout)
        super().close()

    # -- plumbing -----------------------------------------------------------------

    def _unavailable(self, exc: BaseException) -> LedgerUnavailableError:
        errors = self._psycopg.errors
        if isinstance(exc, errors.LockNotAvailable):
            why = f"another transaction held the budget rows' lock longer than {self.timeout:g}s"
        elif isinstance(exc, errors.QueryCanceled):
            why = f"a statement ran longer than {2 * self.timeout:g}s"
        else:
            why = f"it could not be reached within {self.timeout:g}s"
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "no detail"
        return LedgerUnavailableError(
            f"budget ledger unavailable: PostgreSQL at {_redact(self.dsn)} did not answer: "
            f"{why} ({type(exc).__name__}: {detail}); the call was refused, not sent unmetered"
        )

    def _run(self, work: Callable[[Connection[Any]], T], *, transaction: bool = True) -> T:
        """``work`` in one transaction (or, for one statement, in its own), retried once
        on a dropped connection or a deadlock: every write here is idempotent by id."""
        psycopg = self._psycopg
        # these already waited the whole timeout: trying again would double the wait
        waited = (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable)
        for attempt in (1, 2):
            try:
                try:
                    with self._pool.connection() as conn:
                        return _within(conn, work, transaction)
                except psycopg.OperationalError as exc:
                    if not _is_pool_timeout(exc):
                        raise
                    # The pool has no connection: after an outage it reconnects with a
                    # growing backoff, so ask the server directly rather than wait for it.
                    with psycopg.connect(self.dsn, **self._connect_kwargs) as direct:
                        result = _within(direct, work, transaction)
                    self._pool.check()
                    return result
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if attempt == 1 and not isinstance(exc, waited) and not _is_pool_timeout(exc):
                    logger.debug("ledger transaction retried after %r", exc)
                    continue
                raise self._unavailable(exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _create_schema(self, conn: Connection[Any]) -> None:
        # Already there (the usual case): no DDL, whose locks would queue every other
        # replica's reservations behind this open, even with IF NOT EXISTS.
        ready = conn.execute(
            "SELECT to_regclass('ledger_meta') IS NOT NULL "
            "AND to_regclass('ledger_leases_holder') IS NOT NULL"
        ).fetchone()
        if ready is not None and ready[0]:
            row = conn.execute("SELECT value FROM ledger_meta WHERE key = 'schema'").fetchone()
            if row is not None and row[0] == _SCHEMA_VERSION:
                return
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        for statement in _SCHEMA:
            conn.execute(statement)
        row = conn.execute("SELECT value FROM ledger_meta WHERE key = 'schema'").fetchone()
        if row is None:
            conn.execute("INSERT INTO ledger_meta VALUES ('schema', %s)", (_SCHEMA_VERSION,))
        elif row[0] == "1":  # created before leases had holders: theirs stay NULL
            conn.execute(_MIGRATE_2)
            conn.execute(
                "UPDATE ledger_meta SET value = %s WHERE key = 'schema'", (_SCHEMA_VERSION,)
            )
            logger.info("ledger tables at %s migrated to schema version 2", _redact(self.dsn))
        elif row[0] != _SCHEMA_VERSION:
            raise ConfigurationError(
                f"the ledger tables at {_redact(self.dsn)} have schema version {row[0]}; this "
                f"version of langchain-runtime reads version {_SCHEMA_VERSION}"
            )
        conn.execute(_HOLDER_INDEX)

    @staticmethod
    def _lock_scopes(conn: Connection[Any], scopes: Sequence[str]) -> dict[str, ScopeLimit]:
        """Lock the scopes' rows in sorted order (creating missing ones); their limits."""
        names = sorted(scopes)
        rows = conn.execute(_LOCK_SCOPES, (names,)).fetchall()
        if len(rows) < len(names):
            conn.execute(
                "INSERT INTO ledger_scopes (scope) SELECT s FROM unnest(%s::text[]) AS s "
                "ORDER BY s ON CONFLICT DO NOTHING",
                (names,),
            )
            rows = conn.execute(_LOCK_SCOPES, (names,)).fetchall()
        return {row[0]: _limit(row) for row in rows}

    @staticmethod
    def _totals(
        conn: Connection[Any], keys: dict[str, int], now_us: int, lease_id: str
    ) -> tuple[dict[str, tuple[tuple[Decimal, int], tuple[Decimal, int]]], str | None]:
        """Spend and live holds per scope (one statement: one snapshot), and the lease's
        state; ``lease_id``'s own holds are left out (a reservation replacing itself)."""
        rows = conn.execute(_TOTALS, (lease_id, list(keys), list(keys.values()), now_us, lease_id))
        totals = {}
        state = None
        for row in rows.fetchall():
            totals[row[0]] = ((Decimal(row[1]), int(row[2])), (Decimal(row[3]), int(row[4])))
            state = row[5]
        return totals, state

    # -- storage ------------------------------------------------------------------

    def _set_limit(self, limit: ScopeLimit, now: datetime) -> None:
        def work(conn: Connection[Any]) -> None:
            conn.execute(
                "INSERT INTO ledger_scopes (scope, max_cost, max_tokens, window_kind) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (scope) DO UPDATE SET "
                "max_cost = EXCLUDED.max_cost, max_tokens = EXCLUDED.max_tokens, "
                "window_kind = EXCLUDED.window_kind",
                (limit.scope, limit.max_cost, limit.max_tokens, encode_window(limit.window)),
            )

        self._run(work, transaction=False)

    def _status(self, scope: str, now: datetime) -> ScopeStatus:
        def work(conn: Connection[Any]) -> ScopeStatus:
            row = conn.execute(
                "SELECT scope, max_cost, max_tokens, window_kind FROM ledger_scopes "
                "WHERE scope = %s",
                (scope,),
            ).fetchone()
            limit = ScopeLimit(scope) if row is None else _limit(row)
            keys = {scope: limit.window_key(now)}
            totals, _ = self._totals(conn, keys, to_micros(now), "")
            spent, held = totals[scope]
            start = from_micros(keys[scope]) if limit.window is not None else None
            return ScopeStatus(
                scope, limit.max_cost, limit.max_tokens, limit.window, start, *spent, *held
            )

        return self._run(work)

    def _list_scopes(self) -> Iterable[str]:
        def work(conn: Connection[Any]) -> list[str]:
            rows = conn.execute(
                "SELECT scope FROM ledger_scopes UNION SELECT scope FROM ledger_spend"
            ).fetchall()
            return [r[0] for r in rows]

        return self._run(work, transaction=False)

    def _reserve(self, lease: Lease, now: datetime) -> Lease:
        now_us = to_micros(now)

        def work(conn: Connection[Any]) -> Lease:
            limits = self._lock_scopes(conn, lease.scopes)
            keys = {scope: limits[scope].window_key(now) for scope in lease.scopes}
            totals, state = self._totals(conn, keys, now_us, lease.id)
            if state is not None and state != "held":
                raise ValueError(f"reservation id {lease.id!r} was already {state}")
            for scope in lease.scopes:
                spent, held = totals[scope]
                check_fits(limits[scope], spent, held, lease.cost, lease.tokens)
            written = conn.execute(
                _HOLD,
                {
                    "id": lease.id,
                    "scopes": list(keys),
                    "keys": list(keys.values()),
                    "now": now_us,
                    "expires": to_micros(lease.expires_at),
                    "cost": lease.cost,
                    "tokens": lease.tokens,
                    "windows": json.dumps(keys),
                    "holder": lease.holder,
                },
            ).fetchall()
            if not written:  # settled or released by someone else meanwhile
                raise ValueError(f"reservation id {lease.id!r} is no longer held")
            return lease

        return self._run(work)

    def _renew(self, lease_id: str, now: datetime, expires: datetime) -> bool:
        def work(conn: Connection[Any]) -> bool:
            rows = conn.execute(
                _RENEW, {"id": lease_id, "now": to_micros(now), "expires": to_micros(expires)}
            ).fetchall()
            return bool(rows)

        return self._run(work, transaction=False)

    def _settle(self, lease_id: str, cost: Decimal, tokens: int, now: datetime) -> Written:
        def work(conn: Connection[Any]) -> Written:
            row = conn.execute(_SETTLE, {"id": lease_id, "cost": cost, "tokens": tokens}).fetchone()
            assert row is not None
            if row[0] is None:
                raise KeyError(f"no reservation {lease_id!r} in this ledger")
            if not row[1]:
                return "duplicate"
            return "corrected" if row[0] == "charged" else "settled"

        return self._run(work, transaction=False)

    def _charge_held(self, holder: str, now: datetime) -> int:
        def work(conn: Connection[Any]) -> int:
            row = conn.execute(_CHARGE_HELD, {"holder": holder}).fetchone()
            assert row is not None
            return int(row[0])

        return self._run(work, transaction=False)

    def _release(self, lease_id: str, now: datetime) -> bool:
        def work(conn: Connection[Any]) -> bool:
            row = conn.execute(_RELEASE, {"id": lease_id}).fetchone()
            return row is not None and int(row[0]) > to_micros(now)

        return self._run(work, transaction=False)

    def _purge(self, before: datetime) -> int:
        def work(conn: Connection[Any]) -> int:
            cutoff = to_micros(before)
            conn.execute("DELETE FROM ledger_holds WHERE expires_at < %s", (cutoff,))
            return conn.execute(
                "DELETE FROM ledger_leases WHERE expires_at < %s", (cutoff,)
            ).rowcount

        return self._run(work)


def _within(conn: Connection[Any], work: Callable[[Connection[Any]], T], transaction: bool) -> T:
    if not transaction:
        return work(conn)
    with conn.transaction():
        return work(conn)


def _is_pool_timeout(exc: BaseException) -> bool:
    from psycopg_pool import PoolTimeout

    return isinstance(exc, PoolTimeout)
