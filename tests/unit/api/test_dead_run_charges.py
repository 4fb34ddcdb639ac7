"""The server charges the calls dead runs had in flight, and retries when the ledger is down.

The leases here are what a killed process leaves in a real SQLite ledger file (held,
naming their run); the ledger is made unavailable the way it really becomes so, by
another process holding its file's write lock past the ledger's timeout.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from langchain_runtime import SQLiteLedger, SQLiteRunStore
from langchain_runtime.api.server._charges import DeadRunCharges
from langchain_runtime.api.store import RunRecord
from langchain_runtime.config import RuntimeConfig
from tests.unit.api._helpers import wait_for

D = Decimal


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    with SQLiteLedger(path) as dead:  # the killed process: two calls in flight for r1
        dead.set_limit("team:a", max_cost="1")
        dead.reserve("team:a", cost="0.25", tokens=100, holder="r1#0")
        dead.reserve("team:a", cost="0.125", tokens=50, holder="r1#0")
        dead.reserve("team:a", cost="0.5", holder="r2#0")  # another run, still alive
    return path


class FileLock:
    """Another process's write transaction on the ledger file."""

    def __init__(self, path: Path) -> None:
        self.db: sqlite3.Connection | None = sqlite3.connect(path, isolation_level=None)
        self.db.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        if self.db is not None:
            self.db.execute("ROLLBACK")
            self.db.close()
            self.db = None


def test_a_dead_run_is_charged_and_a_refusal_is_retried_at_the_next_sweep(
    ledger_path: Path,
) -> None:
    with SQLiteLedger(ledger_path, timeout=0.1) as ledger:
        counted: list[int] = []
        charges = DeadRunCharges(ledger, lambda run_id: [f"{run_id}#0"], counted.append)
        lock = FileLock(ledger_path)
        try:  # one refusal and the others wait too: each would wait out the timeout
            assert charges.charge(["r1", "r3"]) == 0  # logged, not raised
            assert charges.pending == {"r1", "r3"}
        finally:
            lock.release()
        assert ledger.status("team:a").reserved == D("0.875")

        assert charges.charge() == 2  # the next sweep
        assert counted == [2]  # r1's two leases (r3 had none)
        assert charges.pending == frozenset()
        status = ledger.status("team:a")
        assert (status.spent, status.spent_tokens, status.reserved) == (D("0.375"), 150, D("0.5"))
        assert charges.charge(["r1"]) == 0  # found dead again: nothing twice
        assert ledger.status("team:a").spent == D("0.375")


def test_a_run_resumed_before_the_retry_keeps_its_new_attempt_s_calls(ledger_path: Path) -> None:
    attempts = {"r1": 0}  # the latest attempt no process runs
    with SQLiteLedger(ledger_path, timeout=0.1) as ledger:
        charges = DeadRunCharges(
            ledger, lambda run_id: [f"{run_id}#{n}" for n in range(attempts[run_id] + 1)]
        )
        lock = FileLock(ledger_path)
        try:
            charges.charge(["r1"])
        finally:
            lock.release()
        # a resume runs attempt 1 now, with a call in flight: not the dead attempt's
        ledger.reserve("team:a", cost="0.0625", holder="r1#1")
        assert charges.charge() == 2  # attempt 0's two calls, not attempt 1's
        assert charges.pending == frozenset()
        status = ledger.status("team:a")
        assert (status.spent, status.reserved) == (D("0.375"), D("0.5625"))


def test_a_run_whose_liveness_cannot_be_read_stays_pending(ledger_path: Path) -> None:
    def store_down(run_id: str) -> list[str]:
        raise ConnectionError("the run store did not answer")

    with SQLiteLedger(ledger_path) as ledger:
        charges = DeadRunCharges(ledger, store_down)
        assert charges.charge(["r1"]) == 0
        assert charges.pending == {"r1"}
        assert ledger.status("team:a").reserved == D("0.875")
    assert DeadRunCharges(None, store_down).charge(["r1"]) == 0  # no ledger


def test_a_restarted_server_charges_its_interrupted_runs_once_the_ledger_answers(
    config: RuntimeConfig, ledger_path: Path, tmp_path: Path
) -> None:
    pytest.importorskip("fastapi", reason="the server needs the 'server' extra")
    from langchain_runtime.api.server._manager import RunManager

    store = SQLiteRunStore(tmp_path / "runs.db")  # what the killed server left
    store.create(RunRecord("r1", "running", request={"workflow": "hello"}))
    ledger = SQLiteLedger(ledger_path, timeout=0.1)
    lock = FileLock(ledger_path)
    try:
        manager = RunManager(config, store, ledger=ledger, own_store=True, sweep_interval=0.05)
    except BaseException:
        lock.release()
        raise
    try:
        assert store.load("r1").state == "failed"  # type: ignore[union-attr]
        # the ledger refused at start (its file is locked): nothing charged yet
        assert ledger.status("team:a").reserved == D("0.875")
        lock.release()  # it answers again: the server's retry charges r1
        status = wait_for(
            lambda: (s := ledger.status("team:a")).reserved == D("0.5") and s, timeout=10
        )
        assert status.spent == D("0.375")
        text = manager.metrics.render({}, 0)  # what /metrics shows
        assert "langchain_runtime_dead_run_charges_total 2.0" in text
    finally:
        lock.release()
        manager.close()
        ledger.close()
