"""The HTTP client against mocked HTTP (respx): routes, errors, timeouts, retries."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx

from langchain_runtime import BudgetExceededError, GraphValidationError, InvalidInputError
from langchain_runtime.api import (
    ERROR_TABLE,
    ApiConnectionError,
    ApiError,
    ApiTimeoutError,
    AsyncRuntimeClient,
    RunNotFoundError,
    RuntimeClient,
    ServerError,
)

URL = "http://runtime.test"
RUNS = f"{URL}/api/v1/runs"


def status_body(run_id: str = "r1", state: str = "completed", **extra: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "state": state,
        "tasks": {
            "a": {
                "task_id": "a",
                "state": "completed",
                "output": {"type": "ai", "data": {"content": "hello", "type": "ai"}},
                "output_type": "message",
                "output_text": "hello",
                "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
                "cost": {"amount": "0.0001", "currency": "USD"},
            }
        },
        "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
        "cost": {"amount": "0.0001", "currency": "USD"},
        **extra,
    }


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.fixture
def client() -> Iterator[RuntimeClient]:
    c = RuntimeClient(URL, token="tok", timeout=2.0, retries=2)
    c._core.backoff = 0.0  # no real waiting between retries in tests
    yield c
    c.close()


# -- every route ----------------------------------------------------------------------
def test_start_run_posts_the_request(mock: respx.MockRouter, client: RuntimeClient) -> None:
    route = mock.post(RUNS).respond(202, json={"run_id": "r1", "state": "pending"})
    accepted = client.start_run(
        tasks=[{"id": "a", "prompt": "Hi {name}", "model": "fast"}],
        policy={"timeout_ms": 1000, "budget_limit": {"amount": "0.5"}},
        input={"name": "Ada", "none": None},
    )
    assert (accepted.run_id, accepted.state) == ("r1", "pending")
    request = route.calls.last.request
    assert request.headers["authorization"] == "Bearer tok"
    assert request.headers["content-type"] == "application/json"
    body = json.loads(request.content)
    assert body == {
        "tasks": [{"id": "a", "prompt": "Hi {name}", "model": "fast"}],
        "policy": {"timeout_ms": 1000, "budget_limit": {"amount": "0.5"}},
        "input": {"name": "Ada", "none": None},
    }


def test_get_run_decodes_the_status(mock: respx.MockRouter, client: RuntimeClient) -> None:
    mock.get(f"{RUNS}/r%2F1").respond(200, json=status_body("r/1"))
    status = client.get_run("r/1")  # ids are quoted into the path
    assert status.finished and status.tasks["a"].output_value().text == "hello"
    result = status.to_result()
    assert result["a"].text == "hello" and result.usage.total_tokens == 5


def test_list_runs_sends_the_paging(mock: respx.MockRouter, client: RuntimeClient) -> None:
    route = mock.get(RUNS).respond(
        200,
        json={
            "items": [{"run_id": "r1", "state": "failed", "tasks": 2, "total_tokens": 9}],
            "total": 11,
            "limit": 1,
            "offset": 3,
        },
    )
    page = client.list_runs(limit=1, offset=3, state="failed")
    assert page.total == 11 and page.items[0].run_id == "r1"
    assert dict(route.calls.last.request.url.params) == {
        "limit": "1",
        "offset": "3",
        "state": "failed",
    }
    client.list_runs()
    assert "state" not in route.calls.last.request.url.params


def test_abort_and_enqueue(mock: respx.MockRouter, client: RuntimeClient) -> None:
    mock.post(f"{RUNS}/r1/abort").respond(202, json={"run_id": "r1", "state": "aborting"})
    route = mock.post(f"{RUNS}/r1/tasks").respond(
        202, json={"run_id": "r1", "task_id": "b", "state": "pending"}
    )
    assert client.abort_run("r1").state == "aborting"
    accepted = client.enqueue_task("r1", {"id": "b", "prompt": "More on {a}", "deps": ["a"]})
    assert accepted.task_id == "b"
    assert json.loads(route.calls.last.request.content) == {
        "id": "b",
        "prompt": "More on {a}",
        "deps": ["a"],
    }


def test_health(mock: respx.MockRouter, client: RuntimeClient) -> None:
    mock.get(f"{URL}/healthz").respond(200, json={"status": "ok", "version": "1"})
    assert client.health()["status"] == "ok"


def test_wait_polls_until_the_run_ends(mock: respx.MockRouter, client: RuntimeClient) -> None:
    route = mock.get(f"{RUNS}/r1")
    route.side_effect = [
        httpx.Response(200, json=status_body(state="running")),
        httpx.Response(200, json=status_body(state="aborting")),
        httpx.Response(200, json=status_body(state="aborted")),
    ]
    assert client.wait("r1", timeout=5, poll_interval=0.01).state == "aborted"
    assert route.call_count == 3


def test_wait_gives_up_after_its_timeout(mock: respx.MockRouter, client: RuntimeClient) -> None:
    mock.get(f"{RUNS}/r1").respond(200, json=status_body(state="running"))
    with pytest.raises(ApiTimeoutError, match="still running"):
        client.wait("r1", timeout=0.05, poll_interval=0.01)


# -- errors ---------------------------------------------------------------------------
@pytest.mark.parametrize("code", sorted(ERROR_TABLE))
def test_every_error_code_maps_to_its_error(
    mock: respx.MockRouter, client: RuntimeClient, code: str
) -> None:
    status = ERROR_TABLE[code].status
    route = mock.get(f"{RUNS}/r1").respond(status, json={"code": code, "message": "because"})
    with pytest.raises(ApiError) as info:
        client.get_run("r1")
    assert isinstance(info.value, ERROR_TABLE[code].error)
    assert (info.value.status_code, info.value.code, str(info.value)) == (status, code, "because")
    assert route.call_count == 1  # an HTTP answer is never retried


def test_errors_are_the_package_errors_where_they_exist(
    mock: respx.MockRouter, client: RuntimeClient
) -> None:
    answers = {
        "budget_exceeded": BudgetExceededError,
        "dag_cycle": GraphValidationError,
        "invalid_input": InvalidInputError,
        "run_not_found": RunNotFoundError,
    }
    for code, cls in answers.items():
        mock.post(RUNS).respond(ERROR_TABLE[code].status, json={"code": code, "message": code})
        with pytest.raises(cls):
            client.start_run(workflow="w")


def test_a_non_json_error_body_still_raises_by_status(
    mock: respx.MockRouter, client: RuntimeClient
) -> None:
    mock.get(f"{RUNS}/r1").respond(502, text="<html>bad gateway</html>")
    with pytest.raises(ServerError) as info:
        client.get_run("r1")
    assert info.value.status_code == 502


def test_an_unexpected_success_body_is_an_api_error(
    mock: respx.MockRouter, client: RuntimeClient
) -> None:
    mock.get(f"{RUNS}/r1").respond(200, text="not json")
    with pytest.raises(ApiError, match="unexpected response"):
        client.get_run("r1")


# -- timeouts and retries -------------------------------------------------------------
def test_every_request_carries_the_timeout(mock: respx.MockRouter) -> None:
    route = mock.get(f"{RUNS}/r1").respond(200, json=status_body())
    with RuntimeClient(URL, timeout=1.5) as c:
        c.get_run("r1")
    timeout = route.calls.last.request.extensions["timeout"]
    assert timeout == {"connect": 1.5, "read": 1.5, "write": 1.5, "pool": 1.5}


def test_gets_are_retried_on_connection_errors(
    mock: respx.MockRouter, client: RuntimeClient
) -> None:
    route = mock.get(f"{RUNS}/r1")
    route.side_effect = [
        httpx.ConnectError("refused"),
        httpx.ReadError("reset"),
        httpx.Response(200, json=status_body()),
    ]
    assert client.get_run("r1").state == "completed"
    assert route.call_count == 3


def test_retries_are_bounded(mock: respx.MockRouter, client: RuntimeClient) -> None:
    route = mock.get(f"{RUNS}/r1").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ApiConnectionError, match="ConnectError"):
        client.get_run("r1")
    assert route.call_count == 3  # 1 + retries=2


def test_a_timeout_raises_api_timeout_error(mock: respx.MockRouter, client: RuntimeClient) -> None:
    route = mock.get(f"{RUNS}/r1").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(ApiTimeoutError) as info:
        client.get_run("r1")
    assert isinstance(info.value, TimeoutError)
    assert route.call_count == 3


def test_5xx_answers_are_not_retried(mock: respx.MockRouter, client: RuntimeClient) -> None:
    route = mock.get(f"{RUNS}/r1").respond(503, json={"code": "shutting_down", "message": "bye"})
    with pytest.raises(ServerError):
        client.get_run("r1")
    assert route.call_count == 1


def test_a_submission_that_may_have_arrived_is_not_retried(
    mock: respx.MockRouter, client: RuntimeClient
) -> None:
    route = mock.post(RUNS).mock(side_effect=httpx.ReadError("reset after sending"))
    with pytest.raises(ApiConnectionError):
        client.start_run(workflow="w")
    assert route.call_count == 1


def test_a_submission_that_never_connected_is_retried(
    mock: respx.MockRouter, client: RuntimeClient
) -> None:
    route = mock.post(RUNS)
    route.side_effect = [
        httpx.ConnectError("refused"),
        httpx.Response(202, json={"run_id": "r9", "state": "pending"}),
    ]
    assert client.start_run(workflow="w").run_id == "r9"
    assert route.call_count == 2


def test_a_submission_with_its_own_id_is_retried_and_deduplicated(
    mock: respx.MockRouter, client: RuntimeClient
) -> None:
    route = mock.post(RUNS)
    # the first attempt reached the server but its answer was lost
    route.side_effect = [
        httpx.ReadError("reset"),
        httpx.Response(409, json={"code": "run_exists", "message": "exists"}),
    ]
    mock.get(f"{RUNS}/mine-1").respond(200, json=status_body("mine-1", state="running"))
    accepted = client.start_run(workflow="w", run_id="mine-1")
    assert (accepted.run_id, accepted.state) == ("mine-1", "running")
    assert route.call_count == 2
    assert all(json.loads(c.request.content)["id"] == "mine-1" for c in route.calls)


def test_run_exists_on_a_first_attempt_is_an_error(
    mock: respx.MockRouter, client: RuntimeClient
) -> None:
    mock.post(RUNS).respond(409, json={"code": "run_exists", "message": "taken"})
    with pytest.raises(ApiError, match="taken"):
        client.start_run(workflow="w", run_id="mine-1")


def test_abort_and_enqueue_are_not_retried_after_sending(
    mock: respx.MockRouter, client: RuntimeClient
) -> None:
    abort = mock.post(f"{RUNS}/r1/abort").mock(side_effect=httpx.ReadError("reset"))
    enqueue = mock.post(f"{RUNS}/r1/tasks").mock(side_effect=httpx.WriteError("broken"))
    with pytest.raises(ApiConnectionError):
        client.abort_run("r1")
    with pytest.raises(ApiConnectionError):
        client.enqueue_task("r1", {"id": "b", "prompt": "x"})
    assert (abort.call_count, enqueue.call_count) == (1, 1)


def test_the_token_defaults_to_the_environment(
    mock: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGCHAIN_RUNTIME_TOKEN", "from-env")
    route = mock.get(f"{URL}/healthz").respond(200, json={"status": "ok"})
    with RuntimeClient(URL) as c:
        c.health()
    assert route.calls.last.request.headers["authorization"] == "Bearer from-env"
    monkeypatch.delenv("LANGCHAIN_RUNTIME_TOKEN")
    with RuntimeClient(URL) as c:
        c.health()
    assert "authorization" not in route.calls.last.request.headers


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="timeout"):
        RuntimeClient(URL, timeout=0)
    with pytest.raises(ValueError, match="retries"):
        RuntimeClient(URL, retries=-1)


# -- events (server-sent) -------------------------------------------------------------
def sse(*events: tuple[int, str], end: str | None = "completed") -> str:
    out = ": keep-alive\n\n"
    for seq, etype in events:
        body = {"seq": seq, "type": etype, "run_id": "r1", "ts": "2026-01-01T00:00:00Z"}
        out += f"id: {seq}\nevent: {etype}\ndata: {json.dumps(body)}\n\n"
    if end is not None:
        out += f'event: end\ndata: {{"state": "{end}"}}\n\n'
    return out


class _BrokenStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """Sends ``text`` and then breaks the connection."""

    def __init__(self, text: str) -> None:
        self.text = text.encode()

    def __iter__(self) -> Iterator[bytes]:
        yield self.text
        raise httpx.ReadError("connection reset")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.text
        raise httpx.ReadError("connection reset")


def test_events_are_parsed_until_the_end(mock: respx.MockRouter, client: RuntimeClient) -> None:
    route = mock.get(f"{RUNS}/r1/events").respond(
        200, text=sse((0, "run_started"), (1, "task_completed"), (2, "run_finished"))
    )
    events = list(client.events("r1"))
    assert [(e.seq, e.type) for e in events] == [
        (0, "run_started"),
        (1, "task_completed"),
        (2, "run_finished"),
    ]
    assert "last-event-id" not in route.calls.last.request.headers
    list(client.events("r1", after=1))
    assert route.calls.last.request.headers["last-event-id"] == "1"


def test_events_resume_after_a_dropped_connection(
    mock: respx.MockRouter, client: RuntimeClient
) -> None:
    route = mock.get(f"{RUNS}/r1/events")
    route.side_effect = [
        httpx.Response(200, stream=_BrokenStream(sse((0, "run_started"), end=None))),
        httpx.ConnectError("refused"),
        httpx.Response(200, text=sse((1, "task_completed"), end=None)),  # closed early
        httpx.Response(200, text=sse((2, "run_finished"))),
    ]
    assert [e.seq for e in client.events("r1")] == [0, 1, 2]
    resumed = [c.request.headers.get("last-event-id") for c in route.calls]
    assert resumed == [None, "0", "0", "1"]


def test_events_give_up_after_the_retries(mock: respx.MockRouter, client: RuntimeClient) -> None:
    route = mock.get(f"{RUNS}/r1/events").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ApiConnectionError):
        list(client.events("r1"))
    assert route.call_count == 3


def test_events_of_an_unknown_run_raise(mock: respx.MockRouter, client: RuntimeClient) -> None:
    mock.get(f"{RUNS}/r1/events").respond(404, json={"code": "run_not_found", "message": "no"})
    with pytest.raises(RunNotFoundError):
        list(client.events("r1"))


# -- the async client: the same plans, awaited ----------------------------------------
@pytest.mark.anyio
async def test_the_async_client_shares_routes_errors_and_retries(
    mock: respx.MockRouter,
) -> None:
    get = mock.get(f"{RUNS}/r1")
    get.side_effect = [
        httpx.ConnectError("refused"),
        httpx.Response(200, json=status_body(state="running")),
        httpx.Response(200, json=status_body()),
    ]
    mock.post(RUNS).respond(202, json={"run_id": "r1", "state": "pending"})
    mock.get(RUNS).respond(200, json={"items": [], "total": 0, "limit": 50, "offset": 0})
    mock.post(f"{RUNS}/r1/abort").respond(409, json={"code": "run_completed", "message": "done"})
    mock.post(f"{RUNS}/r1/tasks").respond(
        422, json={"code": "dep_not_found", "message": "no task 'zz'"}
    )
    mock.get(f"{RUNS}/r1/events").side_effect = [
        httpx.Response(200, stream=_BrokenStream(sse((0, "run_started"), end=None))),
        httpx.Response(200, text=sse((1, "run_finished"))),
    ]
    mock.get(f"{URL}/healthz").respond(200, json={"status": "ok"})
    async with AsyncRuntimeClient(URL, timeout=2.0) as c:
        c._core.backoff = 0.0
        assert (await c.start_run(workflow="w")).run_id == "r1"
        assert (await c.wait("r1", timeout=5, poll_interval=0.01)).state == "completed"
        assert get.call_count == 3
        assert (await c.list_runs()).total == 0
        assert (await c.health())["status"] == "ok"
        with pytest.raises(ApiError) as info:
            await c.abort_run("r1")
        assert info.value.code == "run_completed" and info.value.status_code == 409
        with pytest.raises(GraphValidationError):
            await c.enqueue_task("r1", {"id": "b", "prompt": "x", "deps": ["zz"]})
        assert [e.seq async for e in c.events("r1")] == [0, 1]


@pytest.mark.anyio
async def test_the_async_client_does_not_retry_a_sent_submission(
    mock: respx.MockRouter,
) -> None:
    route = mock.post(RUNS).mock(side_effect=httpx.ReadTimeout("slow"))
    async with AsyncRuntimeClient(URL) as c:
        with pytest.raises(ApiTimeoutError):
            await c.start_run(workflow="w")
    assert route.call_count == 1


def test_a_dropped_sync_client_stops_its_loop_thread(mock: respx.MockRouter) -> None:
    import gc
    import threading

    mock.get(f"{URL}/healthz").respond(200, json={"status": "ok"})

    def loops() -> int:
        return sum(t.name == "lcr-client-loop" and t.is_alive() for t in threading.enumerate())

    before = loops()
    client = RuntimeClient(URL)
    assert client.health() == {"status": "ok"}
    assert loops() == before + 1
    del client
    gc.collect()
    assert loops() == before
