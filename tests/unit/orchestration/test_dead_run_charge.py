"""An orchestrator run's ledger leases name the run; resuming it charges what its dead
process left in flight, at its hold, once (plans, never sent while held, are not)."""

from __future__ import annotations

import logging
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from langchain_runtime import (
    InMemoryLedger,
    Orchestrator,
    RunPolicy,
    RunState,
    SQLiteLedger,
    SQLiteRunStore,
    Task,
)
from langchain_runtime.cost.ledger import BudgetLedger, LedgerGate
from langchain_runtime.orchestration._accounting import RunAccounting
from langchain_runtime.testing import SimulatedChatModel

D = Decimal
SCOPE = "team:a"


def test_a_run_s_calls_name_it_and_its_plans_do_not() -> None:
    ledger = InMemoryLedger()
    accounting = RunAccounting(RunPolicy(scopes=(SCOPE,)), None, "run-1", ledger=ledger)
    model = SimulatedChatModel(model_name="gpt-4o-mini")
    try:
        assert accounting.plan(Task("t", prompt="Say {x}", model=model), {"x": "hi"}) is not None
        planned = ledger.status(SCOPE).reserved
        assert planned > 0
        # a plan is released before its call is sent: a dead run owes nothing for it
        assert ledger.charge_held("run-1#0") == 0
        assert ledger.status(SCOPE).reserved == planned
        accounting.release_plan("t")
        accounting.handler.enforcer.reserve("call-1", "gpt-4o-mini", 100, 50, task_id="t")
        call = ledger.status(SCOPE).reserved
        assert ledger.charge_held("run-1#0") == 1  # the call's lease is the run's attempt's
        assert (ledger.status(SCOPE).spent, ledger.status(SCOPE).reserved) == (call, 0)
    finally:
        accounting.close()


class Flaky:
    def __init__(self) -> None:
        self.fail = True

    def orchestrator(self, store: SQLiteRunStore, ledger: BudgetLedger) -> Orchestrator:
        def second(inp: Any) -> str:
            if self.fail:
                raise ValueError("the process died here")
            return "done"

        model = SimulatedChatModel(model_name="gpt-4o-mini", response_tokens=5)
        return Orchestrator(
            [Task("a", prompt="Research {topic}", model=model), Task("b", second, deps=["a"])],
            store=store,
            ledger=ledger,
            policy=RunPolicy(scopes=(SCOPE,)),
        )


def _interrupted_run(store: SQLiteRunStore, ledger: BudgetLedger, flaky: Flaky) -> str:
    """A stored run that stopped, and a call its process left in flight in the ledger."""
    first = flaky.orchestrator(store, ledger).invoke({"topic": "owls"})
    assert first.state is RunState.FAILED
    with LedgerGate(ledger, [SCOPE], holder=f"{first.run_id}#0", renew_every=None) as gate:
        gate.reserve("lost-call", cost="0.2", tokens=300)
    flaky.fail = False
    return first.run_id


def test_resume_charges_the_dead_process_s_calls_in_flight_once(tmp_path: Path) -> None:
    store, ledger, flaky = SQLiteRunStore(tmp_path / "runs.db"), InMemoryLedger(), Flaky()
    try:
        run_id = _interrupted_run(store, ledger, flaky)
        before = ledger.status(SCOPE)
        assert before.reserved == D("0.2")

        result = flaky.orchestrator(store, ledger).resume(run_id)
        assert result.state is RunState.COMPLETED and result.tasks["a"].restored
        after = ledger.status(SCOPE)
        assert (after.spent, after.reserved) == (before.spent + D("0.2"), 0)

        again = flaky.orchestrator(store, ledger).resume(run_id)  # resumed many times
        assert again.state is RunState.COMPLETED
        assert ledger.status(SCOPE).spent == after.spent
        assert ledger.settle("lost-call", cost="0.05", tokens=60) == "corrected"  # late
        assert ledger.status(SCOPE).spent == before.spent + D("0.05")
    finally:
        store.close()


def test_a_ledger_that_cannot_answer_does_not_stop_the_resume(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, flaky = SQLiteRunStore(tmp_path / "runs.db"), Flaky()
    ledger = SQLiteLedger(tmp_path / "ledger.db", timeout=0.1)
    try:
        run_id = _interrupted_run(store, ledger, flaky)
        lock = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # another process holds the ledger's file
        try:
            with caplog.at_level(logging.WARNING):
                result = flaky.orchestrator(store, ledger).resume(run_id)
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert result.state is RunState.COMPLETED  # its one model task was restored
        assert "could not be charged at their hold" in caplog.text
        assert ledger.status(SCOPE).reserved == D("0.2")  # left to expire, as before
    finally:
        store.close()
        ledger.close()


class Recording(InMemoryLedger):
    """Remembers the holder of every lease reserved."""

    def __init__(self) -> None:
        super().__init__()
        self.holders: list[str | None] = []

    def reserve(self, scopes: Any, **kwargs: Any) -> Any:
        self.holders.append(kwargs.get("holder"))
        return super().reserve(scopes, **kwargs)


def test_each_attempt_names_its_own_leases_and_a_resume_charges_only_dead_ones(
    tmp_path: Path,
) -> None:
    store, ledger = SQLiteRunStore(tmp_path / "runs.db"), Recording()
    fail = [True]

    def middle(inp: Any) -> str:
        if fail[0]:
            raise ValueError("the process died here")
        return "done"

    def orchestrator() -> Orchestrator:
        model = SimulatedChatModel(model_name="gpt-4o-mini", response_tokens=5)
        return Orchestrator(
            [Task("a", prompt="Research {topic}", model=model), Task("b", middle, deps=["a"]),
             Task("c", prompt="Sum up {b}", model=model, deps=["b"])],
            store=store, ledger=ledger, policy=RunPolicy(scopes=(SCOPE,)),
        )  # fmt: skip

    try:
        first = orchestrator().invoke({"topic": "owls"})  # attempt 0: a's call
        run_id = first.run_id
        assert {h for h in ledger.holders if h is not None} == {f"{run_id}#0"}
        fail[0] = False
        ledger.holders.clear()
        assert orchestrator().resume(run_id).state is RunState.COMPLETED  # attempt 1: c's
        assert {h for h in ledger.holders if h is not None} == {f"{run_id}#1"}
        # as if attempt 1's process had died with a call in flight, and a later attempt
        # were running elsewhere with one of its own
        with LedgerGate(ledger, [SCOPE], holder=f"{run_id}#1", renew_every=None) as gate:
            gate.reserve("lost-in-1", cost="0.1", tokens=100)
        ledger.reserve(SCOPE, cost="0.3", holder=f"{run_id}#9", reservation_id="live")
        before = ledger.status(SCOPE)
        assert orchestrator().resume(run_id).state is RunState.COMPLETED  # attempt 2
        after = ledger.status(SCOPE)
        assert after.spent == before.spent + D("0.1")  # the dead attempt's call, charged
        assert after.reserved == D("0.3")  # the running attempt's, untouched
    finally:
        store.close()
