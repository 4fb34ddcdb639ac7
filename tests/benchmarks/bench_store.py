"""Benchmark: the per-task cost of a durable run (a run store) against the same run without.

Run it from the repository root::

    .venv/bin/python tests/benchmarks/bench_store.py [--tasks 1000] [--repeat 5]

What is measured, in one process and one run: wall time per task of a 1,000-task
graph of prompt tasks on the simulated model (``SimulatedChatModel``, no latency,
8-token answers, so the work is the orchestrator's and the store's), run

* **memory**: ``Orchestrator(tasks)``, nothing persisted;
* **store (full)**: ``Orchestrator(tasks, store=SQLiteRunStore(path))``, the
  default: every commit is one transaction fsynced before dependents start
  (``synchronous=FULL``, survives a power loss);
* **store (normal)**: the same with ``synchronous="normal"`` (WAL: survives a crash
  of the process, not of the machine).

Shapes: a **chain** (each task depends on the one before: one commit per task, the
worst case) and **layers** (10 layers of 100, each task depending on one task of the
layer before: batched scheduling commits a layer at a time).

Method: every variant runs once to warm up (checked: all tasks completed, and for a
store, every task is in the store file), then ``--repeat`` times with the variants
interleaved and a fresh store file per run; times are medians, ratios are medians of
the per-repetition ratios against ``memory``. Target: store (full) <= 1.3x. The exit
code is always 0 (a measurement, not a test).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from langchain_runtime import Orchestrator, RunPolicy, SQLiteRunStore, Task
from langchain_runtime.testing import SimulatedChatModel

TARGET = 1.3


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


def timed(run: Callable[[], Any]) -> float:
    gc.collect()
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def variant(
    tasks: list[Task], policy: RunPolicy, sync: str | None, files: Iterator[Path]
) -> Callable[[], Any]:
    """One way to run ``tasks``: in memory (``sync`` None) or with a fresh store file."""

    def run() -> Any:
        if sync is None:
            result = Orchestrator(tasks, policy=policy).invoke({})
        else:
            store = SQLiteRunStore(next(files), synchronous=sync)  # type: ignore[arg-type]
            try:
                result = Orchestrator(tasks, policy=policy, store=store).invoke({})
                stored = store.load_run(result.run_id)
                assert stored is not None and len(stored.tasks) == len(tasks)
            finally:
                store.close()
        assert result.state.value == "completed", result.error
        assert len(result.outputs) == len(tasks)
        return result

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    model = SimulatedChatModel(response_tokens=8)
    policy = RunPolicy(max_parallelism=100)
    print(f"{args.tasks} tasks, simulated model, median of {args.repeat}; ratio vs memory")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        files = (Path(tmp) / f"run-{i}.db" for i in itertools.count())
        for shape, build in (("chain", chain), ("layers", layers)):
            tasks = build(args.tasks, model)
            variants = {
                "memory": variant(tasks, policy, None, files),
                "store (full)": variant(tasks, policy, "full", files),
                "store (normal)": variant(tasks, policy, "normal", files),
            }
            for run in variants.values():
                run()  # warm-up, checked
            times: dict[str, list[float]] = {name: [] for name in variants}
            ratios: dict[str, list[float]] = {name: [] for name in variants}
            for rep in range(args.repeat):
                names = list(variants)
                names = names[rep % len(names) :] + names[: rep % len(names)]
                got = {name: timed(variants[name]) for name in names}
                for name, t in got.items():
                    times[name].append(t)
                    ratios[name].append(t / got["memory"])
            for name in variants:
                per_task = statistics.median(times[name]) / args.tasks * 1e3
                ratio = statistics.median(ratios[name])
                print(f"  {shape:<7} {name:<15} {per_task:7.3f} ms/task   {ratio:5.2f}x")
                if name == "store (full)":
                    worst = max(worst, ratio)
    verdict = "meets" if worst <= TARGET else "misses"
    print(f"store (full) worst ratio {worst:.2f}x: {verdict} the {TARGET}x target")


if __name__ == "__main__":
    main()
