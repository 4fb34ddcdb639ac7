"""A ledger in PostgreSQL, shared by any number of processes and machines.

A reservation is one transaction that locks the rows of its scopes with
``SELECT ... FOR UPDATE`` in sorted order (so two transactions never wait on each other
in a cycle), reads spend and live holds, and writes the hold only if every scope has
room: two replicas can never both pass a check they would fail together. Settlements
lock the same rows first. Every statement has a ``statement_timeout`` and a
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

from langchain_runtime.cost.ledger._base import DEFAULT_LEASE_TTL, BudgetLedger
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

_SCHEMA_VERSION = "1"
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
    "windows TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS ledger_holds (scope TEXT NOT NULL, window_key BIGINT NOT NULL, "
    "lease_id TEXT NOT NULL, cost NUMERIC NOT NULL, tokens BIGINT NOT NULL, "
    "expires_at BIGINT NOT NULL, PRIMARY KEY (scope, lease_id))",
    "CREATE INDEX IF NOT EXISTS ledger_holds_lease ON ledger_holds (lease_id)",
)
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

    Example:
        >>> ledger = PostgresLedger("postgresql://app@db.internal/app")  # doctest: +SKIP
        >>> _ = ledger.set_limit("team:research", max_cost="100", window="month")  # doctest: +SKIP
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
        self._run(self._create_schema)

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

    def _run(self, work: Callable[[Connection[Any]], T]) -> T:
        """``work`` in one transaction, retried once on a dropped connection or deadlock."""
        psycopg = self._psycopg
        # these already waited the whole timeout: trying again would double the wait
        waited = (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable)
        for attempt in (1, 2):
            try:
                try:
                    with self._pool.connection() as conn, conn.transaction():
                        return work(conn)
                except psycopg.OperationalError as exc:
                    if not _is_pool_timeout(exc):
                        raise
                    # The pool has no connection: after an outage it reconnects with a
                    # growing backoff, so ask the server directly rather than wait for it.
                    direct = psycopg.connect(self.dsn, **self._connect_kwargs)
                    with direct, direct.transaction():
                        result = work(direct)
                    self._pool.check()
                    return result
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if attempt == 1 and not isinstance(exc, waited) and not _is_pool_timeout(exc):
                    logger.debug("ledger transaction retried after %r", exc)
                    continue
                raise self._unavailable(exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _create_schema(self, conn: Connection[Any]) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        for statement in _SCHEMA:
            conn.execute(statement)
        row = conn.execute("SELECT value FROM ledger_meta WHERE key = 'schema'").fetchone()
        if row is None:
            conn.execute("INSERT INTO ledger_meta VALUES ('schema', %s)", (_SCHEMA_VERSION,))
        elif row[0] != _SCHEMA_VERSION:
            raise ConfigurationError(
                f"the ledger tables at {_redact(self.dsn)} have schema version {row[0]}; this "
                f"version of langchain-runtime reads version {_SCHEMA_VERSION}"
            )

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
        conn: Connection[Any], table: str, keys: dict[str, int], now_us: int | None
    ) -> dict[str, tuple[Decimal, int]]:
        live = "" if now_us is None else " AND t.expires_at > %s"
        params: tuple[Any, ...] = (list(keys), list(keys.values()))
        if now_us is not None:
            params += (now_us,)
        rows = conn.execute(
            f"SELECT t.scope, SUM(t.cost), SUM(t.tokens) FROM {table} t "
            "JOIN unnest(%s::text[], %s::bigint[]) AS w(scope, wkey) "
            f"ON t.scope = w.scope AND t.window_key = w.wkey WHERE TRUE{live} GROUP BY t.scope",
            params,
        ).fetchall()
        found = {r[0]: (Decimal(r[1]), int(r[2])) for r in rows}
        return {scope: found.get(scope, (Decimal(0), 0)) for scope in keys}

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

        self._run(work)

    def _status(self, scope: str, now: datetime) -> ScopeStatus:
        def work(conn: Connection[Any]) -> ScopeStatus:
            row = conn.execute(
                "SELECT scope, max_cost, max_tokens, window_kind FROM ledger_scopes "
                "WHERE scope = %s",
                (scope,),
            ).fetchone()
            limit = ScopeLimit(scope) if row is None else _limit(row)
            keys = {scope: limit.window_key(now)}
            spent = self._totals(conn, "ledger_spend", keys, None)[scope]
            held = self._totals(conn, "ledger_holds", keys, to_micros(now))[scope]
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

        return self._run(work)

    def _reserve(self, lease: Lease, now: datetime) -> Lease:
        now_us = to_micros(now)
        expires = to_micros(lease.expires_at)

        def work(conn: Connection[Any]) -> Lease:
            limits = self._lock_scopes(conn, lease.scopes)
            row = conn.execute(
                "SELECT state FROM ledger_leases WHERE id = %s FOR UPDATE", (lease.id,)
            ).fetchone()
            if row is not None and row[0] != "held":
                raise ValueError(f"reservation id {lease.id!r} was already {row[0]}")
            # a held id being replaced, and expired holds, do not count any more
            conn.execute(
                "DELETE FROM ledger_holds WHERE lease_id = %s "
                "OR (scope = ANY(%s) AND expires_at <= %s)",
                (lease.id, list(lease.scopes), now_us),
            )
            keys = {scope: limits[scope].window_key(now) for scope in lease.scopes}
            spent = self._totals(conn, "ledger_spend", keys, None)
            held = self._totals(conn, "ledger_holds", keys, now_us)
            for scope in lease.scopes:
                check_fits(limits[scope], spent[scope], held[scope], lease.cost, lease.tokens)
            conn.execute(
                "INSERT INTO ledger_leases VALUES (%s, 'held', %s, %s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at, "
                "cost = EXCLUDED.cost, tokens = EXCLUDED.tokens, windows = EXCLUDED.windows",
                (lease.id, expires, lease.cost, lease.tokens, json.dumps(keys)),
            )
            conn.execute(
                "INSERT INTO ledger_holds SELECT w.scope, w.wkey, %s, %s, %s, %s "
                "FROM unnest(%s::text[], %s::bigint[]) AS w(scope, wkey)",
                (lease.id, lease.cost, lease.tokens, expires, list(keys), list(keys.values())),
            )
            return lease

        return self._run(work)

    def _renew(self, lease_id: str, now: datetime, expires: datetime) -> bool:
        def work(conn: Connection[Any]) -> bool:
            row = conn.execute(
                "SELECT windows FROM ledger_leases WHERE id = %s", (lease_id,)
            ).fetchone()
            if row is None:
                return False
            self._lock_scopes(conn, list(json.loads(row[0])))
            cur = conn.execute(
                "UPDATE ledger_leases SET expires_at = %s "
                "WHERE id = %s AND state = 'held' AND expires_at > %s",
                (to_micros(expires), lease_id, to_micros(now)),
            )
            if cur.rowcount == 0:
                return False
            conn.execute(
                "UPDATE ledger_holds SET expires_at = %s WHERE lease_id = %s",
                (to_micros(expires), lease_id),
            )
            return True

        return self._run(work)

    def _settle(self, lease_id: str, cost: Decimal, tokens: int, now: datetime) -> bool:
        def work(conn: Connection[Any]) -> bool:
            row = conn.execute(
                "SELECT windows FROM ledger_leases WHERE id = %s", (lease_id,)
            ).fetchone()
            if row is None:
                raise KeyError(f"no reservation {lease_id!r} in this ledger")
            keys: dict[str, int] = json.loads(row[0])
            self._lock_scopes(conn, list(keys))
            state = conn.execute(
                "SELECT state FROM ledger_leases WHERE id = %s FOR UPDATE", (lease_id,)
            ).fetchone()
            if state is None or state[0] == "settled":
                return False
            conn.execute("UPDATE ledger_leases SET state = 'settled' WHERE id = %s", (lease_id,))
            conn.execute("DELETE FROM ledger_holds WHERE lease_id = %s", (lease_id,))
            conn.execute(
                "INSERT INTO ledger_spend SELECT w.scope, w.wkey, %s, %s "
                "FROM unnest(%s::text[], %s::bigint[]) AS w(scope, wkey) "
                "ON CONFLICT (scope, window_key) DO UPDATE SET "
                "cost = ledger_spend.cost + EXCLUDED.cost, "
                "tokens = ledger_spend.tokens + EXCLUDED.tokens",
                (cost, tokens, list(keys), list(keys.values())),
            )
            return True

        return self._run(work)

    def _release(self, lease_id: str, now: datetime) -> bool:
        def work(conn: Connection[Any]) -> bool:
            row = conn.execute(
                "SELECT windows FROM ledger_leases WHERE id = %s", (lease_id,)
            ).fetchone()
            if row is None:
                return False
            self._lock_scopes(conn, list(json.loads(row[0])))
            state = conn.execute(
                "SELECT state, expires_at FROM ledger_leases WHERE id = %s FOR UPDATE",
                (lease_id,),
            ).fetchone()
            if state is None or state[0] != "held":
                return False
            conn.execute("UPDATE ledger_leases SET state = 'released' WHERE id = %s", (lease_id,))
            conn.execute("DELETE FROM ledger_holds WHERE lease_id = %s", (lease_id,))
            return bool(state[1] > to_micros(now))

        return self._run(work)


def _is_pool_timeout(exc: BaseException) -> bool:
    from psycopg_pool import PoolTimeout

    return isinstance(exc, PoolTimeout)
