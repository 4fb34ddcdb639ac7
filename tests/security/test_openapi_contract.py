"""The OpenAPI schema says what the server does (issue 10, finding 8).

schemathesis generates requests for every operation from the app's own schema and
checks each answer against it: no 5xx, only documented status codes, documented
content types, bodies matching their schemas. In-process (ASGI), bounded and
derandomized, with and without the token.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from langchain_runtime.api.store import MemoryRunStore
from langchain_runtime.config import load_config
from tests.unit.api._helpers import CONFIG

pytest.importorskip("fastapi", reason="the server tests need the 'server' extra")
schemathesis = pytest.importorskip("schemathesis", reason="the contract test needs schemathesis")

from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from langchain_runtime.api.server import create_app  # noqa: E402

TOKEN = "contract-token"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = settings(
    max_examples=12,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _app(token: str | None) -> Any:
    # "testserver" is the host name of schemathesis's in-process client
    return create_app(
        load_config(CONFIG), store=MemoryRunStore(), token=token, allowed_hosts=["testserver"]
    )


KEY = "contract-key-" + "k" * 30


def _keyed_app() -> Any:
    from langchain_runtime.api.server._keys import hash_key

    keys = [{"name": "ci", "hash": hash_key(KEY), "scopes": ["key:ci", "team:research"]}]
    config = load_config({**CONFIG, "ledger": "memory://", "server": {"api_keys": keys}})
    return create_app(config, store=MemoryRunStore(), allowed_hosts=["testserver"])


OPEN_APP = _app(None)
TOKEN_APP = _app(TOKEN)
KEYED_APP = _keyed_app()
open_schema = schemathesis.openapi.from_asgi("/openapi.json", OPEN_APP)
token_schema = schemathesis.openapi.from_asgi(
    "/openapi.json", TOKEN_APP, headers={"authorization": f"Bearer {TOKEN}"}
)
keyed_schema = schemathesis.openapi.from_asgi(
    "/openapi.json", KEYED_APP, headers={"authorization": f"Bearer {KEY}"}
)


@pytest.fixture(scope="module", autouse=True)
def _close_apps() -> Iterator[None]:
    yield
    for app in (OPEN_APP, TOKEN_APP, KEYED_APP):
        app.state.manager.close(timeout=5)


@open_schema.parametrize()
@EXAMPLES
def test_every_operation_without_a_token(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


@token_schema.parametrize()
@EXAMPLES
def test_every_operation_with_the_token(case: Any) -> None:
    case.call_and_validate(headers={"authorization": f"Bearer {TOKEN}"}, checks=CHECKS)


@token_schema.parametrize()
@settings(EXAMPLES, max_examples=4)
def test_every_operation_refuses_a_missing_token_as_documented(case: Any) -> None:
    if case.path == "/healthz":
        return  # the liveness probe is open
    response = case.call()
    assert response.status_code == 401
    case.validate_response(response, checks=CHECKS)


def test_the_schema_documents_the_stream_and_the_rules() -> None:
    schema = OPEN_APP.openapi()
    events = schema["paths"]["/api/v1/runs/{run_id}/events"]["get"]
    assert list(events["responses"]["200"]["content"]) == ["text/event-stream"]
    header = next(p for p in events["parameters"] if p["name"] == "last-event-id")
    assert "1_0" in header["description"]
    request = schema["components"]["schemas"]["RunRequest"]
    assert [branch["required"] for branch in request["oneOf"]] == [["workflow"], ["tasks"]]
    submit = schema["paths"]["/api/v1/runs"]["post"]["responses"]
    assert {"402", "413", "429", "503"} <= set(submit)
    assert {"401", "403"} <= set(schema["paths"]["/metrics"]["get"]["responses"])


@keyed_schema.parametrize()
@EXAMPLES
def test_every_operation_with_an_api_key(case: Any) -> None:
    case.call_and_validate(headers={"authorization": f"Bearer {KEY}"}, checks=CHECKS)
