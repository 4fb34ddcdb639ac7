"""Benchmark: the sidecar's request rate and latency over a real loopback socket.

Starts ``langchain_runtime.api.server.serve`` in a child process on 127.0.0.1 (a free
port, an SQLite store in a temporary directory, the simulated model), then measures:

* ``GET /api/v1/runs/{id}`` of a finished run, sequential and with concurrency;
* the same ``GET`` through ``RuntimeClient`` / ``AsyncRuntimeClient`` (ratio to raw
  httpx in the same run);
* ``POST /api/v1/runs`` (a two-task workflow on the simulated model with 10 ms latency
  per call), sequential and with concurrency, and the time until all those runs end.

Every phase is bounded in requests and in seconds; the server is stopped at the end.
Not collected by pytest. Run::

    .venv/bin/python tests/benchmarks/bench_server.py [--requests 2000] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

CONFIG = {
    "models": {"sim": {"provider": "simulated", "response_tokens": 16, "latency": 0.01}},
    "workflows": {
        "pair": {
            "tasks": [
                {"id": "draft", "prompt": "Draft about {topic}", "model": "sim"},
                {"id": "edit", "prompt": "Edit: {draft}", "model": "sim", "deps": ["draft"]},
            ]
        }
    },
}
SERVER = """
import json, logging, sys
from langchain_runtime.api.server import serve
from langchain_runtime.config import load_config
logging.basicConfig(level=logging.WARNING)
config = load_config(json.loads(sys.argv[2]))
serve("127.0.0.1", int(sys.argv[1]), log_level="warning", config=config, store=sys.argv[3],
      max_concurrent_runs=256)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(db: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), json.dumps(CONFIG), str(db)],
        env={**os.environ, "LANGCHAIN_RUNTIME_TOKEN": ""},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start within 30 s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def summary(name: str, latencies: list[float], wall: float) -> str:
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (
        f"{name:<44} n={len(ms):>5}  {len(ms) / wall:>7.0f} req/s  "
        f"p50={statistics.median(ms):6.2f} ms  p99={p99:6.2f} ms"
    )


def sequential(
    send: Callable[[], httpx.Response], n: int, seconds: float
) -> tuple[list[float], float]:
    latencies: list[float] = []
    start = time.perf_counter()
    while len(latencies) < n and time.perf_counter() - start < seconds:
        t = time.perf_counter()
        r = send()
        latencies.append(time.perf_counter() - t)
        r.raise_for_status()
    return latencies, time.perf_counter() - start


async def concurrent(
    send: Callable[[], Awaitable[httpx.Response]], n: int, seconds: float, workers: int
) -> tuple[list[float], float]:
    latencies: list[float] = []
    start = time.perf_counter()

    async def worker() -> None:
        while len(latencies) < n and time.perf_counter() - start < seconds:
            t = time.perf_counter()
            r = await send()
            latencies.append(time.perf_counter() - t)
            r.raise_for_status()

    await asyncio.gather(*(worker() for _ in range(workers)))
    return latencies, time.perf_counter() - start


def wait_all(client: httpx.Client, url: str, ids: list[str], seconds: float) -> float:
    start = time.perf_counter()
    pending = set(ids)
    while pending and time.perf_counter() - start < seconds:
        for run_id in list(pending):
            if client.get(f"{url}/api/v1/runs/{run_id}").json()["state"] == "completed":
                pending.discard(run_id)
        time.sleep(0.05)
    if pending:
        raise SystemExit(f"{len(pending)} runs did not complete within {seconds} s")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="most requests per phase")
    parser.add_argument("--submissions", type=int, default=200, help="most runs per phase")
    parser.add_argument("--seconds", type=float, default=15.0, help="most seconds per phase")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(Path(tmp) / "runs.sqlite3")
        try:
            run(url, args)
        finally:
            stop_server(proc)


def client_get_run(url: str, run_id: str, args: argparse.Namespace, base: float) -> None:
    """The package's clients on the same request: deadlines, size cap and decoding on
    top of httpx (the sync client runs the async one on its own event loop)."""
    from langchain_runtime.api import AsyncRuntimeClient, RuntimeClient

    with RuntimeClient(url, timeout=10) as rc:
        for _ in range(50):
            rc.get_run(run_id)
        lat: list[float] = []
        start = time.perf_counter()
        while len(lat) < args.requests and time.perf_counter() - start < args.seconds:
            t = time.perf_counter()
            rc.get_run(run_id)
            lat.append(time.perf_counter() - t)
        wall = time.perf_counter() - start
    ratio = statistics.median(lat) / base
    print(summary("RuntimeClient.get_run, sequential", lat, wall) + f"  p50 {ratio:.2f}x httpx")

    async def in_async() -> tuple[list[float], float]:
        async with AsyncRuntimeClient(url, timeout=10) as ac:
            for _ in range(50):
                await ac.get_run(run_id)
            got: list[float] = []
            began = time.perf_counter()
            while len(got) < args.requests and time.perf_counter() - began < args.seconds:
                t = time.perf_counter()
                await ac.get_run(run_id)
                got.append(time.perf_counter() - t)
            return got, time.perf_counter() - began

    lat, wall = asyncio.run(in_async())
    ratio = statistics.median(lat) / base
    print(
        summary("AsyncRuntimeClient.get_run, sequential", lat, wall) + f"  p50 {ratio:.2f}x httpx"
    )


def run(url: str, args: argparse.Namespace) -> None:
    body = {"workflow": "pair", "input": {"topic": "owls"}}
    with httpx.Client(timeout=10) as client:
        run_id = client.post(f"{url}/api/v1/runs", json=body).json()["run_id"]
        wait_all(client, url, [run_id], 10)
        for _ in range(50):  # warm-up
            client.get(f"{url}/api/v1/runs/{run_id}")

        print(f"server: uvicorn, one process, SQLite store; client: httpx; {url}")
        lat, wall = sequential(
            lambda: client.get(f"{url}/api/v1/runs/{run_id}"), args.requests, args.seconds
        )
        print(summary("GET /runs/{id} (finished run), sequential", lat, wall))
        base = statistics.median(lat)
        client_get_run(url, run_id, args, base)

        async def get_concurrent() -> tuple[list[float], float]:
            async with httpx.AsyncClient(timeout=10) as ac:
                return await concurrent(
                    lambda: ac.get(f"{url}/api/v1/runs/{run_id}"),
                    args.requests,
                    args.seconds,
                    args.concurrency,
                )

        lat, wall = asyncio.run(get_concurrent())
        print(summary(f"GET /runs/{{id}}, {args.concurrency} concurrent", lat, wall))

        ids: list[str] = []

        def submit() -> httpx.Response:
            r = client.post(f"{url}/api/v1/runs", json=body)
            ids.append(r.json()["run_id"])
            return r

        lat, wall = sequential(submit, args.submissions, args.seconds)
        print(summary("POST /runs (2 simulated tasks), sequential", lat, wall))
        print(f"  all {len(ids)} runs completed {wait_all(client, url, ids, 60):.2f} s later")

        async def submit_concurrent() -> tuple[list[float], float, list[str]]:
            async with httpx.AsyncClient(timeout=10) as ac:
                got: list[str] = []

                async def send() -> httpx.Response:
                    r = await ac.post(f"{url}/api/v1/runs", json=body)
                    got.append(r.json()["run_id"])
                    return r

                lat, wall = await concurrent(send, args.submissions, args.seconds, args.concurrency)
                return lat, wall, got

        lat, wall, ids = asyncio.run(submit_concurrent())
        print(summary(f"POST /runs, {args.concurrency} concurrent", lat, wall))
        print(f"  all {len(ids)} runs completed {wait_all(client, url, ids, 60):.2f} s later")


if __name__ == "__main__":
    main()
