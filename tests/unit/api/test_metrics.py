"""``/metrics`` from prometheus_client: parsed with its own parser, bounded labels."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.api._helpers import AppFactory, wait_for

pytest.importorskip("fastapi", reason="the server tests need the 'server' extra")

RUNS = "/api/v1/runs"
HELLO = {"workflow": "hello", "input": {"name": "Ada"}}


def scrape(client: Any) -> dict[str, list[Any]]:
    """Samples by metric family name, as Prometheus would read them."""
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return {f.name: list(f.samples) for f in text_string_to_metric_families(r.text)}


def value(samples: list[Any], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, samples)
    return float(found[0])


def done(client: Any, run_id: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"{RUNS}/{run_id}").json()
        return body if body["state"] not in ("pending", "running", "aborting") else None

    result: dict[str, Any] = wait_for(check)
    return result


def test_metrics_parse_and_count_runs_tasks_tokens_cost_by_model(make_app: AppFactory) -> None:
    from fastapi.testclient import TestClient

    with TestClient(make_app()) as client:
        status = done(client, client.post(RUNS, json=HELLO).json()["run_id"])
        refused_id = client.post(RUNS, json={**HELLO, "policy_name": "tight"}).json()["run_id"]
        refused = done(client, refused_id)
        assert refused["state"] == "budget_exceeded"
        client.get(f"{RUNS}/{uuid.uuid4()}")
        m = scrape(client)
    assert value(m["langchain_runtime_runs"], "langchain_runtime_runs", state="completed") == 1
    assert value(m["langchain_runtime_active_runs"], "langchain_runtime_active_runs") == 0
    tasks = m["langchain_runtime_tasks"]
    assert value(tasks, "langchain_runtime_tasks_total", state="completed") == 2
    finished = m["langchain_runtime_runs_finished"]
    assert value(finished, "langchain_runtime_runs_finished_total", state="budget_exceeded") == 1
    refusals = m["langchain_runtime_budget_refusals"]
    assert value(refusals, "langchain_runtime_budget_refusals_total") == 1
    # tokens and cost by model equal what the run reported
    [model] = status["models"]
    runs = [r["models"][model] for r in (status, refused) if model in r["models"]]
    tokens = m["langchain_runtime_model_tokens"]
    for kind, key in (("input", "input_tokens"), ("output", "output_tokens")):
        reported = sum(r["usage"][key] for r in runs)
        assert reported > 0
        counted = value(tokens, "langchain_runtime_model_tokens_total", model=model, kind=kind)
        assert counted == reported
    cost = m["langchain_runtime_model_cost"]
    spent = value(cost, "langchain_runtime_model_cost_total", model=model, currency="USD")
    assert spent == pytest.approx(sum(float(r["cost"]["amount"]) for r in runs))
    assert spent > 0
    http = m["langchain_runtime_http_requests"]
    assert value(http, "langchain_runtime_http_requests_total", method="POST", route=RUNS,
                 status="202") == 2  # fmt: skip
    assert value(http, "langchain_runtime_http_requests_total", method="GET",
                 route=f"{RUNS}/{{run_id}}", status="404") == 1  # fmt: skip
    latency = m["langchain_runtime_http_request_duration_seconds"]
    count = value(latency, "langchain_runtime_http_request_duration_seconds_count",
                  method="POST", route=RUNS)  # fmt: skip
    assert count == 2


def test_label_values_stay_bounded_after_1000_runs_with_random_ids_and_404s(
    make_app: AppFactory,
) -> None:
    from fastapi.testclient import TestClient

    with TestClient(make_app(max_concurrent_runs=1000)) as client:
        ids = []
        for i in range(1000):
            body = {**HELLO, "id": f"run-{uuid.uuid4()}"}
            r = client.post(RUNS, json=body)
            assert r.status_code == 202, r.text
            ids.append(r.json()["run_id"])
            client.get(f"/no/such/path/{uuid.uuid4()}")
            if i % 10 == 0:
                client.get(f"{RUNS}/{uuid.uuid4()}")
        wait_for(lambda: client.get("/healthz").json()["active_runs"] == 0, timeout=120)
        m = scrape(client)
    labels = {(s.name, tuple(sorted(s.labels.items()))) for f in m.values() for s in f}
    text = repr(labels)
    assert not any(rid in text for rid in ids[:50])
    assert "/no/such/path" not in text
    routes = {dict(lv)["route"] for _, lv in labels if "route" in dict(lv)}
    assert routes <= {RUNS, f"{RUNS}/{{run_id}}", "unmatched", "/metrics", "/healthz"}
    # a fixed set of series, whatever the number of runs
    assert len(labels) < 150
    runs = m["langchain_runtime_runs"]
    assert value(runs, "langchain_runtime_runs", state="completed") == 1000
    http = m["langchain_runtime_http_requests"]
    assert value(http, "langchain_runtime_http_requests_total", method="GET",
                 route="unmatched", status="404") == 1000  # fmt: skip


def test_model_labels_are_capped_and_the_rest_count_as_other() -> None:
    from langchain_runtime.api.schemas import RunStatus
    from langchain_runtime.api.server._metrics import MAX_MODELS, Metrics

    metrics = Metrics()
    for i in range(MAX_MODELS + 30):
        status = RunStatus.model_validate(
            {"run_id": f"r{i}", "state": "completed",
             "models": {f"model-{i}": {"usage": {"input_tokens": 1, "output_tokens": 1},
                                       "cost": {"amount": "0.01"}, "calls": 1}}}
        )  # fmt: skip
        metrics.run_finished(status, 0.1)
    families = {f.name: f for f in text_string_to_metric_families(metrics.render({}, 0))}
    cost = [
        s for s in families["langchain_runtime_model_cost"].samples if s.name.endswith("_total")
    ]
    models = {s.labels["model"] for s in cost}
    assert len(models) == MAX_MODELS + 1 and "other" in models
    other = [s.value for s in cost if s.labels["model"] == "other"]
    assert other == [pytest.approx(0.30)]
