"""Benchmark: the per-task cost of a durable run on PostgreSQL, against SQLite and no store.

Run it from the repository root (it starts its own PostgreSQL server on a temp folder
with ``tests/postgres_server.py``; as root it runs the server as ``postgres``)::

    .venv/bin/python tests/benchmarks/bench_pgstore.py [--tasks 1000] [--repeat 3] [--no-fsync]

What is measured, in one process and one run: wall time per task of a 1,000-task graph
of prompt tasks on the simulated model (``SimulatedChatModel``, no latency, 8-token
answers, so the work is the orchestrator's and the store's), run

* **memory**: ``Orchestrator(tasks)``, nothing persisted;
* **sqlite (full)**: ``SQLiteRunStore(path)``, every commit fsynced (the default);
* **sqlite (normal)**: ``SQLiteRunStore(path, synchronous="normal")``;
* **postgres**: ``PostgresRunStore(dsn)`` on a local server over its unix socket.
  By default the server flushes its WAL at every commit (``fsync=on``,
  ``synchronous_commit=on``: as durable as sqlite (full)); ``--no-fsync`` runs it as
  the test suite does (``fsync=off``), to see the cost of the round trips alone.

Shapes: a **chain** (one commit per task, the worst case) and **layers** (10 layers of
100: batched scheduling commits a layer at a time).

Method: each variant runs once to warm up (checked: every task completed and stored),
then ``--repeat`` times, variants interleaved, each run on a fresh store (file or
database) opened before the clock starts; times are medians, ratios medians of the
per-repetition ratios against ``memory``; "overhead" is (variant - memory) per task.
The exit code is always 0 (a measurement, not a test).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from langchain_runtime import (  # noqa: E402
    Orchestrator,
    PostgresRunStore,
    RunPolicy,
    SQLiteRunStore,
    Task,
)
from langchain_runtime.testing import SimulatedChatModel  # noqa: E402
from tests.postgres_server import PostgresServer  # noqa: E402


def chain(n: int, model: Any) -> list[Task]:
    return [
        Task(f"t{i}", prompt=f"Step {i}: go on" + (f" from {{t{i - 1}}}" if i else ""),
             model=model, deps=[f"t{i - 1}"] if i else [])
        for i in range(n)
    ]  # fmt: skip


def layers(n: int, model: Any, width: int = 100) -> list[Task]:
    tasks = []
    for i in range(n):
        layer, pos = divmod(i, width)
        deps = [f"t{(layer - 1) * width + pos}"] if layer else []
        text = f"Item {i}" + (f" after {{{deps[0]}}}" if deps else "")
        tasks.append(Task(f"t{i}", prompt=text, model=model, deps=deps))
    return tasks


def start_server(fsync: bool) -> PostgresServer:
    """The test server, started with WAL flushes on (durable) or off (as in the tests)."""
    server = PostgresServer()
    server.start(durable=fsync)
    return server


Opener = Callable[[], Any]


def one_run(tasks: list[Task], policy: RunPolicy, open_store: Opener | None) -> float:
    """Seconds for one run of ``tasks`` (the store opened before the clock starts)."""
    store = open_store() if open_store is not None else None
    try:
        orch = Orchestrator(tasks, policy=policy, store=store)
        gc.collect()
        start = time.perf_counter()
        result = orch.invoke({})
        elapsed = time.perf_counter() - start
        assert result.state.value == "completed", result.error
        assert len(result.outputs) == len(tasks)
        if store is not None:
            stored = store.load_run(result.run_id)
            assert stored is not None and len(stored.tasks) == len(tasks)
        return elapsed
    finally:
        if store is not None:
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-fsync", action="store_true", help="PostgreSQL with fsync=off")
    args = parser.parse_args()
    model = SimulatedChatModel(response_tokens=8)
    policy = RunPolicy(max_parallelism=100)
    server = start_server(fsync=not args.no_fsync)
    pg = "postgres (fsync off)" if args.no_fsync else "postgres"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            files = (Path(tmp) / f"run-{i}.db" for i in itertools.count())
            variants: dict[str, Opener | None] = {
                "memory": None,
                "sqlite (full)": lambda: SQLiteRunStore(next(files)),
                "sqlite (normal)": lambda: SQLiteRunStore(next(files), synchronous="normal"),
                pg: lambda: PostgresRunStore(server.create_database()),
            }
            print(
                f"{args.tasks} tasks, simulated model, median of {args.repeat}; "
                "ratio and overhead per task vs memory"
            )
            for shape, build in (("chain", chain), ("layers", layers)):
                tasks = build(args.tasks, model)
                for opener in variants.values():
                    one_run(tasks, policy, opener)  # warm-up, checked
                times: dict[str, list[float]] = {name: [] for name in variants}
                ratios: dict[str, list[float]] = {name: [] for name in variants}
                for rep in range(args.repeat):
                    names = list(variants)
                    names = names[rep % len(names) :] + names[: rep % len(names)]
                    got = {name: one_run(tasks, policy, variants[name]) for name in names}
                    for name, t in got.items():
                        times[name].append(t)
                        ratios[name].append(t / got["memory"])
                base = statistics.median(times["memory"])
                for name in variants:
                    t = statistics.median(times[name])
                    over = (t - base) / args.tasks * 1e6
                    print(
                        f"  {shape:<7} {name:<21} {t / args.tasks * 1e3:7.3f} ms/task  "
                        f"{statistics.median(ratios[name]):5.2f}x  {over:+8.0f} us/task"
                    )
    finally:
        server.destroy()


if __name__ == "__main__":
    main()
