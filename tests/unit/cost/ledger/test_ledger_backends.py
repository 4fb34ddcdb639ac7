"""One behaviour, three backends: every test here runs on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from langchain_runtime.cost.ledger import BudgetLedger
from langchain_runtime.errors import BudgetExceededError, LedgerUnavailableError
from tests.unit.cost.ledger.conftest import FakeClock, LedgerFactory

D = Decimal


def test_a_reservation_holds_in_every_scope_or_in_none(ledger: BudgetLedger) -> None:
    ledger.set_limit("team:research", max_cost="1.00")
    ledger.set_limit("user:42", max_cost="0.10")

    with pytest.raises(BudgetExceededError, match=r"scope 'user:42'.*\$0\.100000 budget") as info:
        ledger.reserve(["team:research", "user:42"], cost="0.20")
    assert info.value.limit == D("0.10")
    assert not isinstance(info.value, LedgerUnavailableError)
    # the refusal held nothing, not even in the scope that had room
    assert ledger.status("team:research").reserved == 0
    assert ledger.status("user:42").reserved == 0

    lease = ledger.reserve(["user:42", "team:research"], cost="0.06", tokens=500)
    assert lease.scopes == ("team:research", "user:42")
    for scope in lease.scopes:
        status = ledger.status(scope)
        assert (status.reserved, status.reserved_tokens) == (D("0.06"), 500)
    assert ledger.status("team:research").remaining == D("0.94")
    assert ledger.status("user:42").remaining == D("0.04")


def test_token_limits_count_reserved_and_spent_tokens(ledger: BudgetLedger) -> None:
    ledger.set_limit("key:ci", max_tokens=1000)
    first = ledger.reserve("key:ci", tokens=600)
    with pytest.raises(BudgetExceededError, match="only 400 of its 1000-token budget"):
        ledger.reserve("key:ci", tokens=401)
    assert ledger.settle(first.id, cost=0, tokens=550) == "settled"
    ledger.reserve("key:ci", tokens=450)
    status = ledger.status("key:ci")
    assert (status.spent_tokens, status.reserved_tokens, status.remaining_tokens) == (550, 450, 0)
    assert status.remaining is None  # no cost limit


def test_settle_replaces_the_hold_exactly_once(ledger: BudgetLedger) -> None:
    ledger.set_limit("team:a", max_cost="1")
    lease = ledger.reserve(["team:a", "user:1"], cost="0.50", tokens=1000)
    assert ledger.settle(lease.id, cost="0.30", tokens=700) == "settled"
    assert ledger.settle(lease.id, cost="0.30", tokens=700) == "duplicate"
    assert ledger.settle(lease.id, cost="0.45", tokens=900) == "duplicate"
    for scope in ("team:a", "user:1"):
        status = ledger.status(scope)
        assert (status.spent, status.spent_tokens) == (D("0.30"), 700)
        assert (status.reserved, status.reserved_tokens) == (0, 0)
    assert ledger.status("team:a").remaining == D("0.70")


def test_an_expired_lease_frees_its_hold_and_a_late_settle_is_still_recorded(
    ledger: BudgetLedger, clock: FakeClock
) -> None:
    ledger.set_limit("team:a", max_cost="1.00")
    crashed = ledger.reserve("team:a", cost="0.80", lease_ttl=timedelta(minutes=2))
    with pytest.raises(BudgetExceededError):
        ledger.reserve("team:a", cost="0.50")

    clock.advance(minutes=2)  # expiry is exclusive: at expires_at the hold is gone
    assert ledger.status("team:a").reserved == 0
    second = ledger.reserve("team:a", cost="0.50")
    assert ledger.renew(crashed.id) is None  # an expired lease is not revived

    # the "crashed" call did reach the provider after all: its spend arrives late
    assert ledger.settle(crashed.id, cost="0.70") == "settled"
    status = ledger.status("team:a")
    assert (status.spent, status.reserved) == (D("0.70"), D("0.50"))
    assert status.remaining == 0  # overrun by the late spend, never negative
    with pytest.raises(BudgetExceededError):
        ledger.reserve("team:a", cost="0.01")
    ledger.settle(second.id, cost="0.10")
    assert ledger.status("team:a").spent == D("0.80")


def test_renew_keeps_a_long_call_s_hold(ledger: BudgetLedger, clock: FakeClock) -> None:
    ledger.set_limit("team:a", max_cost="1")
    lease = ledger.reserve("team:a", cost="0.9", lease_ttl=timedelta(seconds=60))
    assert lease.expires_at == clock.now + timedelta(seconds=60)
    for _ in range(5):
        clock.advance(seconds=50)
        assert ledger.renew(lease.id, lease_ttl=timedelta(seconds=60)) == clock.now + timedelta(
            seconds=60
        )
        assert ledger.status("team:a").reserved == D("0.9")
    clock.advance(seconds=61)
    assert ledger.status("team:a").reserved == 0
    assert ledger.renew("no-such-lease") is None


def test_release_frees_the_hold_and_a_settle_after_it_still_counts(ledger: BudgetLedger) -> None:
    ledger.set_limit("team:a", max_cost="1")
    lease = ledger.reserve("team:a", cost="0.9")
    assert ledger.release(lease.id) is True
    assert ledger.release(lease.id) is False
    assert ledger.status("team:a").reserved == 0
    assert ledger.renew(lease.id) is None
    assert ledger.settle(lease.id, cost="0.2") == "settled"
    assert ledger.status("team:a").spent == D("0.2")
    assert ledger.release(lease.id) is False


def test_reserving_again_under_the_same_id_replaces_the_hold(ledger: BudgetLedger) -> None:
    ledger.set_limit("team:a", max_cost="1")
    ledger.reserve("team:a", cost="0.7", reservation_id="call-1")
    ledger.reserve("team:a", cost="0.9", reservation_id="call-1")  # fits: 0.7 is replaced
    assert ledger.status("team:a").reserved == D("0.9")
    with pytest.raises(BudgetExceededError):
        ledger.reserve("team:a", cost="1.1", reservation_id="call-1")
    assert ledger.status("team:a").reserved == D("0.9")  # a failed replacement keeps the hold
    ledger.settle("call-1", cost="0.5")
    with pytest.raises(ValueError, match="already settled"):
        ledger.reserve("team:a", cost="0.1", reservation_id="call-1")


def test_money_is_exact(ledger: BudgetLedger) -> None:
    ledger.set_limit("team:a", max_cost="0.000003")
    for i in range(20):
        lease = ledger.reserve("team:a", cost="0.00000015")
        ledger.settle(lease.id, cost="0.00000015", tokens=i)
    status = ledger.status("team:a")
    assert status.spent == D("0.00000300")
    assert status.spent_tokens == sum(range(20))
    assert status.remaining == 0
    with pytest.raises(BudgetExceededError):
        ledger.reserve("team:a", cost="0.0000000001")


def test_a_daily_scope_refuses_at_its_limit_and_starts_clean_the_next_day(
    ledger: BudgetLedger, clock: FakeClock
) -> None:
    clock.now = datetime(2026, 12, 1, 23, 0, tzinfo=timezone.utc)
    ledger.set_limit("user:42", max_cost="1.00", window="day")
    lease = ledger.reserve("user:42", cost="1.00")
    ledger.settle(lease.id, cost="1.00")
    clock.advance(minutes=59, seconds=59)
    with pytest.raises(BudgetExceededError, match=r"only \$0\.000000"):
        ledger.reserve("user:42", cost="0.01")
    today = ledger.status("user:42")
    assert today.window_start == datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert (today.spent, today.remaining) == (D("1.00"), 0)

    clock.advance(seconds=1)  # midnight UTC
    tomorrow = ledger.status("user:42")
    assert tomorrow.window_start == datetime(2026, 12, 2, tzinfo=timezone.utc)
    assert (tomorrow.spent, tomorrow.reserved, tomorrow.remaining) == (0, 0, D("1.00"))
    ledger.reserve("user:42", cost="1.00")


def test_a_call_in_flight_across_midnight_is_charged_to_the_day_it_started(
    ledger: BudgetLedger, clock: FakeClock
) -> None:
    clock.now = datetime(2026, 12, 31, 23, 59, tzinfo=timezone.utc)
    ledger.set_limit("team:a", max_cost="1", window="month")
    lease = ledger.reserve("team:a", cost="0.6")
    clock.advance(minutes=2)  # January now
    assert ledger.status("team:a").reserved == 0  # the new window starts clean
    assert ledger.status("team:a").window_start == datetime(2027, 1, 1, tzinfo=timezone.utc)
    ledger.settle(lease.id, cost="0.6")
    assert ledger.status("team:a").spent == 0
    clock.now = datetime(2026, 12, 31, 23, 59, 30, tzinfo=timezone.utc)
    assert ledger.status("team:a").spent == D("0.6")


def test_timedelta_windows_and_hourly_windows(ledger: BudgetLedger, clock: FakeClock) -> None:
    ledger.set_limit("key:ci", max_tokens=100, window=timedelta(minutes=10))
    ledger.set_limit("key:hourly", max_tokens=100, window="hour")
    for scope in ("key:ci", "key:hourly"):
        ledger.settle(ledger.reserve(scope, tokens=100).id, cost=0, tokens=100)
        with pytest.raises(BudgetExceededError):
            ledger.reserve(scope, tokens=1)
    clock.advance(minutes=10)
    ledger.reserve("key:ci", tokens=100)
    with pytest.raises(BudgetExceededError):
        ledger.reserve("key:hourly", tokens=1)
    clock.advance(minutes=50)
    ledger.reserve("key:hourly", tokens=100)
    assert ledger.status("key:ci").window == timedelta(minutes=10)


def test_limits_can_change_and_scopes_are_listed(ledger: BudgetLedger) -> None:
    assert ledger.list_scopes() == []
    ledger.set_limit("team:a", max_cost="0.5")
    lease = ledger.reserve(["team:a", "user:7"], cost="0.4")
    ledger.settle(lease.id, cost="0.4")
    with pytest.raises(BudgetExceededError):
        ledger.reserve("team:a", cost="0.2")
    ledger.set_limit("team:a", max_cost="2")  # a top-up keeps what was spent
    assert ledger.status("team:a").remaining == D("1.6")
    ledger.set_limit("team:a")  # no limit at all
    assert ledger.status("team:a").remaining is None
    ledger.reserve("team:a", cost="100")
    assert ledger.list_scopes() == ["team:a", "user:7"]
    unknown = ledger.status("nobody:here")
    assert (unknown.spent, unknown.reserved, unknown.max_cost) == (0, 0, None)


def test_two_openings_of_one_ledger_share_budgets(make_ledger: LedgerFactory) -> None:
    first, second = make_ledger(), make_ledger()
    first.set_limit("team:a", max_cost="1")
    lease = second.reserve("team:a", cost="0.7")
    with pytest.raises(BudgetExceededError):
        first.reserve("team:a", cost="0.4")
    assert first.settle(lease.id, cost="0.5") == "settled"
    assert second.settle(lease.id, cost="0.5") == "duplicate"
    assert second.status("team:a").spent == D("0.5")


def test_unknown_reservation_and_bad_arguments_are_clear_errors(ledger: BudgetLedger) -> None:
    with pytest.raises(KeyError, match="no reservation 'nope'"):
        ledger.settle("nope", cost="0.1")
    assert ledger.release("nope") is False
    with pytest.raises(ValueError, match="at least one scope"):
        ledger.reserve([], cost="0.1")
    with pytest.raises(ValueError, match="non-empty string"):
        ledger.reserve([""], cost="0.1")
    with pytest.raises(ValueError, match="cost must be a finite amount >= 0"):
        ledger.reserve("team:a", cost="-1")
    with pytest.raises(ValueError, match="tokens must be an integer"):
        ledger.reserve("team:a", tokens=-5)
    with pytest.raises(ValueError, match="window must be None, 'hour'"):
        ledger.set_limit("team:a", max_cost=1, window="fortnight")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_tokens must be an integer"):
        ledger.set_limit("team:a", max_tokens=1.5)  # type: ignore[arg-type]
    assert ledger.list_scopes() == []


def test_purge_forgets_old_reservations_but_keeps_spend(
    ledger: BudgetLedger, clock: FakeClock
) -> None:
    ledger.set_limit("team:a", max_cost="1")
    old = ledger.reserve("team:a", cost="0.3", lease_ttl=timedelta(minutes=5))
    ledger.settle(old.id, cost="0.2")
    clock.advance(days=8)
    recent = ledger.reserve("team:a", cost="0.1")
    assert ledger.purge(timedelta(days=7)) == 1
    assert ledger.settle(recent.id, cost="0.1") == "settled"
    with pytest.raises(KeyError):
        ledger.settle(old.id, cost="0.2")  # forgotten: too late to count it again
    assert ledger.status("team:a").spent == D("0.3")


def test_threads_sharing_one_ledger_never_overspend(ledger: BudgetLedger) -> None:
    ledger.set_limit("team:a", max_cost="0.50", max_tokens=4_000)
    billed: list[tuple[Decimal, int]] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(12):
            cost, tokens = D("0.013") * (1 + (n + i) % 3), 90 + (n * i) % 50
            try:
                lease = ledger.reserve(["team:a", f"user:{n}"], cost=cost, tokens=tokens)
            except BudgetExceededError:
                continue
            with lock:
                billed.append((cost, tokens))
            assert ledger.settle(lease.id, cost=cost, tokens=tokens) == "settled"

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive()
    status = ledger.status("team:a")
    assert status.spent == sum((c for c, _ in billed), D(0)) <= D("0.50")
    assert status.spent_tokens == sum(t for _, t in billed) <= 4_000
    assert status.reserved == 0
    assert status.remaining is not None and status.remaining < D("0.039")  # it was used up
