"""Hostile requests against the sidecar, in-process (issue 10, findings 1, 6, 7, 8).

Each test is a finding of the security review: a request that used to be accepted
(or crash the server) and must now get a clear 4xx naming what is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from langchain_runtime.api.store import MemoryRunStore
from langchain_runtime.config import load_config
from langchain_runtime.errors import ConfigurationError
from tests.unit.api._helpers import CONFIG, wait_for

pytest.importorskip("fastapi", reason="the server tests need the 'server' extra")

from fastapi.testclient import TestClient

from langchain_runtime.api.server import ServerLimits, create_app, parse_limits

RUNS = "/api/v1/runs"
LOCAL = "http://127.0.0.1:8000"
HELLO = {"workflow": "hello", "input": {"name": "Ada"}}


@pytest.fixture
def make_client() -> Iterator[Any]:
    apps: list[Any] = []

    def make(base_url: str = LOCAL, config: Any = None, **kwargs: Any) -> TestClient:
        app = create_app(config or load_config(CONFIG), store=MemoryRunStore(), **kwargs)
        apps.append(app)
        return TestClient(app, base_url=base_url)

    yield make
    for app in apps:
        app.state.manager.close(timeout=5)


# -- 1. DNS rebinding and cross-origin writes -------------------------------------------------
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "10.0.0.5", "127.0.0.1.x"])
def test_a_foreign_host_header_is_refused(make_client: Any, host: str) -> None:
    client = make_client()
    r = client.post(RUNS, json=HELLO, headers={"host": host})
    assert r.status_code == 403
    assert r.json()["code"] == "forbidden"
    assert "--allowed-hosts" in r.json()["message"]
    assert client.get(RUNS, headers={"host": host}).status_code == 403
    assert client.get(RUNS).json()["total"] == 0  # nothing was started


@pytest.mark.parametrize("host", ["localhost:8000", "127.0.0.1", "[::1]:8000", "LOCALHOST"])
def test_loopback_host_names_are_served(make_client: Any, host: str) -> None:
    client = make_client()
    assert client.post(RUNS, json=HELLO, headers={"host": host}).status_code == 202


def test_allowed_hosts_widen_the_default(make_client: Any) -> None:
    client = make_client(allowed_hosts=["runtime.internal", "*.corp.example"])
    for host in ("runtime.internal", "api.corp.example:8000"):
        assert client.get(RUNS, headers={"host": host}).status_code == 200
    assert client.get(RUNS, headers={"host": "evil.example"}).status_code == 403
    anyone = make_client(allowed_hosts=["*"])
    assert anyone.get(RUNS, headers={"host": "whatever.example"}).status_code == 200


def test_the_in_process_test_client_is_served_by_default(make_client: Any) -> None:
    client = make_client(base_url="http://testserver")
    assert client.post(RUNS, json=HELLO).status_code == 202


def test_healthz_answers_any_host(make_client: Any) -> None:
    assert make_client().get("/healthz", headers={"host": "10.1.2.3:8000"}).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://evil.example"},
        {"origin": "null"},
        {"sec-fetch-site": "cross-site"},
        {"origin": "http://127.0.0.1:9999"},  # another port is another origin
    ],
)
def test_cross_origin_browser_writes_are_refused(make_client: Any, headers: dict[str, str]) -> None:
    client = make_client()
    r = client.post(RUNS, json=HELLO, headers=headers)
    assert r.status_code == 403 and "cross-origin" in r.json()["message"]
    assert client.get(RUNS).json()["total"] == 0
    # reading is harmless (no CORS headers: a foreign page can not read the answer)
    assert client.get(RUNS, headers=headers).status_code == 200


def test_same_origin_and_non_browser_writes_pass(make_client: Any) -> None:
    client = make_client()
    same = {"origin": LOCAL, "sec-fetch-site": "same-origin"}
    assert client.post(RUNS, json=HELLO, headers=same).status_code == 202
    assert client.post(RUNS, json=HELLO).status_code == 202  # curl, the client: no Origin


# -- 6. deep JSON and oversized work ------------------------------------------------------------
@pytest.mark.parametrize("where", ["input", "metadata"])
@pytest.mark.parametrize("depth", [40, 600, 900, 50_000])
def test_deeply_nested_json_is_a_400(make_client: Any, where: str, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    if where == "input":
        body = '{"workflow": "hello", "input": {"name": "Ada", "deep": ' + nested + "}}"
    else:
        body = (
            '{"tasks": [{"id": "a", "prompt": "hi", "model": "fast", "metadata": {"x": '
            + nested
            + "}}]}"
        )
    r = make_client().post(RUNS, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid_input"
    assert "nested deeper than 32 levels" in r.json()["message"]


def test_json_depth_is_configurable(make_client: Any) -> None:
    body = {**HELLO, "input": {"name": "Ada", "deep": [[[[[[1]]]]]]}}
    assert make_client().post(RUNS, json=body).status_code == 202
    strict = make_client(limits=ServerLimits(max_json_depth=4))
    assert strict.post(RUNS, json=body).status_code == 400


def _tasks(n: int, prompt: str = "hi") -> list[dict[str, Any]]:
    return [{"id": f"t{i}", "prompt": prompt, "model": "fast"} for i in range(n)]


def test_too_many_tasks_is_a_413_naming_the_limit(make_client: Any) -> None:
    client = make_client(limits=ServerLimits(max_tasks=50))
    r = client.post(RUNS, json={"tasks": _tasks(51)})
    assert r.status_code == 413
    assert r.json() == {
        "code": "payload_too_large",
        "message": "tasks: 51 tasks exceed this server's limit of 50 per run "
        "(serve --limit max_tasks=N)",
    }
    assert client.post(RUNS, json={"tasks": _tasks(50)}).status_code == 202
    # the default bounds a request like the review's 8,000-task one
    r = make_client(max_body_bytes=2_000_000).post(RUNS, json={"tasks": _tasks(8000)})
    assert r.status_code == 413 and "limit of 1000" in r.json()["message"]


def test_a_long_prompt_is_a_413_naming_the_limit(make_client: Any) -> None:
    client = make_client(limits=ServerLimits(max_prompt_chars=100))
    r = client.post(RUNS, json={"tasks": _tasks(1, "x" * 101)})
    assert r.status_code == 413 and "limit of 100" in r.json()["message"]
    run_id = client.post(RUNS, json={"workflow": "slow", "input": {"name": "a"}}).json()["run_id"]
    r = client.post(f"{RUNS}/{run_id}/tasks", json={"id": "z", "prompt": "y" * 500})
    assert r.status_code == 413 and "tasks[0].prompt: 500 characters" in r.json()["message"]


def test_tasks_added_to_a_live_run_count_toward_the_limit(make_client: Any) -> None:
    # a first task that takes long enough (aborted at the end) for the run to stay live
    held = {"provider": "simulated", "latency": 10}
    config = load_config({**CONFIG, "models": {**CONFIG["models"], "held": held}})
    client = make_client(limits=ServerLimits(max_tasks=3), config=config)
    body = {"tasks": [{"id": "a", "prompt": "hi", "model": "held"}], "input": {}}
    run_id = client.post(RUNS, json=body).json()["run_id"]
    for tid in ("b", "c"):
        r = client.post(f"{RUNS}/{run_id}/tasks", json={"id": tid, "prompt": "x", "model": "held"})
        assert r.status_code == 202, r.text
    r = client.post(f"{RUNS}/{run_id}/tasks", json={"id": "d", "prompt": "x", "model": "held"})
    assert r.status_code == 413
    assert f"run {run_id} has 3 tasks, this server's limit per run" in r.json()["message"]
    assert client.post(f"{RUNS}/{run_id}/abort").status_code == 202


def test_parallelism_above_the_limit_is_a_422(make_client: Any) -> None:
    client = make_client(limits=ServerLimits(max_parallelism=8))
    r = client.post(RUNS, json={**HELLO, "policy": {"max_parallelism": 9}})
    assert r.status_code == 422
    assert "policy.max_parallelism: 9 is above this server's limit of 8" in r.json()["message"]
    assert client.post(RUNS, json={**HELLO, "policy": {"max_parallelism": 8}}).status_code == 202


def test_limits_parse_from_the_command_line() -> None:
    limits = parse_limits(["max_tasks=10", "max-prompt-chars=20", "header_timeout=2.5"])
    assert (limits.max_tasks, limits.max_prompt_chars, limits.header_timeout) == (10, 20, 2.5)
    with pytest.raises(ConfigurationError, match="NAME one of max_json_depth"):
        parse_limits(["max_taks=10"])
    with pytest.raises(ConfigurationError, match="'ten' is not a number"):
        parse_limits(["max_tasks=ten"])
    with pytest.raises(ConfigurationError, match="max_tasks: expected a number >= 1"):
        parse_limits(["max_tasks=0"])


# -- 7. empty token, surrogates, the aborted run's id ------------------------------------------
@pytest.mark.parametrize("token", ["", "   "])
def test_an_empty_token_is_refused(token: str) -> None:
    with pytest.raises(ConfigurationError, match="empty token would turn authentication off"):
        create_app(load_config(CONFIG), store=MemoryRunStore(), token=token)


@pytest.mark.parametrize(
    "body",
    [
        '{"workflow": "hello", "input": {"name": "\\ud800x"}}',
        '{"workflow": "hello", "input": {"\\udfff": "a", "name": "b"}}',
        '{"tasks": [{"id": "a", "prompt": "hi \\udc00", "model": "fast"}]}',
    ],
)
def test_a_lone_surrogate_is_a_400(make_client: Any, body: str) -> None:
    client = make_client()
    r = client.post(RUNS, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "lone UTF-16 surrogate" in r.json()["message"]
    # a proper pair (an emoji) is text
    ok = '{"workflow": "hello", "input": {"name": "\\ud83e\\udd89"}}'
    r = client.post(RUNS, content=ok, headers={"content-type": "application/json"})
    assert r.status_code == 202


def test_an_aborted_run_names_its_api_run_id(make_client: Any) -> None:
    client = make_client()
    r = client.post(RUNS, json={"id": "my-run", "workflow": "slow", "input": {"name": "a"}})
    assert r.status_code == 202
    assert client.post(f"{RUNS}/my-run/abort").status_code == 202

    def ended() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"{RUNS}/my-run").json()
        return body if body["state"] == "aborted" else None

    body = wait_for(ended)
    assert body["error"]["message"] == "run my-run was aborted"


# -- 8. Last-Event-ID is strict ------------------------------------------------------------------
@pytest.mark.parametrize("value", ["1_0", " 7", "+3", "٣", "1e3", "-2", ""])
def test_last_event_id_is_parsed_strictly(make_client: Any, value: str) -> None:
    client = make_client()
    run_id = client.post(RUNS, json=HELLO).json()["run_id"]
    r = client.get(f"{RUNS}/{run_id}/events", headers={"last-event-id": value.encode()})
    assert r.status_code == 400, value
    assert "Last-Event-ID" in r.json()["message"]


def test_last_event_id_digits_resume(make_client: Any) -> None:
    client = make_client()
    run_id = client.post(RUNS, json=HELLO).json()["run_id"]
    wait_for(lambda: client.get(f"{RUNS}/{run_id}").json()["state"] == "completed")
    r = client.get(f"{RUNS}/{run_id}/events", headers={"last-event-id": "2"})
    assert r.status_code == 200
    ids = [int(line[4:]) for line in r.text.splitlines() if line.startswith("id: ")]
    assert ids and min(ids) == 3
    assert json.loads(r.text.split("event: end\ndata: ")[1].split("\n")[0])["state"] == "completed"
