"""Scheduling overhead of the orchestrator against LangGraph and a plain-asyncio floor.

Run it with ``make bench`` or, from the repository root::

    .venv/bin/python tests/benchmarks/bench_overhead.py [--repeat N] [--quick] [--json PATH]
        [--contenders floor,langgraph,orchestrator]

What is measured, in one process and one run:

* Wall time per task of running a DAG of no-op ``RunnableLambda`` tasks (each wraps
  ``async def noop(x)``, which counts its call and returns a one-key dict) with

  - **floor**: plain asyncio calling each task's ``ainvoke(input, child_config)``
    layer by layer with ``asyncio.gather``. The child config is what a parent run
    gives a child: one parent run is opened with ``on_chain_start`` on the
    callback manager of the run config, every task gets
    ``patch_config(config, callbacks=run_manager.get_child(), run_name=task_id)``
    and an input of the run input merged with its dependencies' outputs, and the
    parent run ends with ``on_chain_end``. This is the least anything must pay to
    run LangChain runnables as a graph;
  - **langgraph**: a ``StateGraph`` with the same runnables as nodes, one node per
    task, one edge per dependency (``add_edge([p1, p2, ...], node)`` for several
    parents, so a node waits for all of them), ``START`` to every root and every
    leaf to ``END``. Nodes write ``{"out": {task_id: 1}}`` into a key reduced by
    dict merge, so fan-in is legal;
  - **orchestrator**: ``langchain_runtime.Orchestrator`` with one ``Task`` per
    task (default ``batched`` scheduling).

* Shapes: a chain of 200; a fan-out 1 -> 500 -> 1; 10 layers of 100 where every
  task has 3 parents drawn from the previous layer (``random.Random(0)``).
  Parallelism is set so it never binds: ``max_parallelism=1000`` for the
  orchestrator, no limit for the floor and LangGraph.
* Latency: 200 independent tasks each sleeping 20 ms with parallelism 16
  (orchestrator ``max_parallelism=16``, LangGraph ``max_concurrency=16``, floor an
  ``asyncio.Semaphore(16)``) against the ideal makespan ``ceil(200/16) * 0.02``.
* Every shape runs twice: with no callbacks, and with one no-op callback handler
  (a ``BaseCallbackHandler`` subclass with no overrides) in ``config["callbacks"]``.

Method: graphs are built (and LangGraph compiled, the orchestrator constructed)
once per shape, outside the timing; only ``ainvoke`` is timed. Every contender is
warmed up once (that run is also checked in full: every task ran once and the
result is complete), then each measurement is repeated ``--repeat`` times,
contenders interleaved within a repetition (their order rotated per repetition)
so they share machine noise, ``gc.collect()`` before every run. Times are medians
over repetitions; ratios are medians of the per-repetition ratios (each pair timed
side by side), which resists the bimodal noise a sync handler brings (LangChain runs
sync handlers in a thread pool on async paths).
Every timed run is checked too (the number of node executions equals the number
of tasks, and a latency run is no faster than 0.95x ideal, i.e. its parallelism
bound held), so nothing is timed that skipped work.

Targets: per task, orchestrator <= 1.25x the floor and <= 0.5x LangGraph; latency
makespan within 5% of ideal. Misses are reported in a summary line; the exit code
is always 0 (this is a measurement, not a test).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import platform
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langchain_core.runnables.config import get_async_callback_manager_for_config, patch_config

FLOOR_MAX_RATIO = 1.25  # orchestrator / floor, per task
LANGGRAPH_MAX_RATIO = 0.5  # orchestrator / langgraph, per task
LATENCY_MAX_RATIO = 1.05  # makespan / ideal

NOOP_PARALLELISM = 1000  # orchestrator bound for the no-op shapes: wider than any layer
LATENCY_TASKS = 200
LATENCY_SLEEP = 0.02
LATENCY_PARALLELISM = 16

CONTENDERS = ("floor", "langgraph", "orchestrator")

# --------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class Shape:
    """A DAG: task ids in topological order, each with its dependencies."""

    name: str
    deps: dict[str, tuple[str, ...]]
    sleep: float = 0.0  # seconds each task sleeps (0: a no-op)
    limit: int | None = None  # parallelism for the latency case; None: unbounded

    @property
    def size(self) -> int:
        return len(self.deps)

    def layers(self) -> list[list[str]]:
        """Tasks grouped by depth (1 + the deepest dependency)."""
        depth: dict[str, int] = {}
        for tid, ds in self.deps.items():
            depth[tid] = 1 + max((depth[d] for d in ds), default=-1)
        out: list[list[str]] = [[] for _ in range(max(depth.values()) + 1)]
        for tid, d in depth.items():
            out[d].append(tid)
        return out


def chain(n: int) -> Shape:
    deps: dict[str, tuple[str, ...]] = {
        f"t{i:04d}": ((f"t{i - 1:04d}",) if i else ()) for i in range(n)
    }
    return Shape(f"chain {n}", deps)


def fan_out(width: int) -> Shape:
    deps: dict[str, tuple[str, ...]] = {"root": ()}
    mids = [f"m{i:04d}" for i in range(width)]
    deps.update({m: ("root",) for m in mids})
    deps["sink"] = tuple(mids)
    return Shape(f"fan-out 1->{width}->1", deps)


def layered(n_layers: int, width: int, parents: int, seed: int = 0) -> Shape:
    rng = random.Random(seed)
    deps: dict[str, tuple[str, ...]] = {}
    prev: list[str] = []
    for layer in range(n_layers):
        cur = [f"l{layer:02d}n{i:03d}" for i in range(width)]
        for tid in cur:
            deps[tid] = tuple(sorted(rng.sample(prev, parents))) if prev else ()
        prev = cur
    return Shape(f"layered {n_layers}x{width} p{parents}", deps)


def independent(n: int, sleep: float, limit: int) -> Shape:
    deps: dict[str, tuple[str, ...]] = {f"t{i:04d}": () for i in range(n)}
    return Shape(f"latency {n}x{sleep * 1000:g}ms p{limit}", deps, sleep=sleep, limit=limit)


# ------------------------------------------------------------------------ runnables


class Calls:
    """Counts node executions, so a run that skipped work is caught."""

    n = 0


def make_runnables(shape: Shape) -> dict[str, Runnable[Any, Any]]:
    """One ``RunnableLambda`` per task, shared by all contenders."""

    def make(tid: str) -> Runnable[Any, Any]:
        out = {"out": {tid: 1}}
        if shape.sleep:
            sleep = shape.sleep

            async def sleeper(x: Any) -> dict[str, Any]:
                await asyncio.sleep(sleep)
                Calls.n += 1
                return out

            return RunnableLambda(sleeper)

        async def noop(x: Any) -> dict[str, Any]:
            Calls.n += 1
            return out

        return RunnableLambda(noop)

    return {tid: make(tid) for tid in shape.deps}


class NoopHandler(BaseCallbackHandler):
    """A callback handler that overrides nothing."""


def run_config(with_callbacks: bool) -> RunnableConfig:
    return {"callbacks": [NoopHandler()]} if with_callbacks else {}


# ------------------------------------------------------------------------ contenders

RunFn = Callable[[RunnableConfig], Awaitable[Any]]
CheckFn = Callable[[Any], str | None]  # full check of a result: None if fine, else why not


@dataclass
class Contender:
    name: str
    run: RunFn
    check: CheckFn


def floor_contender(shape: Shape, runnables: dict[str, Runnable[Any, Any]]) -> Contender:
    layers = shape.layers()
    deps = shape.deps
    limit = shape.limit

    async def run(config: RunnableConfig) -> dict[str, Any]:
        run_input: dict[str, Any] = {}
        manager = get_async_callback_manager_for_config(config)
        run_manager = await manager.on_chain_start(None, run_input, name="floor")
        outputs: dict[str, Any] = {}
        sem = asyncio.Semaphore(limit) if limit else None

        async def call(tid: str) -> Any:
            inp = {**run_input, **{d: outputs[d] for d in deps[tid]}}
            child = patch_config(config, callbacks=run_manager.get_child(), run_name=tid)
            if sem is None:
                return await runnables[tid].ainvoke(inp, child)
            async with sem:
                return await runnables[tid].ainvoke(inp, child)

        for layer in layers:
            results = await asyncio.gather(*(call(tid) for tid in layer))
            outputs.update(zip(layer, results, strict=True))
        await run_manager.on_chain_end(outputs)
        return outputs

    def check(outputs: Any) -> str | None:
        if set(outputs) != set(deps):
            return f"{len(outputs)} outputs for {len(deps)} tasks"
        return None

    return Contender("floor", run, check)


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {**a, **b}


class GraphState(TypedDict):
    out: Annotated[dict[str, Any], merge]


def langgraph_contender(shape: Shape, runnables: dict[str, Runnable[Any, Any]]) -> Contender:
    from langgraph.graph import END, START, StateGraph

    builder = StateGraph(GraphState)
    has_children: set[str] = set()
    for tid, ds in shape.deps.items():
        builder.add_node(tid, runnables[tid])
        if not ds:
            builder.add_edge(START, tid)
        elif len(ds) == 1:
            builder.add_edge(ds[0], tid)
        else:
            builder.add_edge(list(ds), tid)
        has_children.update(ds)
    for tid in shape.deps:
        if tid not in has_children:
            builder.add_edge(tid, END)
    graph = builder.compile()
    extra: RunnableConfig = {"recursion_limit": shape.size + 10}
    if shape.limit:
        extra["max_concurrency"] = shape.limit
    initial: GraphState = {"out": {}}

    async def run(config: RunnableConfig) -> Any:
        return await graph.ainvoke(initial, {**config, **extra})

    def check(state: Any) -> str | None:
        if set(state["out"]) != set(shape.deps):
            return f"final state has {len(state['out'])} outputs for {shape.size} tasks"
        return None

    return Contender("langgraph", run, check)


def orchestrator_contender(shape: Shape, runnables: dict[str, Runnable[Any, Any]]) -> Contender:
    from langchain_runtime import Orchestrator, RunPolicy, Task

    tasks = [Task(tid, runnables[tid], deps=list(ds)) for tid, ds in shape.deps.items()]
    policy = RunPolicy(max_parallelism=shape.limit or NOOP_PARALLELISM)
    orch = Orchestrator(tasks, policy=policy)

    async def run(config: RunnableConfig) -> Any:
        return await orch.ainvoke({}, config=config)

    def check(result: Any) -> str | None:
        if result.state.value != "completed":
            return f"run state {result.state.value}: {result.error}"
        if len(result.tasks) != shape.size:
            return f"{len(result.tasks)} task results for {shape.size} tasks"
        bad = [t for t, r in result.tasks.items() if r.state.value != "completed"]
        if bad:
            return f"{len(bad)} tasks not completed, e.g. {bad[0]}"
        return None

    return Contender("orchestrator", run, check)


BUILDERS: dict[str, Callable[[Shape, dict[str, Runnable[Any, Any]]], Contender]] = {
    "floor": floor_contender,
    "langgraph": langgraph_contender,
    "orchestrator": orchestrator_contender,
}

# ------------------------------------------------------------------------ measuring


@dataclass
class Measurement:
    shape: str
    tasks: int
    callbacks: bool
    latency: bool
    ideal: float | None
    samples: dict[str, list[float]] = field(default_factory=dict)  # seconds per run
    errors: dict[str, str] = field(default_factory=dict)

    def median(self, contender: str) -> float | None:
        s = self.samples.get(contender)
        return statistics.median(s) if s else None

    def per_task_us(self, contender: str) -> float | None:
        m = self.median(contender)
        return None if m is None else m / self.tasks * 1e6

    def ratio(self, a: str, b: str) -> float | None:
        """Median over repetitions of a's time over b's time in the same repetition."""
        sa, sb = self.samples.get(a), self.samples.get(b)
        if not sa or not sb or len(sa) != len(sb):
            return None
        return statistics.median(x / y for x, y in zip(sa, sb, strict=True))


class SkippedWork(RuntimeError):
    pass


async def timed(
    contender: Contender, config: RunnableConfig, n_tasks: int, full: bool, floor_s: float = 0.0
) -> float:
    """Time one run.

    Raise SkippedWork if it did not execute every task exactly once, or finished in
    under ``floor_s`` seconds (a parallelism bound that was not applied).
    """
    gc.collect()
    Calls.n = 0
    t0 = time.perf_counter()
    result = await contender.run(config)
    elapsed = time.perf_counter() - t0
    if Calls.n != n_tasks:
        raise SkippedWork(f"{Calls.n} node executions for {n_tasks} tasks")
    if full and (why := contender.check(result)):
        raise SkippedWork(why)
    if elapsed < floor_s:
        raise SkippedWork(f"took {elapsed:.3f} s, under the {floor_s:.3f} s its bound allows")
    return elapsed


async def measure(
    shape: Shape, contenders: Sequence[str], with_callbacks: bool, repeat: int
) -> Measurement:
    runnables = make_runnables(shape)
    ideal = math.ceil(shape.size / shape.limit) * shape.sleep if shape.limit else None
    m = Measurement(shape.name, shape.size, with_callbacks, shape.limit is not None, ideal)
    lower = 0.95 * ideal if ideal else 0.0  # faster than this: the bound did not hold
    live: list[Contender] = []
    for name in contenders:
        try:
            c = BUILDERS[name](shape, runnables)
            await timed(c, run_config(with_callbacks), shape.size, True, lower)  # warm-up
        except Exception as exc:  # report and go on: this is a measurement
            m.errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        live.append(c)
        m.samples[name] = []
    for rep in range(repeat):
        k = rep % len(live) if live else 0
        for c in live[k:] + live[:k]:
            if c.name in m.errors:
                continue
            try:
                elapsed = await timed(c, run_config(with_callbacks), shape.size, False, lower)
            except Exception as exc:
                m.errors[c.name] = f"{type(exc).__name__}: {exc}"
                m.samples.pop(c.name, None)
                continue
            m.samples[c.name].append(elapsed)
    return m


# ------------------------------------------------------------------------ reporting


def fmt(x: float | None, spec: str) -> str:
    """Format a number by ``spec`` (e.g. ``"9.1f"``), or a dash as wide for None."""
    if x is not None:
        return format(x, spec)
    return "-".rjust(int(spec.split(".")[0]))


def verdicts(m: Measurement) -> list[tuple[str, bool]]:
    """(target, met) for every target that could be evaluated on this measurement."""
    out: list[tuple[str, bool]] = []
    if m.latency:
        orch = m.median("orchestrator")
        if orch is not None and m.ideal:
            out.append(
                (f"makespan <= {LATENCY_MAX_RATIO:g}x ideal", orch / m.ideal <= LATENCY_MAX_RATIO)
            )
        return out
    r_floor = m.ratio("orchestrator", "floor")
    r_lg = m.ratio("orchestrator", "langgraph")
    if r_floor is not None:
        out.append((f"orch <= {FLOOR_MAX_RATIO:g}x floor", r_floor <= FLOOR_MAX_RATIO))
    if r_lg is not None:
        out.append((f"orch <= {LANGGRAPH_MAX_RATIO:g}x langgraph", r_lg <= LANGGRAPH_MAX_RATIO))
    return out


def verdict_cell(m: Measurement) -> str:
    v = verdicts(m)
    if not v:
        return "n/a"
    return "PASS" if all(ok for _, ok in v) else "MISS"


def print_noop_table(ms: Sequence[Measurement]) -> None:
    head = (
        f"{'shape':<24} {'callbacks':<9} {'floor µs':>9} {'langgraph µs':>12} "
        f"{'orch µs':>9} {'orch/floor':>10} {'orch/lg':>8}  target"
    )
    print(head)
    print("-" * len(head))
    for m in ms:
        print(
            f"{m.shape:<24} {'1 no-op' if m.callbacks else 'none':<9} "
            f"{fmt(m.per_task_us('floor'), '9.1f')} "
            f"{fmt(m.per_task_us('langgraph'), '12.1f')} "
            f"{fmt(m.per_task_us('orchestrator'), '9.1f')} "
            f"{fmt(m.ratio('orchestrator', 'floor'), '10.3f')} "
            f"{fmt(m.ratio('orchestrator', 'langgraph'), '8.3f')}  {verdict_cell(m)}"
        )


def print_latency_table(ms: Sequence[Measurement]) -> None:
    cols = "".join(f" {c + ' s':>16} {'x ideal':>8}" for c in CONTENDERS)
    head = f"{'shape':<24} {'callbacks':<9} {'ideal s':>8}{cols}  target"
    print(head)
    print("-" * len(head))
    for m in ms:
        cells = ""
        for c in CONTENDERS:
            med = m.median(c)
            rel = None if med is None or not m.ideal else med / m.ideal
            cells += f" {fmt(med, '16.3f')} {fmt(rel, '8.3f')}"
        print(
            f"{m.shape:<24} {'1 no-op' if m.callbacks else 'none':<9} "
            f"{fmt(m.ideal, '8.3f')}{cells}  {verdict_cell(m)}"
        )


def report(ms: Sequence[Measurement], contenders: Sequence[str], repeat: int) -> list[str]:
    """Print the tables and the summary; return the missed targets."""
    print()
    print(
        f"Per-task wall time, median of {repeat} interleaved runs after one warm-up; "
        "ratios are medians of per-run ratios."
    )
    print(
        f"No-op shapes: orchestrator max_parallelism={NOOP_PARALLELISM}, "
        "floor and LangGraph unbounded."
    )
    print()
    print_noop_table([m for m in ms if not m.latency])
    print()
    print(
        f"Latency: {LATENCY_TASKS} independent tasks sleeping {LATENCY_SLEEP * 1000:g} ms, "
        f"parallelism {LATENCY_PARALLELISM}; makespan median in seconds."
    )
    print()
    latency = [m for m in ms if m.latency]
    print_latency_table(latency)
    for m in latency:
        floor = m.median("floor")
        if floor is not None and m.ideal and floor / m.ideal > LATENCY_MAX_RATIO:
            print(
                f"note: with {'1 no-op handler' if m.callbacks else 'no callbacks'} the floor "
                f"itself takes {floor / m.ideal:.3f}x ideal, above the "
                f"{LATENCY_MAX_RATIO:g}x target"
            )
    print()
    missed: list[str] = []
    for m in ms:
        cb = "callbacks" if m.callbacks else "no callbacks"
        for target, ok in verdicts(m):
            if not ok:
                missed.append(f"{m.shape} ({cb}): {target}")
        for name, err in m.errors.items():
            print(f"ERROR {name} on {m.shape} ({cb}): {err}")
            missed.append(f"{m.shape} ({cb}): {name} failed")
    if "orchestrator" not in contenders:
        print("SUMMARY: orchestrator not measured; targets not evaluated.")
    elif missed:
        print(f"SUMMARY: {len(missed)} target(s) missed: " + "; ".join(missed))
    else:
        print("SUMMARY: all targets met.")
    return missed


# ------------------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--repeat", type=int, default=7, help="timed runs per contender (default 7)")
    p.add_argument("--quick", action="store_true", help="3 timed runs instead of --repeat")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    p.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help="comma-separated subset of: " + ", ".join(CONTENDERS),
    )
    args = p.parse_args(argv)
    args.contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = set(args.contenders) - set(CONTENDERS)
    if unknown:
        p.error(f"unknown contenders: {', '.join(sorted(unknown))}")
    if args.quick:
        args.repeat = min(args.repeat, 3)
    if args.repeat < 1:
        p.error("--repeat must be >= 1")
    return args


def shapes() -> list[Shape]:
    return [
        chain(200),
        fan_out(500),
        layered(10, 100, 3, seed=0),
        independent(LATENCY_TASKS, LATENCY_SLEEP, LATENCY_PARALLELISM),
    ]


async def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    contenders: list[str] = args.contenders
    if "orchestrator" in contenders:
        try:
            from langchain_runtime import Orchestrator, RunPolicy, Task  # noqa: F401
        except ImportError as exc:
            print(f"orchestrator unavailable ({exc}); measuring the others only.")
            contenders = [c for c in contenders if c != "orchestrator"]

    import langchain_core
    import langgraph.version

    print(
        f"Python {platform.python_version()}, langchain-core {langchain_core.__version__}, "
        f"langgraph {langgraph.version.__version__}; repeat={args.repeat}; "
        f"contenders: {', '.join(contenders)}"
    )
    results: list[Measurement] = []
    for shape in shapes():
        for with_callbacks in (False, True):
            label = f"{shape.name}, {'1 no-op handler' if with_callbacks else 'no callbacks'}"
            print(f"measuring {label} ...", flush=True)
            results.append(await measure(shape, contenders, with_callbacks, args.repeat))

    missed = report(results, contenders, args.repeat)
    if args.json:
        payload = {
            "python": platform.python_version(),
            "repeat": args.repeat,
            "contenders": contenders,
            "targets": {
                "orch_over_floor_max": FLOOR_MAX_RATIO,
                "orch_over_langgraph_max": LANGGRAPH_MAX_RATIO,
                "makespan_over_ideal_max": LATENCY_MAX_RATIO,
            },
            "results": [
                {
                    **asdict(m),
                    "median_s": {c: m.median(c) for c in m.samples},
                    "per_task_us": {c: m.per_task_us(c) for c in m.samples},
                    "orch_over_floor": m.ratio("orchestrator", "floor"),
                    "orch_over_langgraph": m.ratio("orchestrator", "langgraph"),
                    "verdicts": dict(verdicts(m)),
                }
                for m in results
            ],
            "missed": missed,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
