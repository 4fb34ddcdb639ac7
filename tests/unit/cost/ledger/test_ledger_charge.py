"""charge_held: a dead holder's calls in flight are charged at their hold, on every backend.

A process that dies mid-call settles nothing; its provider may still bill the call.
When the runtime knows the holder is dead it charges those leases at their hold
(instead of letting the hold expire and be spent again by others); a settlement that
still arrives (the process was only paused) replaces the charge exactly once.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from langchain_runtime.cost.ledger import BudgetLedger, LedgerGate
from langchain_runtime.errors import BudgetExceededError
from tests.unit.cost.ledger.conftest import FakeClock, LedgerFactory

D = Decimal


def test_a_dead_holder_s_held_lease_is_charged_at_its_hold(ledger: BudgetLedger) -> None:
    ledger.set_limit("team:a", max_cost="1.00", max_tokens=5000)
    lease = ledger.reserve(["team:a", "user:1"], cost="0.40", tokens=1500, holder="run-1")
    assert lease.holder == "run-1"

    assert ledger.charge_held("run-1") == 1
    for scope in ("team:a", "user:1"):
        status = ledger.status(scope)
        assert (status.spent, status.spent_tokens) == (D("0.40"), 1500)
        assert (status.reserved, status.reserved_tokens) == (0, 0)
    team = ledger.status("team:a")
    assert (team.remaining, team.remaining_tokens) == (D("0.60"), 3500)
    with pytest.raises(BudgetExceededError):
        ledger.reserve("team:a", cost="0.61")

    assert ledger.charge_held("run-1") == 0  # idempotent: nothing is charged twice
    assert ledger.status("team:a").spent == D("0.40")


def test_an_expired_lease_is_still_charged_once_even_after_its_hold_was_freed(
    ledger: BudgetLedger, clock: FakeClock
) -> None:
    ledger.set_limit("team:a", max_cost="1.00")
    ledger.reserve("team:a", cost="0.70", holder="run-1", lease_ttl=timedelta(minutes=1))
    clock.advance(minutes=2)  # the lease expired: its hold went back to the scope
    assert ledger.status("team:a").reserved == 0
    other = ledger.reserve("team:a", cost="0.50", holder="run-2")

    assert ledger.charge_held("run-1") == 1
    status = ledger.status("team:a")
    assert (status.spent, status.reserved) == (D("0.70"), D("0.50"))
    assert status.remaining == 0
    assert ledger.charge_held("run-1") == 0
    assert ledger.settle(other.id, cost="0.20") == "settled"
    assert ledger.status("team:a").spent == D("0.90")


def test_a_late_real_settle_replaces_the_charge_exactly_once(ledger: BudgetLedger) -> None:
    ledger.set_limit("team:a", max_cost="1.00")
    lease = ledger.reserve(["team:a", "user:1"], cost="0.50", tokens=2000, holder="run-1")
    ledger.charge_held("run-1")

    # the process was only paused: its real settlement still arrives
    assert ledger.settle(lease.id, cost="0.123", tokens=777) == "corrected"
    for scope in ("team:a", "user:1"):
        status = ledger.status(scope)
        assert (status.spent, status.spent_tokens, status.reserved) == (D("0.123"), 777, 0)
    assert ledger.settle(lease.id, cost="0.123", tokens=777) == "duplicate"
    assert ledger.settle(lease.id, cost="0.45", tokens=1800) == "duplicate"
    assert ledger.charge_held("run-1") == 0
    assert ledger.status("team:a").spent == D("0.123")
    assert ledger.status("team:a").remaining == D("0.877")


def test_a_charged_lease_is_neither_renewed_released_nor_reserved_again(
    ledger: BudgetLedger,
) -> None:
    lease = ledger.reserve("team:a", cost="0.30", holder="run-1", reservation_id="call-1")
    ledger.charge_held("run-1")
    assert ledger.renew(lease.id) is None
    assert ledger.release(lease.id) is False
    with pytest.raises(ValueError, match="already charged"):
        ledger.reserve("team:a", cost="0.1", reservation_id="call-1", holder="run-1")
    assert ledger.status("team:a").spent == D("0.30")


def test_only_the_holder_s_unsettled_leases_are_charged(ledger: BudgetLedger) -> None:
    ledger.set_limit("team:a", max_cost="10")
    settled = ledger.reserve("team:a", cost="1", holder="run-1")
    ledger.settle(settled.id, cost="0.25")
    released = ledger.reserve("team:a", cost="2", holder="run-1")
    ledger.release(released.id)
    ledger.reserve("team:a", cost="0.5", holder="run-1")
    ledger.reserve("team:a", cost="0.125", holder="run-1")
    ledger.reserve("team:a", cost="3", holder="run-2")
    ledger.reserve("team:a", cost="4")  # no holder: it can only expire

    assert ledger.charge_held("run-1") == 2
    status = ledger.status("team:a")
    assert (status.spent, status.reserved) == (D("0.875"), D("7"))
    assert ledger.charge_held("no-such-run") == 0
    with pytest.raises(ValueError, match="holder is a non-empty string"):
        ledger.charge_held("")
    with pytest.raises(ValueError, match="holder is a non-empty string"):
        ledger.reserve("team:a", cost="0", holder="")


def test_a_lease_reserved_yesterday_is_charged_to_yesterday_s_window(
    ledger: BudgetLedger, clock: FakeClock
) -> None:
    yesterday = datetime(2026, 12, 1, 23, 50, tzinfo=timezone.utc)
    clock.now = yesterday
    ledger.set_limit("user:42", max_cost="1.00", window="day")
    lease = ledger.reserve("user:42", cost="0.60", tokens=100, holder="run-1")
    clock.advance(minutes=20)  # the next day: the process died before midnight

    assert ledger.charge_held("run-1") == 1
    today = ledger.status("user:42")
    assert today.window_start == datetime(2026, 12, 2, tzinfo=timezone.utc)
    assert (today.spent, today.reserved) == (0, 0)
    clock.now = yesterday
    assert ledger.status("user:42").spent == D("0.60")

    clock.advance(hours=1)
    assert ledger.settle(lease.id, cost="0.10", tokens=40) == "corrected"
    clock.now = yesterday
    assert (ledger.status("user:42").spent, ledger.status("user:42").spent_tokens) == (
        D("0.10"),
        40,
    )


def test_reserving_again_under_a_held_id_takes_the_new_holder(ledger: BudgetLedger) -> None:
    ledger.reserve("team:a", cost="0.2", reservation_id="call-1", holder="run-1")
    ledger.reserve("team:a", cost="0.3", reservation_id="call-1", holder="run-2")
    assert ledger.charge_held("run-1") == 0
    assert ledger.charge_held("run-2") == 1
    assert ledger.status("team:a").spent == D("0.3")


def test_a_journaled_settlement_replayed_after_the_charge_corrects_it(
    ledger: BudgetLedger,
) -> None:
    lease = ledger.reserve("team:a", cost="0.50", tokens=900, holder="run-1")
    # the process wrote its settlement to its journal while the ledger was down ...
    ledger.journal.add(lease.id, D("0.05"), 90)
    # ... and a sweep elsewhere declared it dead meanwhile (charge_held replays first,
    # so here the real settlement lands before the charge, which then finds it settled)
    assert ledger.charge_held("run-1") == 0
    status = ledger.status("team:a")
    assert (status.spent, status.spent_tokens, status.reserved) == (D("0.05"), 90, 0)


def test_racing_settlements_and_charges_count_every_call_once(
    make_ledger: LedgerFactory,
) -> None:
    setup = make_ledger()
    setup.set_limit("team:a", max_cost="100")
    ids = [setup.reserve("team:a", cost="0.5", tokens=50, holder="run-1").id for _ in range(24)]
    charger, settler = make_ledger(), make_ledger()
    outcomes: list[str] = []
    charged: list[int] = []
    halfway = threading.Event()

    def settle_all() -> None:
        for n, lease_id in enumerate(ids):
            if n == len(ids) // 2:
                halfway.set()  # the charge starts while the rest are being settled
            outcomes.append(settler.settle(lease_id, cost="0.2", tokens=20))

    def charge() -> None:
        assert halfway.wait(timeout=60)
        charged.append(charger.charge_held("run-1"))

    threads = [threading.Thread(target=settle_all), threading.Thread(target=charge)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive()
    assert len(outcomes) == len(ids) and outcomes[0] == "settled"
    # each call the charge took first is corrected by its settlement, and only those
    assert outcomes.count("corrected") == charged[0]
    assert outcomes.count("settled") == len(ids) - charged[0]
    status = setup.status("team:a")
    # whichever came first for each call, its real cost is what stays, once
    assert (status.spent, status.spent_tokens, status.reserved) == (D("4.8"), 480, 0)
    assert setup.charge_held("run-1") == 0


def test_a_gate_names_its_holder_except_on_placeholders(ledger: BudgetLedger) -> None:
    with LedgerGate(ledger, ["team:a"], holder="run-7") as gate:
        assert "holder='run-7'" in repr(gate)
        call = gate.reserve("call-1", cost="0.3", tokens=10)
        plan = gate.reserve("plan-1", cost="0.2", tokens=10, placeholder=True)
        assert (call.holder, plan.holder) == ("run-7", None)
        assert ledger.charge_held("run-7") == 1
        assert gate.settle("call-1", cost="0.1", tokens=5) == "corrected"
        assert gate.release("plan-1") is True
    status = ledger.status("team:a")
    assert (status.spent, status.reserved) == (D("0.1"), 0)
    with pytest.raises(ValueError, match="holder must be a non-empty string"):
        LedgerGate(ledger, ["team:a"], holder="")
