"""Replicas sharing one run store (an SQLite file, a PostgreSQL database): a run is
executed by exactly one of them, and a replica that dies mid-run is taken over.

Every replica is a real process running a real Orchestrator on the store
(``tests/integration/_replica_worker.py``); tasks append their id to a log file when
they complete, so the test counts what ran.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from langchain_runtime import PostgresRunStore, SQLiteRunStore
from tests.integration._replica_worker import RUN_ID, STEPS

ROOT = Path(__file__).resolve().parents[2]
ALL = [f"t{i}" for i in range(STEPS)]


class Replica:
    """A worker process whose stdout lines arrive on a queue (every wait bounded)."""

    def __init__(self, kind: str, db: str, log: Path, mode: str, *host: str, **env: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration._replica_worker", kind, db, str(log), mode,
             *host],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        out = self.proc.stdout
        assert out is not None

        def pump() -> None:
            for x in iter(out.readline, ""):
                self.lines.put(x.strip())

        threading.Thread(target=pump, daemon=True).start()

    def line(self, timeout: float = 60) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            pytest.fail(f"replica said nothing in {timeout:g}s: {err[-2000:]}")

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: no finish_run, no last heartbeat
        self.proc.wait(timeout=30)

    def close(self) -> None:
        self.kill()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "runs.db")
    return "postgres", str(request.getfixturevalue("postgres_db"))


@pytest.fixture
def replicas() -> Iterator[list[Replica]]:
    made: list[Replica] = []
    yield made
    for r in made:
        r.close()


def open_store(kind: str, db: str, stale_after: float = 120.0) -> SQLiteRunStore | PostgresRunStore:
    if kind == "sqlite":
        return SQLiteRunStore(db, stale_after=stale_after)
    return PostgresRunStore(db, stale_after=stale_after)


def ran(log: Path) -> Counter[str]:
    return Counter(line.split()[1] for line in log.read_text().splitlines() if line.strip())


def start_and_kill_at(kind: str, db: str, log: Path, replicas: list[Replica], **env: str) -> None:
    """Run the chain in a replica until it blocks in ``t3``, then SIGKILL it."""
    first = Replica(kind, db, log, "start", *env.pop("host", "").split(), BLOCK_AT="t3", **env)
    replicas.append(first)
    assert first.line() == "blocked"
    first.kill()
    assert ran(log) == Counter({"t0": 1, "t1": 1, "t2": 1})


def test_two_replicas_resuming_one_run_run_it_once(
    db: tuple[str, str], tmp_path: Path, replicas: list[Replica]
) -> None:
    kind, where = db
    log = tmp_path / "ran.log"
    start_and_kill_at(kind, where, log, replicas)
    racers = [Replica(kind, where, log, "resume", TASK_DELAY="0.3") for _ in range(2)]
    replicas.extend(racers)
    for r in racers:
        assert r.line() == "ready"
    for r in racers:  # both at once
        r.send("go")
    outcomes = sorted((r.line(timeout=120) for r in racers), key=lambda o: o != "completed")
    assert outcomes[0] == "completed" and outcomes[1].startswith("ResumeError"), outcomes
    assert "still live" in outcomes[1]
    assert ran(log) == Counter(dict.fromkeys(ALL, 1))  # t3..t5 once, t0..t2 never again
    store = open_store(kind, where)
    try:
        run = store.load_run(RUN_ID)
        assert run is not None and run.state == "completed" and run.resumes == 1
    finally:
        store.close()


def test_a_killed_replica_is_marked_interrupted_after_its_heartbeat_and_taken_over(
    db: tuple[str, str], tmp_path: Path, replicas: list[Replica]
) -> None:
    """Replica A (on host "replica-a") dies in t3; the survivor (this host) marks the run
    interrupted once A's heartbeat is older than stale_after, and resumes it."""
    kind, where = db
    log = tmp_path / "ran.log"
    stale = 3.0
    start_and_kill_at(kind, where, log, replicas, host="replica-a", STALE_AFTER=str(stale))
    killed = time.monotonic()
    survivor = open_store(kind, where, stale_after=stale)
    try:
        # another host's process cannot be asked whether it exists: only its heartbeat
        # tells, and it was fresh when A died
        assert survivor.is_live(RUN_ID)
        marked: list[str] = []
        while not marked and time.monotonic() - killed < 60:
            marked = survivor.mark_interrupted_stale()
            time.sleep(0.2)
        assert marked == [RUN_ID]
        assert time.monotonic() - killed >= stale - 1.5  # not before the heartbeat aged
        run = survivor.load_run(RUN_ID)
        assert run is not None and run.state == "interrupted" and run.error is not None
        assert "replica-a" in run.error["message"]
        assert set(run.tasks) == {"t0", "t1", "t2"}
    finally:
        survivor.close()
    second = Replica(kind, where, log, "resume", "replica-b", STALE_AFTER=str(stale))
    replicas.append(second)
    assert second.line() == "ready"
    second.send("go")
    assert second.line(timeout=120) == "completed"
    assert ran(log) == Counter(dict.fromkeys(ALL, 1))  # no completed task ran twice
    store = open_store(kind, where)
    try:
        run = store.load_run(RUN_ID)
        assert run is not None and (run.state, run.resumes, run.error) == ("completed", 1, None)
        assert run.header.owner is not None and run.header.owner.endswith("@replica-b")
    finally:
        store.close()
