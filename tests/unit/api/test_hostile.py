"""Malformed and hostile requests never get a 5xx (property test, in-process)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.api._helpers import AppFactory

pytest.importorskip("fastapi", reason="the server tests need the 'server' extra")

from fastapi.testclient import TestClient

RUNS = "/api/v1/runs"
FIELDS = ["id", "workflow", "tasks", "model", "policy", "policy_name", "input", "provider"]
TASK_FIELDS = ["id", "prompt", "model", "deps", "inputs", "context", "timeout", "max_retries",
               "metadata", "memory_key", "base_url"]  # fmt: skip
WORDS = ["hello", "slow", "fast", "simulated", "a", "b", "$input.x", "{name}", "gated", "tight"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(WORDS),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
prompts = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["{name}", "{x.y}", "{0}", "{}", "{a:>9}", "{a!r}", "{{", "}", "{a[0]}"]),
)
tasks = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.sampled_from(["a", "b", "$x", "", " "]), json_values),
        "prompt": st.one_of(prompts, json_values),
        "model": st.one_of(st.sampled_from(["fast", "slow", "simulated", "gpt-4o"]), json_values),
        "deps": st.one_of(st.lists(st.sampled_from(["a", "b", "c"]), max_size=3), json_values),
        "inputs": st.one_of(
            st.dictionaries(st.sampled_from(["x", "name"]), st.sampled_from(WORDS), max_size=2),
            json_values,
        ),
        "context": json_values,
        "timeout": json_values,
        "max_retries": json_values,
        "metadata": json_values,
        "base_url": st.just("http://evil.test"),
    },
)
policies = st.fixed_dictionaries(
    {},
    optional={
        "max_parallelism": json_values,
        "timeout_ms": json_values,
        "budget_limit": st.one_of(
            st.fixed_dictionaries(
                {"amount": st.one_of(json_values, st.sampled_from(["NaN", "1e999", "-1"]))}
            ),
            json_values,
        ),
        "context_policy": json_values,
        "scheduling": json_values,
    },
)
run_requests = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(max_size=10), json_values),
        "workflow": st.one_of(st.sampled_from(["hello", "slow", "nope"]), json_values),
        "tasks": st.one_of(st.lists(tasks, max_size=4), json_values),
        "model": json_values,
        "policy": st.one_of(policies, json_values),
        "policy_name": json_values,
        "input": st.one_of(
            st.dictionaries(st.sampled_from(["name", "x"]), json_values), json_values
        ),
        "provider": st.just("openai"),
    },
)
raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.sampled_from([b"", b"null", b"[]", b"{", b'{"a":' * 5000, b"[" * 100_000, b"\xff\xfe"]),
)
bodies = st.one_of(
    run_requests.map(lambda d: json.dumps(d).encode()),
    tasks.map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda d: json.dumps(d).encode()),
    raw_bodies,
)
run_ids = st.one_of(
    st.sampled_from(["known", "nope", "..", "%00"]), st.text(min_size=1, max_size=20)
)
content_types = st.sampled_from(
    [
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "",
        "application/json; charset=latin-1",
    ]
)


@pytest.fixture
def hostile(make_app: AppFactory) -> Iterator[TestClient]:
    app = make_app(workflows={}, max_body_bytes=200_000, max_concurrent_runs=4)
    with TestClient(app, raise_server_exceptions=True) as c:
        known = {"workflow": "hello", "id": "known", "input": {"name": "x"}}
        assert c.post(RUNS, json=known).status_code == 202
        yield c


def _check(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"code", "message"} and body["message"]


SETTINGS = settings(
    max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(body=bodies, content_type=content_types, run_id=run_ids)
def test_posts_never_fail_with_5xx(
    hostile: TestClient, body: bytes, content_type: str, run_id: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    path = quote(run_id, safe="")
    for url in (RUNS, f"{RUNS}/{path}/tasks", f"{RUNS}/{path}/abort"):
        _check(hostile.post(url, content=body, headers=headers))


@SETTINGS
@given(
    run_id=run_ids,
    params=st.dictionaries(
        st.sampled_from(["limit", "offset", "state", "after", "x"]),
        st.one_of(st.text(max_size=10), st.integers().map(str)),
        max_size=4,
    ),
    last_event_id=st.one_of(st.none(), st.text(max_size=10), st.integers().map(str)),
    method=st.sampled_from(["GET", "DELETE", "PUT", "PATCH", "OPTIONS"]),
)
def test_reads_never_fail_with_5xx(
    hostile: TestClient,
    run_id: str,
    params: dict[str, str],
    last_event_id: str | None,
    method: str,
) -> None:
    path = quote(run_id, safe="")
    headers = {}
    if last_event_id is not None and last_event_id.isprintable() and last_event_id.isascii():
        headers["last-event-id"] = last_event_id
    for url in (RUNS, f"{RUNS}/{path}", f"{RUNS}/{path}/events", "/healthz", "/metrics"):
        _check(hostile.request(method, url, params=params, headers=headers))
        _check(hostile.get(url, params=params, headers=headers))
