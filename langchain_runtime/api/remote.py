"""``RemoteOrchestrator``: a run on the sidecar, as a LangChain Runnable.

It takes the same input as a local :class:`~langchain_runtime.Orchestrator` (the run
input dict) and returns the same :class:`~langchain_runtime.RunResult`, so a chain
can swap one for the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import run_in_executor
from pydantic import BaseModel, ConfigDict, PrivateAttr

from langchain_runtime.api.client import AsyncRuntimeClient, BudgetLike, RuntimeClient
from langchain_runtime.api.errors import ApiError, ApiTimeoutError
from langchain_runtime.api.schemas import PolicyIn, RunRequest, RunStatus, TaskSpec
from langchain_runtime.domain import RunEvent, RunResult

__all__ = ["RemoteOrchestrator"]


class RemoteOrchestrator(RunnableSerializable[Any, RunResult]):
    """Runs a workflow on a runtime server and returns its :class:`RunResult`.

    Each call submits a run (with a fresh client-chosen id, so a lost answer is
    retried safely), waits for it to end, and fetches its event log. A call that
    is cancelled or times out aborts the remote run, so it stops spending.

    Args:
        client_or_url: The server's URL, a :class:`RuntimeClient` (used by
            ``invoke``; ``ainvoke`` runs it in a worker thread), or an
            :class:`AsyncRuntimeClient` (``ainvoke`` only).
        workflow: A workflow registered on the server; or
        tasks: Ad-hoc tasks (``TaskSpec`` or mappings in the config file format).
        policy: Policy fields overriding the workflow's.
        model: Default model id for ``tasks`` that name none.
        timeout: Seconds the whole call may take (submitting, waiting, fetching the
            events) before it gives up with ``ApiTimeoutError`` (and aborts the run).
        poll_interval: Seconds between status polls.
        token: Bearer token when ``client_or_url`` is a URL.
        with_events: Fetch the run's event log into ``RunResult.events``.

    Example:
        >>> remote = RemoteOrchestrator("http://127.0.0.1:8000", workflow="research")
        >>> remote.invoke({"topic": "owls"}).state.value  # doctest: +SKIP
        'completed'
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    base_url: str
    workflow: str | None = None
    tasks: tuple[TaskSpec, ...] | None = None
    policy: PolicyIn | None = None
    model: str | None = None
    timeout: float = 600.0
    poll_interval: float = 0.2
    with_events: bool = True

    _client: RuntimeClient | None = PrivateAttr(default=None)
    _aclient: AsyncRuntimeClient | None = PrivateAttr(default=None)
    _token: str | None = PrivateAttr(default=None)

    def __init__(
        self,
        client_or_url: str | RuntimeClient | AsyncRuntimeClient,
        *,
        workflow: str | None = None,
        tasks: Sequence[TaskSpec | Mapping[str, Any]] | None = None,
        policy: PolicyIn | Mapping[str, Any] | None = None,
        model: str | None = None,
        timeout: float = 600.0,
        poll_interval: float = 0.2,
        token: str | None = None,
        with_events: bool = True,
        **kwargs: Any,
    ) -> None:
        base_url = client_or_url if isinstance(client_or_url, str) else client_or_url.base_url
        super().__init__(
            base_url=base_url,
            workflow=workflow,
            tasks=tuple(TaskSpec.model_validate(t) for t in tasks) if tasks is not None else None,
            policy=PolicyIn.model_validate(policy) if policy is not None else None,
            model=model,
            timeout=timeout,
            poll_interval=poll_interval,
            with_events=with_events,
            **kwargs,
        )
        # Check the request shape now, not at the first call.
        self._request({}, "check")
        self._token = token
        if isinstance(client_or_url, RuntimeClient):
            self._client = client_or_url
        elif isinstance(client_or_url, AsyncRuntimeClient):
            self._aclient = client_or_url

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return False

    @property
    def InputType(self) -> Any:
        return dict[str, Any]

    @property
    def OutputType(self) -> Any:
        return RunResult

    def _request(self, input: Any, run_id: str) -> RunRequest:
        if isinstance(input, BaseModel):
            input = input.model_dump()
        run_input = dict(input) if isinstance(input, Mapping) else {"input": input}
        if input is None:
            run_input = {}
        fields: dict[str, Any] = {"id": run_id, "input": run_input}
        for name in ("workflow", "tasks", "policy", "model"):
            value = getattr(self, name)
            if value is not None:
                fields[name] = value
        return RunRequest.model_validate(fields)

    def _call_timeout(self) -> float:
        """Each request of a client made here: at most 10 s, never past the call's timeout."""
        return min(10.0, self.timeout)

    def _left(self, deadline: float) -> float:
        """What ``wait`` may take: 4/5 of the time left (its last poll may add 1/4 of it)."""
        left = (deadline - time.monotonic()) * 0.8
        if left <= 0:
            raise ApiTimeoutError(f"the run did not end within {self.timeout:g}s")
        return left

    @staticmethod
    def _result(status: RunStatus, events: list[RunEvent]) -> RunResult:
        return status.to_result(events)

    # -- sync ---------------------------------------------------------------------
    def _run(self, input: Any) -> RunResult:
        return self._drive(lambda c: c.start_run(self._request(input, str(uuid.uuid4()))).run_id)

    def _drive(self, start: Callable[[RuntimeClient], str]) -> RunResult:
        """Start a run with ``start`` (a submit or a resume), wait for it, read it."""
        owned = self._client is None
        if self._client is None and self._aclient is not None:
            raise TypeError(
                "this RemoteOrchestrator was given an AsyncRuntimeClient: use ainvoke or "
                "aresume, or give it a URL or a RuntimeClient"
            )
        deadline = time.monotonic() + self.timeout
        client = self._client or RuntimeClient(
            self.base_url, token=self._token, timeout=self._call_timeout()
        )
        try:
            run_id = start(client)
            try:
                status = client.wait(run_id, self._left(deadline), self.poll_interval)
            except BaseException:
                _quietly(client.abort_run, run_id)
                raise
            if not self.with_events:
                return self._result(status, [])
            left = max(deadline - time.monotonic(), 0.001)
            return self._result(status, list(client.events(run_id, timeout=left)))
        finally:
            if owned:
                client.close()

    def resume(self, run_id: str, *, budget: BudgetLike | None = None) -> RunResult:
        """Resume a stored run on the server and return its :class:`RunResult`.

        The server keeps the run's completed tasks (``restored=True``) and runs the
        others, as :meth:`Orchestrator.resume <langchain_runtime.Orchestrator.resume>`
        does; the run keeps its id. It waits as :meth:`invoke` does, and a resumed run
        that times out is aborted.

        Args:
            run_id: A run that ended failed, aborted, over budget or timed out, or was
                interrupted (its server or replica stopped).
            budget: Replaces the stored budget's fields (a top-up): a
                :class:`~langchain_runtime.Budget` or ``{"max_cost": ...}``.

        Raises:
            RunNotFoundError: No such run (or not this key's).
            ResumeError: The run is live (``run_live``) or its workflow changed
                (``resume_refused``, naming the first difference).
        """
        return self._drive(lambda c: c.resume_run(run_id, budget).run_id)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> RunResult:
        """Run on the server and return the :class:`RunResult` (sync)."""
        return self._call_with_config(self._run, input, config, run_type="chain")

    # -- async --------------------------------------------------------------------
    async def _arun(self, input: Any) -> RunResult:
        request = self._request(input, str(uuid.uuid4()))

        async def start(client: AsyncRuntimeClient) -> str:
            return (await client.start_run(request)).run_id

        return await self._adrive(start)

    async def _adrive(self, start: Callable[[AsyncRuntimeClient], Awaitable[str]]) -> RunResult:
        owned = self._aclient is None
        deadline = time.monotonic() + self.timeout
        client = self._aclient or AsyncRuntimeClient(
            self.base_url, token=self._token, timeout=self._call_timeout()
        )
        try:
            run_id = await start(client)
            try:
                status = await client.wait(run_id, self._left(deadline), self.poll_interval)
            except BaseException:
                await asyncio.shield(_aquietly(client, run_id))
                raise
            if not self.with_events:
                return self._result(status, [])
            left = max(deadline - time.monotonic(), 0.001)
            return self._result(status, [e async for e in client.events(run_id, timeout=left)])
        finally:
            if owned:
                await client.aclose()

    async def aresume(self, run_id: str, *, budget: BudgetLike | None = None) -> RunResult:
        """Resume a stored run on the server (async); see :meth:`resume`."""
        if self._aclient is None and self._client is not None:
            return await asyncio.to_thread(self.resume, run_id, budget=budget)

        async def start(client: AsyncRuntimeClient) -> str:
            return (await client.resume_run(run_id, budget)).run_id

        return await self._adrive(start)

    async def ainvoke(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> RunResult:
        """Run on the server and return the :class:`RunResult` (async)."""
        if self._aclient is None and self._client is not None:
            return await run_in_executor(config, self.invoke, input, config)
        return await self._acall_with_config(self._arun, input, config, run_type="chain")


def _quietly(abort: Any, run_id: str) -> None:
    # best effort: the run may have ended, or the server be gone
    with contextlib.suppress(ApiError, OSError):
        abort(run_id)


async def _aquietly(client: AsyncRuntimeClient, run_id: str) -> None:
    with contextlib.suppress(ApiError, OSError):
        await client.abort_run(run_id)
