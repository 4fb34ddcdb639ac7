"""Fixtures for the ledger tests: one suite, run on every backend, with a settable clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from langchain_runtime.cost.ledger import (
    BudgetLedger,
    InMemoryLedger,
    PostgresLedger,
    SQLiteLedger,
)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc))


LedgerFactory = Callable[..., BudgetLedger]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def make_ledger(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[LedgerFactory]:
    """Opens ledgers of one backend (all on the same storage), closed after the test."""
    opened: list[BudgetLedger] = []
    kind = request.param
    dsn = request.getfixturevalue("postgres_db") if kind == "postgres" else None
    memory: list[InMemoryLedger] = []

    def make(**options: Any) -> BudgetLedger:
        options.setdefault("clock", clock)
        ledger: BudgetLedger
        if kind == "memory":
            if memory:  # one process: every "opening" is the same ledger
                return memory[0]
            ledger = InMemoryLedger(**options)
            memory.append(ledger)
        elif kind == "sqlite":
            ledger = SQLiteLedger(tmp_path / "ledger.db", **options)
        else:
            assert dsn is not None
            ledger = PostgresLedger(dsn, **options)
        opened.append(ledger)
        return ledger

    yield make
    for ledger in opened:
        ledger.close()


@pytest.fixture
def ledger(make_ledger: LedgerFactory) -> BudgetLedger:
    return make_ledger()
