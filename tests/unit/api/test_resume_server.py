"""The sidecar on a durable store (a real SQLite file): resume, refusals, restarts."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableLambda

from langchain_runtime import Orchestrator, SQLiteRunStore, Task
from langchain_runtime.api.store import RunRecord
from langchain_runtime.config import load_config
from tests.unit.api._helpers import CONFIG, AppFactory, Gate, wait_for

pytest.importorskip("fastapi", reason="the server tests need the 'server' extra")

from fastapi.testclient import TestClient

RUNS = "/api/v1/runs"
HELLO = {"workflow": "hello", "input": {"name": "Ada"}}


def finished(client: TestClient, run_id: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"{RUNS}/{run_id}").json()
        return body if body["state"] not in ("pending", "running", "aborting") else None

    result: dict[str, Any] = wait_for(check)
    return result


class Flaky:
    """A two-task workflow: ``first`` counts its calls, ``second`` fails until fixed."""

    def __init__(self) -> None:
        self.calls = {"first": 0, "second": 0}
        self.fixed = threading.Event()

    def orchestrator(self) -> Orchestrator:
        def first(_inp: Any) -> dict[str, Any]:
            self.calls["first"] += 1
            return {"facts": ["owls", "hoot"]}

        def second(inp: Any) -> str:
            self.calls["second"] += 1
            if not self.fixed.is_set():
                raise RuntimeError("the service is down")
            return f"{len(inp['first']['facts'])} facts"

        return Orchestrator(
            [
                Task("first", RunnableLambda(first)),
                Task("second", RunnableLambda(second), deps=["first"]),
            ],
            name="flaky",
        )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


def test_a_failed_run_resumes_without_running_its_completed_tasks(
    make_app: AppFactory, path: Path
) -> None:
    flaky = Flaky()
    app = make_app(store=str(path), workflows={"flaky": flaky.orchestrator()})
    with TestClient(app) as c:
        run_id = c.post(RUNS, json={"workflow": "flaky"}).json()["run_id"]
        body = finished(c, run_id)
        assert body["state"] == "failed" and body["tasks"]["first"]["state"] == "completed"
        flaky.fixed.set()
        r = c.post(f"{RUNS}/{run_id}/resume")
        assert r.status_code == 202 and r.json()["run_id"] == run_id
        body = finished(c, run_id)
    assert body["state"] == "completed"
    assert body["tasks"]["second"]["output"] == "2 facts"
    assert body["tasks"]["first"]["restored"] is True
    assert body["tasks"]["second"]["restored"] is False
    assert flaky.calls == {"first": 1, "second": 2}


def test_a_budget_top_up_finishes_a_run_that_ran_out(make_app: AppFactory, path: Path) -> None:
    with TestClient(make_app(store=str(path))) as c:
        run_id = c.post(RUNS, json={**HELLO, "policy_name": "tight"}).json()["run_id"]
        stopped = finished(c, run_id)
        assert stopped["state"] == "budget_exceeded"
        again = c.post(f"{RUNS}/{run_id}/resume")  # the same budget: refused again
        assert again.status_code == 202
        assert finished(c, run_id)["state"] == "budget_exceeded"
        r = c.post(f"{RUNS}/{run_id}/resume", json={"budget": {"max_cost": "1.00"}})
        assert r.status_code == 202
        body = finished(c, run_id)
    assert body["state"] == "completed"
    total = sum(float(t["cost"]["amount"]) for t in body["tasks"].values())
    assert 0 < float(body["cost"]["amount"]) == pytest.approx(total)


def test_resume_refusals(make_app: AppFactory, path: Path, gate: Gate) -> None:
    with TestClient(make_app(store=str(path))) as c:
        r = c.post(f"{RUNS}/nope/resume")
        assert r.status_code == 404 and r.json()["code"] == "run_not_found"
        live = c.post(RUNS, json={"workflow": "gated"}).json()["run_id"]
        assert gate.started.wait(10)
        r = c.post(f"{RUNS}/{live}/resume")
        assert r.status_code == 409 and r.json()["code"] == "run_live"
        r = c.post(f"{RUNS}/{live}/resume", json={"budget": {"max_cost": "-1"}})
        assert r.status_code == 400
        gate.event.set()
        finished(c, live)
        done = c.post(RUNS, json=HELLO).json()["run_id"]
        assert finished(c, done)["state"] == "completed"
    # the same store, a server whose registered workflow 'hello' now does other work
    changed = load_config(
        {
            **CONFIG,
            "workflows": {
                "hello": {
                    "tasks": [
                        {"id": "greet", "prompt": "Greet {name} warmly", "model": "fast"},
                        {
                            "id": "shout",
                            "prompt": "Shout {greet}",
                            "model": "fast",
                            "deps": ["greet"],
                        },
                    ]
                }
            },
        }
    )
    with TestClient(make_app(store=str(path), config=changed)) as c:
        r = c.post(f"{RUNS}/{done}/resume")
        assert r.status_code == 422 and r.json()["code"] == "resume_refused"
        assert "greet" in r.json()["message"] and "prompt" in r.json()["message"]


def test_a_memory_store_cannot_resume(client: TestClient) -> None:
    run_id = client.post(RUNS, json=HELLO).json()["run_id"]
    finished(client, run_id)
    r = client.post(f"{RUNS}/{run_id}/resume")
    assert r.status_code == 422 and "keeps no durable runs" in r.json()["message"]


@pytest.mark.parametrize("host", ["this host", "a renamed host"])
def test_after_a_restart_an_interrupted_run_keeps_its_tasks_and_resumes(
    make_app: AppFactory, path: Path, host: str
) -> None:
    # what a server killed mid-run leaves in its store: the API record, still running,
    # and the durable run with the task it had committed
    flaky = Flaky()
    flaky.fixed.set()
    first = SQLiteRunStore(path)
    first.create(RunRecord("r1", "running", workflow="flaky", request={"workflow": "flaky"}))
    orch = flaky.orchestrator().model_copy(update={"store": first})
    handle = orch.start({}, run_id="r1")
    handle.result(timeout=10)
    assert flaky.calls == {"first": 1, "second": 1}
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    # a process of this host, gone; or a server whose host name has changed since
    # (a container restarted), whose heartbeat is still recent
    name = socket.gethostname() if host == "this host" else "old-container-name"
    owner = f"{dead.stdout.strip()}@{name}"
    with first._write():  # as if that process had died after the first commit
        first._db.execute("DELETE FROM tasks WHERE run_id = 'r1' AND task_id = 'second'")
        first._db.execute("UPDATE durable_runs SET state = 'running', owner = ?", (owner,))
    first.create(RunRecord("r0", "running", request={"workflow": "flaky"}))  # never started
    first.close()

    with TestClient(make_app(store=str(path), workflows={"flaky": flaky.orchestrator()})) as c:
        lost = c.get(f"{RUNS}/r1").json()
        assert lost["state"] == "failed" and lost["error"]["code"] == "interrupted"
        assert "resume it" in lost["error"]["message"]
        assert lost["tasks"]["first"]["state"] == "completed"
        assert lost["tasks"]["second"]["state"] == "cancelled"
        never = c.get(f"{RUNS}/r0").json()
        assert (
            never["error"]["code"] == "interrupted" and "not resumed" in never["error"]["message"]
        )
        assert c.post(f"{RUNS}/r1/resume").status_code == 202
        body = finished(c, "r1")
    assert body["state"] == "completed"
    assert body["tasks"]["first"]["restored"] is True
    assert flaky.calls == {"first": 1, "second": 2}
