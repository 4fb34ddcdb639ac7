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
        assert ledger.charge_held("run-1") == 0
        assert ledger.status(SCOPE).reserved == planned
        accounting.release_plan("t")
        accounting.handler.enforcer.reserve("call-1", "gpt-4o-mini", 100, 50, task_id="t")
        call = ledger.status(SCOPE).reserved
        assert ledger.charge_held("run-1") == 1  # the call's lease is the run's
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
    with LedgerGate(ledger, [SCOPE], holder=first.run_id, renew_every=None) as gate:
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
