"""A ledger database written before leases had holders (schema version 1) keeps working.

Each test lays the version-1 tables down with that version's own DDL, writes rows as
it wrote them (a limit, spend, a lease in flight), then opens the ledger with this
code: the tables are migrated on open (``ledger_meta`` says version 2), nothing
recorded is lost, the old lease can still be settled, and new leases name holders.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from langchain_runtime.cost.ledger import BudgetLedger, PostgresLedger, SQLiteLedger
from langchain_runtime.cost.ledger._model import to_micros
from tests.unit.cost.ledger.conftest import FakeClock

D = Decimal

# langchain-runtime's ledger DDL at schema version 1, verbatim
SQLITE_V1 = """
CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_scopes (
    scope TEXT PRIMARY KEY, max_cost TEXT, max_tokens INTEGER, window_kind TEXT);
CREATE TABLE IF NOT EXISTS ledger_spend (
    scope TEXT NOT NULL, window_key INTEGER NOT NULL,
    cost TEXT NOT NULL, tokens INTEGER NOT NULL, PRIMARY KEY (scope, window_key));
CREATE TABLE IF NOT EXISTS ledger_leases (
    id TEXT PRIMARY KEY, state TEXT NOT NULL, expires_at INTEGER NOT NULL,
    cost TEXT NOT NULL, tokens INTEGER NOT NULL, windows TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_holds (
    scope TEXT NOT NULL, window_key INTEGER NOT NULL, lease_id TEXT NOT NULL,
    cost TEXT NOT NULL, tokens INTEGER NOT NULL, expires_at INTEGER NOT NULL,
    PRIMARY KEY (scope, lease_id));
CREATE INDEX IF NOT EXISTS ledger_holds_lease ON ledger_holds (lease_id);
"""
POSTGRES_V1 = (
    "CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS ledger_scopes (scope TEXT PRIMARY KEY, max_cost NUMERIC, "
    "max_tokens BIGINT, window_kind TEXT)",
    "CREATE TABLE IF NOT EXISTS ledger_spend (scope TEXT NOT NULL, window_key BIGINT NOT NULL, "
    "cost NUMERIC NOT NULL, tokens BIGINT NOT NULL, PRIMARY KEY (scope, window_key))",
    "CREATE TABLE IF NOT EXISTS ledger_leases (id TEXT PRIMARY KEY, state TEXT NOT NULL, "
    "expires_at BIGINT NOT NULL, cost NUMERIC NOT NULL, tokens BIGINT NOT NULL, "
    "windows JSONB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS ledger_holds (scope TEXT NOT NULL, window_key BIGINT NOT NULL, "
    "lease_id TEXT NOT NULL, cost NUMERIC NOT NULL, tokens BIGINT NOT NULL, "
    "expires_at BIGINT NOT NULL, PRIMARY KEY (scope, lease_id))",
    "CREATE INDEX IF NOT EXISTS ledger_holds_lease ON ledger_holds (lease_id)",
)
# what version 1 had written: a $1 limit, $0.10 spent, a $0.30 call in flight
ROWS = (
    "INSERT INTO ledger_meta VALUES ('schema', '1')",
    "INSERT INTO ledger_scopes VALUES ('team:a', '1', NULL, NULL)",
    "INSERT INTO ledger_spend VALUES ('team:a', 0, '0.10', 100)",
    "INSERT INTO ledger_leases VALUES ('old-call', 'held', {expires}, '0.30', 300, {windows})",
    "INSERT INTO ledger_holds VALUES ('team:a', 0, 'old-call', '0.30', 300, {expires})",
)


def _statements(clock: FakeClock, windows: str) -> list[str]:
    expires = to_micros(clock.now + timedelta(minutes=5))
    return [sql.format(expires=expires, windows=windows) for sql in ROWS]


def _check_migrated(ledger: BudgetLedger) -> None:
    status = ledger.status("team:a")
    assert (status.spent, status.spent_tokens, status.reserved) == (D("0.10"), 100, D("0.30"))
    assert status.remaining == D("0.60")
    assert ledger.charge_held("run-1") == 0  # the old lease names no holder
    assert ledger.settle("old-call", cost="0.25", tokens=250) == "settled"
    new = ledger.reserve("team:a", cost="0.40", tokens=400, holder="run-1")
    assert new.holder == "run-1"
    assert ledger.charge_held("run-1") == 1
    status = ledger.status("team:a")
    assert (status.spent, status.spent_tokens, status.reserved) == (D("0.75"), 750, 0)


def test_a_version_1_sqlite_ledger_file_is_migrated_on_open(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "ledger.db"
    db = sqlite3.connect(path)
    db.executescript(SQLITE_V1)
    for sql in _statements(clock, "'" + json.dumps({"team:a": 0}) + "'"):
        db.execute(sql)
    db.commit()
    db.close()

    with SQLiteLedger(path, clock=clock) as ledger:
        _check_migrated(ledger)
    with SQLiteLedger(path, clock=clock) as again:  # opening a migrated file changes nothing
        assert again.status("team:a").spent == D("0.75")
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT value FROM ledger_meta WHERE key = 'schema'").fetchone() == ("2",)
        columns = [row[1] for row in db.execute("PRAGMA table_info(ledger_leases)")]
        assert columns[-1] == "holder"
    finally:
        db.close()


@pytest.mark.postgres
def test_version_1_postgres_ledger_tables_are_migrated_on_open(
    postgres_db: str, clock: FakeClock
) -> None:
    import psycopg

    with psycopg.connect(postgres_db, autocommit=True) as conn:
        for statement in POSTGRES_V1:
            conn.execute(statement)
        for sql in _statements(clock, "'" + json.dumps({"team:a": 0}) + "'::jsonb"):
            conn.execute(sql)  # type: ignore[call-overload]

    first, second = PostgresLedger(postgres_db, clock=clock), PostgresLedger(postgres_db)
    try:  # a second replica opening the migrated tables migrates nothing again
        _check_migrated(first)
        assert second.status("team:a").spent == D("0.75")
    finally:
        first.close()
        second.close()
    with psycopg.connect(postgres_db) as conn:
        row: Any = conn.execute("SELECT value FROM ledger_meta WHERE key = 'schema'").fetchone()
        assert row == ("2",)


@pytest.mark.postgres
def test_opening_a_ready_postgres_ledger_takes_no_table_lock(postgres_db: str) -> None:
    """A replica starting (or reconnecting) while a call's lease row is being written
    must not wait for it, nor make other writers queue behind its DDL."""
    import psycopg

    from langchain_runtime.cost.ledger import PostgresLedger

    first = PostgresLedger(postgres_db)
    first.reserve(["team:a"], cost="1", reservation_id="in-flight", holder="r#0")
    writer = psycopg.connect(postgres_db)  # a transaction holding that lease's row
    try:
        writer.execute("UPDATE ledger_leases SET expires_at = expires_at WHERE id = 'in-flight'")
        second = PostgresLedger(postgres_db, timeout=1.0)  # opens without waiting
        assert second.status("team:a").reserved == 1
        second.close()
    finally:
        writer.rollback()
        writer.close()
        first.close()
