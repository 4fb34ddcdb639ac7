"""Eight processes share one team budget; some are SIGKILLed mid-call.

Each worker (``_worker.py``) records what the provider billed before it calls it. In
every trial: what was billed fits every scope's limit; calls of killed processes keep
their hold until their leases expire, then nothing is reserved; and once the killed
processes' journals are replayed (late settles, after expiry), ``spent`` equals what
was billed exactly, with nothing counted twice.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from langchain_runtime.cost.ledger import open_ledger
from tests.unit.cost.ledger._worker import LEASE_TTL, TEAM

ROOT = Path(__file__).resolve().parents[4]
WORKERS = 8
CALLS = 14
TEAM_COST = Decimal("0.90")
TEAM_TOKENS = 8_500
PROC_COST = Decimal("0.20")
DEADLINE = 180.0


def _wait_for(
    path: Path, predicate: str, count: int, proc: subprocess.Popen[bytes], may_end: bool = False
) -> bool:
    """Wait until ``path`` has ``count`` lines starting with ``predicate``; False if the
    worker ended first (an error unless ``may_end``)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        if sum(line.startswith(predicate) for line in text.splitlines()) >= count:
            return True
        if proc.poll() is not None:
            if may_end:
                return False
            raise AssertionError(f"worker ended early ({proc.returncode}): {text[-500:]}")
        time.sleep(0.02)
    raise AssertionError(f"worker never wrote {count} x {predicate!r} in {DEADLINE}s")


def _run_trial(url: str, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    setup = open_ledger(url)
    setup.set_limit(TEAM, max_cost=TEAM_COST, max_tokens=TEAM_TOKENS)
    for i in range(WORKERS):
        setup.set_limit(f"proc:{i}", max_cost=PROC_COST)
    setup.close()

    hang_at = {0: rng.randint(0, 3), 1: rng.randint(0, 3)}  # killed while a call is in flight
    killed_anywhere = 2  # killed wherever it happens to be
    outs = [tmp_path / f"worker-{seed}-{i}.log" for i in range(WORKERS)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    go = tmp_path / f"go-{seed}"

    def launch(i: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.unit.cost.ledger._worker", url, str(i), str(outs[i]),
             str(seed), str(CALLS), str(hang_at.get(i, -1)), str(go)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    procs: list[subprocess.Popen[bytes]] = []
    try:
        # The two that will be killed mid-call go first, so the others cannot starve
        # them of budget before they get a call in flight; they stay in flight (holding
        # budget) while the other six compete, and are killed in the middle of that.
        procs += [launch(i) for i in hang_at]
        go.touch()
        for i in hang_at:
            _wait_for(outs[i], "hang", 1, procs[i])
        go.unlink()
        procs += [launch(i) for i in range(len(hang_at), WORKERS)]
        for i in range(len(hang_at), WORKERS):
            _wait_for(outs[i], "ready", 1, procs[i])
        go.touch()  # the other six start together
        # killed wherever it is; if it was starved of budget and ended, it just ended
        killed = [*hang_at]
        if _wait_for(outs[killed_anywhere], "sent", rng.randint(1, 2), procs[killed_anywhere],
                     may_end=True):  # fmt: skip
            killed.append(killed_anywhere)
        for i in hang_at:
            procs[i].send_signal(signal.SIGKILL)
        time.sleep(rng.random() * 0.02)
        if killed_anywhere in killed:
            procs[killed_anywhere].send_signal(signal.SIGKILL)
        for i, proc in enumerate(procs):
            _, err = proc.communicate(timeout=DEADLINE)
            if i in hang_at:
                assert proc.returncode == -signal.SIGKILL
            elif i not in killed:
                assert proc.returncode == 0, err.decode()[-2000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)  # also closes its pipe

    billed: dict[str, tuple[Decimal, int]] = {}
    billed_by_proc: dict[int, Decimal] = defaultdict(Decimal)
    settled_ids: set[str] = set()
    refusals = 0
    for i, out in enumerate(outs):
        for line in out.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if parts[0] == "sent":
                billed[parts[1]] = (Decimal(parts[2]), int(parts[3]))
                billed_by_proc[i] += Decimal(parts[2])
            elif parts[0] == "settled":
                settled_ids.add(parts[1])
                assert parts[2] == "settled"
            elif parts[0] == "refused":
                refusals += 1
    billed_cost = sum((c for c, _ in billed.values()), Decimal(0))
    billed_tokens = sum(t for _, t in billed.values())

    # the budgets held: what the provider billed fits every scope's limit
    assert billed_cost <= TEAM_COST
    assert billed_tokens <= TEAM_TOKENS
    assert all(cost <= PROC_COST for cost in billed_by_proc.values()), billed_by_proc
    assert refusals > 0  # the limits really bound: some calls were refused

    now = open_ledger(url)
    # calls of killed processes still hold budget until their leases expire
    assert now.status(TEAM).reserved > 0
    now.close()
    after_expiry = datetime.now(timezone.utc) + LEASE_TTL + timedelta(seconds=1)
    later = open_ledger(url, clock=lambda: after_expiry)
    scopes = [TEAM, *(f"proc:{i}" for i in range(WORKERS))]
    for scope in scopes:
        status = later.status(scope)
        assert (status.reserved, status.reserved_tokens) == (0, 0), scope

    # the killed processes restart and replay every call they had sent: late settles
    for call_id, (cost, tokens) in billed.items():
        outcome = later.settle(call_id, cost=cost, tokens=tokens)
        if call_id in settled_ids:
            assert outcome == "duplicate", call_id
    team = later.status(TEAM)
    assert (team.spent, team.spent_tokens) == (billed_cost, billed_tokens)
    for i in range(WORKERS):
        assert later.status(f"proc:{i}").spent == billed_by_proc[i]
    assert later.list_scopes() == sorted(scopes)
    later.close()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_sqlite_processes_never_overspend_and_spend_is_exact(tmp_path: Path, seed: int) -> None:
    _run_trial(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path, seed)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("seed", [1, 2])
def test_postgres_processes_never_overspend_and_spend_is_exact(
    postgres_db: str, tmp_path: Path, seed: int
) -> None:
    _run_trial(postgres_db, tmp_path, seed)
