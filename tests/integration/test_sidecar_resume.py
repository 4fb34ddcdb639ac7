"""``langchain-runtime serve`` killed with SIGKILL mid-run, restarted, and the run resumed.

A real server process on a loopback port with a real SQLite store file runs a
four-task chain whose third task is slow; once the first two are reported completed
(which the server does only after their commits are stored), the server is sent
SIGKILL. A new server on the same file reports the run ``failed`` with the code
``interrupted``, the two tasks completed with their cost; ``POST .../resume``
finishes it: those two come back ``restored`` with the same usage and cost (they are
not run again), the others run, and the run's cost is the sum of its tasks'. With a
ledger, the call the kill cut off is charged at its hold when the new server starts.
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
pytest.importorskip("uvicorn", reason="needs the 'server' extra")

ROOT = Path(__file__).resolve().parents[2]


def _config(slow_latency: float) -> dict[str, Any]:
    return {
        "models": {
            "quick": {"provider": "simulated", "response_tokens": 6},
            "slow": {"provider": "simulated", "response_tokens": 6, "latency": slow_latency},
        },
        "workflows": {
            "chain": {
                "model": "quick",
                "tasks": [
                    {"id": "s1", "prompt": "Step one on {topic}"},
                    {"id": "s2", "prompt": "Step two: {s1}", "deps": ["s1"]},
                    {"id": "s3", "prompt": "Step three: {s2}", "deps": ["s2"], "model": "slow"},
                    {"id": "s4", "prompt": "Step four: {s3}", "deps": ["s3"]},
                ],
            }
        },
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``python -m langchain_runtime serve`` from this checkout, on a free loopback port."""

    def __init__(self, config: Path, store: Path) -> None:
        self.url = f"http://127.0.0.1:{_free_port()}"
        port = self.url.rsplit(":", 1)[1]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "langchain_runtime", "serve", "--port", port,
             "--config", str(config), "--store", str(store)],
            cwd=ROOT,
            env={**os.environ, "LANGCHAIN_RUNTIME_TOKEN": ""},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                message = self.stderr()
                assert self.proc.stderr is not None
                self.proc.stderr.close()
                raise AssertionError(f"the server exited: {message}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.kill()
        raise AssertionError("the server did not answer within 60 s")

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")[-2000:]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        assert self.proc.stderr is not None
        self.proc.stderr.close()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        assert self.proc.stderr is not None
        self.proc.stderr.close()


def _poll(client: httpx.Client, run_id: str, done: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/api/v1/runs/{run_id}").json()
        if done(body):
            return body
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not get there in {timeout}s: {body}")


def test_kill_restart_resume_keeps_completed_tasks_and_their_cost(tmp_path: Path) -> None:
    config, store = tmp_path / "server.json", tmp_path / "runs.db"
    config.write_text(json.dumps(_config(slow_latency=60)))
    server = Server(config, store)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            r = client.post("/api/v1/runs", json={"workflow": "chain", "input": {"topic": "owls"}})
            assert r.status_code == 202
            run_id = r.json()["run_id"]

            def two_done(body: dict[str, Any]) -> bool:
                tasks = body.get("tasks") or {}
                return all(tasks.get(t, {}).get("state") == "completed" for t in ("s1", "s2"))

            before = _poll(client, run_id, two_done)["tasks"]
    finally:
        server.kill()  # SIGKILL, with s3's call in flight

    config.write_text(json.dumps(_config(slow_latency=0)))  # same models, a fast provider
    server = Server(config, store)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            lost = client.get(f"/api/v1/runs/{run_id}").json()
            assert lost["state"] == "failed" and lost["error"]["code"] == "interrupted"
            for tid in ("s1", "s2"):
                assert lost["tasks"][tid]["state"] == "completed"
                assert lost["tasks"][tid]["cost"] == before[tid]["cost"]
                assert float(lost["tasks"][tid]["cost"]["amount"]) > 0
            assert lost["tasks"]["s3"]["state"] == "cancelled"
            assert float(lost["tasks"]["s3"]["cost"]["amount"]) == 0  # in flight: not billed

            r = client.post(f"/api/v1/runs/{run_id}/resume")
            assert r.status_code == 202, r.text
            again = client.post(f"/api/v1/runs/{run_id}/resume")  # while it runs
            assert again.status_code in (202, 409)  # 202 only if it already finished
            body = _poll(client, run_id, lambda b: b["state"] not in ("pending", "running"))
    finally:
        server.stop()

    assert body["state"] == "completed"
    for tid in ("s1", "s2"):
        task = body["tasks"][tid]
        assert task["restored"] is True
        assert (task["usage"], task["cost"], task["output"]) == (
            before[tid]["usage"],
            before[tid]["cost"],
            before[tid]["output"],
        )
    for tid in ("s3", "s4"):
        assert body["tasks"][tid]["restored"] is False
        assert body["tasks"][tid]["state"] == "completed"
    total = sum(float(t["cost"]["amount"]) for t in body["tasks"].values())
    assert float(body["cost"]["amount"]) == pytest.approx(total)


def _budget(client: httpx.Client, done: Any, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = client.get("/api/v1/budgets/team:k").json()
        if done(body):
            return body
        time.sleep(0.02)
    raise AssertionError(f"the budget team:k did not get there in {timeout}s: {body}")


def test_a_restarted_server_charges_the_call_its_killed_predecessor_had_in_flight(
    tmp_path: Path,
) -> None:
    config, store = tmp_path / "server.json", tmp_path / "runs.db"

    def write_config(slow_latency: float) -> None:
        spec = _config(slow_latency)
        spec["ledger"] = f"sqlite:///{tmp_path / 'ledger.db'}"
        spec["workflows"]["chain"]["scopes"] = ["team:k"]
        config.write_text(json.dumps(spec))

    write_config(slow_latency=60)
    server = Server(config, store)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.put("/api/v1/budgets/team:k", json={"max_cost": "1"}).status_code == 200
            r = client.post("/api/v1/runs", json={"workflow": "chain", "input": {"topic": "owls"}})
            assert r.status_code == 202
            run_id = r.json()["run_id"]
            _poll(client, run_id, lambda b: b["tasks"].get("s3", {}).get("state") == "running")
            _budget(client, lambda b: float(b["reserved"]) > 0)  # s3's 60 s call holds now
            time.sleep(0.3)  # well inside that call, past its plan's hold
            in_flight = _budget(client, lambda b: float(b["reserved"]) > 0)
    finally:
        server.kill()  # SIGKILL, with s3's call in flight

    write_config(slow_latency=0)
    server = Server(config, store)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            # the new server marked the run interrupted and charged s3's call at its hold
            lost = client.get(f"/api/v1/runs/{run_id}").json()
            assert lost["state"] == "failed" and lost["error"]["code"] == "interrupted"
            charged = client.get("/api/v1/budgets/team:k").json()
            assert charged["reserved"] == "0"
            hold = Decimal(in_flight["reserved"])
            assert Decimal(charged["spent"]) == Decimal(in_flight["spent"]) + hold > 0
            assert Decimal(charged["remaining"]) == 1 - Decimal(charged["spent"])

            assert client.post(f"/api/v1/runs/{run_id}/resume").status_code == 202
            body = _poll(client, run_id, lambda b: b["state"] not in ("pending", "running"))
            assert body["state"] == "completed"
            final = client.get("/api/v1/budgets/team:k").json()
    finally:
        server.stop()
    # every task's cost, plus the hold of the call the kill cut off, charged once
    assert Decimal(final["spent"]) == Decimal(body["cost"]["amount"]) + hold
    assert Decimal(final["reserved"]) == 0
