"""Property tests on random DAGs: exactly once, after dependencies, deterministic."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.runnables import RunnableLambda

from langchain_runtime import Orchestrator, RunPolicy, Task

from .test_graph import dags

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def build(
    spec: list[tuple[str, list[str]]],
    latencies: dict[str, float],
    log: list[tuple[str, str]],
    policy: RunPolicy,
) -> Orchestrator:
    def make(tid: str) -> RunnableLambda[Any, Any]:
        async def body(inp: dict[str, Any]) -> str:
            log.append(("start", tid))
            await asyncio.sleep(latencies[tid])
            log.append(("end", tid))
            # the output depends on the dependency outputs: routing is exercised
            deps = dict(spec)[tid]
            return tid + "(" + ",".join(str(inp[d]) for d in sorted(deps)) + ")"

        return RunnableLambda(body, name=tid)

    return Orchestrator([Task(tid, make(tid), deps=deps) for tid, deps in spec], policy=policy)


@SETTINGS
@given(dags(), st.integers(1, 6), st.sampled_from(["batched", "eager"]), st.randoms())
def test_every_task_runs_once_after_its_dependencies(
    spec: list[tuple[str, list[str]]], par: int, scheduling: str, rnd: random.Random
) -> None:
    latencies = {tid: rnd.uniform(0, 0.002) for tid, _ in spec}
    log: list[tuple[str, str]] = []
    policy = RunPolicy(max_parallelism=par, scheduling=scheduling)
    result = build(spec, latencies, log, policy).invoke({})
    assert result.ok
    starts = [tid for kind, tid in log if kind == "start"]
    assert sorted(starts) == sorted(tid for tid, _ in spec)  # exactly once each
    ended_at = {tid: i for i, (kind, tid) in enumerate(log) if kind == "end"}
    started_at = {tid: i for i, (kind, tid) in enumerate(log) if kind == "start"}
    for tid, deps in spec:
        assert all(ended_at[d] < started_at[tid] for d in deps)
    # at most `par` running at once
    running = peak = 0
    for kind, _ in log:
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    assert peak <= par


@SETTINGS
@given(dags(), st.integers(1, 5), st.randoms(), st.randoms())
def test_batched_runs_commit_identical_logs_whatever_the_timing(
    spec: list[tuple[str, list[str]]], par: int, r1: random.Random, r2: random.Random
) -> None:
    policy = RunPolicy(max_parallelism=par)
    runs = []
    for rnd in (r1, r2):
        latencies = {tid: rnd.uniform(0, 0.003) for tid, _ in spec}
        result = build(spec, latencies, [], policy).invoke({})
        runs.append(result)
    a, b = runs
    assert a.outputs == b.outputs
    assert [(e.seq, e.type, e.task_id, e.data) for e in a.events] == [
        (e.seq, e.type, e.task_id, e.data) for e in b.events
    ]
    assert {k: v.batch for k, v in a.tasks.items()} == {k: v.batch for k, v in b.tasks.items()}
