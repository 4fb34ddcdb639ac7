"""The async client and RemoteOrchestrator against the app in-process (ASGI transport)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda

from langchain_runtime import GraphValidationError, InvalidInputError, RunResult
from langchain_runtime.api import (
    AsyncRuntimeClient,
    RemoteOrchestrator,
    RunNotFoundError,
    RuntimeClient,
)
from langchain_runtime.config import RuntimeConfig
from tests.unit.api._helpers import AppFactory, Gate

pytestmark = pytest.mark.anyio


@pytest.fixture
async def aclient(make_app: AppFactory) -> AsyncIterator[AsyncRuntimeClient]:
    app = make_app()
    transport = httpx.ASGITransport(app=app)
    async with AsyncRuntimeClient("http://app", transport=transport, timeout=10) as c:
        yield c


async def test_the_client_drives_every_route(aclient: AsyncRuntimeClient, gate: Gate) -> None:
    run = await aclient.start_run(workflow="hello", input={"name": "Ada"}, run_id="r-1")
    assert run.run_id == "r-1"
    status = await aclient.wait("r-1", timeout=10, poll_interval=0.02)
    assert status.state == "completed" and isinstance(
        status.tasks["greet"].output_value(), AIMessage
    )
    events = [e async for e in aclient.events("r-1")]
    assert events[0].type == "run_started" and events[-1].type == "run_finished"
    assert next(iter([e async for e in aclient.events("r-1", after=2)])).seq == 3
    page = await aclient.list_runs(limit=5)
    assert page.total == 1 and page.items[0].run_id == "r-1"
    assert (await aclient.health())["active_runs"] == 0

    live = await aclient.start_run(workflow="gated", model="fast")
    assert gate.started.wait(10)
    added = await aclient.enqueue_task(
        live.run_id, {"id": "more", "prompt": "On {after}", "deps": ["after"]}
    )
    assert added.task_id == "more"
    with pytest.raises(GraphValidationError) as info:
        await aclient.enqueue_task(live.run_id, {"id": "x", "prompt": "p", "deps": ["nope"]})
    assert info.value.code == "dep_not_found"
    assert info.value.status_code == 422  # type: ignore[attr-defined]
    assert (await aclient.abort_run(live.run_id)).state == "aborting"
    assert (await aclient.wait(live.run_id, timeout=10, poll_interval=0.02)).state == "aborted"
    with pytest.raises(RunNotFoundError):
        await aclient.get_run("nope")
    with pytest.raises(InvalidInputError, match="gpt-9"):
        await aclient.start_run(tasks=[{"id": "a", "prompt": "x", "model": "gpt-9"}])


async def test_remote_and_local_runs_are_interchangeable(
    make_app: AppFactory, config: RuntimeConfig
) -> None:
    transport = httpx.ASGITransport(app=make_app())
    client = AsyncRuntimeClient("http://app", transport=transport)
    remote = RemoteOrchestrator(client, workflow="hello", poll_interval=0.02, timeout=10)
    local = config.build_workflow("hello")
    chain_tail = RunnableLambda(lambda r: r["shout"].text)
    remote_result = await remote.ainvoke({"name": "Ada"})
    local_result = await local.ainvoke({"name": "Ada"})
    assert isinstance(remote_result, RunResult)
    assert remote_result.state == local_result.state
    assert remote_result["shout"].text == local_result["shout"].text  # deterministic model
    assert remote_result.usage == local_result.usage and remote_result.cost == local_result.cost
    assert [(e.seq, e.type, e.task_id) for e in remote_result.events] == [
        (e.seq, e.type, e.task_id) for e in local_result.events
    ]
    # the same chain works with either
    assert await (remote | chain_tail).ainvoke({"name": "Ada"}) == await (
        local | chain_tail
    ).ainvoke({"name": "Ada"})
    await client.aclose()


async def test_remote_tasks_and_policy(make_app: AppFactory) -> None:
    transport = httpx.ASGITransport(app=make_app())
    async with AsyncRuntimeClient("http://app", transport=transport) as client:
        remote = RemoteOrchestrator(
            client,
            tasks=[{"id": "a", "prompt": "Research {topic}"}],
            model="fast",
            policy={"budget_limit": {"amount": "0.0000001"}},
            poll_interval=0.02,
            with_events=False,
        )
        result = await remote.ainvoke({"topic": "owls"})
    assert result.state.value == "budget_exceeded" and result.events == []
    with pytest.raises(TypeError, match="ainvoke"):
        remote.invoke({"topic": "owls"})


async def test_a_remote_run_that_times_out_is_aborted(make_app: AppFactory, gate: Gate) -> None:
    app = make_app()
    transport = httpx.ASGITransport(app=app)
    async with AsyncRuntimeClient("http://app", transport=transport) as client:
        remote = RemoteOrchestrator(client, workflow="gated", timeout=0.3, poll_interval=0.02)
        with pytest.raises(TimeoutError):
            await remote.ainvoke({})
        page = await client.list_runs()
        run_id = page.items[0].run_id
        status = await client.wait(run_id, timeout=10, poll_interval=0.02)
    assert status.state == "aborted"


def test_remote_orchestrator_checks_its_request_at_construction() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        RemoteOrchestrator("http://x")
    with pytest.raises(ValueError, match="exactly one"):
        RemoteOrchestrator("http://x", workflow="a", tasks=[{"id": "a", "prompt": "p"}])
    remote = RemoteOrchestrator(RuntimeClient("http://x"), workflow="a")
    assert remote.base_url == "http://x"
    assert remote.get_input_schema is not None


async def test_a_remote_run_over_budget_is_resumed_with_a_top_up(
    make_app: AppFactory, tmp_path: Path
) -> None:
    app = make_app(store=str(tmp_path / "runs.db"))  # resume needs a durable store
    transport = httpx.ASGITransport(app=app)
    async with AsyncRuntimeClient("http://app", transport=transport) as client:
        remote = RemoteOrchestrator(
            client,
            tasks=[
                {"id": "a", "prompt": "Research {topic}"},
                {"id": "b", "prompt": "Summarise {a}", "deps": ["a"]},
            ],
            model="fast",
            policy={"budget_limit": {"amount": "0.0000001"}},
            poll_interval=0.02,
            timeout=20,
        )
        stopped = await remote.ainvoke({"topic": "owls"})
        assert stopped.state.value == "budget_exceeded"
        resumed = await remote.aresume(stopped.run_id, budget={"max_cost": "5"})
        assert resumed.run_id == stopped.run_id and resumed.state.value == "completed"
        assert set(resumed.tasks) == {"a", "b"} and resumed["b"].text
        assert resumed.events[-1].type == "run_finished"
        again = await remote.aresume(stopped.run_id)  # finished: what it did comes back
        assert again.tasks["a"].restored and again.tasks["b"].restored
        with pytest.raises(RunNotFoundError):
            await remote.aresume("no-such-run")
    with pytest.raises(TypeError, match="ainvoke"):
        remote.resume(stopped.run_id)
