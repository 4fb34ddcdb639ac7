"""The sidecar over a real socket: uvicorn on a loopback port, started by the test.

50 concurrent runs, polling, an abort mid-run, a task added to a live run, a live
event stream, a remote Runnable, then a restart on the same SQLite file that reads
every finished run back intact. Every wait is bounded; the whole test takes seconds.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from langchain_runtime.api import (
    AsyncRuntimeClient,
    RemoteOrchestrator,
    RuntimeClient,
    UnauthorizedError,
)
from langchain_runtime.config import load_config

pytest.importorskip("fastapi", reason="needs the 'server' extra")
pytest.importorskip("uvicorn", reason="needs the 'server' extra")

from langchain_runtime.api.server import create_app, serve_in_thread

CONFIG: dict[str, Any] = {
    "models": {
        "quick": {"provider": "simulated", "response_tokens": 6, "latency": 0.02},
        "slow": {"provider": "simulated", "response_tokens": 6, "latency": 0.3},
    },
    "workflows": {
        "pair": {
            "tasks": [
                {"id": "draft", "prompt": "Draft about {topic}", "model": "quick"},
                {"id": "edit", "prompt": "Edit: {draft}", "model": "quick", "deps": ["draft"]},
            ]
        },
        "long": {
            "model": "slow",
            "tasks": [
                {"id": "s1", "prompt": "Step one on {topic}"},
                {"id": "s2", "prompt": "Step two: {s1}", "deps": ["s1"]},
                {"id": "s3", "prompt": "Step three: {s2}", "deps": ["s2"]},
            ],
        },
    },
}
TOKEN = "integration-token"
N_RUNS = 50


def _app(db: Path) -> Any:
    return create_app(
        load_config(CONFIG), store=str(db), token=TOKEN, max_concurrent_runs=64,
        checkpoint_interval=0.2,
    )  # fmt: skip


async def _exercise(url: str) -> tuple[dict[str, Any], set[str]]:
    """Everything against the live server; returns each run's final status JSON."""
    async with AsyncRuntimeClient(url, token=TOKEN, timeout=10) as client:
        assert (await client.health())["status"] == "ok"

        # 50 submissions at once, then poll them all to the end
        accepted = await asyncio.gather(
            *(
                client.start_run(workflow="pair", input={"topic": f"topic {i}"}, run_id=f"pair-{i}")
                for i in range(N_RUNS)
            )
        )
        assert sorted(a.run_id for a in accepted) == sorted(f"pair-{i}" for i in range(N_RUNS))

        # meanwhile: one long run to abort, one to grow and watch
        doomed = await client.start_run(workflow="long", input={"topic": "abort me"})
        grown = await client.start_run(workflow="long", input={"topic": "grow me"})
        stream = asyncio.ensure_future(_collect(client, grown.run_id))
        added = await client.enqueue_task(
            grown.run_id, {"id": "s4", "prompt": "Step four: {s3}", "deps": ["s3"]}
        )
        assert added.task_id == "s4"
        await _until_task_done(client, doomed.run_id, "s1")
        assert (await client.abort_run(doomed.run_id)).state == "aborting"

        finals = await asyncio.gather(
            *(client.wait(a.run_id, timeout=20, poll_interval=0.05) for a in accepted)
        )
        assert {s.state for s in finals} == {"completed"}
        assert all(s.tasks["edit"].output_text for s in finals)

        aborted = await client.wait(doomed.run_id, timeout=20, poll_interval=0.05)
        assert aborted.state == "aborted"
        assert aborted.tasks["s1"].state.value == "completed"
        assert aborted.tasks["s3"].state.value in ("skipped", "cancelled")

        grown_final = await client.wait(grown.run_id, timeout=20, poll_interval=0.05)
        assert grown_final.state == "completed"
        assert list(grown_final.tasks) == ["s1", "s2", "s3", "s4"]

        events = await asyncio.wait_for(stream, 20)
        assert [e.seq for e in events] == list(range(len(events)))  # nothing lost or doubled
        types = [e.type for e in events]
        assert types[0] == "run_started" and types[-1] == "run_finished"
        assert "task_enqueued" in types and types.count("task_completed") == 4

        page = await client.list_runs(limit=500)
        assert page.total == N_RUNS + 2
        ids = {item.run_id for item in page.items}
        statuses = {
            run_id: (await client.get_run(run_id)).model_dump(mode="json") for run_id in ids
        }
        return statuses, ids


async def _collect(client: AsyncRuntimeClient, run_id: str) -> list[Any]:
    return [e async for e in client.events(run_id)]


async def _until_task_done(client: AsyncRuntimeClient, run_id: str, task_id: str) -> None:
    for _ in range(400):  # 20 s at most
        status = await client.get_run(run_id)
        task = status.tasks.get(task_id)  # every task is listed; wait for this one to end
        if task is not None and task.state.value == "completed":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{task_id} of {run_id} did not finish in time")


def test_the_server_over_a_real_socket(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite3"
    with serve_in_thread(_app(db)) as server:
        assert server.url.startswith("http://127.0.0.1:")
        statuses, ids = asyncio.run(_exercise(server.url))

        with RuntimeClient(server.url, token=TOKEN, timeout=10) as client:
            events_before = {run_id: list(client.events(run_id)) for run_id in sorted(ids)}
            # a remote Runnable, sync, over the socket
            remote = RemoteOrchestrator(client, workflow="pair", poll_interval=0.05, timeout=20)
            result = remote.invoke({"topic": "remote"})
            assert result.state.value == "completed" and result["edit"].text
            assert [e.type for e in result.events][-1] == "run_finished"
            # and resumed, sync: a finished run's tasks come back restored, none re-run
            again = remote.resume(result.run_id)
            assert again.run_id == result.run_id and again.state.value == "completed"
            assert all(t.restored for t in again.tasks.values())
            assert again["edit"].text == result["edit"].text
        with (
            RuntimeClient(server.url, timeout=5) as anonymous,
            pytest.raises(UnauthorizedError, match="bearer token") as info,
        ):
            anonymous.list_runs()
        assert info.value.status_code == 401

    # the same file, a new server: every finished run reads back intact
    with serve_in_thread(_app(db)) as server, RuntimeClient(server.url, token=TOKEN) as client:
        page = client.list_runs(limit=500)
        assert page.total == N_RUNS + 3
        for run_id in sorted(ids):
            assert client.get_run(run_id).model_dump(mode="json") == statuses[run_id]
            assert list(client.events(run_id)) == events_before[run_id]
        auth = {"authorization": f"Bearer {TOKEN}"}
        text = httpx.get(f"{server.url}/metrics", headers=auth, timeout=10).text
        assert f'langchain_runtime_runs{{state="completed"}} {N_RUNS + 2}' in text
        assert 'langchain_runtime_runs{state="aborted"} 1' in text
