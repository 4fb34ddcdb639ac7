"""LedgerGate: what the budget enforcer calls; only reserve may raise, and only to refuse."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from langchain_runtime.cost.ledger import InMemoryLedger, LedgerGate, open_ledger
from langchain_runtime.errors import (
    BudgetExceededError,
    ConfigurationError,
    LedgerUnavailableError,
)
from tests.unit.cost.ledger.conftest import FakeClock


class CountingLedger(InMemoryLedger):
    """An in-memory ledger that tells when a lease was renewed."""

    def __init__(self, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.renewed = threading.Event()

    def renew(self, reservation_id: str, *, lease_ttl: timedelta | None = None) -> datetime | None:
        result = super().renew(reservation_id, lease_ttl=lease_ttl)
        self.renewed.set()
        return result


def test_a_gate_reserves_in_all_its_scopes_and_refuses_like_a_budget(clock: FakeClock) -> None:
    ledger = InMemoryLedger(clock=clock)
    ledger.set_limit("team:a", max_cost="0.10")
    gate = LedgerGate(ledger, ["user:1", "team:a"], renew_every=None)
    gate.reserve("call-1", cost="0.06", tokens=10)
    with pytest.raises(BudgetExceededError, match="scope 'team:a'"):
        gate.reserve("call-2", cost="0.05")
    assert gate.release("call-2") is False
    assert gate.settle("call-1", cost="0.04", tokens=8) == "settled"
    assert gate.settle("call-1", cost="0.04", tokens=8) == "duplicate"
    assert ledger.status("user:1").spent == Decimal("0.04")


def test_a_gate_turns_any_ledger_failure_on_reserve_into_a_refusal(clock: FakeClock) -> None:
    ledger = InMemoryLedger(clock=clock)
    gate = LedgerGate(ledger, ["team:a"], renew_every=None)
    gate.reserve("call-1", cost="0.01")
    gate.settle("call-1", cost="0.01")
    with pytest.raises(LedgerUnavailableError, match="refused, not sent unmetered") as info:
        gate.reserve("call-1", cost="0.01")  # an id already settled: a bug, still refused
    assert isinstance(info.value.__cause__, ValueError)


def test_settle_and_release_never_raise(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    gate = LedgerGate(InMemoryLedger(clock=clock), ["team:a"], renew_every=None)
    assert gate.settle("never-reserved", cost="0.01") is None
    assert "could not settle call never-reserved" in caplog.text
    assert gate.release("never-reserved") is False


def test_the_gate_renews_leases_of_calls_in_flight(clock: FakeClock) -> None:
    ledger = CountingLedger(clock=clock)
    ledger.set_limit("team:a", max_cost="1")
    with LedgerGate(
        ledger,
        ["team:a"],
        lease_ttl=timedelta(seconds=60),
        renew_every=timedelta(milliseconds=10),
    ) as gate:
        gate.reserve("long-call", cost="0.9")
        clock.advance(seconds=50)
        ledger.renewed.clear()
        assert ledger.renewed.wait(timeout=10.0)
        clock.advance(seconds=50)  # 100 s after the reservation: alive thanks to renewal
        assert ledger.status("team:a").reserved == Decimal("0.9")
        gate.settle("long-call", cost="0.5")
    assert ledger.status("team:a").reserved == 0


def test_renew_all_drops_leases_that_already_expired(clock: FakeClock) -> None:
    ledger = InMemoryLedger(clock=clock)
    gate = LedgerGate(ledger, ["team:a"], lease_ttl=timedelta(seconds=10), renew_every=None)
    gate.reserve("a", cost="0.1")
    gate.reserve("b", cost="0.1")
    clock.advance(seconds=5)
    assert gate.renew_all() == 2
    clock.advance(seconds=11)
    assert gate.renew_all() == 0
    gate.close()


def test_open_ledger_reads_urls_and_rejects_unknown_ones(tmp_path: Path) -> None:
    assert type(open_ledger("memory://")).__name__ == "InMemoryLedger"
    ledger = open_ledger(f"sqlite:///{tmp_path}/l.db")
    assert type(ledger).__name__ == "SQLiteLedger"
    ledger.close()
    with pytest.raises(ConfigurationError, match="unknown ledger URL scheme 'redis'"):
        open_ledger("redis://localhost")
    with pytest.raises(ConfigurationError, match=r"looks like sqlite:///ledger\.db"):
        open_ledger("ledger.db")


def test_renew_every_must_be_a_timedelta() -> None:
    with pytest.raises(ValueError, match="renew_every"):
        LedgerGate(InMemoryLedger(), ["team:a"], renew_every="often")
    gate = LedgerGate(InMemoryLedger(), ["team:a"])
    assert gate.renew_every == gate.lease_ttl / 3
    gate.close()  # a gate that never reserved has no thread to stop


def test_headroom_is_the_tightest_scope(clock: FakeClock) -> None:
    ledger = InMemoryLedger(clock=clock)
    gate = LedgerGate(ledger, ["team:a", "user:1", "user:free"], renew_every=None)
    assert gate.headroom() == (None, None)
    ledger.set_limit("team:a", max_cost="1.00", max_tokens=10_000)
    ledger.set_limit("user:1", max_cost="0.30")
    gate.reserve("c1", cost="0.10", tokens=2_000)
    assert gate.headroom() == (Decimal("0.20"), 8_000)
