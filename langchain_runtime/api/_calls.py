"""The client's one implementation, free of I/O (sans-IO).

Each API call is a generator *plan*: it yields :class:`Send` (send this request,
send me back the response or throw me the transport error) and :class:`Sleep`
(wait this long), and returns the call's result. ``RuntimeClient`` drives plans
with ``httpx.Client`` and ``time.sleep``, ``AsyncRuntimeClient`` with
``httpx.AsyncClient`` and ``asyncio.sleep``: retries, error mapping, polling and
decoding live here once.

Retries: only on transport errors, never on an HTTP answer (4xx or 5xx). A request
that may have reached the server is retried only if repeating it is harmless (a
GET, or a submission with a client-chosen run id); an error while connecting
(nothing was sent) is retried for every request.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from langchain_runtime._version import __version__
from langchain_runtime.api._sse import END_EVENT, SSEParser
from langchain_runtime.api.errors import (
    ApiConnectionError,
    ApiError,
    ApiTimeoutError,
    RunExistsError,
    error_from_body,
)
from langchain_runtime.api.schemas import (
    TERMINAL_STATES,
    BudgetList,
    BudgetSet,
    BudgetStatus,
    ResumeBudget,
    ResumeRequest,
    RunAccepted,
    RunPage,
    RunRequest,
    RunStatus,
    TaskAccepted,
    TaskSpec,
)
from langchain_runtime.domain import Budget, RunEvent

__all__ = ["TOKEN_ENV", "Core", "EventCursor", "Plan", "Send", "Sleep"]

#: Environment variable holding the bearer token (client and server).
TOKEN_ENV = "LANGCHAIN_RUNTIME_TOKEN"
_API = "/api/v1"
# Errors raised while connecting: the request was not sent, so any request may be retried.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Send:
    """Send ``request``; the driver answers with the response or throws the error."""

    request: httpx.Request


@dataclass(frozen=True)
class Sleep:
    """Wait ``seconds`` before going on."""

    seconds: float


Plan = Generator[Send | Sleep, Any, T]


def _quote(run_id: str) -> str:
    return quote(run_id, safe="")


def _wrap(exc: httpx.TransportError, request: httpx.Request) -> ApiConnectionError:
    where = f"{request.method} {request.url}"
    if isinstance(exc, httpx.TimeoutException):
        return ApiTimeoutError(f"{where}: no answer in time ({type(exc).__name__})")
    return ApiConnectionError(f"{where}: {type(exc).__name__}: {exc}")


def _decode(response: httpx.Response, model: type[M]) -> M:
    try:
        return model.model_validate_json(response.content)
    except ValueError as exc:
        raise ApiError(f"unexpected response to {response.request.url}: {exc}") from exc


def _peek_state(response: httpx.Response) -> str | None:
    """The ``state`` of a run status response, unvalidated; None if it has none."""
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
    state = body.get("state") if isinstance(body, dict) else None
    return state if isinstance(state, str) else None


def error_for(response: httpx.Response) -> ApiError:
    """The typed error for an error response."""
    try:
        body: Any = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    return error_from_body(response.status_code, body)


class Core:
    """Builds requests and plans; holds the settings shared by both clients.

    Args:
        base_url: The server, e.g. ``http://127.0.0.1:8000``.
        token: Bearer token; defaults to ``$LANGCHAIN_RUNTIME_TOKEN``.
        timeout: Seconds for each call in all (the clients enforce it as a deadline;
            each request's connect/read/write timeouts are set to it too).
        retries: Extra attempts after a transport error (see module docs).
        backoff: Seconds before the first retry; doubles per attempt.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 0.1,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {timeout!r}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        self.headers = {
            "user-agent": f"langchain-runtime/{__version__}",
            "accept": "application/json",
        }
        if token:
            self.headers["authorization"] = f"Bearer {token}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        read_timeout: float | None = None,
    ) -> httpx.Request:
        timeout = httpx.Timeout(self.timeout, read=read_timeout or self.timeout)
        content = None
        all_headers = dict(self.headers)
        if json_body is not None:
            content = json.dumps(json_body, separators=(",", ":")).encode()
            all_headers["content-type"] = "application/json"
        all_headers.update(headers or {})
        return httpx.Request(
            method,
            f"{self.base_url}{path}",
            content=content,
            params={k: v for k, v in (params or {}).items() if v is not None},
            headers=all_headers,
            extensions={"timeout": timeout.as_dict()},
        )

    def retry_delay(self, attempt: int) -> float:
        return float(self.backoff * (2 ** (attempt - 1)))

    # -- the exchange every call goes through ------------------------------------
    def exchange(
        self, request: httpx.Request, *, idempotent: bool
    ) -> Plan[tuple[httpx.Response, int]]:
        """Send with retries on transport errors; return the response and the attempt."""
        attempt = 0
        while True:
            try:
                response: httpx.Response = yield Send(request)
            except httpx.TransportError as exc:
                retry = idempotent or isinstance(exc, _NOT_SENT)
                if not retry or attempt >= self.retries:
                    raise _wrap(exc, request) from exc
                attempt += 1
                yield Sleep(self.retry_delay(attempt))
                continue
            return response, attempt

    def call(self, request: httpx.Request, *, idempotent: bool) -> Plan[httpx.Response]:
        response, _ = yield from self.exchange(request, idempotent=idempotent)
        if response.is_error:
            raise error_for(response)
        return response

    # -- the API ----------------------------------------------------------------
    def start_run(self, run: RunRequest) -> Plan[RunAccepted]:
        body = run.model_dump(mode="json", exclude_unset=True)
        request = self.request("POST", f"{_API}/runs", json_body=body)
        # Repeating a submission is harmless only when the client chose its run id.
        response, attempt = yield from self.exchange(request, idempotent=run.id is not None)
        if response.is_error:
            error = error_for(response)
            if isinstance(error, RunExistsError) and attempt > 0 and run.id is not None:
                # An earlier attempt reached the server and created the run.
                status = yield from self.get_run(run.id)
                return RunAccepted(run_id=status.run_id, state=status.state)
            raise error
        return _decode(response, RunAccepted)

    def get_run(self, run_id: str) -> Plan[RunStatus]:
        request = self.request("GET", f"{_API}/runs/{_quote(run_id)}")
        response = yield from self.call(request, idempotent=True)
        return _decode(response, RunStatus)

    def list_runs(self, limit: int, offset: int, state: str | None) -> Plan[RunPage]:
        params = {"limit": limit, "offset": offset, "state": state}
        request = self.request("GET", f"{_API}/runs", params=params)
        response = yield from self.call(request, idempotent=True)
        return _decode(response, RunPage)

    def abort_run(self, run_id: str) -> Plan[RunAccepted]:
        request = self.request("POST", f"{_API}/runs/{_quote(run_id)}/abort")
        response = yield from self.call(request, idempotent=False)
        return _decode(response, RunAccepted)

    def resume_run(self, run_id: str, body: ResumeRequest) -> Plan[RunAccepted]:
        request = self.request(
            "POST",
            f"{_API}/runs/{_quote(run_id)}/resume",
            json_body=body.model_dump(mode="json", exclude_none=True),
        )
        response = yield from self.call(request, idempotent=False)
        return _decode(response, RunAccepted)

    def enqueue_task(self, run_id: str, task: TaskSpec) -> Plan[TaskAccepted]:
        body = task.model_dump(mode="json", exclude_unset=True)
        request = self.request("POST", f"{_API}/runs/{_quote(run_id)}/tasks", json_body=body)
        response = yield from self.call(request, idempotent=False)
        return _decode(response, TaskAccepted)

    def get_budget(self, scope: str) -> Plan[BudgetStatus]:
        request = self.request("GET", f"{_API}/budgets/{_quote(scope)}")
        response = yield from self.call(request, idempotent=True)
        return _decode(response, BudgetStatus)

    def set_budget(self, scope: str, body: BudgetSet) -> Plan[BudgetStatus]:
        request = self.request(
            "PUT",
            f"{_API}/budgets/{_quote(scope)}",
            json_body=body.model_dump(mode="json"),
        )
        # a PUT of the same limits twice leaves the same limits: safe to repeat
        response = yield from self.call(request, idempotent=True)
        return _decode(response, BudgetStatus)

    def list_budgets(self) -> Plan[BudgetList]:
        request = self.request("GET", f"{_API}/budgets")
        response = yield from self.call(request, idempotent=True)
        return _decode(response, BudgetList)

    def health(self) -> Plan[dict[str, Any]]:
        response = yield from self.call(self.request("GET", "/healthz"), idempotent=True)
        try:
            body: Any = response.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(f"unexpected response to {response.request.url}: not JSON") from exc
        if not isinstance(body, dict):
            raise ApiError(
                f"unexpected response to {response.request.url}: expected a JSON object, "
                f"got {type(body).__name__}"
            )
        return body

    def wait(self, run_id: str, timeout: float, poll_interval: float) -> Plan[RunStatus]:
        """Poll until the run has ended; :class:`ApiTimeoutError` after ``timeout``."""
        deadline = time.monotonic() + timeout
        path = f"{_API}/runs/{_quote(run_id)}"
        while True:
            response = yield from self.call(self.request("GET", path), idempotent=True)
            # a poll of a run still going needs its state only: the whole status (every
            # task of a long run) is validated once, when it has ended
            state = _peek_state(response)
            if state is None or state in TERMINAL_STATES:
                status = _decode(response, RunStatus)
                if status.finished:
                    return status
                state = status.state
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ApiTimeoutError(f"run {run_id} still {state} after waiting {timeout}s")
            yield Sleep(min(poll_interval, remaining))

    def event_cursor(self, run_id: str, after: int | None) -> EventCursor:
        return EventCursor(self, run_id, after)


class EventCursor:
    """The state of one event stream across reconnections.

    Each connection asks for the events after the last one received
    (``Last-Event-ID``); the stream is over at the server's ``end`` message.
    Reconnections after a transport error or an early close are bounded by the
    client's ``retries``, counted afresh whenever events arrive.
    """

    def __init__(self, core: Core, run_id: str, after: int | None) -> None:
        self.core = core
        self.run_id = run_id
        self.after = after
        self.ended = False
        self._failures = 0
        self._parser = SSEParser()

    def request(self) -> httpx.Request:
        headers = {"accept": "text/event-stream"}
        if self.after is not None:
            headers["last-event-id"] = str(self.after)
        self._parser = SSEParser()
        return self.core.request(
            "GET",
            f"{_API}/runs/{_quote(self.run_id)}/events",
            headers=headers,
            read_timeout=max(self.core.timeout, 30.0),
        )

    def feed(self, line: str) -> Iterator[RunEvent]:
        msg = self._parser.feed(line)
        if msg is None:
            return
        if msg.event == END_EVENT:
            self.ended = True
            return
        try:
            event = RunEvent.model_validate_json(msg.data)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise ApiError(
                f"the event stream of run {self.run_id}: a malformed {msg.event!r} event: "
                f"{str(exc).splitlines()[0]}"
            ) from exc
        self.after = event.seq
        self._failures = 0
        yield event

    def retry(self, exc: httpx.TransportError | None, request: httpx.Request) -> float:
        """The pause before reconnecting, or raise when out of retries."""
        self._failures += 1
        if self._failures > self.core.retries:
            if exc is not None:
                raise _wrap(exc, request) from exc
            raise ApiConnectionError(
                f"event stream of run {self.run_id} closed early {self._failures} times"
            )
        return self.core.retry_delay(self._failures)


def run_request(
    run: RunRequest | Mapping[str, Any] | None,
    *,
    workflow: str | None = None,
    tasks: Any = None,
    policy: Any = None,
    policy_name: str | None = None,
    model: str | None = None,
    input: Mapping[str, Any] | None = None,
    run_id: str | None = None,
) -> RunRequest:
    """A :class:`RunRequest` from a request object, a mapping, or keyword arguments."""
    if run is not None:
        if isinstance(run, RunRequest):
            if run_id is None:
                return run
            run = run.model_dump(mode="json", exclude_unset=True)
        data = dict(run)
        if run_id is not None:
            data["id"] = run_id
        return RunRequest.model_validate(data)
    fields: dict[str, Any] = {
        "workflow": workflow,
        "tasks": tasks,
        "policy": policy,
        "policy_name": policy_name,
        "model": model,
        "id": run_id,
    }
    data = {k: v for k, v in fields.items() if v is not None}
    if input is not None:
        data["input"] = dict(input)
    return RunRequest.model_validate(data)


def task_spec(task: TaskSpec | Mapping[str, Any]) -> TaskSpec:
    return task if isinstance(task, TaskSpec) else TaskSpec.model_validate(dict(task))


def resume_request(budget: Any) -> ResumeRequest:
    """The body of a resume: no budget, or one from a mapping or a ``Budget``."""
    if budget is None:
        return ResumeRequest()
    if isinstance(budget, ResumeBudget):
        return ResumeRequest(budget=budget)
    if isinstance(budget, Budget):
        fields = budget.model_dump(include={"max_cost", "max_tokens", "currency"})
        return ResumeRequest(budget=ResumeBudget.model_validate(fields))
    return ResumeRequest(budget=ResumeBudget.model_validate(dict(budget)))
