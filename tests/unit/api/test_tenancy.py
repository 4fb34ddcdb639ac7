"""API keys on the sidecar: who may see, steer and pay for which runs and budgets.

Real apps over a real SQLite run store (resume needs a durable one) and a real ledger
file; requests go through Starlette's TestClient (the whole ASGI stack, the Guard
included) or, for the Python client, a real uvicorn server on a loopback port.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from langchain_runtime.api.server._keys import hash_key
from langchain_runtime.config import load_config
from langchain_runtime.errors import ConfigurationError
from tests.unit.api._helpers import CONFIG, AppFactory

pytest.importorskip("fastapi", reason="the server tests need the 'server' extra")

from fastapi.testclient import TestClient

KEY_A = "key-a-" + "a" * 30
KEY_B = "key-b-" + "b" * 30
KEY_ROOT = "key-root-" + "r" * 30
A = {"authorization": f"Bearer {KEY_A}"}
B = {"authorization": f"Bearer {KEY_B}"}
ROOT = {"authorization": f"Bearer {KEY_ROOT}"}
HELLO = {"workflow": "hello", "input": {"name": "Ada"}}


def keyed_config(tmp_path: Path, *, scopes: bool = True) -> dict[str, Any]:
    keys = [
        {"name": "alice", "hash": hash_key(KEY_A), "scopes": ["key:alice", "team:a"]},
        {"name": "bob", "hash": hash_key(KEY_B), "scopes": ["key:bob", "team:b"]},
        {"name": "root", "hash": hash_key(KEY_ROOT), "admin": True},
    ]
    if not scopes:
        for key in keys:
            key.pop("scopes", None)
    config = {**CONFIG, "server": {"api_keys": keys}}
    if scopes:
        config["ledger"] = f"sqlite:///{tmp_path / 'ledger.db'}"
    return config


@pytest.fixture
def keyed(make_app: AppFactory, tmp_path: Path) -> Iterator[TestClient]:
    """An app with keys alice, bob (no scopes: ownership only) and admin root."""
    from langchain_runtime.store import SQLiteRunStore

    app = make_app(
        config=load_config(keyed_config(tmp_path, scopes=False)),
        store=SQLiteRunStore(tmp_path / "runs.db"),
    )
    with TestClient(app) as client:
        yield client


@pytest.fixture
def scoped(make_app: AppFactory, tmp_path: Path) -> Iterator[TestClient]:
    """An app whose keys carry scopes, on an SQLite ledger file."""
    from langchain_runtime.store import SQLiteRunStore

    app = make_app(
        config=load_config(keyed_config(tmp_path)), store=SQLiteRunStore(tmp_path / "runs.db")
    )
    with TestClient(app) as client:
        yield client


def finished(client: TestClient, run_id: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/api/v1/runs/{run_id}", headers=headers).json()
        if body["state"] not in ("pending", "running", "aborting"):
            return body
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} did not finish")


# -- identity ------------------------------------------------------------------------------
def test_an_unknown_or_missing_key_is_401_and_healthz_is_open(keyed: TestClient) -> None:
    wrong = keyed.get("/api/v1/runs", headers={"authorization": "Bearer " + "z" * 40})
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "unauthorized"
    assert "API key" in wrong.json()["message"]
    assert keyed.get("/api/v1/runs").status_code == 401
    assert keyed.get("/api/v1/runs", headers={"authorization": f"Basic {KEY_A}"}).status_code == 401
    assert keyed.get("/healthz").status_code == 200
    assert keyed.get("/api/v1/runs", headers=A).status_code == 200


def test_a_token_and_api_keys_together_are_refused(make_app: AppFactory, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"API keys .* and a token"):
        make_app(config=load_config(keyed_config(tmp_path, scopes=False)), token="t" * 30)


def test_keys_with_scopes_need_a_ledger(make_app: AppFactory, tmp_path: Path) -> None:
    spec = keyed_config(tmp_path)
    del spec["ledger"]
    with pytest.raises(ConfigurationError, match=r"scopes \(key:alice.*no ledger"):
        make_app(config=load_config(spec))


def test_a_plain_key_in_the_config_is_refused_without_echoing_it() -> None:
    secret = "sk-live-" + "q" * 30
    for entry in ({"name": "ci", "key": secret}, {"name": "ci", "hash": secret}):
        with pytest.raises(ConfigurationError) as err:
            load_config({"server": {"api_keys": [entry]}})
        assert "keys hash" in str(err.value)
        assert secret not in str(err.value)


def test_two_keys_with_one_name_are_refused() -> None:
    twice = [{"name": "ci", "hash": hash_key(KEY_A)}, {"name": "ci", "hash": hash_key(KEY_B)}]
    with pytest.raises(ConfigurationError, match="used twice: ci"):
        load_config({"server": {"api_keys": twice}})


# -- ownership -----------------------------------------------------------------------------
def test_another_keys_run_is_404_everywhere(keyed: TestClient) -> None:
    run_id = keyed.post("/api/v1/runs", json=HELLO, headers=A).json()["run_id"]
    assert finished(keyed, run_id, A)["state"] == "completed"
    for method, path, body in [
        ("GET", f"/api/v1/runs/{run_id}", None),
        ("GET", f"/api/v1/runs/{run_id}/events", None),
        ("POST", f"/api/v1/runs/{run_id}/abort", None),
        ("POST", f"/api/v1/runs/{run_id}/resume", {}),
        ("POST", f"/api/v1/runs/{run_id}/tasks", {"id": "x", "prompt": "hi", "model": "fast"}),
    ]:
        answer = keyed.request(method, path, json=body, headers=B)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json() == {"code": "run_not_found", "message": f"no run with id {run_id!r}"}
    # the owner still reads it, streams it, and gets the ordinary answers
    assert keyed.get(f"/api/v1/runs/{run_id}", headers=A).json()["state"] == "completed"
    events = keyed.get(f"/api/v1/runs/{run_id}/events", headers=A)
    assert events.status_code == 200 and "event: end" in events.text
    assert keyed.post(f"/api/v1/runs/{run_id}/abort", headers=A).json()["code"] == "run_completed"


def test_lists_hold_only_the_keys_own_runs_and_the_admin_sees_all(keyed: TestClient) -> None:
    mine = {keyed.post("/api/v1/runs", json=HELLO, headers=A).json()["run_id"] for _ in range(3)}
    theirs = keyed.post("/api/v1/runs", json=HELLO, headers=B).json()["run_id"]
    for run_id in (*mine, theirs):
        finished(keyed, run_id, ROOT)
    page_a = keyed.get("/api/v1/runs", headers=A).json()
    assert {item["run_id"] for item in page_a["items"]} == mine
    assert page_a["total"] == 3
    paged = keyed.get("/api/v1/runs?limit=2&offset=2", headers=A).json()
    assert paged["total"] == 3 and len(paged["items"]) == 1
    page_b = keyed.get("/api/v1/runs?state=completed", headers=B).json()
    assert [item["run_id"] for item in page_b["items"]] == [theirs]
    assert page_b["total"] == 1
    everything = keyed.get("/api/v1/runs", headers=ROOT).json()
    assert {item["run_id"] for item in everything["items"]} == {*mine, theirs}
    assert keyed.get(f"/api/v1/runs/{theirs}", headers=ROOT).json()["state"] == "completed"


def test_a_live_run_cannot_be_aborted_or_streamed_by_another_key(
    keyed: TestClient, gate: Any
) -> None:
    run_id = keyed.post("/api/v1/runs", json={"workflow": "gated"}, headers=A).json()["run_id"]
    assert gate.started.wait(10)
    assert keyed.post(f"/api/v1/runs/{run_id}/abort", headers=B).status_code == 404
    assert keyed.get(f"/api/v1/runs/{run_id}/events", headers=B).status_code == 404
    assert keyed.get(f"/api/v1/runs/{run_id}", headers=B).status_code == 404
    assert keyed.get(f"/api/v1/runs/{run_id}", headers=A).json()["state"] == "running"
    assert keyed.post(f"/api/v1/runs/{run_id}/abort", headers=ROOT).json()["state"] == "aborting"
    assert finished(keyed, run_id, A)["state"] == "aborted"


def test_only_the_owner_or_the_admin_resumes(keyed: TestClient, gate: Any) -> None:
    tight = {**HELLO, "policy_name": "tight"}
    run_id = keyed.post("/api/v1/runs", json=tight, headers=A).json()["run_id"]
    assert finished(keyed, run_id, A)["state"] == "budget_exceeded"
    assert keyed.post(f"/api/v1/runs/{run_id}/resume", json={}, headers=B).status_code == 404
    resumed = keyed.post(
        f"/api/v1/runs/{run_id}/resume", json={"budget": {"max_cost": "1"}}, headers=A
    )
    assert resumed.status_code == 202, resumed.text
    assert finished(keyed, run_id, A)["state"] == "completed"


def test_metrics_need_an_admin_key(keyed: TestClient) -> None:
    refused = keyed.get("/metrics", headers=A)
    assert refused.status_code == 403 and "admin" in refused.json()["message"]
    assert keyed.get("/metrics", headers=ROOT).status_code == 200


# -- budgets -------------------------------------------------------------------------------
def test_a_key_reads_and_sets_only_its_own_scopes(scoped: TestClient) -> None:
    put = scoped.put("/api/v1/budgets/team:a", json={"max_cost": "0.5", "window": "day"}, headers=A)
    assert put.status_code == 200, put.text
    assert put.json()["max_cost"] == "0.5" and put.json()["window"] == "day"
    assert put.json()["remaining"] == "0.5" and put.json()["window_start"] is not None
    got = scoped.get("/api/v1/budgets/team:a", headers=A).json()
    assert got["spent"] == "0" and got["reserved"] == "0"
    for method, body in (("GET", None), ("PUT", {"max_cost": "100"})):
        answer = scoped.request(method, "/api/v1/budgets/team:a", json=body, headers=B)
        assert answer.status_code == 404
        assert answer.json()["code"] == "scope_not_found"
    assert scoped.get("/api/v1/budgets/team:a", headers=A).json()["max_cost"] == "0.5"
    listed = scoped.get("/api/v1/budgets", headers=A).json()["items"]
    assert [item["scope"] for item in listed] == ["key:alice", "team:a"]
    # the admin: any scope, and every scope the ledger knows
    admin = scoped.put("/api/v1/budgets/team:b", json={"max_tokens": 900, "window": 3600},
                       headers=ROOT)  # fmt: skip
    assert admin.json()["max_tokens"] == 900 and admin.json()["window"] == 3600
    every = {item["scope"] for item in scoped.get("/api/v1/budgets", headers=ROOT).json()["items"]}
    assert {"team:a", "team:b"} <= every


def test_a_bad_budget_body_or_scope_name_is_400(scoped: TestClient) -> None:
    bad = scoped.put("/api/v1/budgets/team:a", json={"max_cost": "-1"}, headers=A)
    assert bad.status_code == 400 and "max_cost" in bad.json()["message"]
    assert scoped.put("/api/v1/budgets/team:a", json={"window": "fortnight"},
                      headers=A).status_code == 400  # fmt: skip
    assert scoped.get("/api/v1/budgets/%20x", headers=ROOT).status_code == 400


# -- scopes: a key's runs reserve in its scopes ---------------------------------------------
def test_a_keys_runs_reserve_in_its_scopes(scoped: TestClient) -> None:
    for scope in ("team:a", "team:b"):
        scoped.put(f"/api/v1/budgets/{scope}", json={"max_cost": "1"}, headers=ROOT)
    run_id = scoped.post("/api/v1/runs", json=HELLO, headers=A).json()["run_id"]
    run = finished(scoped, run_id, A)
    assert run["state"] == "completed", run
    cost = run["cost"]["amount"]
    assert float(cost) > 0
    for scope in ("key:alice", "team:a"):
        status = scoped.get(f"/api/v1/budgets/{scope}", headers=A).json()
        assert status["spent"] == cost and status["reserved"] == "0", status
    assert scoped.get("/api/v1/budgets/team:b", headers=ROOT).json()["spent"] == "0"


def test_an_exhausted_scope_refuses_the_run_with_402_naming_it(scoped: TestClient) -> None:
    scoped.put("/api/v1/budgets/team:a", json={"max_cost": "0"}, headers=ROOT)
    refused = scoped.post("/api/v1/runs", json=HELLO, headers=A)
    assert refused.status_code == 402, refused.text
    assert refused.json()["code"] == "budget_exceeded"
    assert "'team:a'" in refused.json()["message"]
    assert scoped.get("/api/v1/runs", headers=A).json()["total"] == 0
    # bob's scopes are untouched: his run goes
    ok = scoped.post("/api/v1/runs", json=HELLO, headers=B)
    assert ok.status_code == 202
    assert finished(scoped, ok.json()["run_id"], B)["state"] == "completed"


def test_a_scope_too_small_for_one_call_stops_the_run_before_any_model_call(
    scoped: TestClient,
) -> None:
    scoped.put("/api/v1/budgets/team:a", json={"max_cost": "0.0000001"}, headers=ROOT)
    run_id = scoped.post("/api/v1/runs", json=HELLO, headers=A).json()["run_id"]
    run = finished(scoped, run_id, A)
    assert run["state"] == "budget_exceeded", run
    assert run["usage"]["total_tokens"] == 0  # nothing was sent, so nothing was billed
    assert run["tasks"]["greet"]["error"]["code"] == "budget_exceeded"
    assert "team:a" in run["tasks"]["greet"]["error"]["message"]
    status = scoped.get("/api/v1/budgets/team:a", headers=A).json()
    assert status["spent"] == "0" and status["reserved"] == "0"


def test_a_ledger_that_cannot_answer_refuses_calls_and_writes_with_503(
    make_app: AppFactory, tmp_path: Path
) -> None:
    import sqlite3

    from langchain_runtime.cost.ledger import SQLiteLedger

    ledger_file = tmp_path / "held.db"
    ledger = SQLiteLedger(ledger_file, timeout=0.2)
    ledger.set_limit("team:a", max_cost="1")
    app = make_app(config=load_config(keyed_config(tmp_path)), ledger=ledger)
    holder = sqlite3.connect(ledger_file, isolation_level=None)
    try:
        with TestClient(app) as client:
            holder.execute("BEGIN EXCLUSIVE")  # another process holds the file
            put = client.put("/api/v1/budgets/team:a", json={"max_cost": "9"}, headers=A)
            assert put.status_code == 503, put.text
            assert put.json()["code"] == "ledger_unavailable"
            assert "refused" in put.json()["message"] or "another process" in put.json()["message"]
            # a run's first call can not reserve: refused, never sent unmetered
            run_id = client.post("/api/v1/runs", json=HELLO, headers=A).json()["run_id"]
            run = finished(client, run_id, A)
            assert run["state"] != "completed", run
            assert run["usage"]["total_tokens"] == 0
            assert run["tasks"]["greet"]["error"]["code"] == "ledger_unavailable", run
            holder.execute("ROLLBACK")
            assert client.get("/api/v1/budgets/team:a", headers=A).json()["max_cost"] == "1"
    finally:
        holder.close()
        ledger.close()


def test_a_store_that_cannot_filter_by_owner_still_lists_only_the_keys_runs(
    make_app: AppFactory, tmp_path: Path
) -> None:
    from langchain_runtime.api.store import MemoryRunStore

    app = make_app(config=load_config(keyed_config(tmp_path, scopes=False)), store=MemoryRunStore())
    with TestClient(app) as client:
        ids = [client.post("/api/v1/runs", json=HELLO, headers=h).json()["run_id"]
               for h in (A, B, A, B, A)]  # fmt: skip
        for run_id in ids:
            finished(client, run_id, ROOT)
        page = client.get("/api/v1/runs?limit=2", headers=A).json()
        assert page["total"] == 3 and len(page["items"]) == 2
        rest = client.get("/api/v1/runs?limit=2&offset=2", headers=A).json()
        mine = {i["run_id"] for i in page["items"] + rest["items"]}
        assert mine == {ids[0], ids[2], ids[4]}
        assert client.get("/api/v1/runs", headers=B).json()["total"] == 2


def test_one_sqlite_database_holds_the_runs_and_the_budgets(
    make_app: AppFactory, tmp_path: Path
) -> None:
    import sqlite3

    spec = keyed_config(tmp_path)
    del spec["ledger"]  # the database's ledger, in the same file
    database = tmp_path / "all.db"
    app = make_app(config=load_config(spec), store=None, database=f"sqlite:///{database}")
    with TestClient(app) as client:
        client.put("/api/v1/budgets/team:a", json={"max_cost": "1"}, headers=A)
        run_id = client.post("/api/v1/runs", json=HELLO, headers=A).json()["run_id"]
        run = finished(client, run_id, A)
        assert run["state"] == "completed"
        spent = client.get("/api/v1/budgets/team:a", headers=A).json()["spent"]
        assert spent == run["cost"]["amount"]
    tables = {r[0] for r in sqlite3.connect(database).execute("SELECT name FROM sqlite_master")}
    assert {"runs", "durable_runs", "ledger_scopes"} <= tables


def test_a_bad_database_url_is_a_clear_error(make_app: AppFactory) -> None:
    with pytest.raises(ConfigurationError, match=r"postgresql://user@host/db or sqlite:///"):
        make_app(store=None, database="mysql://root:pw@db/x")
    with pytest.raises(ConfigurationError, match="a store or a database, not both"):
        make_app(database="sqlite:///x.db")
