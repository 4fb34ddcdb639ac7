"""``RuntimeClient`` and ``AsyncRuntimeClient``: typed clients of the sidecar API.

Both drive the same plans (``langchain_runtime.api._calls``): one implementation of
requests, retries, error mapping, polling and event parsing. The asyncio client
does the I/O; the sync client is a thin bridge that runs it on an event loop of its
own (one daemon thread per client), so both keep the same deadlines exactly.

Deadlines, not per-read timeouts: every call ends within its ``timeout`` (retries
included), however slowly a server trickles its answer; ``wait`` within its own
timeout (plus at most a quarter of it, up to 1 s, for its last poll); the event
stream ends when no event came for ``idle_timeout`` seconds (keep-alive comments
do not count) or at its optional total ``timeout``. A response larger than
``max_response_bytes`` is refused while it is read. Only transport errors are
retried, never an HTTP answer; a submission is retried after it may have reached
the server only when it carries a client-chosen run id.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Coroutine, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from langchain_runtime.api._calls import (
    Core,
    EventCursor,
    Plan,
    Send,
    Sleep,
    error_for,
    resume_request,
    run_request,
    task_spec,
)
from langchain_runtime.api.errors import ApiError, ApiTimeoutError
from langchain_runtime.api.schemas import (
    BudgetSet,
    BudgetStatus,
    PolicyIn,
    ResumeBudget,
    RunAccepted,
    RunPage,
    RunRequest,
    RunStatus,
    TaskAccepted,
    TaskSpec,
)
from langchain_runtime.domain import Budget, RunEvent

__all__ = ["AsyncRuntimeClient", "RuntimeClient"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8000"
#: Seconds without an event after which an event stream gives up (comments do not count).
DEFAULT_IDLE_TIMEOUT = 300.0
#: The largest response body (or event) a client reads, in bytes.
DEFAULT_MAX_RESPONSE_BYTES = 20_000_000
_DROP = frozenset({b"content-encoding", b"content-length", b"transfer-encoding"})

TaskLike = TaskSpec | Mapping[str, Any]
BudgetLike = ResumeBudget | Budget | Mapping[str, Any]


async def _within(step: Awaitable[T], seconds: float) -> T:
    """``step`` or :class:`asyncio.TimeoutError` after ``seconds`` (no extra task on 3.11+)."""
    timeout = getattr(asyncio, "timeout", None)
    if timeout is None:  # Python 3.10
        return await asyncio.wait_for(step, seconds)
    async with timeout(seconds):
        return await step


def _late(what: str, seconds: float) -> ApiTimeoutError:
    return ApiTimeoutError(f"{what}: no complete answer within {seconds:g}s")


class _ThreadedTransport(httpx.AsyncBaseTransport):
    """A sync ``httpx`` transport used from the async client (in a worker thread).

    Its requests cannot be interrupted mid-read: deadlines are exact only with the
    default transport.
    """

    def __init__(self, transport: httpx.BaseTransport) -> None:
        self._transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        def call() -> httpx.Response:
            response = self._transport.handle_request(request)
            try:
                content = b"".join(response.stream)  # type: ignore[arg-type]
            finally:
                response.close()
            return httpx.Response(
                response.status_code,
                headers=response.headers,
                content=content,
                extensions=response.extensions,
            )

        return await asyncio.to_thread(call)

    async def aclose(self) -> None:
        await asyncio.to_thread(self._transport.close)


class _LoopThread:
    """An event loop in a daemon thread, started on first use (the sync bridge)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="lcr-client-loop", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            loop = self._loop
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result()
        except BaseException:
            # Ctrl-C (or any interruption) here cancels the call on the loop too
            future.cancel()
            raise

    def close(self, final: Coroutine[Any, Any, None] | None = None) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            if final is not None:
                final.close()
            return
        if final is not None:
            try:
                asyncio.run_coroutine_threadsafe(final, loop).result(timeout=5)
            except (concurrent.futures.TimeoutError, Exception):  # closing: best effort
                logger.debug("closing the client's connections failed", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        if not thread.is_alive():
            loop.close()


class AsyncRuntimeClient:
    """A client of the runtime's HTTP API, for asyncio.

    Args:
        base_url: The server, e.g. ``http://127.0.0.1:8000``.
        token: Bearer token; defaults to the ``LANGCHAIN_RUNTIME_TOKEN`` variable.
        timeout: Seconds each call may take in all (a deadline, retries included).
        retries: Extra attempts after a connection error.
        transport: An ``httpx`` transport (tests, custom TLS).
        max_response_bytes: Larger responses (or events) are refused with
            :class:`ApiError` as they are read.

    Raises (from every call):
        ApiError: the server answered with an error; it is also the package's own
            error class where one exists (``RunNotFoundError``, ``InvalidInputError``,
            ``GraphValidationError``, ``BudgetExceededError``...), or its answer was
            not what the API sends (a non-JSON body, a malformed event, too large).
        ApiConnectionError: the server could not be reached (``ApiTimeoutError``:
            not in time).

    Example:
        >>> async def main() -> str:  # doctest: +SKIP
        ...     async with AsyncRuntimeClient("http://127.0.0.1:8000") as client:
        ...         run = await client.start_run(workflow="research", input={"topic": "owls"})
        ...         return (await client.wait(run.run_id, timeout=30)).state
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        transport: httpx.AsyncBaseTransport | httpx.BaseTransport | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        if max_response_bytes < 1:
            raise ValueError(f"max_response_bytes must be >= 1, got {max_response_bytes!r}")
        self._core = Core(base_url, token=token, timeout=timeout, retries=retries)
        self.max_response_bytes = max_response_bytes
        if isinstance(transport, httpx.BaseTransport):
            transport = _ThreadedTransport(transport)
        self._http = httpx.AsyncClient(transport=transport)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._core.base_url!r})"

    @property
    def base_url(self) -> str:
        return self._core.base_url

    # -- the I/O every call goes through -------------------------------------------
    async def _fetch(self, request: httpx.Request) -> httpx.Response:
        """Send and read the whole body, refusing it past ``max_response_bytes``."""
        response = await self._http.send(request, stream=True)
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_response_bytes:
                    raise ApiError(
                        f"{request.method} {request.url}: the response is larger than "
                        f"{self.max_response_bytes} bytes (max_response_bytes)"
                    )
                chunks.append(chunk)
        finally:
            await response.aclose()
        headers = [(k, v) for k, v in response.headers.raw if k.lower() not in _DROP]
        return httpx.Response(
            response.status_code, headers=headers, content=b"".join(chunks), request=request
        )

    async def _drive(self, plan: Plan[T], seconds: float | None = None) -> T:
        """Run ``plan`` to its end within ``seconds`` (default: the client's timeout)."""
        budget = self._core.timeout if seconds is None else seconds
        deadline = time.monotonic() + budget
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                action = plan.send(value) if error is None else plan.throw(error)
            except StopIteration as stop:
                result: T = stop.value
                return result
            value, error = None, None
            left = deadline - time.monotonic()
            if isinstance(action, Sleep):
                await asyncio.sleep(max(0.0, min(action.seconds, left)))
                continue
            assert isinstance(action, Send)
            where = f"{action.request.method} {action.request.url}"
            if left <= 0:
                plan.close()
                raise _late(where, budget)
            try:
                value = await _within(self._fetch(action.request), left)
            except asyncio.TimeoutError:
                plan.close()
                raise _late(where, budget) from None
            except httpx.TransportError as exc:
                error = exc

    # -- the API ---------------------------------------------------------------------
    async def start_run(
        self,
        run: RunRequest | Mapping[str, Any] | None = None,
        *,
        workflow: str | None = None,
        tasks: Sequence[TaskLike] | None = None,
        policy: PolicyIn | Mapping[str, Any] | None = None,
        policy_name: str | None = None,
        model: str | None = None,
        input: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> RunAccepted:
        """Submit a run (a registered ``workflow`` or ad-hoc ``tasks``); 202 Accepted.

        Give ``run_id`` to make the submission safe to retry after a lost answer.
        """
        req = run_request(
            run, workflow=workflow, tasks=tasks, policy=policy, policy_name=policy_name,
            model=model, input=input, run_id=run_id,
        )  # fmt: skip
        return await self._drive(self._core.start_run(req))

    async def get_run(self, run_id: str) -> RunStatus:
        """The run's state, every task's state/output/usage/cost, and totals."""
        return await self._drive(self._core.get_run(run_id))

    async def list_runs(
        self, *, limit: int = 50, offset: int = 0, state: str | None = None
    ) -> RunPage:
        """A page of runs, newest first, optionally only those in ``state``."""
        return await self._drive(self._core.list_runs(limit, offset, state))

    async def abort_run(self, run_id: str) -> RunAccepted:
        """Ask the run to stop (it answers at once with state ``aborting``)."""
        return await self._drive(self._core.abort_run(run_id))

    async def resume_run(self, run_id: str, budget: BudgetLike | None = None) -> RunAccepted:
        """Resume a stored run on the server: completed tasks are kept, the rest run.

        Args:
            run_id: A run that ended (failed, aborted, over budget, timed out) or was
                interrupted by a server restart.
            budget: A new budget (a top-up): ``{"max_cost": ..., "max_tokens": ...}``
                or a :class:`~langchain_runtime.Budget`; the fields given replace the
                stored budget's.

        Raises:
            RunNotFoundError: No such run (404).
            ResumeError: The run is still live (409 ``run_live``) or its registered
                workflow changed (422 ``resume_refused``, naming the difference).
        """
        return await self._drive(self._core.resume_run(run_id, resume_request(budget)))

    async def enqueue_task(self, run_id: str, task: TaskLike) -> TaskAccepted:
        """Add a task to a live run, validated like any task of a request."""
        return await self._drive(self._core.enqueue_task(run_id, task_spec(task)))

    async def get_budget(self, scope: str) -> BudgetStatus:
        """A shared-budget scope's limits, spent, reserved and remaining.

        Raises:
            ScopeNotFoundError: Not one of this API key's scopes (404).
        """
        return await self._drive(self._core.get_budget(scope))

    async def set_budget(
        self,
        scope: str,
        *,
        max_cost: Any = None,
        max_tokens: int | None = None,
        window: str | int | None = None,
    ) -> BudgetStatus:
        """Set (replace) a scope's limits: ``window`` is ``hour``/``day``/``week``/
        ``month`` or seconds; None removes that limit. Returns the scope's status."""
        body = BudgetSet(max_cost=max_cost, max_tokens=max_tokens, window=window)
        return await self._drive(self._core.set_budget(scope, body))

    async def list_budgets(self) -> list[BudgetStatus]:
        """The scopes this API key may read (an admin key: every scope)."""
        page = await self._drive(self._core.list_budgets())
        return page.items

    async def health(self) -> dict[str, Any]:
        """``GET /healthz`` (an :class:`ApiError` when the answer is not the API's JSON)."""
        return await self._drive(self._core.health())

    async def wait(
        self, run_id: str, timeout: float = 60.0, poll_interval: float = 0.2
    ) -> RunStatus:
        """Poll until the run ends and return its status.

        Raises:
            ApiTimeoutError: Still not ended after ``timeout`` seconds (the run goes on).
        """
        plan = self._core.wait(run_id, timeout, poll_interval)
        # the last poll, at the deadline, may take a little longer
        return await self._drive(plan, timeout + min(self._core.timeout, timeout / 4, 1.0))

    async def events(
        self,
        run_id: str,
        after: int | None = None,
        *,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        timeout: float | None = None,
    ) -> AsyncIterator[RunEvent]:
        """The run's events as they are committed, from after the event ``after``.

        Ends when the run has ended and every event was received; a dropped
        connection resumes where it stopped.

        Raises:
            ApiTimeoutError: No event for ``idle_timeout`` seconds, or the stream
                went on past ``timeout`` seconds (when given).
            ApiError: A malformed event, or one larger than ``max_response_bytes``.
        """
        cursor = self._core.event_cursor(run_id, after)
        started = last = time.monotonic()
        while not cursor.ended:
            request = cursor.request()
            try:
                async for event in self._stream(cursor, request, started, timeout, idle_timeout):
                    last = time.monotonic()
                    yield event
            except httpx.TransportError as exc:
                await asyncio.sleep(cursor.retry(exc, request))
                continue
            except asyncio.TimeoutError:
                now = time.monotonic()
                if timeout is not None and now - started >= timeout:
                    raise _late(f"the event stream of run {run_id}", timeout) from None
                raise ApiTimeoutError(
                    f"the event stream of run {run_id}: no event for {now - last:.1f}s "
                    f"(idle_timeout={idle_timeout:g})"
                ) from None
            if not cursor.ended:
                await asyncio.sleep(cursor.retry(None, request))

    async def _stream(
        self,
        cursor: EventCursor,
        request: httpx.Request,
        started: float,
        timeout: float | None,
        idle_timeout: float,
    ) -> AsyncIterator[RunEvent]:
        """One connection's events; every wait bounded by the idle and total deadlines."""
        last = time.monotonic()

        def left() -> float:
            ends = last + idle_timeout
            if timeout is not None:
                ends = min(ends, started + timeout)
            return max(ends - time.monotonic(), 0.0)

        async def within(step: Awaitable[T]) -> T:
            return await _within(step, left())

        response = await within(self._http.send(request, stream=True))
        try:
            if response.is_error:
                await within(response.aread())
                raise error_for(response)
            chunks = response.aiter_bytes().__aiter__()
            buffer = b""
            while True:
                try:
                    buffer += await within(chunks.__anext__())
                except StopAsyncIteration:
                    return
                *lines, buffer = buffer.split(b"\n")
                if len(buffer) > self.max_response_bytes:
                    raise ApiError(
                        f"the event stream of run {cursor.run_id}: a line is longer than "
                        f"{self.max_response_bytes} bytes (max_response_bytes)"
                    )
                for raw in lines:
                    for event in cursor.feed(raw.rstrip(b"\r").decode("utf-8", "replace")):
                        last = time.monotonic()
                        yield event
                    if cursor.ended:
                        return
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncRuntimeClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _shut_down(loop: _LoopThread, client: AsyncRuntimeClient) -> None:
    loop.close(client.aclose())


class RuntimeClient:
    """A client of the runtime's HTTP API (blocking calls).

    The same calls, errors and deadlines as :class:`AsyncRuntimeClient`, whose
    implementation it runs on an event loop of its own.

    Args:
        base_url: The server, e.g. ``http://127.0.0.1:8000``.
        token: Bearer token; defaults to the ``LANGCHAIN_RUNTIME_TOKEN`` variable.
        timeout: Seconds each call may take in all (a deadline, retries included).
        retries: Extra attempts after a connection error.
        transport: An ``httpx`` transport (tests, custom TLS).
        max_response_bytes: Larger responses (or events) are refused.

    Raises (from every call):
        ApiError: the server answered with an error; it is also the package's own
            error class where one exists (``RunNotFoundError``, ``InvalidInputError``,
            ``GraphValidationError``, ``BudgetExceededError``...).
        ApiConnectionError: the server could not be reached (``ApiTimeoutError``:
            not in time).

    Example:
        >>> with RuntimeClient("http://127.0.0.1:8000") as client:  # doctest: +SKIP
        ...     run = client.start_run(tasks=[{"id": "hi", "prompt": "Hi {name}",
        ...                                    "model": "simulated"}], input={"name": "Ada"})
        ...     client.wait(run.run_id, timeout=30).state
        'completed'
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self._async = AsyncRuntimeClient(
            base_url, token=token, timeout=timeout, retries=retries, transport=transport,
            max_response_bytes=max_response_bytes,
        )  # fmt: skip
        self._core = self._async._core
        self._loop = _LoopThread()
        # a client dropped without close() still stops its loop thread
        self._finalizer = weakref.finalize(self, _shut_down, self._loop, self._async)

    def __repr__(self) -> str:
        return f"RuntimeClient({self._core.base_url!r})"

    @property
    def base_url(self) -> str:
        return self._core.base_url

    def start_run(
        self,
        run: RunRequest | Mapping[str, Any] | None = None,
        *,
        workflow: str | None = None,
        tasks: Sequence[TaskLike] | None = None,
        policy: PolicyIn | Mapping[str, Any] | None = None,
        policy_name: str | None = None,
        model: str | None = None,
        input: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> RunAccepted:
        """See :meth:`AsyncRuntimeClient.start_run`."""
        return self._loop.run(
            self._async.start_run(
                run, workflow=workflow, tasks=tasks, policy=policy, policy_name=policy_name,
                model=model, input=input, run_id=run_id,
            )
        )  # fmt: skip

    def get_run(self, run_id: str) -> RunStatus:
        """See :meth:`AsyncRuntimeClient.get_run`."""
        return self._loop.run(self._async.get_run(run_id))

    def list_runs(self, *, limit: int = 50, offset: int = 0, state: str | None = None) -> RunPage:
        """See :meth:`AsyncRuntimeClient.list_runs`."""
        return self._loop.run(self._async.list_runs(limit=limit, offset=offset, state=state))

    def abort_run(self, run_id: str) -> RunAccepted:
        """See :meth:`AsyncRuntimeClient.abort_run`."""
        return self._loop.run(self._async.abort_run(run_id))

    def resume_run(self, run_id: str, budget: BudgetLike | None = None) -> RunAccepted:
        """See :meth:`AsyncRuntimeClient.resume_run`."""
        return self._loop.run(self._async.resume_run(run_id, budget))

    def enqueue_task(self, run_id: str, task: TaskLike) -> TaskAccepted:
        """See :meth:`AsyncRuntimeClient.enqueue_task`."""
        return self._loop.run(self._async.enqueue_task(run_id, task))

    def get_budget(self, scope: str) -> BudgetStatus:
        """See :meth:`AsyncRuntimeClient.get_budget`."""
        return self._loop.run(self._async.get_budget(scope))

    def set_budget(
        self,
        scope: str,
        *,
        max_cost: Any = None,
        max_tokens: int | None = None,
        window: str | int | None = None,
    ) -> BudgetStatus:
        """See :meth:`AsyncRuntimeClient.set_budget`."""
        return self._loop.run(
            self._async.set_budget(scope, max_cost=max_cost, max_tokens=max_tokens, window=window)
        )

    def list_budgets(self) -> list[BudgetStatus]:
        """See :meth:`AsyncRuntimeClient.list_budgets`."""
        return self._loop.run(self._async.list_budgets())

    def health(self) -> dict[str, Any]:
        """See :meth:`AsyncRuntimeClient.health`."""
        return self._loop.run(self._async.health())

    def wait(self, run_id: str, timeout: float = 60.0, poll_interval: float = 0.2) -> RunStatus:
        """See :meth:`AsyncRuntimeClient.wait`."""
        return self._loop.run(self._async.wait(run_id, timeout, poll_interval))

    def events(
        self,
        run_id: str,
        after: int | None = None,
        *,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        timeout: float | None = None,
    ) -> Iterator[RunEvent]:
        """See :meth:`AsyncRuntimeClient.events`."""
        stream = self._async.events(run_id, after, idle_timeout=idle_timeout, timeout=timeout)

        async def step() -> tuple[bool, RunEvent | None]:
            try:
                return True, await stream.__anext__()
            except StopAsyncIteration:
                return False, None

        try:
            while True:
                more, event = self._loop.run(step())
                if not more:
                    return
                assert event is not None
                yield event
        finally:
            self._loop.run(stream.aclose())  # type: ignore[attr-defined]

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> RuntimeClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
