"""Two ``langchain-runtime serve`` replicas on one PostgreSQL database.

Real server processes on loopback ports, ``--database`` naming one fresh database
of the session's PostgreSQL server, API keys from the config: a run submitted to
replica 1 is read (its committed tasks), aborted, given tasks and resumed through
replica 2, and only by the key that owns it. A task added through replica 2 runs on
replica 1, and a refused one gets the error replica 1 gives. Replica 1 is SIGKILLed
mid-call; replica 2 marks its run interrupted within the heartbeat timeout and
charges the call that was in flight at its hold (nothing stays reserved for it,
nothing is freed to be spent twice), and resuming it there completes it (the task
added through replica 2 included) without running a completed task again; the
team's budget holds exactly what the tasks cost plus that hold.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi", reason="needs the 'server' extra")
pytest.importorskip("psycopg", reason="needs the 'postgres' extra")
pytest.importorskip("langchain_runtime.store.postgres", reason="needs PostgresRunStore")

from langchain_runtime.api.server._keys import hash_key

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
KEY_A = "replica-key-a-" + "a" * 30
KEY_B = "replica-key-b-" + "b" * 30
A = {"authorization": f"Bearer {KEY_A}"}
B = {"authorization": f"Bearer {KEY_B}"}
STALE_AFTER = 2.0


def _config() -> dict[str, Any]:
    return {
        "models": {
            "quick": {"provider": "simulated", "response_tokens": 6},
            "slow": {"provider": "simulated", "response_tokens": 6, "latency": 1.5},
        },
        "server": {
            "api_keys": [
                {"name": "alice", "hash": hash_key(KEY_A), "scopes": ["team:t"]},
                {"name": "bob", "hash": hash_key(KEY_B), "scopes": ["team:u"]},
            ]
        },
        "workflows": {
            "chain": {
                "model": "quick",
                "tasks": [
                    {"id": "s1", "prompt": "Step one on {topic}"},
                    {"id": "s2", "prompt": "Step two: {s1}", "deps": ["s1"], "model": "slow"},
                    {"id": "s3", "prompt": "Step three: {s2}", "deps": ["s2"], "model": "slow"},
                ],
            },
            "long": {
                "model": "slow",
                "tasks": [
                    {"id": f"w{i}", "prompt": f"Wait {i}: {{topic}}", "deps": [f"w{i - 1}"][:i]}
                    for i in range(4)
                ],
            },
        },
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Replica:
    """``python -m langchain_runtime serve --database DSN`` on a free loopback port."""

    def __init__(self, config: Path, database: str) -> None:
        port = str(_free_port())
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "langchain_runtime", "serve", "--port", port,
             "--config", str(config), "--database", database,
             "--stale-after", str(STALE_AFTER)],
            cwd=ROOT,
            env={k: v for k, v in os.environ.items() if k != "LANGCHAIN_RUNTIME_TOKEN"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the replica exited: {self._stderr()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    self.client = httpx.Client(base_url=self.url, timeout=10)
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.kill()
        raise AssertionError("the replica did not answer within 60 s")

    def _stderr(self) -> str:
        assert self.proc.stderr is not None
        text = self.proc.stderr.read().decode(errors="replace")[-3000:]
        self.proc.stderr.close()
        return text

    def kill(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
        if self.proc.stderr is not None and not self.proc.stderr.closed:
            self.proc.stderr.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.kill()


def _poll(replica: Replica, run_id: str, done: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = replica.client.get(f"/api/v1/runs/{run_id}", headers=A).json()
        if done(body):
            return body
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not get there in {timeout}s: {body}")


def _budget(replica: Replica, done: Any, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = replica.client.get("/api/v1/budgets/team:t", headers=A).json()
        if done(body):
            return body
        time.sleep(0.02)
    raise AssertionError(f"the budget team:t did not get there in {timeout}s: {body}")


def test_two_replicas_share_runs_aborts_and_a_dead_replicas_run_resumes(
    postgres_db: str, tmp_path: Path
) -> None:
    config = tmp_path / "server.json"
    config.write_text(json.dumps(_config()), encoding="utf-8")
    one = Replica(config, postgres_db)
    two = Replica(config, postgres_db)
    try:
        two.client.put("/api/v1/budgets/team:t", json={"max_cost": "1"}, headers=A)

        # an abort asked of replica 2 reaches the run executing on replica 1
        long = one.client.post("/api/v1/runs", json={"workflow": "long", "input": {"topic": "x"}},
                               headers=A)  # fmt: skip
        assert long.status_code == 202, long.text
        long_id = long.json()["run_id"]
        _poll(two, long_id, lambda b: b["tasks"].get("w0", {}).get("state") == "completed")
        assert two.client.post(f"/api/v1/runs/{long_id}/abort", headers=B).status_code == 404
        asked = two.client.post(f"/api/v1/runs/{long_id}/abort", headers=A)
        assert asked.status_code == 202, asked.text
        assert asked.json()["state"] == "aborting"
        aborted = _poll(two, long_id, lambda b: b["state"] == "aborted", timeout=30)
        assert aborted["tasks"]["w0"]["state"] == "completed"
        assert aborted["tasks"]["w3"]["state"] != "completed"

        # a run on replica 1, read through replica 2 while it goes
        sent = one.client.post("/api/v1/runs", json={"workflow": "chain", "input": {"topic": "y"}},
                               headers=A)  # fmt: skip
        run_id = sent.json()["run_id"]
        seen = _poll(two, run_id, lambda b: b["tasks"].get("s1", {}).get("state") == "completed")
        assert seen["state"] == "running"
        assert two.client.get(f"/api/v1/runs/{run_id}", headers=B).status_code == 404
        listed = two.client.get("/api/v1/runs", headers=B).json()
        assert listed["total"] == 0 and listed["items"] == []
        first = seen["tasks"]["s1"]
        # a task added through replica 2 is stored with the run: it survives the kill
        late = {"id": "late", "prompt": "After {s2}", "deps": ["s2"], "model": "quick"}
        added = two.client.post(f"/api/v1/runs/{run_id}/tasks", json=late, headers=A)
        assert added.status_code == 202, added.text
        _budget(two, lambda b: Decimal(b["reserved"]) > 0)  # s2's call (1.5 s) holds now
        time.sleep(0.3)  # well inside that call, past its plan's hold
        in_flight = _budget(two, lambda b: Decimal(b["reserved"]) > 0)
        hold = Decimal(in_flight["reserved"])

        one.kill()  # mid-call: s2 is in flight
        killed = time.monotonic()
        failed = _poll(two, run_id, lambda b: b["state"] == "failed", timeout=STALE_AFTER + 10)
        assert time.monotonic() - killed < STALE_AFTER + 10
        assert failed["error"]["code"] == "interrupted"
        assert failed["tasks"]["s1"]["state"] == "completed"
        # the sweep that found the run dead charged its call in flight at its hold
        charged = _budget(two, lambda b: Decimal(b["reserved"]) == 0)
        assert Decimal(charged["spent"]) == Decimal(in_flight["spent"]) + hold

        assert two.client.post(f"/api/v1/runs/{run_id}/resume", headers=B).status_code == 404
        resumed = two.client.post(f"/api/v1/runs/{run_id}/resume", headers=A)
        assert resumed.status_code == 202, resumed.text
        done = _poll(two, run_id, lambda b: b["state"] not in ("running", "pending"))
        assert done["state"] == "completed", done["error"]["message"]
        assert done["tasks"]["s1"]["restored"] is True  # not run again
        assert done["tasks"]["s1"]["usage"] == first["usage"]
        assert done["tasks"]["s3"]["restored"] is False
        assert done["tasks"]["late"]["state"] == "completed"
        assert done["tasks"]["late"]["restored"] is False

        events = two.client.get(f"/api/v1/runs/{run_id}/events", headers=A)
        assert events.status_code == 200 and "event: end" in events.text
        assert two.client.get(f"/api/v1/runs/{run_id}/events", headers=B).status_code == 404

        # the team's budget holds what the settled calls cost (both runs) plus the hold
        # of the call the kill cut off (charged once: the resume charged nothing again)
        team = two.client.get("/api/v1/budgets/team:t", headers=A).json()
        total = Decimal(done["cost"]["amount"]) + Decimal(aborted["cost"]["amount"])
        assert Decimal(team["spent"]) == total + hold
        assert Decimal(team["reserved"]) == 0
    finally:
        one.stop()
        two.stop()


def _add(replica: Replica, run_id: str, task: dict[str, Any], key: dict[str, str]) -> Any:
    return replica.client.post(f"/api/v1/runs/{run_id}/tasks", json=task, headers=key)


def test_a_task_added_through_another_replica_runs_where_the_run_executes(
    postgres_db: str, tmp_path: Path
) -> None:
    config = tmp_path / "server.json"
    config.write_text(json.dumps(_config()), encoding="utf-8")
    one = Replica(config, postgres_db)
    two = Replica(config, postgres_db)
    try:
        two.client.put("/api/v1/budgets/team:t", json={"max_cost": "1"}, headers=A)
        sent = one.client.post("/api/v1/runs", json={"workflow": "long", "input": {"topic": "z"}},
                               headers=A)  # fmt: skip
        assert sent.status_code == 202, sent.text
        run_id = sent.json()["run_id"]
        _poll(two, run_id, lambda b: b["state"] == "running" and "w3" in b["tasks"])

        extra = {"id": "extra", "prompt": "More on {w1}", "deps": ["w1"], "model": "quick"}
        added = _add(two, run_id, extra, A)
        assert added.status_code == 202, added.text
        assert added.json() == {"run_id": run_id, "task_id": "extra", "state": "pending"}
        assert "extra" in one.client.get(f"/api/v1/runs/{run_id}", headers=A).json()["tasks"]

        # refused there as here: the same status, code and message
        for task in (
            {"id": "w0", "prompt": "again", "model": "quick"},  # a duplicate id
            {"id": "odd", "prompt": "p", "deps": ["nope"], "model": "quick"},  # no such dep
            {"id": "extra", "prompt": "twice", "model": "quick"},  # added through 2 above
        ):
            there, here = _add(two, run_id, task, A), _add(one, run_id, task, A)
            assert there.status_code == here.status_code == 422, (there.text, here.text)
            assert there.json() == here.json()
        # another key's run is none of its business, on either replica
        assert _add(two, run_id, {"id": "b", "prompt": "p"}, B).status_code == 404
        assert _add(one, run_id, {"id": "b", "prompt": "p"}, B).status_code == 404

        done = _poll(one, run_id, lambda b: b["state"] not in ("running", "pending"))
        assert done["state"] == "completed", done
        for replica in (one, two):
            body = replica.client.get(f"/api/v1/runs/{run_id}", headers=A).json()
            assert body["tasks"]["extra"]["state"] == "completed"
            assert body["tasks"]["extra"]["output"] == done["tasks"]["extra"]["output"]

        # a finished run: the finished error, through either replica
        there = _add(two, run_id, {"id": "after", "prompt": "p", "model": "quick"}, A)
        here = _add(one, run_id, {"id": "after", "prompt": "p", "model": "quick"}, A)
        assert there.status_code == here.status_code == 409
        assert there.json()["code"] == here.json()["code"] == "run_completed"
    finally:
        one.stop()
        two.stop()
