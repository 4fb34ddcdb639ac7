"""The ledger fails closed: no answer means no call; a settle that cannot be written waits."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from langchain_runtime.cost.ledger import LedgerGate, PostgresLedger, SettleJournal, SQLiteLedger
from langchain_runtime.errors import (
    BudgetExceededError,
    ConfigurationError,
    LedgerUnavailableError,
)
from tests.postgres_server import PostgresServer

D = Decimal


@pytest.mark.postgres
def test_postgres_stopped_mid_run_refuses_calls_and_journals_settles(
    postgres_server: PostgresServer, postgres_db: str, tmp_path: Path
) -> None:
    journal_file = tmp_path / "journal.db"
    ledger = PostgresLedger(postgres_db, timeout=0.5, journal=journal_file, settle_attempts=2)
    ledger.set_limit("team:a", max_cost="1.00")
    in_flight = ledger.reserve(["team:a", "user:1"], cost="0.40")
    done = ledger.reserve("team:a", cost="0.10")
    ledger.settle(done.id, cost="0.05")

    postgres_server.stop()
    with pytest.raises(LedgerUnavailableError) as refused:
        ledger.reserve("team:a", cost="0.01")
    message = str(refused.value)
    assert "budget ledger unavailable: PostgreSQL" in message
    assert "refused, not sent unmetered" in message
    assert isinstance(refused.value, BudgetExceededError)  # stops whatever stops on budgets
    # the call in flight ends during the outage: its spend is kept, not lost
    assert ledger.settle(in_flight.id, cost="0.35", tokens=900) == "journaled"
    assert len(ledger.journal) == 1
    with pytest.raises(LedgerUnavailableError):
        ledger.status("team:a")
    ledger.close()  # the process goes away with the journal on disk

    postgres_server.start()
    revived = PostgresLedger(postgres_db, timeout=1.0, journal=journal_file)
    for scope in ("team:a", "user:1"):
        status = revived.status(scope)  # replays the journal first
        assert (status.reserved, status.spent) == (0, D("0.40") if scope == "team:a" else D("0.35"))
    assert revived.status("user:1").spent_tokens == 900
    assert len(revived.journal) == 0
    assert revived.settle(in_flight.id, cost="0.35", tokens=900) == "duplicate"
    assert revived.status("team:a").spent == D("0.40")
    revived.close()


@pytest.mark.postgres
def test_the_same_ledger_object_recovers_when_postgres_is_back(
    postgres_server: PostgresServer, postgres_db: str
) -> None:
    ledger = PostgresLedger(postgres_db, timeout=0.5, settle_attempts=2)
    gate = LedgerGate(ledger, ["team:a"], renew_every=None)
    ledger.set_limit("team:a", max_cost="1")
    gate.reserve("call-1", cost="0.5")
    postgres_server.stop()
    with pytest.raises(LedgerUnavailableError):
        gate.reserve("call-2", cost="0.1")
    assert gate.settle("call-1", cost="0.25") == "journaled"  # never raises
    assert gate.release("call-2") is False
    postgres_server.start()
    # the pool drops its dead connections and the journal is replayed before the reserve
    gate.reserve("call-3", cost="0.75")
    status = ledger.status("team:a")
    assert (status.spent, status.reserved, status.remaining) == (D("0.25"), D("0.75"), 0)
    ledger.close()


@pytest.mark.postgres
def test_a_lock_held_past_the_timeout_refuses_the_call(postgres_db: str) -> None:
    ledger = PostgresLedger(postgres_db, timeout=0.5)
    ledger.set_limit("team:a", max_cost="1")
    with psycopg.connect(postgres_db) as blocker:
        blocker.execute("SELECT * FROM ledger_scopes WHERE scope = 'team:a' FOR UPDATE")
        with pytest.raises(
            LedgerUnavailableError, match=r"held the budget rows' lock longer than 0\.5s"
        ):
            ledger.reserve("team:a", cost="0.1")
        blocker.rollback()
    ledger.reserve("team:a", cost="0.1")
    assert ledger.status("team:a").reserved == D("0.1")
    ledger.close()


def test_a_postgres_ledger_that_cannot_connect_at_start_says_so(tmp_path: Path) -> None:
    with pytest.raises(
        LedgerUnavailableError, match="PostgreSQL at postgresql://nobody:\\*\\*\\*@"
    ):
        PostgresLedger(f"postgresql://nobody:secret@/db?host={tmp_path}", timeout=0.5)


def test_a_sqlite_file_locked_by_another_process_refuses_then_replays(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = SQLiteLedger(path, timeout=0.2)
    ledger.set_limit("team:a", max_cost="1")
    lease = ledger.reserve("team:a", cost="0.6")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(LedgerUnavailableError, match="stayed locked by another process"):
        ledger.reserve("team:a", cost="0.1")
    assert ledger.settle(lease.id, cost="0.5") == "journaled"
    other.execute("COMMIT")
    other.close()
    assert ledger.replay_journal() == 1
    status = ledger.status("team:a")
    assert (status.spent, status.reserved) == (D("0.5"), 0)
    ledger.close()


def test_the_journal_keeps_the_latest_settlement_per_call_in_order(tmp_path: Path) -> None:
    journal = SettleJournal(tmp_path / "j.db")
    journal.add("a", D("0.1"), 1)
    journal.add("b", D("0.2"), 2)
    journal.add("a", D("0.3"), 3)
    assert [(e.lease_id, e.cost, e.tokens) for e in journal.pending()] == [
        ("a", D("0.3"), 3),
        ("b", D("0.2"), 2),
    ]
    journal.close()
    reopened = SettleJournal(tmp_path / "j.db")
    assert len(reopened) == 2
    reopened.close()


def test_a_file_that_is_not_a_ledger_is_a_configuration_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database file at all, just text" * 100)
    with pytest.raises(ConfigurationError, match="cannot open ledger file"):
        SQLiteLedger(junk)
    with pytest.raises(ConfigurationError, match="cannot open ledger file"):
        SQLiteLedger(tmp_path / "missing-folder" / "ledger.db")
    newer = tmp_path / "newer.db"
    SQLiteLedger(newer).close()
    with sqlite3.connect(newer) as db:
        db.execute("UPDATE ledger_meta SET value = '99' WHERE key = 'schema'")
    db.close()
    with pytest.raises(ConfigurationError, match="schema version 99"):
        SQLiteLedger(newer)
