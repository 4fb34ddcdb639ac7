"""A durable run killed with SIGKILL after its k-th commit, then resumed.

The first part runs in a subprocess on a real SQLite file and ChatOpenAI against a
respx-mocked provider; it is killed right after it reported its k-th task (which it
does only once that task's commit is stored). The resume runs here, on the same file,
against the same mock. Completed tasks get no second request, the outputs equal an
uninterrupted run's, and the run's cost is exactly what the provider billed.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import respx

from langchain_runtime import CostCalculator, RunState, SQLiteLedger, SQLiteRunStore, Usage
from tests.integration import _durable_worker as worker

ROOT = Path(__file__).resolve().parents[2]


def billed(billing: Path) -> list[dict[str, object]]:
    if not billing.exists():
        return []
    return [json.loads(line) for line in billing.read_text().splitlines() if line.strip()]


def price(lines: list[dict[str, object]]) -> Decimal:
    calc = CostCalculator()
    total = Decimal(0)
    for line in lines:
        u = line["usage"]
        assert isinstance(u, dict)
        usage = Usage(
            input_tokens=u["prompt_tokens"],
            output_tokens=u["completion_tokens"],
            total_tokens=u["total_tokens"],
        )
        total += calc.cost("gpt-4o-mini", usage).amount
    return total


def run_and_kill(store: Path, billing: Path, k: int, ledger: Path | None = None) -> None:
    """Run the worker, SIGKILL it after its k-th commit (with a ledger: once task k's
    request reached the provider, so that call is in flight with its lease held)."""
    cmd = [sys.executable, "-m", "tests.integration._durable_worker", str(store), str(billing)]
    with subprocess.Popen(
        [*cmd, "1", *([str(ledger)] if ledger is not None else [])],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            lines: queue.Queue[str] = queue.Queue()
            threading.Thread(
                target=lambda: [lines.put(x) for x in iter(proc.stdout.readline, "")], daemon=True
            ).start()
            for _ in range(k):  # each line is a task whose commit is stored
                try:
                    lines.get(timeout=60)
                except queue.Empty:
                    proc.kill()
                    pytest.fail(f"worker reported fewer than {k} tasks in 60 s")
            if ledger is not None:
                wait_for_request(billing, k)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def wait_for_request(billing: Path, step: int, timeout: float = 60) -> None:
    requests = worker.requests_file(billing)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if requests.exists() and f"1 {step}" in requests.read_text().splitlines():
            return
        time.sleep(0.01)
    pytest.fail(f"step {step}'s request did not reach the provider in {timeout} s")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("whole")
    store = SQLiteRunStore(folder / "runs.db")
    try:
        with respx.mock() as router:
            worker.mock(router, folder / "billing.jsonl", "whole", latency=0)
            result = worker.build(store).invoke({"topic": "owls"})
    finally:
        store.close()
    assert result.state is RunState.COMPLETED
    return {tid: out.content for tid, out in result.outputs.items()}


@pytest.mark.parametrize("k", [1, 3, 5])
def test_killed_after_k_commits_then_resumed_bills_nothing_twice(
    tmp_path: Path, k: int, uninterrupted: dict[str, object]
) -> None:
    store_path, billing = tmp_path / "runs.db", tmp_path / "billing.jsonl"
    run_and_kill(store_path, billing, k)
    first = billed(billing)
    assert sorted(int(str(line["step"])) for line in first) == list(range(k))

    store = SQLiteRunStore(store_path)
    try:
        stored = store.load_run(worker.RUN_ID)
        assert stored is not None and not stored.live
        assert sorted(t for t, r in stored.tasks.items() if r.state == "completed") == [
            f"t{i}" for i in range(k)
        ]
        with respx.mock() as router:
            worker.mock(router, billing, "2", latency=0)
            result = worker.build(store).resume(worker.RUN_ID)
    finally:
        store.close()

    assert result.state is RunState.COMPLETED
    second = [line for line in billed(billing) if line["phase"] == "2"]
    # every task committed before the kill got no second request
    assert sorted(int(str(line["step"])) for line in second) == list(range(k, worker.STEPS))
    assert {t for t, r in result.tasks.items() if r.restored} == {f"t{i}" for i in range(k)}
    assert {tid: out.content for tid, out in result.outputs.items()} == uninterrupted
    assert result.cost.amount == price(first) + price(second)
    assert uuid.UUID(result.run_id)


def test_a_resume_charges_the_killed_process_s_call_in_flight_at_its_hold(
    tmp_path: Path, uninterrupted: dict[str, object]
) -> None:
    store_path, billing, ledger_path = tmp_path / "runs.db", tmp_path / "b.jsonl", tmp_path / "l.db"
    with SQLiteLedger(ledger_path) as setup:
        setup.set_limit(worker.SCOPE, max_cost="1")
    run_and_kill(store_path, billing, 2, ledger_path)  # killed with t2's call in flight
    first = billed(billing)
    assert sorted(int(str(line["step"])) for line in first) == [0, 1]

    store, ledger = SQLiteRunStore(store_path), SQLiteLedger(ledger_path)
    try:
        killed = ledger.status(worker.SCOPE)
        hold = killed.reserved  # t2's lease outlived its process (it would expire, freed)
        assert hold > 0 and killed.spent == price(first)
        with respx.mock() as router:
            worker.mock(router, billing, "2", latency=0)
            result = worker.build(store, ledger).resume(worker.RUN_ID)
        after = ledger.status(worker.SCOPE)
        with respx.mock(assert_all_called=False) as router:  # restores all, charges nothing
            worker.mock(router, billing, "3", latency=0)
            again = worker.build(store, ledger).resume(worker.RUN_ID)
        final = ledger.status(worker.SCOPE)
    finally:
        store.close()
        ledger.close()

    assert result.state is RunState.COMPLETED
    assert {tid: out.content for tid, out in result.outputs.items()} == uninterrupted
    second = [line for line in billed(billing) if line["phase"] == "2"]
    assert sorted(int(str(line["step"])) for line in second) == list(range(2, worker.STEPS))
    # the killed call is charged at its hold (what it may have been billed), the others
    # at what they cost; nothing is held any more
    assert after.reserved == 0
    assert after.spent == price(first) + hold + price(second)
    assert after.remaining == Decimal(1) - after.spent
    assert result.cost.amount == price(first) + price(second)
    assert again.state is RunState.COMPLETED
    assert all(tr.restored for tr in again.tasks.values())
    assert (final.spent, final.reserved) == (after.spent, 0)
