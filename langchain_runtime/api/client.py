"""``RuntimeClient`` and ``AsyncRuntimeClient``: typed clients of the sidecar API.

Both drive the same plans (``langchain_runtime.api._calls``): one implementation of
requests, retries, error mapping, polling and event parsing, with a sync and an
async way of doing I/O. Every request has a timeout; only transport errors are
retried, never an HTTP answer; a submission is retried after it may have reached
the server only when it carries a client-chosen run id.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from langchain_runtime.api._calls import (
    Core,
    Plan,
    Send,
    Sleep,
    error_for,
    resume_request,
    run_request,
    task_spec,
)
from langchain_runtime.api.schemas import (
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

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8000"

TaskLike = TaskSpec | Mapping[str, Any]
BudgetLike = ResumeBudget | Budget | Mapping[str, Any]


class RuntimeClient:
    """A client of the runtime's HTTP API.

    Args:
        base_url: The server, e.g. ``http://127.0.0.1:8000``.
        token: Bearer token; defaults to the ``LANGCHAIN_RUNTIME_TOKEN`` variable.
        timeout: Seconds each request may take.
        retries: Extra attempts after a connection error.
        transport: An ``httpx`` transport (tests, custom TLS).

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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._core = Core(base_url, token=token, timeout=timeout, retries=retries)
        self._http = httpx.Client(transport=transport)

    def __repr__(self) -> str:
        return f"RuntimeClient({self._core.base_url!r})"

    @property
    def base_url(self) -> str:
        return self._core.base_url

    def _drive(self, plan: Plan[T]) -> T:
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                action = plan.send(value) if error is None else plan.throw(error)
            except StopIteration as stop:
                result: T = stop.value
                return result
            value, error = None, None
            if isinstance(action, Sleep):
                time.sleep(action.seconds)
            else:
                try:
                    value = self._http.send(action.request)
                except httpx.TransportError as exc:
                    error = exc

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
        """Submit a run (a registered ``workflow`` or ad-hoc ``tasks``); 202 Accepted.

        Give ``run_id`` to make the submission safe to retry after a lost answer.
        """
        req = run_request(
            run, workflow=workflow, tasks=tasks, policy=policy, policy_name=policy_name,
            model=model, input=input, run_id=run_id,
        )  # fmt: skip
        return self._drive(self._core.start_run(req))

    def get_run(self, run_id: str) -> RunStatus:
        """The run's state, every task's state/output/usage/cost, and totals."""
        return self._drive(self._core.get_run(run_id))

    def list_runs(self, *, limit: int = 50, offset: int = 0, state: str | None = None) -> RunPage:
        """A page of runs, newest first, optionally only those in ``state``."""
        return self._drive(self._core.list_runs(limit, offset, state))

    def abort_run(self, run_id: str) -> RunAccepted:
        """Ask the run to stop (it answers at once with state ``aborting``)."""
        return self._drive(self._core.abort_run(run_id))

    def resume_run(self, run_id: str, budget: BudgetLike | None = None) -> RunAccepted:
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
        return self._drive(self._core.resume_run(run_id, resume_request(budget)))

    def enqueue_task(self, run_id: str, task: TaskLike) -> TaskAccepted:
        """Add a task to a live run, validated like any task of a request."""
        return self._drive(self._core.enqueue_task(run_id, task_spec(task)))

    def health(self) -> dict[str, Any]:
        """``GET /healthz``."""
        return self._drive(self._core.health())

    def wait(self, run_id: str, timeout: float = 60.0, poll_interval: float = 0.2) -> RunStatus:
        """Poll until the run ends and return its status.

        Raises:
            ApiTimeoutError: Still not ended after ``timeout`` seconds (the run goes on).
        """
        return self._drive(self._core.wait(run_id, timeout, poll_interval))

    def events(self, run_id: str, after: int | None = None) -> Iterator[RunEvent]:
        """The run's events as they are committed, from after the event ``after``.

        Ends when the run has ended and every event was received; a dropped
        connection resumes where it stopped.
        """
        cursor = self._core.event_cursor(run_id, after)
        while not cursor.ended:
            request = cursor.request()
            try:
                response = self._http.send(request, stream=True)
                try:
                    if response.is_error:
                        response.read()
                        raise error_for(response)
                    for line in response.iter_lines():
                        yield from cursor.feed(line)
                        if cursor.ended:
                            return
                finally:
                    response.close()
            except httpx.TransportError as exc:
                time.sleep(cursor.retry(exc, request))
                continue
            time.sleep(cursor.retry(None, request))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RuntimeClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncRuntimeClient:
    """The asyncio twin of :class:`RuntimeClient`: same calls, same errors, awaited.

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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._core = Core(base_url, token=token, timeout=timeout, retries=retries)
        self._http = httpx.AsyncClient(transport=transport)

    def __repr__(self) -> str:
        return f"AsyncRuntimeClient({self._core.base_url!r})"

    @property
    def base_url(self) -> str:
        return self._core.base_url

    async def _drive(self, plan: Plan[T]) -> T:
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                action = plan.send(value) if error is None else plan.throw(error)
            except StopIteration as stop:
                result: T = stop.value
                return result
            value, error = None, None
            if isinstance(action, Sleep):
                await asyncio.sleep(action.seconds)
            else:
                assert isinstance(action, Send)
                try:
                    value = await self._http.send(action.request)
                except httpx.TransportError as exc:
                    error = exc

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
        """See :meth:`RuntimeClient.start_run`."""
        req = run_request(
            run, workflow=workflow, tasks=tasks, policy=policy, policy_name=policy_name,
            model=model, input=input, run_id=run_id,
        )  # fmt: skip
        return await self._drive(self._core.start_run(req))

    async def get_run(self, run_id: str) -> RunStatus:
        """See :meth:`RuntimeClient.get_run`."""
        return await self._drive(self._core.get_run(run_id))

    async def list_runs(
        self, *, limit: int = 50, offset: int = 0, state: str | None = None
    ) -> RunPage:
        """See :meth:`RuntimeClient.list_runs`."""
        return await self._drive(self._core.list_runs(limit, offset, state))

    async def abort_run(self, run_id: str) -> RunAccepted:
        """See :meth:`RuntimeClient.abort_run`."""
        return await self._drive(self._core.abort_run(run_id))

    async def resume_run(self, run_id: str, budget: BudgetLike | None = None) -> RunAccepted:
        """See :meth:`RuntimeClient.resume_run`."""
        return await self._drive(self._core.resume_run(run_id, resume_request(budget)))

    async def enqueue_task(self, run_id: str, task: TaskLike) -> TaskAccepted:
        """See :meth:`RuntimeClient.enqueue_task`."""
        return await self._drive(self._core.enqueue_task(run_id, task_spec(task)))

    async def health(self) -> dict[str, Any]:
        """``GET /healthz``."""
        return await self._drive(self._core.health())

    async def wait(
        self, run_id: str, timeout: float = 60.0, poll_interval: float = 0.2
    ) -> RunStatus:
        """See :meth:`RuntimeClient.wait`."""
        return await self._drive(self._core.wait(run_id, timeout, poll_interval))

    async def events(self, run_id: str, after: int | None = None) -> AsyncIterator[RunEvent]:
        """See :meth:`RuntimeClient.events`."""
        cursor = self._core.event_cursor(run_id, after)
        while not cursor.ended:
            request = cursor.request()
            try:
                response = await self._http.send(request, stream=True)
                try:
                    if response.is_error:
                        await response.aread()
                        raise error_for(response)
                    async for line in response.aiter_lines():
                        for event in cursor.feed(line):
                            yield event
                        if cursor.ended:
                            return
                finally:
                    await response.aclose()
            except httpx.TransportError as exc:
                await asyncio.sleep(cursor.retry(exc, request))
                continue
            await asyncio.sleep(cursor.retry(None, request))

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
