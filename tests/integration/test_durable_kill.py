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
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import respx

from langchain_runtime import CostCalculator, RunState, SQLiteRunStore, Usage
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


def run_and_kill(store: Path, billing: Path, k: int) -> None:
    cmd = [sys.executable, "-m", "tests.integration._durable_worker", str(store), str(billing)]
    with subprocess.Popen(
        [*cmd, "1"],
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
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


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
