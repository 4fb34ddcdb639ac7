"""The server in-process (FastAPI TestClient): routes, states, errors, limits, auth."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from langchain_runtime.api.store import MemoryRunStore, RunRecord, SqliteRunStore
from tests.unit.api._helpers import AppFactory, Gate, wait_for

pytest.importorskip("fastapi", reason="the server tests need the 'server' extra")

from fastapi.testclient import TestClient

RUNS = "/api/v1/runs"
HELLO = {"workflow": "hello", "input": {"name": "Ada"}}
TASKS = {
    "tasks": [
        {"id": "a", "prompt": "Research {topic}", "model": "fast"},
        {"id": "b", "prompt": "Summarise {a}", "deps": ["a"]},
    ],
    "model": "fast",
    "input": {"topic": "owls"},
}


def finished(client: TestClient, run_id: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"{RUNS}/{run_id}").json()
        return body if body["state"] not in ("pending", "running", "aborting") else None

    result: dict[str, Any] = wait_for(check)
    return result


def test_a_registered_workflow_runs(client: TestClient) -> None:
    r = client.post(RUNS, json=HELLO)
    assert r.status_code == 202
    run_id = r.json()["run_id"]
    assert r.json()["state"] in ("pending", "running")
    body = finished(client, run_id)
    assert body["state"] == "completed" and body["workflow"] == "hello"
    assert set(body["tasks"]) == {"greet", "shout"}
    greet = body["tasks"]["greet"]
    assert greet["output_type"] == "message" and greet["output_text"]
    assert greet["usage"]["output_tokens"] == 8
    assert body["usage"]["total_tokens"] == sum(
        t["usage"]["total_tokens"] for t in body["tasks"].values()
    )
    assert float(body["cost"]["amount"]) > 0


def test_declarative_tasks_run_with_their_policy(client: TestClient) -> None:
    request = {**TASKS, "id": "my-run", "policy": {"max_parallelism": 1, "timeout_ms": 5000}}
    r = client.post(RUNS, json=request)
    assert r.status_code == 202 and r.json()["run_id"] == "my-run"
    body = finished(client, "my-run")
    assert body["state"] == "completed"
    assert [body["tasks"][t]["state"] for t in ("a", "b")] == ["completed", "completed"]


def test_a_budget_stops_the_run(client: TestClient) -> None:
    r = client.post(RUNS, json={**HELLO, "policy": {"budget_limit": {"amount": "0.0000001"}}})
    body = finished(client, r.json()["run_id"])
    assert body["state"] == "budget_exceeded"
    assert body["tasks"]["greet"]["error"]["code"] == "budget_exceeded"
    named = client.post(RUNS, json={**HELLO, "policy_name": "tight"}).json()["run_id"]
    assert finished(client, named)["state"] == "budget_exceeded"


def test_runs_are_listed_newest_first_and_paged(client: TestClient) -> None:
    ids = [client.post(RUNS, json={**HELLO, "id": f"run-{i}"}).json()["run_id"] for i in range(3)]
    for run_id in ids:
        finished(client, run_id)
    page = client.get(RUNS, params={"limit": 2}).json()
    assert page["total"] == 3 and [i["run_id"] for i in page["items"]] == ["run-2", "run-1"]
    rest = client.get(RUNS, params={"limit": 2, "offset": 2}).json()
    assert [i["run_id"] for i in rest["items"]] == ["run-0"]
    assert rest["items"][0]["tasks"] == 2 and rest["items"][0]["total_tokens"] > 0
    assert client.get(RUNS, params={"state": "failed"}).json()["total"] == 0
    assert client.get(RUNS, params={"state": "completed"}).json()["total"] == 3


def test_abort_is_fire_and_forget(client: TestClient, gate: Gate) -> None:
    run_id = client.post(RUNS, json={"workflow": "gated"}).json()["run_id"]
    assert gate.started.wait(10)
    r = client.post(f"{RUNS}/{run_id}/abort")
    assert r.status_code == 202 and r.json() == {"run_id": run_id, "state": "aborting"}
    # again: still "aborting", or, once the run has ended, "run_aborted"
    again = client.post(f"{RUNS}/{run_id}/abort").json()
    assert again.get("state") == "aborting" or again["code"] == "run_aborted"
    body = finished(client, run_id)
    assert body["state"] == "aborted"
    assert body["tasks"]["hold"]["state"] == "cancelled"
    assert body["tasks"]["after"]["state"] == "skipped"
    again = client.post(f"{RUNS}/{run_id}/abort")
    assert again.status_code == 409 and again.json()["code"] == "run_aborted"
    more = client.post(f"{RUNS}/{run_id}/tasks", json={"id": "x", "prompt": "p", "model": "fast"})
    assert more.status_code == 409 and more.json()["code"] == "run_aborted"


def test_a_finished_run_refuses_abort_and_new_tasks(client: TestClient) -> None:
    run_id = client.post(RUNS, json=HELLO).json()["run_id"]
    finished(client, run_id)
    r = client.post(f"{RUNS}/{run_id}/abort")
    assert r.status_code == 409 and r.json()["code"] == "run_completed"
    r = client.post(f"{RUNS}/{run_id}/tasks", json={"id": "x", "prompt": "p", "model": "fast"})
    assert r.status_code == 409 and r.json()["code"] == "run_completed"


def test_tasks_join_a_live_run(client: TestClient, gate: Gate) -> None:
    run_id = client.post(RUNS, json={"workflow": "gated", "model": "fast"}).json()["run_id"]
    assert gate.started.wait(10)
    post = client.post
    ok = post(
        f"{RUNS}/{run_id}/tasks",
        json={"id": "extra", "prompt": "Expand {after}", "deps": ["after"]},
    )
    assert ok.status_code == 202 and ok.json() == {
        "run_id": run_id,
        "task_id": "extra",
        "state": "pending",
    }
    cases = {
        "dep_not_found": {"id": "y", "prompt": "p", "deps": ["missing"]},
        "dag_invalid": {"id": "hold", "prompt": "p"},
        "dag_cycle": {"id": "z", "prompt": "p", "deps": ["z"]},
    }
    for code, task in cases.items():
        r = post(f"{RUNS}/{run_id}/tasks", json=task)
        assert (r.status_code, r.json()["code"]) == (422, code), task
    bad = [
        {"id": "q", "prompt": "p", "model": "gpt-4o"},  # not in the server's config
        {"id": "q", "prompt": "Use {secret}"},  # nothing provides it
        {"id": "q", "prompt": "p", "base_url": "http://evil.test"},
        {"id": "q"},
    ]
    for task in bad:
        r = post(f"{RUNS}/{run_id}/tasks", json=task)
        assert (r.status_code, r.json()["code"]) == (400, "invalid_input"), task
    gate.event.set()
    body = finished(client, run_id)
    assert body["state"] == "completed"
    assert body["tasks"]["extra"]["state"] == "completed"
    assert body["tasks"]["extra"]["output_type"] == "message"
    unknown = post(f"{RUNS}/nope/tasks", json={"id": "q", "prompt": "p"})
    assert unknown.status_code == 404


def test_events_stream_and_resume(client: TestClient) -> None:
    run_id = client.post(RUNS, json=HELLO).json()["run_id"]
    r = client.get(f"{RUNS}/{run_id}/events")  # streams until the run ends
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in r.text.split("\n\n") if b and not b.startswith(":")]
    assert blocks[-1].startswith("event: end")
    events = [json.loads(b.split("data: ", 1)[1]) for b in blocks[:-1]]
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_finished"
    assert {e["run_id"] for e in events} == {run_id}
    later = client.get(f"{RUNS}/{run_id}/events", headers={"Last-Event-ID": "2"}).text
    assert "id: 2\n" not in later and "id: 3\n" in later
    assert "id: 3\n" not in client.get(f"{RUNS}/{run_id}/events", params={"after": 3}).text
    bad = client.get(f"{RUNS}/{run_id}/events", headers={"Last-Event-ID": "x"})
    assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["message"]
    assert client.get(f"{RUNS}/nope/events").status_code == 404


def test_live_status_never_reports_an_unsaved_end(client: TestClient, gate: Gate) -> None:
    run_id = client.post(RUNS, json={"workflow": "gated"}).json()["run_id"]
    assert gate.started.wait(10)
    body = client.get(f"{RUNS}/{run_id}").json()
    assert body["state"] == "running"
    # every task is listed, none reported finished before its result is saved
    assert body["tasks"] and all(
        t["state"] in ("pending", "ready", "running") for t in body["tasks"].values()
    )
    gate.event.set()
    assert finished(client, run_id)["tasks"]["after"]["output"] == "after held"


def test_health_and_metrics(client: TestClient) -> None:
    finished(client, client.post(RUNS, json=HELLO).json()["run_id"])
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["active_runs"] == 0
    text = client.get("/metrics").text
    assert 'langchain_runtime_runs{state="completed"} 1' in text
    assert 'langchain_runtime_tasks_total{state="completed"} 2' in text
    assert "langchain_runtime_run_duration_seconds_count 1" in text
    assert 'langchain_runtime_tokens_total{kind="output"} 16' in text
    assert 'route="/api/v1/runs",status="202"' in text


# -- errors and limits ----------------------------------------------------------------
def _t(**task: Any) -> dict[str, Any]:
    return {"id": "a", "prompt": "x", "model": "fast", **task}


def _body(**request: Any) -> str:
    return json.dumps(request)


NAME = {"name": 1}
BAD_REQUESTS = [
    ("{not json", 400, "invalid_input", "malformed JSON"),
    ("[1, 2]", 400, "invalid_input", "valid dictionary"),
    (_body(workflow=5), 400, "invalid_input", "workflow"),
    (_body(workflow="hello", input=[]), 400, "invalid_input", "input"),
    (_body(tasks=[{"id": "a"}]), 400, "invalid_input", "tasks[0].prompt"),
    (_body(tasks=[{"id": "a", "prompt": "x"}]), 400, "invalid_input", "names no model"),
    (_body(tasks=[_t(model="gpt-9")]), 400, "invalid_input", "gpt-9"),
    (_body(workflow="hello", provider="openai"), 400, "invalid_input", "provider"),
    (_body(workflow="nope"), 400, "invalid_input", "no workflow 'nope'"),
    (_body(workflow="hello"), 400, "invalid_input", "name"),
    (_body(workflow="hello", input=NAME, policy_name="zz"), 400, "invalid_input", "policy_name"),
    (_body(workflow="hello", input=NAME, id="a b"), 400, "invalid_input", "id"),
    (_body(tasks=[_t(prompt="{x.__class__}")]), 400, "invalid_input", "prompt"),
    (_body(tasks=[_t(prompt="{x:>999999999}")]), 400, "invalid_input", "format spec"),
    (_body(tasks=[_t(prompt="{x!r}")]), 400, "invalid_input", "conversion"),
    (_body(tasks=[_t(prompt="{")]), 400, "invalid_input", "prompt"),
    (_body(tasks=[_t(id="$a")]), 400, "invalid_input", "'$a'"),
    (_body(tasks=[_t(max_retries=99)]), 400, "invalid_input", "max_retries"),
    (_body(tasks=[_t(deps=["b"]), _t(id="b", deps=["a"])]), 422, "dag_cycle", "a -> b -> a"),
    (_body(tasks=[_t(deps=["c"])]), 422, "dep_not_found", "'c'"),
    (_body(tasks=[_t(), _t(prompt="y")]), 422, "dag_invalid", "duplicate"),
    (_body(tasks=[_t(prompt="x {b}"), _t(id="b")]), 422, "dep_not_found", "deps=['b']"),
]


@pytest.mark.parametrize(("body", "status", "code", "fragment"), BAD_REQUESTS)
def test_bad_requests_get_4xx_with_a_message(
    client: TestClient, body: str, status: int, code: str, fragment: str
) -> None:
    r = client.post(RUNS, content=body, headers={"content-type": "application/json"})
    assert (r.status_code, r.json()["code"]) == (status, code), r.json()
    assert fragment in r.json()["message"]


def test_a_price_less_model_under_a_cost_budget_is_a_config_error(
    make_app: AppFactory,
) -> None:
    from langchain_runtime.config import load_config

    config = load_config({"models": {"odd": {"provider": "simulated", "model": "no-price"}}})
    with TestClient(make_app(config=config)) as c:
        r = c.post(
            RUNS,
            json={
                "tasks": [{"id": "a", "prompt": "x", "model": "odd"}],
                "policy": {"budget_limit": {"amount": 1}},
            },
        )
    assert (r.status_code, r.json()["code"]) == (422, "invalid_config")


def test_query_parameters_are_validated(client: TestClient) -> None:
    for params in ({"limit": "abc"}, {"limit": 0}, {"limit": 501}, {"offset": -1}, {"state": "x"}):
        r = client.get(RUNS, params=params)
        assert (r.status_code, r.json()["code"]) == (400, "invalid_input"), params
        assert "query parameter" in r.json()["message"]


def test_unknown_runs_routes_and_methods(client: TestClient) -> None:
    assert client.get(f"{RUNS}/nope").json() == {
        "code": "run_not_found",
        "message": "no run with id 'nope'",
    }
    assert client.post(f"{RUNS}/nope/abort").status_code == 404
    assert client.get("/api/v2/runs").json()["code"] == "not_found"
    r = client.delete(f"{RUNS}/x")
    assert (r.status_code, r.json()["code"]) == (405, "method_not_allowed")


def test_run_ids_are_unique(client: TestClient, gate: Gate) -> None:
    assert client.post(RUNS, json={"workflow": "gated", "id": "same"}).status_code == 202
    r = client.post(RUNS, json={"workflow": "gated", "id": "same"})
    assert (r.status_code, r.json()["code"]) == (409, "run_exists")
    gate.event.set()
    finished(client, "same")
    assert client.post(RUNS, json={**HELLO, "id": "same"}).status_code == 409


def test_too_many_runs(make_app: AppFactory, gate: Gate) -> None:
    with TestClient(make_app(max_concurrent_runs=2)) as c:
        for _ in range(2):
            assert c.post(RUNS, json={"workflow": "gated"}).status_code == 202
        r = c.post(RUNS, json={"workflow": "gated"})
        assert (r.status_code, r.json()["code"]) == (429, "too_many_runs")
        gate.event.set()
        wait_for(lambda: c.get("/healthz").json()["active_runs"] == 0)
        assert c.post(RUNS, json=HELLO).status_code == 202


def test_request_bodies_are_bounded(make_app: AppFactory) -> None:
    with TestClient(make_app(max_body_bytes=200)) as c:
        big = {**HELLO, "input": {"name": "x" * 500}}
        r = c.post(RUNS, json=big)
        assert (r.status_code, r.json()["code"]) == (413, "payload_too_large")

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield b'{"workflow": "hello", "input": {"name": "'
            for _ in range(10):
                yield b"x" * 50
            yield b'"}}'

        r = c.post(RUNS, content=chunks(), headers={"content-type": "application/json"})
        assert (r.status_code, r.json()["code"]) == (413, "payload_too_large")
        bad_length = c.post(RUNS, content=b"{}", headers={"content-length": "lots"})
        assert bad_length.status_code == 400
        assert c.post(RUNS, json=HELLO).status_code == 202


def test_the_token_guards_every_route_but_health(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGCHAIN_RUNTIME_TOKEN", "s3cret")
    with TestClient(make_app()) as c:
        for method, path in [
            ("GET", RUNS),
            ("POST", RUNS),
            ("GET", f"{RUNS}/x"),
            ("POST", f"{RUNS}/x/abort"),
            ("POST", f"{RUNS}/x/tasks"),
            ("GET", f"{RUNS}/x/events"),
            ("GET", "/metrics"),
            ("GET", "/openapi.json"),
        ]:
            for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "s3cret"}):
                r = c.request(method, path, headers=headers)
                assert (r.status_code, r.json()["code"]) == (401, "unauthorized"), (path, headers)
                assert r.headers["www-authenticate"] == "Bearer"
        assert c.get("/healthz").status_code == 200
        ok = {"authorization": "bearer s3cret"}
        assert c.post(RUNS, json=HELLO, headers=ok).status_code == 202
        assert c.get("/metrics", headers=ok).status_code == 200


def test_an_unexpected_failure_is_a_500_with_no_details(make_app: AppFactory) -> None:
    class BrokenStore(MemoryRunStore):
        def load(self, run_id: str) -> RunRecord | None:
            raise RuntimeError("disk on fire: /secret/path")

    with TestClient(make_app(store=BrokenStore()), raise_server_exceptions=False) as c:
        r = c.get(f"{RUNS}/x")
    assert r.status_code == 500
    assert r.json() == {"code": "internal_error", "message": "internal error"}


# -- persistence ----------------------------------------------------------------------
def test_finished_runs_survive_a_restart_and_unfinished_ones_fail(
    make_app: AppFactory, tmp_path: Path, gate: Gate
) -> None:
    path = tmp_path / "runs.sqlite3"
    app = make_app(store=str(path))
    with TestClient(app) as c:
        done = c.post(RUNS, json=HELLO).json()["run_id"]
        before = finished(c, done)
        events = c.get(f"{RUNS}/{done}/events").text
    # a server that died mid-run left this behind
    crashed = SqliteRunStore(path)
    crashed.create(RunRecord("in-flight", "running", request={"workflow": "gated"}))
    crashed.close()
    with TestClient(make_app(store=str(path))) as c:
        assert c.get(f"{RUNS}/{done}").json() == before
        assert c.get(f"{RUNS}/{done}/events").text == events
        lost = c.get(f"{RUNS}/in-flight").json()
        assert lost["state"] == "failed" and lost["error"]["code"] == "interrupted"
        assert "not resumed" in lost["error"]["message"]
        assert c.get(RUNS, params={"state": "failed"}).json()["total"] == 1


def test_shutdown_aborts_live_runs_and_saves_them(make_app: AppFactory, gate: Gate) -> None:
    store = MemoryRunStore()
    with TestClient(make_app(store=store)) as c:
        run_id = c.post(RUNS, json={"workflow": "gated"}).json()["run_id"]
        assert gate.started.wait(10)
    record = store.load(run_id)
    assert record is not None and record.state == "aborted"
    assert record.status is not None and record.status["tasks"]["hold"]["state"] == "cancelled"


def test_a_crashed_run_is_stored_as_failed(make_app: AppFactory) -> None:
    from langchain_runtime import RunResult, RunState

    class CrashingHandle:
        run_id = "internal"

        def done(self) -> bool:
            return True

        def result(self, timeout: float | None = None) -> RunResult:
            raise RuntimeError("the event loop blew up")

        def snapshot(self) -> RunResult:
            return RunResult(run_id="internal", state=RunState.RUNNING)

        def status(self) -> RunState:
            return RunState.RUNNING

    class CrashingWorkflow:
        required_inputs: frozenset[str] = frozenset()
        policy = None

        def start(self, *args: Any) -> CrashingHandle:
            return CrashingHandle()

    with TestClient(make_app(workflows={"crash": CrashingWorkflow()})) as c:
        run_id = c.post(RUNS, json={"workflow": "crash"}).json()["run_id"]
        body = finished(c, run_id)
    assert body["state"] == "failed"
    assert body["error"]["code"] == "internal_error"
    assert "blew up" in body["error"]["message"]


def test_review_findings_huge_cursors_and_odd_methods_are_harmless(client: TestClient) -> None:
    run_id = client.post(RUNS, json=HELLO).json()["run_id"]
    finished(client, run_id)
    huge = "99999999999999999999999"
    r = client.get(f"{RUNS}/{run_id}/events", params={"after": huge})
    assert r.status_code == 200
    r = client.get(f"{RUNS}/{run_id}/events", headers={"Last-Event-ID": huge})
    assert r.status_code == 200
    for method in ("FOO1", "FOO2"):
        client.request(method, "/healthz")
    text = client.get("/metrics").text
    assert "FOO1" not in text and 'method="OTHER"' in text


def test_review_findings_private_source_paths_are_refused(client: TestClient) -> None:
    body = {
        "tasks": [
            {"id": "a", "model": "fast", "prompt": "hi"},
            {
                "id": "b",
                "model": "fast",
                "prompt": "{x}",
                "deps": ["a"],
                "inputs": {"x": "a.__class__.__init__.__globals__"},
            },
        ]
    }
    r = client.post(RUNS, json=body)
    assert 400 <= r.status_code < 500
    assert "start with '_'" in r.json()["message"]
