"""How long TaskGraph takes to validate a large DAG (target: well under a second).

Run: ``.venv/bin/python tests/benchmarks/bench_graph.py``. Builds 10,000 tasks with
~50,000 dependency edges (fixed seed), then times ``TaskGraph(tasks)`` (duplicate,
unknown-dependency and cycle checks, topological order) and the same graph with one
back edge that closes a cycle (the error's path included). Prints medians of 7.
"""

from __future__ import annotations

import random
import statistics
import time

from langchain_core.runnables import RunnableLambda

from langchain_runtime import GraphValidationError, Task, TaskGraph


def build(n: int = 10_000, fan_in: int = 5, cycle: bool = False) -> tuple[list[Task], int]:
    rng = random.Random(0)
    noop = RunnableLambda(lambda x: x)
    tasks = [Task(f"t{i:05d}", noop) for i in range(10)]
    edges = 0
    for i in range(10, n):
        deps = {f"t{rng.randrange(i):05d}" for _ in range(fan_in)}
        edges += len(deps)
        tasks.append(Task(f"t{i:05d}", noop, deps=sorted(deps)))
    if cycle:  # the first task now depends on the last: a long cycle
        tasks[0] = Task("t00000", noop, deps=[f"t{n - 1:05d}"])
    return tasks, edges


def timed(tasks: list[Task], expect_cycle: bool) -> float:
    start = time.perf_counter()
    try:
        TaskGraph(tasks)
    except GraphValidationError as exc:
        if not (expect_cycle and exc.code == "dag_cycle"):
            raise
    else:
        if expect_cycle:
            raise SystemExit("the cycle was not found")
    return time.perf_counter() - start


def main() -> None:
    for cycle in (False, True):
        tasks, edges = build(cycle=cycle)
        times = [timed(tasks, cycle) for _ in range(7)]
        label = "with a cycle" if cycle else "valid"
        print(
            f"{len(tasks)} tasks, {edges} edges, {label:12}: "
            f"median {statistics.median(times) * 1000:.1f} ms, best {min(times) * 1000:.1f} ms "
            f"(target < 1000 ms)"
        )


if __name__ == "__main__":
    main()
