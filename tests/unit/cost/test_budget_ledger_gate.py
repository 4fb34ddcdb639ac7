"""BudgetEnforcer with a LedgerGate: the local budget and the ledger scopes are one
reservation, all or nothing; ledger calls happen outside the enforcer's lock."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from langchain_runtime.cost import BudgetEnforcer
from langchain_runtime.cost.ledger import InMemoryLedger, Lease, LedgerGate, ScopeStatus
from langchain_runtime.domain import Budget, Usage
from langchain_runtime.errors import (
    BudgetExceededError,
    ConfigurationError,
    LedgerUnavailableError,
)

MODEL = "gpt-4o-mini"
SCOPE = "team:x"


def _enforcer(ledger: InMemoryLedger, budget: Budget | None = None, **kw: object) -> BudgetEnforcer:
    return BudgetEnforcer(budget, gate=LedgerGate(ledger, [SCOPE], renew_every=None), **kw)  # type: ignore[arg-type]


def test_reserve_settle_and_release_reach_the_ledger() -> None:
    ledger = InMemoryLedger()
    ledger.set_limit(SCOPE, max_tokens=1000)
    enforcer = _enforcer(ledger)
    res = enforcer.reserve("c1", MODEL, 100, 200)
    assert ledger.status(SCOPE).reserved_tokens == 300
    assert ledger.status(SCOPE).reserved == res.cost > 0
    cost = enforcer.settle("c1", Usage(input_tokens=100, output_tokens=50))
    status = ledger.status(SCOPE)
    assert status.spent == cost.amount and status.spent_tokens == 150
    assert status.reserved_tokens == 0
    enforcer.reserve("c2", MODEL, 100, 200)
    assert enforcer.release("c2") is True
    assert ledger.status(SCOPE).reserved_tokens == 0
    # reset forgets the local spend; the ledger's is shared, and stays
    enforcer.reset()
    assert enforcer.spent.amount == 0 and ledger.status(SCOPE).spent_tokens == 150


def test_a_ledger_refusal_undoes_the_local_hold_and_names_the_task() -> None:
    ledger = InMemoryLedger()
    ledger.set_limit(SCOPE, max_tokens=100)
    enforcer = _enforcer(ledger, Budget(max_tokens=10_000))
    with pytest.raises(BudgetExceededError, match="scope 'team:x'") as refused:
        enforcer.reserve("c1", MODEL, 50, 200, task_id="t")
    assert refused.value.task_id == "t" and refused.value.limit == 100
    assert enforcer.reserved_tokens == 0 and enforcer.reservation("c1") is None
    assert enforcer.remaining_tokens == 10_000


def test_reserving_again_under_an_id_replaces_its_hold_there_too() -> None:
    ledger = InMemoryLedger()
    enforcer = _enforcer(ledger)
    enforcer.reserve("c1", MODEL, 10, 100)
    enforcer.reserve("c1", MODEL, 10, 20)
    assert ledger.status(SCOPE).reserved_tokens == 30 == enforcer.reserved_tokens


class Unreachable(InMemoryLedger):
    """A ledger whose storage stopped answering."""

    down = False

    def _reserve(self, lease: Lease, now: datetime) -> Lease:
        if self.down:
            raise LedgerUnavailableError("budget ledger unavailable: test database is down")
        return super()._reserve(lease, now)

    def _status(self, scope: str, now: datetime) -> ScopeStatus:
        if self.down:
            raise LedgerUnavailableError("budget ledger unavailable: test database is down")
        return super()._status(scope, now)


def test_an_unreachable_ledger_refuses_and_holds_nothing() -> None:
    ledger = Unreachable()
    enforcer = _enforcer(ledger, Budget(max_tokens=10_000))
    ledger.down = True
    with pytest.raises(LedgerUnavailableError, match="unavailable"):
        enforcer.reserve("c1", MODEL, 10, 100)
    with pytest.raises(LedgerUnavailableError):
        enforcer.reserve_up_to("c2", MODEL, 10, 100)
    with pytest.raises(LedgerUnavailableError):
        enforcer.affordable_output_tokens(MODEL, 10)
    assert enforcer.reserved_tokens == 0
    assert enforcer.affordable_output_tokens(MODEL, 10, ledger=False) == 9_990


def test_reserve_up_to_clamps_to_the_ledgers_headroom() -> None:
    ledger = InMemoryLedger()
    ledger.set_limit(SCOPE, max_tokens=500)
    ledger.reserve([SCOPE], tokens=100)  # another process's call in flight
    enforcer = _enforcer(ledger, Budget(max_tokens=10_000))
    assert enforcer.affordable_output_tokens(MODEL, 50) == 350
    res = enforcer.reserve_up_to("c1", MODEL, 50, 4096)
    assert res.output_tokens == 350
    assert ledger.status(SCOPE).remaining_tokens == 0
    with pytest.raises(BudgetExceededError, match="scope 'team:x'"):
        enforcer.reserve_up_to("c2", MODEL, 50, 4096)
    assert enforcer.reserved_tokens == 400


def test_cost_headroom_clamps_through_the_models_price() -> None:
    ledger = InMemoryLedger()
    ledger.set_limit(SCOPE, max_cost="0.0001")  # gpt-4o-mini: $0.15 in, $0.60 out per 1M
    enforcer = _enforcer(ledger)
    res = enforcer.reserve_up_to("c1", MODEL, 100, 4096)
    assert res.output_tokens == int((Decimal(100) - 100 * Decimal("0.15")) / Decimal("0.60"))
    assert ledger.status(SCOPE).reserved <= Decimal("0.0001")


def test_the_headroom_taken_between_the_clamp_and_the_reservation_is_a_clean_refusal() -> None:
    class Racing(InMemoryLedger):
        raced = False

        def _status(self, scope: str, now: datetime) -> ScopeStatus:
            status = super()._status(scope, now)
            if not self.raced:  # another replica reserves right after we looked
                self.raced = True
                self.reserve([SCOPE], tokens=400)
            return status

    ledger = Racing()
    ledger.set_limit(SCOPE, max_tokens=500)
    enforcer = _enforcer(ledger, Budget(max_tokens=10_000))
    with pytest.raises(BudgetExceededError, match="scope 'team:x'"):
        enforcer.reserve_up_to("c1", MODEL, 50, 4096)
    assert enforcer.reserved_tokens == 0 and enforcer.reservation("c1") is None
    assert ledger.status(SCOPE).reserved_tokens == 400  # only the other one's


def test_a_model_without_a_price_is_refused_under_a_ledger() -> None:
    enforcer = _enforcer(InMemoryLedger())
    with pytest.raises(ConfigurationError, match="no-such-model"):
        enforcer.reserve("c1", "no-such-model", 10, 10)


def test_the_lease_renewer_runs_only_while_a_call_is_in_flight() -> None:
    gate = LedgerGate(InMemoryLedger(), [SCOPE])
    gate.reserve("c1", cost=0, tokens=10)
    renewer = gate._renewer
    assert renewer is not None and renewer.is_alive() and gate.renewing
    gate.reserve("c2", cost=0, tokens=10)
    assert gate._renewer is renewer  # one thread for every call in flight
    gate.settle("c1", cost=0, tokens=5)
    assert renewer.is_alive()  # c2 still needs it
    gate.release("c2")
    renewer.join(timeout=5)
    assert not renewer.is_alive() and not gate.renewing
    gate.reserve("c3", cost=0, tokens=10)  # a new call starts a new one
    again = gate._renewer
    assert again is not None and again is not renewer
    gate.close()
    assert not again.is_alive()
    gate.reserve("c4", cost=0, tokens=10)  # closed: the lease just expires if not settled
    assert not gate.renewing
    gate.settle("c4", cost=0, tokens=1)
