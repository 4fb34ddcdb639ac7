"""The three backends agree: random sequences of operations, the same answers everywhere.

Hypothesis drives reservations (by one of two holders, or none), settlements (on
time, late, twice, after a charge), releases, renewals, charges of a dead holder's
leases, limit changes and the clock; after every step each backend must have given
the same outcome and report the same status for every scope. With every settlement
at most its reservation and nothing settled late, no scope ever goes over its limit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from langchain_runtime.cost.ledger import BudgetLedger, InMemoryLedger, PostgresLedger, SQLiteLedger
from langchain_runtime.errors import BudgetExceededError
from tests.unit.cost.ledger.conftest import FakeClock

SCOPES = ("team:a", "user:1", "user:2")
COSTS = st.sampled_from([Decimal("0"), Decimal("0.01"), Decimal("0.05"), Decimal("0.125")])
TTL = timedelta(seconds=60)
HOLDERS = ("run-a", "run-b")

ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("reserve"),
            st.sets(st.sampled_from(SCOPES), min_size=1),
            COSTS,
            st.integers(0, 300),
            st.sampled_from([None, *HOLDERS]),
        ),
        st.tuples(st.just("charge"), st.sampled_from(HOLDERS)),
        st.tuples(st.just("settle"), st.integers(0, 30), st.floats(0, 1), st.booleans()),
        st.tuples(st.just("release"), st.integers(0, 30)),
        st.tuples(st.just("renew"), st.integers(0, 30)),
        st.tuples(st.just("advance"), st.sampled_from([30, 60, 61, 3600])),
        st.tuples(
            st.just("limit"),
            st.sampled_from(SCOPES),
            st.sampled_from([None, Decimal("0.1"), Decimal("0.3")]),
            st.sampled_from([None, 200, 600]),
            st.sampled_from([None, "hour", timedelta(minutes=3)]),
        ),
    ),
    max_size=40,
)


def _apply(ledger: BudgetLedger, op: tuple[Any, ...], ids: list[str], prefix: str) -> object:
    kind = op[0]
    try:
        if kind == "reserve":
            lease = ledger.reserve(
                [prefix + s for s in op[1]],
                cost=op[2],
                tokens=op[3],
                reservation_id=f"{prefix}{len(ids)}",
                holder=None if op[4] is None else prefix + op[4],
            )
            ids.append(lease.id)
            return ("held", lease.scopes, lease.cost, lease.tokens, lease.expires_at)
        if kind == "charge":
            return ("charged", ledger.charge_held(prefix + op[1]))
        if kind == "limit":
            return ledger.set_limit(prefix + op[1], max_cost=op[2], max_tokens=op[3], window=op[4])
        if not ids and kind in ("settle", "release", "renew"):
            return None
        lease_id = ids[op[1] % len(ids)] if ids else ""
        if kind == "settle":
            return ledger.settle(lease_id, cost=Decimal(str(round(op[2], 3))), tokens=int(op[3]))
        if kind == "release":
            return ledger.release(lease_id)
        if kind == "renew":
            return ledger.renew(lease_id)
    except BudgetExceededError as exc:
        return ("refused", exc.limit, exc.spent)
    except ValueError as exc:
        return ("value-error", str(exc).replace(prefix, ""))
    return None


def _status(ledger: BudgetLedger, prefix: str) -> list[tuple[Any, ...]]:
    out = []
    for scope in SCOPES:
        s = ledger.status(prefix + scope)
        out.append((s.spent, s.spent_tokens, s.reserved, s.reserved_tokens, s.remaining,
                    s.remaining_tokens, s.window_start))  # fmt: skip
    return out


@pytest.fixture
def backends(postgres_db: str, tmp_path: Path) -> Iterator[tuple[FakeClock, list[BudgetLedger]]]:
    clock = FakeClock(datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc))
    ledgers: list[BudgetLedger] = [
        InMemoryLedger(clock=clock, lease_ttl=TTL),
        SQLiteLedger(tmp_path / "l.db", clock=clock, lease_ttl=TTL),
        PostgresLedger(postgres_db, clock=clock, lease_ttl=TTL),
    ]
    yield clock, ledgers
    for ledger in ledgers:
        ledger.close()


@pytest.mark.postgres
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=ops)
# a dead holder's leases: one live, one expired, one settled, one released, another
# holder's; charged, charged again, then late settlements (corrected, duplicate)
@example(
    steps=[
        ("limit", "team:a", Decimal("0.3"), 600, "hour"),
        ("reserve", {"team:a", "user:1"}, Decimal("0.125"), 200, "run-a"),
        ("advance", 61),
        ("reserve", {"team:a"}, Decimal("0.05"), 100, "run-a"),
        ("reserve", {"team:a"}, Decimal("0.01"), 10, "run-a"),
        ("settle", 2, 0.004, True),
        ("reserve", {"user:1"}, Decimal("0.01"), 10, "run-a"),
        ("release", 3),
        ("reserve", {"team:a", "user:2"}, Decimal("0.05"), 50, "run-b"),
        ("reserve", {"team:a"}, Decimal("0.01"), 50, None),
        ("charge", "run-a"),
        ("charge", "run-a"),
        ("settle", 0, 0.1, True),
        ("settle", 0, 0.1, True),
        ("settle", 1, 0.02, False),
        ("advance", 3600),
        ("charge", "run-b"),
        ("settle", 4, 0.5, True),
    ]
)
def test_backends_agree_on_every_step(
    backends: tuple[FakeClock, list[BudgetLedger]], steps: list[tuple[Any, ...]]
) -> None:
    clock, ledgers = backends
    prefix = f"{uuid.uuid4().hex[:8]}/"  # each example has its own scopes and ids
    ids: list[list[str]] = [[] for _ in ledgers]
    for step in steps:
        if step[0] == "advance":
            clock.advance(seconds=step[1])
            outcomes: list[object] = [None]
        else:
            outcomes = [_apply(ledger, step, ids[i], prefix) for i, ledger in enumerate(ledgers)]
        event(f"{step[0]} -> {type(outcomes[0]).__name__}:{str(outcomes[0])[:10]}")
        assert all(o == outcomes[0] for o in outcomes), (step, outcomes)
        statuses = [_status(ledger, prefix) for ledger in ledgers]
        assert all(s == statuses[0] for s in statuses), (step, statuses)
        for row in statuses[0]:
            assert row[4] is None or row[4] >= 0
            assert row[5] is None or row[5] >= 0
