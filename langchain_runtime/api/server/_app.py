"""The FastAPI application: routes, error handlers and the event stream.

FastAPI is imported inside :func:`build_app` only, so this module (like every module
of the package) imports without the ``server`` extra. There is deliberately no
``from __future__ import annotations`` here: the routes are defined inside
``build_app``, and FastAPI must see their annotations as objects, not strings it
would resolve against this module's globals.
"""

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

from langchain_runtime._version import __version__
from langchain_runtime.api._sse import END_EVENT, format_comment, format_event
from langchain_runtime.api.errors import (
    ScopeNotFoundError,
    code_for_status,
    status_for,
)
from langchain_runtime.api.schemas import (
    TERMINAL_STATES,
    ApiRunState,
    BudgetList,
    BudgetSet,
    BudgetStatus,
    ErrorBody,
    Health,
    ResumeRequest,
    RunAccepted,
    RunPage,
    RunRequest,
    RunStatus,
    TaskAccepted,
    TaskSpec,
)
from langchain_runtime.api.server._guard import PRINCIPAL, Guard
from langchain_runtime.api.server._keys import KeyRing, Principal
from langchain_runtime.api.server._limits import ServerLimits, check_work
from langchain_runtime.api.server._manager import RunManager
from langchain_runtime.api.server._protocol import quiet_fd_exhaustion
from langchain_runtime.errors import ConfigurationError, InvalidInputError, LangChainRuntimeError
from langchain_runtime.observability._install import installed_handler, with_trace_id

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["build_app"]

logger = logging.getLogger(__name__)

API = "/api/v1"
_WHY = {
    400: "Invalid request: malformed JSON, a wrong field, JSON nested too deep, a lone surrogate.",
    401: "Missing or wrong bearer token (or unknown API key).",
    402: "The run can not be paid for within its budget (or a shared scope's).",
    403: "A Host this server does not serve, a browser's cross-origin write, or (with API "
    "keys) an admin-only route.",
    404: "No such run (another API key's run reads as none), or scope.",
    408: "The request body was not received in time.",
    409: "The run exists already, or has finished.",
    413: "The body, a prompt or the number of tasks is over the server's limit.",
    422: "It can not run under the server's configuration or limits.",
    429: "As many runs are executing as the server allows; retry later.",
    500: "Internal error.",
    503: "The server is shutting down, or its budget ledger cannot answer (or, adding a "
    "task, the replica executing the run did not take it in time, or this replica has "
    "too many tasks waiting to be forwarded: `replica_unavailable`; the task was not "
    "added, a retry is safe).",
    504: "Adding a task: the replica executing the run took it but did not answer in "
    "time (`enqueue_unknown`): it may have been added; the run's status tells.",
}


#: The 5xx errors whose message is the client's (the others are "internal error").
_TOLD = ("shutting_down", "ledger_unavailable", "replica_unavailable", "enqueue_unknown")


def _responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorBody, "description": _WHY[s]} for s in statuses}


_AUTH = (401, 403)
_ERRORS = _responses(400, *_AUTH, 404, 409, 500, 503)
_RESUME = _responses(400, *_AUTH, 402, 404, 409, 422, 429, 500, 503)
_BUDGET = _responses(400, *_AUTH, 404, 408, 413, 422, 500, 503)
_SUBMIT = _responses(400, *_AUTH, 402, 404, 408, 409, 413, 422, 429, 500, 503)
_ADD = _responses(400, *_AUTH, 402, 404, 408, 409, 413, 422, 500, 503, 504)
_LAST_EVENT_ID = re.compile(r"-1|[0-9]+")
#: The ``oneOf`` of a run request: a registered workflow, or ad-hoc tasks (never both).
_ONE_SOURCE = [
    {
        "required": ["workflow"],
        "properties": {"workflow": {"type": "string"}, "tasks": {"type": "null"}},
    },
    {
        "required": ["tasks"],
        "properties": {"tasks": {"type": "array"}, "workflow": {"type": "null"}},
    },
]


def _loc(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def validation_message(errors: Sequence[Any]) -> str:
    """One line per problem (at most five), each naming the field."""
    parts = []
    for err in errors[:5]:
        loc = list(err.get("loc") or ())
        source = loc.pop(0) if loc and loc[0] in ("body", "query", "path", "header") else ""
        if err.get("type") == "json_invalid":
            detail = (err.get("ctx") or {}).get("error", "invalid JSON")
            parts.append(f"malformed JSON: {detail}")
            continue
        where = _loc(loc) or ("body" if source == "body" else source or "request")
        if source in ("query", "header"):
            where = f"{source} parameter {where!r}"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    if len(errors) > 5:
        parts.append(f"... and {len(errors) - 5} more")
    return "; ".join(parts) or "invalid request"


#: Event ids are SQLite integers; a larger cursor simply means "nothing after it".
_MAX_CURSOR = 2**63 - 1


def _event_cursor(after: int | None, last_event_id: str | None) -> int:
    """The cursor: ``Last-Event-ID`` (ASCII digits only, or ``-1``) over ``?after=``."""
    if last_event_id is None:
        return -1 if after is None else min(after, _MAX_CURSOR)
    # strict: int() would also take "1_0", " 7 " and non-ASCII digits
    if not _LAST_EVENT_ID.fullmatch(last_event_id):
        raise InvalidInputError(
            "header 'Last-Event-ID': expected an event id (ASCII digits, or -1), "
            f"got {last_event_id[:40]!r}"
        )
    if len(last_event_id) > 19:  # past any event (and past int()'s digit limit)
        return _MAX_CURSOR
    return min(int(last_event_id), _MAX_CURSOR)


def build_app(
    manager: RunManager,
    *,
    token: str | None,
    max_body_bytes: int,
    keys: KeyRing | None = None,
    allowed_hosts: Sequence[str] | None = None,
    limits: ServerLimits | None = None,
    sse_poll_interval: float = 0.05,
    sse_keepalive: float = 5.0,
    sse_max_seconds: float = 600.0,
) -> "FastAPI":
    """The application over ``manager`` (see :func:`langchain_runtime.api.server.create_app`)."""
    from fastapi import FastAPI, Header, Path, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

    class EventStream(StreamingResponse):
        media_type = "text/event-stream"

    limits = limits or ServerLimits()
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    def error(code: str, message: str) -> JSONResponse:
        return JSONResponse({"code": code, "message": message}, status_for(code))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        quiet_fd_exhaustion(asyncio.get_running_loop())
        yield
        await run_in_threadpool(manager.close)

    app = FastAPI(
        title="langchain-runtime",
        version=__version__,
        description="Run graphs of LangChain tasks under hard token and cost budgets.",
        lifespan=lifespan,
    )
    app.state.manager = manager
    app.state.limits = limits
    app.state.keys = keys
    app.add_middleware(
        Guard,
        token=token,
        max_body_bytes=max_body_bytes,
        metrics=manager.metrics,
        allowed_hosts=allowed_hosts,
        limits=limits,
        keys=keys,
    )

    def who(request: Request) -> Principal | None:
        """The request's API key (None: no keys configured, the single-user modes)."""
        principal: Principal | None = request.scope.get(PRINCIPAL)
        return principal

    def admin_only(request: Request, what: str) -> None:
        principal = who(request)
        if principal is not None and not principal.admin:
            from langchain_runtime.api.errors import ForbiddenError

            raise ForbiddenError(f"{what} needs an admin API key")

    def ledger() -> Any:
        if manager.ledger is None:
            raise ConfigurationError(
                "this server has no budget ledger: set `ledger:` in its config file "
                "(or serve --database)"
            )
        return manager.ledger

    def scope_for(request: Request, scope: str) -> str:
        principal = who(request)
        if principal is not None and not principal.may_use(scope):
            raise ScopeNotFoundError(f"no budget scope {scope!r} for this API key")
        from langchain_runtime.cost.ledger._model import check_scope

        try:
            check_scope(scope)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"path parameter 'scope': {exc}") from exc
        return scope

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes,
            )  # fmt: skip
            schema["components"]["schemas"]["RunRequest"]["oneOf"] = _ONE_SOURCE
            for operations in schema["paths"].values():
                for operation in operations.values():
                    for status, answer in operation.get("responses", {}).items():
                        content = answer.get("content", {})
                        if status >= "400" and content and "application/json" not in content:
                            # errors are JSON, whatever the route's success media type
                            answer["content"] = {"application/json": next(iter(content.values()))}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error("invalid_input", validation_message(exc.errors()))

    @app.exception_handler(LangChainRuntimeError)
    async def runtime_error(request: Request, exc: LangChainRuntimeError) -> JSONResponse:
        code = exc.code
        if status_for(code) >= 500:
            logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
            if code not in _TOLD:
                return error("internal_error", "internal error")
        return error(code, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = code_for_status(exc.status_code)
        return JSONResponse(
            {"code": code, "message": str(exc.detail)}, exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        logger.error("%s %s crashed", request.method, request.url.path, exc_info=exc)
        return error("internal_error", "internal error")

    @app.get("/healthz", response_model=Health, responses={503: {"model": ErrorBody}})
    def healthz() -> Any:
        """200 while the server can serve; 503 ``store_error`` when its store cannot."""
        check = getattr(manager.store, "check", None)
        problem = check() if callable(check) else None
        if problem:
            return error("store_error", problem)
        return Health(version=__version__, active_runs=manager.active())

    @app.get("/metrics", response_class=PlainTextResponse, responses=_responses(*_AUTH))
    def metrics(request: Request) -> PlainTextResponse:
        """Prometheus text. With API keys: an admin key only (it counts every key's runs)."""
        admin_only(request, "/metrics")
        text = manager.metrics.render(manager.store.counts(), manager.active())
        return PlainTextResponse(text, media_type=manager.metrics.content_type)

    @app.post(f"{API}/runs", status_code=202, response_model=RunAccepted, responses=_SUBMIT)
    def start_run(body: RunRequest, request: Request) -> RunAccepted:
        """Submit a run: exactly one of a registered `workflow` or ad-hoc `tasks`, a policy,
        an input.

        Bounded by the server's limits (each named in the error): tasks per run and
        characters per prompt (413), `policy.max_parallelism` (422), JSON nesting (400).
        """
        check_work(
            limits,
            tasks=body.tasks or (),
            max_parallelism=body.policy.max_parallelism if body.policy is not None else None,
        )
        return manager.submit(body, who(request))

    @app.get(f"{API}/runs", response_model=RunPage, responses=_responses(400, *_AUTH, 500))
    def list_runs(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
        state: ApiRunState | None = None,
    ) -> RunPage:
        """Runs, newest first, a page at a time (with API keys: this key's runs only)."""
        return manager.list_runs(limit=limit, offset=offset, state=state, principal=who(request))

    @app.get(
        f"{API}/runs/{{run_id}}",
        responses={200: {"model": RunStatus}, **_ERRORS},
        response_class=JSONResponse,
    )
    def get_run(run_id: str, request: Request) -> Response:
        """The run's state, every task's state/output/error/usage/cost, and totals."""
        body = manager.status_body(run_id, who(request))
        if installed_handler() is not None:  # serve --otel: the run's trace id in its status
            return JSONResponse(with_trace_id(json.loads(body)))
        return Response(body, media_type="application/json")

    @app.post(
        f"{API}/runs/{{run_id}}/abort",
        status_code=202,
        response_model=RunAccepted,
        responses=_ERRORS,
    )
    def abort_run(run_id: str, request: Request) -> RunAccepted:
        """Ask the run to stop; answers at once (state `aborting`)."""
        return manager.abort(run_id, who(request))

    @app.post(
        f"{API}/runs/{{run_id}}/resume",
        status_code=202,
        response_model=RunAccepted,
        responses=_RESUME,
    )
    def resume_run(run_id: str, request: Request, body: ResumeRequest | None = None) -> RunAccepted:
        """Resume a stored run (failed, aborted, over budget, timed out, or interrupted
        by a restart): its completed tasks are kept and not paid again, the others run.
        `budget` replaces the given fields of the stored budget. 409 `run_live` while
        the run executes; 422 `resume_refused` when its registered workflow changed."""
        return manager.resume(run_id, body, who(request))

    @app.post(
        f"{API}/runs/{{run_id}}/tasks",
        status_code=202,
        response_model=TaskAccepted,
        responses=_ADD,
    )
    def enqueue_task(run_id: str, body: TaskSpec, request: Request) -> TaskAccepted:
        """Add a task to a live run; it joins the next batch.

        The run's tasks, this one included, stay within the server's `max_tasks` (413).
        A run executing on another replica (`serve --database`) gets the task through
        that replica, and this answer is its answer, within about 5 s (its deadline):
        503 `replica_unavailable` if that replica did not take it in time (the task
        was not added: a retry is safe); 504 `enqueue_unknown` if it took the task but
        did not answer (it may have been added: `GET /api/v1/runs/{id}` tells).
        """
        check_work(limits, tasks=(body,))
        return manager.enqueue(run_id, body, who(request), max_tasks=limits.max_tasks)

    @app.get(
        f"{API}/runs/{{run_id}}/events",
        response_class=EventStream,
        responses={
            200: {
                "description": "`text/event-stream`: messages `id: <seq>`, `event: <type>`, "
                "`data: <RunEvent JSON>`; then `event: end` with `{run_id, state}`; "
                "`: keep-alive` comments while quiet.",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            **_responses(400, *_AUTH, 404, 500),
        },
    )
    async def run_events(
        run_id: str,
        request: Request,
        after: Annotated[
            int | None, Query(ge=-1, description="Only events after this seq (-1: all).")
        ] = None,
        last_event_id: Annotated[
            str | None,
            Header(
                description="Resume after this event id: ASCII digits, or -1 (`1_0`, ` 7` "
                "and other spellings are refused with 400); wins over `after`.",
            ),
        ] = None,
    ) -> StreamingResponse:
        """Server-sent events: each committed event (`id` = its seq), then `end`.

        Resume with `Last-Event-ID` (or `?after=`) to get only later events.
        """
        cursor = _event_cursor(after, last_event_id)
        principal = who(request)
        first = manager.live_events(run_id, cursor, principal)
        stored: tuple[list[dict[str, Any]], str] | None = None
        if first is None:  # not live: it must exist in the store (404 otherwise)
            stored = await run_in_threadpool(manager.stored_events, run_id, cursor, principal)
        return EventStream(
            _stream(manager, run_id, cursor, first, stored, sse_poll_interval, sse_keepalive,
                    sse_max_seconds, principal),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )  # fmt: skip

    scope_path = Path(min_length=1, max_length=200, description="A budget scope, e.g. team:x.")

    @app.get(
        f"{API}/budgets", response_model=BudgetList, responses=_responses(*_AUTH, 422, 500, 503)
    )
    def list_budgets(request: Request) -> BudgetList:
        """The budgets this API key may read (its scopes); an admin key (or the single
        user): every scope the ledger knows."""
        book = ledger()
        principal = who(request)
        scopes = (
            principal.scopes
            if principal is not None and not principal.admin
            else (book.list_scopes())
        )
        return BudgetList(items=[BudgetStatus.from_status(book.status(s)) for s in scopes])

    @app.get(f"{API}/budgets/{{scope}}", response_model=BudgetStatus, responses=_BUDGET)
    def get_budget(scope: Annotated[str, scope_path], request: Request) -> BudgetStatus:
        """A scope's limits, spent, reserved and remaining in its current window.
        Another key's scope is 404 `scope_not_found`."""
        return BudgetStatus.from_status(ledger().status(scope_for(request, scope)))

    @app.put(f"{API}/budgets/{{scope}}", response_model=BudgetStatus, responses=_BUDGET)
    def set_budget(
        scope: Annotated[str, scope_path], body: BudgetSet, request: Request
    ) -> BudgetStatus:
        """Set (replace) a scope's limits; spend already recorded stays. Only within the
        key's scopes (404 `scope_not_found` otherwise); an admin key: any scope."""
        book = ledger()
        name = scope_for(request, scope)
        try:
            book.set_limit(
                name,
                max_cost=body.max_cost,
                max_tokens=body.max_tokens,
                window=body.ledger_window(),
            )
        except ValueError as exc:
            raise InvalidInputError(f"scope {scope!r}: {exc}") from exc
        return BudgetStatus.from_status(book.status(name))

    return app


async def _stream(
    manager: RunManager,
    run_id: str,
    cursor: int,
    batch: list[dict[str, Any]] | None,
    stored: tuple[list[dict[str, Any]], str] | None,
    poll: float,
    keepalive: float,
    max_seconds: float,
    principal: Principal | None = None,
) -> AsyncIterator[str]:
    """Events after ``cursor`` until the run has ended; every wait is bounded."""
    started = last_write = time.monotonic()
    from starlette.concurrency import run_in_threadpool

    while True:
        state: str | None = None
        if batch is None:
            if stored is None:
                stored = await run_in_threadpool(manager.stored_events, run_id, cursor, principal)
            batch, state = stored[0], stored[1]
        for event in batch:
            if event["seq"] <= cursor:
                continue
            cursor = event["seq"]
            last_write = time.monotonic()
            yield format_event(event["type"], json.dumps(event, separators=(",", ":")), cursor)
        if state is not None and state in TERMINAL_STATES:
            yield format_event(END_EVENT, json.dumps({"run_id": run_id, "state": state}))
            return
        now = time.monotonic()
        if now - started > max_seconds:
            return  # the client resumes from its Last-Event-ID
        if now - last_write > keepalive:
            last_write = now
            yield format_comment()
        await asyncio.sleep(poll)
        batch = manager.live_events(run_id, cursor, principal)
        stored = None
