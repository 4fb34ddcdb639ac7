"""Benchmark: a long chain through the sidecar against the same chain in process.

Run it from the repository root::

    .venv/bin/python tests/benchmarks/bench_sidecar_chain.py [--sizes 500,2000,5000]
        [--repeat 3] [--poll 0.2]

What is measured, in one run: wall time per task of an N-task chain (each task's
prompt uses the previous task's output) on the simulated model (8-token answers, no
latency), for N in ``--sizes``:

* **in process**: ``Orchestrator(tasks).invoke(input)``, nothing persisted;
* **in process + store**: the same with ``store=SQLiteRunStore(file)``
  (``synchronous`` as ``--sync``: ``full``, the default, fsyncs every commit);
* **sidecar**: ``langchain-runtime serve`` in a child process on 127.0.0.1 with an
  SQLite store file (the default, durable store), the chain submitted as ad-hoc
  tasks with ``RuntimeClient.start_run`` and waited for with ``RuntimeClient.wait``
  (the store with the same ``--sync``)
  (which polls ``GET /api/v1/runs/{id}`` every ``--poll`` seconds, as a client
  would); the time is from submission until ``wait`` returns the completed run.

Every run is checked (completed, N tasks). Times are medians of ``--repeat``; the
ratio is sidecar / in process per task. Target: <= 1.5x at every size, and flat
per task as N grows. The exit code is always 0 (a measurement, not a test).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from langchain_runtime import Orchestrator, RunPolicy, SQLiteRunStore, Task
from langchain_runtime.api import RuntimeClient
from langchain_runtime.testing import SimulatedChatModel

TARGET = 1.5
CONFIG = {"models": {"sim": {"provider": "simulated", "response_tokens": 8}}}
SERVER = """
import json, logging, sys
from langchain_runtime.api.server import serve
from langchain_runtime.config import load_config
logging.basicConfig(level=logging.WARNING)
from langchain_runtime.store import SQLiteRunStore
config = load_config(json.loads(sys.argv[2]))
from langchain_runtime.api.server._limits import ServerLimits
store = SQLiteRunStore(sys.argv[3], exclusive=True, synchronous=sys.argv[4])
# chains longer than the default limit of 1,000 tasks per run (serve --limit max_tasks=N)
serve("127.0.0.1", int(sys.argv[1]), log_level="warning", config=config, store=store,
      max_body_bytes=50_000_000, limits=ServerLimits(max_tasks=100_000))
"""


def chain_specs(n: int) -> list[dict[str, Any]]:
    return [
        {"id": f"t{i}", "prompt": f"Step {i}: go on" + (f" from {{t{i - 1}}}" if i else ""),
         "model": "sim", **({"deps": [f"t{i - 1}"]} if i else {})}
        for i in range(n)
    ]  # fmt: skip


def chain_tasks(n: int) -> list[Task]:
    model = SimulatedChatModel(response_tokens=8)
    return [
        Task(s["id"], prompt=s["prompt"], model=model, deps=s.get("deps", ()))
        for s in chain_specs(n)
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(db: Path, sync: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), json.dumps(CONFIG), str(db), sync],
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


def in_process(n: int, store_dir: Path | None, sync: str = "full") -> float:
    tasks = chain_tasks(n)
    store = None
    if store_dir is not None:
        path = store_dir / f"chain-{n}-{time.monotonic_ns()}.db"
        store = SQLiteRunStore(path, synchronous=sync)  # type: ignore[arg-type]
    orch = Orchestrator(tasks, policy=RunPolicy(max_parallelism=4), store=store)
    start = time.perf_counter()
    result = orch.invoke({})
    elapsed = time.perf_counter() - start
    if store is not None:
        store.close()
    assert result.state.value == "completed" and len(result.tasks) == n, result.error
    return elapsed


def sidecar(url: str, n: int, poll: float) -> float:
    specs = chain_specs(n)
    with RuntimeClient(url, timeout=60) as client:
        start = time.perf_counter()
        accepted = client.start_run(tasks=specs, policy={"max_parallelism": 4})
        status = client.wait(accepted.run_id, timeout=600, poll_interval=poll)
        elapsed = time.perf_counter() - start
    assert status.state == "completed" and len(status.tasks) == n, status.error
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="500,2000,5000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--poll", type=float, default=0.2)
    parser.add_argument(
        "--sync", choices=["full", "normal"], default="full",
        help="the store's synchronous mode (full: survives a power loss; normal: a crash)",
    )  # fmt: skip
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(Path(tmp) / "server.db", args.sync)
        try:
            in_process(50, None)
            sidecar(url, 50, args.poll)  # warm-up
            print(
                f"chain on the simulated model; median of {args.repeat}; store "
                f"synchronous={args.sync}; sidecar at {url}"
            )
            worst, per_task = 0.0, []
            for n in sizes:
                t = {"in process": [], "in process + store": [], "sidecar": []}  # type: dict[str, list[float]]
                for _ in range(args.repeat):
                    t["in process"].append(in_process(n, None))
                    t["in process + store"].append(in_process(n, Path(tmp), args.sync))
                    t["sidecar"].append(sidecar(url, n, args.poll))
                med = {k: statistics.median(v) / n * 1e3 for k, v in t.items()}
                ratio = med["sidecar"] / med["in process"]
                worst = max(worst, ratio)
                per_task.append(med["sidecar"])
                print(
                    f"  {n:>5} tasks: in process {med['in process']:.3f} ms/task, "
                    f"+ store {med['in process + store']:.3f}, sidecar {med['sidecar']:.3f}"
                    f"  -> sidecar/in process {ratio:.2f}x"
                )
        finally:
            stop_server(proc)
    flat = max(per_task) / min(per_task)
    verdict = "meets" if worst <= TARGET else "misses"
    print(
        f"worst ratio {worst:.2f}x ({verdict} the {TARGET}x target); sidecar per task "
        f"varies {flat:.2f}x from {sizes[0]} to {sizes[-1]} tasks"
    )


if __name__ == "__main__":
    main()
