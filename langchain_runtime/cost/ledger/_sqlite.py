"""A ledger in a SQLite file, shared by every process that opens the same file.

Each change is one ``BEGIN IMMEDIATE`` transaction: SQLite lets one writer in at a
time, so the check of every scope and the hold in every scope happen with no other
process in between. A writer that waits longer than ``timeout`` for the file gets
:class:`~langchain_runtime.errors.LedgerUnavailableError`. Money is stored as decimal
text and added up in Python, so it stays exact.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

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

__all__ = ["SQLiteLedger"]

#: 2: leases name their holder (``charge_held``); a version-1 file is migrated on open
_SCHEMA_VERSION = "2"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_scopes (
    scope TEXT PRIMARY KEY, max_cost TEXT, max_tokens INTEGER, window_kind TEXT);
CREATE TABLE IF NOT EXISTS ledger_spend (
    scope TEXT NOT NULL, window_key INTEGER NOT NULL,
    cost TEXT NOT NULL, tokens INTEGER NOT NULL, PRIMARY KEY (scope, window_key));
CREATE TABLE IF NOT EXISTS ledger_leases (
    id TEXT PRIMARY KEY, state TEXT NOT NULL, expires_at INTEGER NOT NULL,
    cost TEXT NOT NULL, tokens INTEGER NOT NULL, windows TEXT NOT NULL, holder TEXT);
CREATE TABLE IF NOT EXISTS ledger_holds (
    scope TEXT NOT NULL, window_key INTEGER NOT NULL, lease_id TEXT NOT NULL,
    cost TEXT NOT NULL, tokens INTEGER NOT NULL, expires_at INTEGER NOT NULL,
    PRIMARY KEY (scope, lease_id));
CREATE INDEX IF NOT EXISTS ledger_holds_lease ON ledger_holds (lease_id);
"""
# after the migration: a version-1 table has no holder column until then
_HOLDER_INDEX = (
    "CREATE INDEX IF NOT EXISTS ledger_leases_holder ON ledger_leases (holder) "
    "WHERE holder IS NOT NULL"
)


class SQLiteLedger(BudgetLedger):
    """A :class:`BudgetLedger` in a SQLite file; several processes may share the file.

    Args:
        path: The ledger file (created if missing).
        timeout: Seconds to wait for another process's transaction before refusing.
        durable: Flush every commit to disk (``synchronous=FULL``), so no settlement is
            lost even on a power cut; False (``NORMAL``) still survives a crashed
            process, and is faster on slow disks.
        clock, lease_ttl, journal, settle_attempts, retry_delay: As for
            :class:`BudgetLedger`.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "ledger.db")
        >>> with SQLiteLedger(path) as ledger:
        ...     _ = ledger.set_limit("user:42", max_tokens=1000)
        ...     lease = ledger.reserve(["user:42"], tokens=800)
        ...     ledger.reserve(["user:42"], tokens=300)
        Traceback (most recent call last):
        ...
        langchain_runtime.errors.BudgetExceededError: Token budget exceeded in scope 'user:42': \
a call needs up to 300 tokens but only 200 of its 1000-token budget is left \
(0 used, 800 reserved by calls in flight)
    """

    def __init__(
        self,
        path: str | Path,
        *,
        timeout: float = 5.0,
        durable: bool = True,
        clock: Clock | None = None,
        lease_ttl: timedelta = DEFAULT_LEASE_TTL,
        journal: SettleJournal | str | Path | None = None,
        settle_attempts: int = 3,
        retry_delay: float = 0.05,
    ) -> None:
        super().__init__(
            clock=clock,
            lease_ttl=lease_ttl,
            journal=journal,
            settle_attempts=settle_attempts,
            retry_delay=retry_delay,
        )
        self.path = Path(path)
        self.timeout = timeout
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                str(self.path), timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise ConfigurationError(f"cannot open ledger file {self.path}: {exc}") from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            with self._write() as db:
                self._create_schema(db)
        except sqlite3.OperationalError as exc:
            self._db.close()
            if "locked" in str(exc) or "busy" in str(exc):
                raise LedgerUnavailableError(
                    f"budget ledger unavailable: ledger file {self.path} stayed locked by "
                    f"another process for {timeout:g}s ({exc})"
                ) from exc
            raise ConfigurationError(f"cannot open ledger file {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:  # not a database, damaged
            self._db.close()
            raise ConfigurationError(f"cannot open ledger file {self.path}: {exc}") from exc
        except BaseException:
            self._db.close()
            raise

    def _create_schema(self, db: sqlite3.Connection) -> None:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        row = db.execute("SELECT value FROM ledger_meta WHERE key = 'schema'").fetchone()
        if row is None:
            db.execute("INSERT INTO ledger_meta VALUES ('schema', ?)", (_SCHEMA_VERSION,))
        elif row[0] == "1":  # written before leases had holders: theirs stay None
            db.execute("ALTER TABLE ledger_leases ADD COLUMN holder TEXT")
            db.execute("UPDATE ledger_meta SET value = ? WHERE key = 'schema'", (_SCHEMA_VERSION,))
        elif row[0] != _SCHEMA_VERSION:
            raise ConfigurationError(
                f"ledger file {self.path} has schema version {row[0]}, this version "
                f"of langchain-runtime reads version {_SCHEMA_VERSION}"
            )
        db.execute(_HOLDER_INDEX)

    def __repr__(self) -> str:
        return f"SQLiteLedger({str(self.path)!r})"

    def close(self) -> None:
        """Close the ledger file (and the journal)."""
        with self._lock:
            self._db.close()
        super().close()

    @contextmanager
    def _write(self, immediate: bool = True) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            except sqlite3.OperationalError as exc:
                raise LedgerUnavailableError(
                    f"budget ledger unavailable: ledger file {self.path} stayed locked by "
                    f"another process for {self.timeout:g}s ({exc}); the call was refused, "
                    "not sent unmetered"
                ) from exc
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            try:
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                self._db.execute("ROLLBACK")
                raise LedgerUnavailableError(
                    f"budget ledger unavailable: could not commit to {self.path} ({exc})"
                ) from exc

    @staticmethod
    def _limit(db: sqlite3.Connection, scope: str) -> ScopeLimit:
        row = db.execute(
            "SELECT max_cost, max_tokens, window_kind FROM ledger_scopes WHERE scope = ?", (scope,)
        ).fetchone()
        if row is None:
            return ScopeLimit(scope)
        max_cost = None if row[0] is None else Decimal(row[0])
        return ScopeLimit(scope, max_cost, row[1], decode_window(row[2]))

    @staticmethod
    def _spent(db: sqlite3.Connection, scope: str, key: int) -> tuple[Decimal, int]:
        row = db.execute(
            "SELECT cost, tokens FROM ledger_spend WHERE scope = ? AND window_key = ?",
            (scope, key),
        ).fetchone()
        return (Decimal(0), 0) if row is None else (Decimal(row[0]), int(row[1]))

    @staticmethod
    def _held(db: sqlite3.Connection, scope: str, key: int, now: int) -> tuple[Decimal, int]:
        rows = db.execute(
            "SELECT cost, tokens FROM ledger_holds "
            "WHERE scope = ? AND window_key = ? AND expires_at > ?",
            (scope, key, now),
        ).fetchall()
        return sum((Decimal(r[0]) for r in rows), Decimal(0)), sum(int(r[1]) for r in rows)

    def _set_limit(self, limit: ScopeLimit, now: datetime) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO ledger_scopes (scope, max_cost, max_tokens, window_kind) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (scope) DO UPDATE SET "
                "max_cost = excluded.max_cost, max_tokens = excluded.max_tokens, "
                "window_kind = excluded.window_kind",
                (
                    limit.scope,
                    None if limit.max_cost is None else str(limit.max_cost),
                    limit.max_tokens,
                    encode_window(limit.window),
                ),
            )

    def _status(self, scope: str, now: datetime) -> ScopeStatus:
        with self._write(immediate=False) as db:
            limit = self._limit(db, scope)
            key = limit.window_key(now)
            spent = self._spent(db, scope, key)
            held = self._held(db, scope, key, to_micros(now))
        start = from_micros(key) if limit.window is not None else None
        return ScopeStatus(
            scope, limit.max_cost, limit.max_tokens, limit.window, start, *spent, *held
        )

    def _list_scopes(self) -> Iterable[str]:
        with self._write(immediate=False) as db:
            rows = db.execute(
                "SELECT scope FROM ledger_scopes UNION SELECT scope FROM ledger_spend"
            ).fetchall()
        return [r[0] for r in rows]

    def _reserve(self, lease: Lease, now: datetime) -> Lease:
        now_us = to_micros(now)
        with self._write() as db:
            row = db.execute("SELECT state FROM ledger_leases WHERE id = ?", (lease.id,)).fetchone()
            if row is not None and row[0] != "held":
                raise ValueError(f"reservation id {lease.id!r} was already {row[0]}")
            # a held id is being replaced: its old hold does not count against the new one
            db.execute("DELETE FROM ledger_holds WHERE lease_id = ?", (lease.id,))
            db.execute(
                "DELETE FROM ledger_holds WHERE scope IN (SELECT value FROM json_each(?)) "
                "AND expires_at <= ?",
                (json.dumps(lease.scopes), now_us),
            )
            windows = {}
            for scope in lease.scopes:
                limit = self._limit(db, scope)
                key = limit.window_key(now)
                spent = self._spent(db, scope, key)
                check_fits(
                    limit, spent, self._held(db, scope, key, now_us), lease.cost, lease.tokens
                )
                windows[scope] = key
            expires = to_micros(lease.expires_at)
            db.execute(
                "INSERT OR REPLACE INTO ledger_leases "
                "(id, state, expires_at, cost, tokens, windows, holder) "
                "VALUES (?, 'held', ?, ?, ?, ?, ?)",
                (
                    lease.id,
                    expires,
                    str(lease.cost),
                    lease.tokens,
                    json.dumps(windows),
                    lease.holder,
                ),
            )
            db.executemany(
                "INSERT INTO ledger_holds VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (scope, key, lease.id, str(lease.cost), lease.tokens, expires)
                    for scope, key in windows.items()
                ],
            )
            db.executemany(
                "INSERT OR IGNORE INTO ledger_spend VALUES (?, ?, '0', 0)",
                list(windows.items()),
            )
        return lease

    def _renew(self, lease_id: str, now: datetime, expires: datetime) -> bool:
        with self._write() as db:
            cur = db.execute(
                "UPDATE ledger_leases SET expires_at = ? "
                "WHERE id = ? AND state = 'held' AND expires_at > ?",
                (to_micros(expires), lease_id, to_micros(now)),
            )
            if cur.rowcount == 0:
                return False
            db.execute(
                "UPDATE ledger_holds SET expires_at = ? WHERE lease_id = ?",
                (to_micros(expires), lease_id),
            )
            return True

    def _settle(self, lease_id: str, cost: Decimal, tokens: int, now: datetime) -> Written:
        with self._write() as db:
            row = db.execute(
                "SELECT state, windows, cost, tokens FROM ledger_leases WHERE id = ?", (lease_id,)
            ).fetchone()
            if row is None:
                raise KeyError(f"no reservation {lease_id!r} in this ledger")
            if row[0] == "settled":
                return "duplicate"
            charged = row[0] == "charged"
            if charged:  # the real cost replaces the charge at the hold
                cost -= Decimal(row[2])
                tokens -= int(row[3])
            db.execute("UPDATE ledger_leases SET state = 'settled' WHERE id = ?", (lease_id,))
            db.execute("DELETE FROM ledger_holds WHERE lease_id = ?", (lease_id,))
            self._add_spend(db, json.loads(row[1]), cost, tokens)
            return "corrected" if charged else "settled"

    def _charge_held(self, holder: str, now: datetime) -> int:
        with self._write() as db:
            rows = db.execute(
                "SELECT id, cost, tokens, windows FROM ledger_leases "
                "WHERE holder = ? AND state = 'held' ORDER BY id",
                (holder,),
            ).fetchall()
            for lease_id, cost, tokens, windows in rows:
                db.execute("UPDATE ledger_leases SET state = 'charged' WHERE id = ?", (lease_id,))
                db.execute("DELETE FROM ledger_holds WHERE lease_id = ?", (lease_id,))
                self._add_spend(db, json.loads(windows), Decimal(cost), int(tokens))
            return len(rows)

    def _add_spend(
        self, db: sqlite3.Connection, windows: dict[str, int], cost: Decimal, tokens: int
    ) -> None:
        for scope, key in windows.items():
            spent_cost, spent_tokens = self._spent(db, scope, key)
            db.execute(
                "INSERT OR REPLACE INTO ledger_spend VALUES (?, ?, ?, ?)",
                (scope, key, str(spent_cost + cost), spent_tokens + tokens),
            )

    def _release(self, lease_id: str, now: datetime) -> bool:
        with self._write() as db:
            row = db.execute(
                "SELECT state, expires_at FROM ledger_leases WHERE id = ?", (lease_id,)
            ).fetchone()
            if row is None or row[0] != "held":
                return False
            db.execute("UPDATE ledger_leases SET state = 'released' WHERE id = ?", (lease_id,))
            db.execute("DELETE FROM ledger_holds WHERE lease_id = ?", (lease_id,))
            return bool(row[1] > to_micros(now))

    def _purge(self, before: datetime) -> int:
        with self._write() as db:
            cutoff = to_micros(before)
            db.execute("DELETE FROM ledger_holds WHERE expires_at < ?", (cutoff,))
            return db.execute("DELETE FROM ledger_leases WHERE expires_at < ?", (cutoff,)).rowcount
