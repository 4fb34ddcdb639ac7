"""The sidecar refuses a run whose worst case does not fit, before any call."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the server tests need the 'server' extra")

from fastapi.testclient import TestClient

RUNS = "/api/v1/runs"
HELLO = {"workflow": "hello", "input": {"name": "Ada"}}


def test_a_worst_case_policy_refuses_the_run_with_the_estimate(client: TestClient) -> None:
    policy = {"admission": "worst_case", "budget_limit": {"amount": "0.0000001"}}
    r = client.post(RUNS, json={**HELLO, "policy": policy})
    assert r.status_code >= 400
    body = r.json()
    assert body["code"] == "budget_exceeded"
    assert "admission='worst_case'" in body["message"]
    assert "over the budget of 0.0000001 USD" in body["message"]


def test_the_same_budget_per_call_starts_the_run(client: TestClient) -> None:
    policy = {"budget_limit": {"amount": "0.0000001"}}
    r = client.post(RUNS, json={**HELLO, "policy": policy})
    assert r.status_code == 202


def test_an_unknown_admission_is_refused(client: TestClient) -> None:
    r = client.post(RUNS, json={**HELLO, "policy": {"admission": "sometimes"}})
    assert r.status_code == 400 and r.json()["code"] == "invalid_input"
    assert "admission" in r.json()["message"]
