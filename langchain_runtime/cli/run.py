"""``run``: a workflow from a file, with live progress, Ctrl-C, and the result.

The run is driven by the orchestrator's ``astream``, which yields each task's
result as it finishes and then the run's result. Ctrl-C cancels the stream: the
orchestrator cancels the calls in flight and starts nothing new, and what had
finished is still shown (the totals then count finished tasks only).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console

from langchain_runtime.cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, CliError
from langchain_runtime.cli.options import (
    LoadedWorkflow,
    load,
    parse_budget,
    parse_run_input,
    require_inputs,
    with_overrides,
)
from langchain_runtime.cli.progress import RunProgress
from langchain_runtime.cli.render import print_json, print_run, run_json
from langchain_runtime.cli.validate import check_prices, check_providers
from langchain_runtime.domain import (
    Cost,
    RunResult,
    RunState,
    TaskError,
    TaskResult,
    TaskState,
    Usage,
)
from langchain_runtime.orchestration import Orchestrator

__all__ = ["RunOutcome", "execute", "run_workflow"]

TaskSink = Callable[[TaskResult], None]


@dataclass(frozen=True)
class RunOutcome:
    """A run's result, and whether it was cut short by Ctrl-C."""

    result: RunResult
    interrupted: bool = False


async def _drive(
    orchestrator: Orchestrator, run_input: dict[str, Any], run_id: uuid.UUID, sink: TaskSink
) -> RunResult:
    async for item in orchestrator.astream(run_input, {"run_id": run_id}):
        if isinstance(item, RunResult):
            return item
        sink(item)
    raise RuntimeError("the run's stream ended without a result")  # pragma: no cover


def execute(
    orchestrator: Orchestrator,
    run_input: dict[str, Any],
    sink: TaskSink,
    run_id: uuid.UUID | None = None,
) -> RunOutcome:
    """Run to the end, passing each finished task to ``sink``; Ctrl-C stops it cleanly.

    On Ctrl-C, ``asyncio.run`` cancels the stream, the stream cancels the run (the
    calls in flight are cancelled, nothing new starts), and the result is built
    from the tasks that had finished.
    """
    run_id = run_id or uuid.uuid4()
    finished: dict[str, TaskResult] = {}

    def record(result: TaskResult) -> None:
        finished[result.task_id] = result
        sink(result)

    try:
        return RunOutcome(asyncio.run(_drive(orchestrator, run_input, run_id, record)))
    except KeyboardInterrupt:
        return RunOutcome(_interrupted(orchestrator, str(run_id), finished), interrupted=True)


def _interrupted(
    orchestrator: Orchestrator, run_id: str, finished: dict[str, TaskResult]
) -> RunResult:
    tasks = dict(finished)
    for tid in orchestrator.graph.order:
        if tid not in tasks:
            tasks[tid] = TaskResult(
                task_id=tid,
                state=TaskState.CANCELLED,
                error=TaskError(code="cancelled", message="interrupted before it finished"),
            )
    usage = sum((t.usage for t in finished.values()), Usage())
    cost = sum((t.cost for t in finished.values()), Cost())
    message = (
        f"interrupted (Ctrl-C) after {len(finished)} of {len(tasks)} tasks finished; "
        "totals count finished tasks only"
    )
    return RunResult(
        run_id=run_id,
        state=RunState.ABORTED,
        outputs={t: r.output for t, r in finished.items() if r.state is TaskState.COMPLETED},
        tasks=tasks,
        usage=usage,
        cost=cost,
        error=TaskError(code="run_aborted", message=message, type="RunAbortedError"),
        scheduling=orchestrator.policy.scheduling,
    )


def _whole_result(orchestrator: Orchestrator, store: Any = None) -> Orchestrator:
    """The same workflow returning the whole ``RunResult`` (a workflow may name one
    ``output`` task, whose output alone a chain would receive), kept in ``store``."""
    if orchestrator.output is None and store is None:
        return orchestrator
    return orchestrator.model_copy(update={"output": None, "store": store})


def _file_order(loaded: LoadedWorkflow, orchestrator: Orchestrator) -> list[str]:
    """Tasks in the order the file lists them (a reader's order), when it is a valid
    run order; else the graph's."""
    listed = [t.id for t in loaded.config.workflow(loaded.name).tasks]
    graph = list(orchestrator.graph.order)
    deps = {task.id: set(task.deps) for task in orchestrator.graph}
    if sorted(listed) != sorted(graph):
        return graph
    seen: set[str] = set()
    for tid in listed:
        if not deps[tid] <= seen:
            return graph
        seen.add(tid)
    return listed


def _simulated(loaded: LoadedWorkflow) -> set[str]:
    """The tasks answered by the simulated model (placeholder text, not an answer)."""
    spec = loaded.config.workflow(loaded.name)
    out = set()
    for task in spec.tasks:
        model_id = task.model or spec.model or "simulated"
        entry = loaded.config.models.get(model_id)
        if entry is None or entry.provider == "simulated":
            out.add(task.id)
    return out


def _warn_unused(err: Console, orchestrator: Orchestrator, run_input: dict[str, Any]) -> None:
    """A warning for input keys the workflow neither declares nor uses (a typo?)."""
    declared = set(orchestrator.input_keys or ()) | set(orchestrator.required_inputs)
    unused = sorted(set(run_input) - declared)
    if unused:
        known = ", ".join(sorted(declared)) or "none"
        err.print(
            f"warning: input {', '.join(map(repr, unused))} is not used by the workflow "
            f"(its inputs: {known})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def run_workflow(
    path: Path,
    *,
    inputs: Sequence[str] | None,
    input_file: Path | None,
    workflow: str | None,
    budget: str | None,
    max_parallelism: int | None,
    as_json: bool,
    out: Console,
    err: Console,
    store: str | None = None,
    full: bool = False,
) -> None:
    """Run one workflow of ``path`` and show (or print as JSON) its result.

    With ``store`` (a file), the run is kept there as it goes: each task is written
    when it completes, and a run that does not complete (Ctrl-C included) can be
    resumed with ``langchain-runtime resume RUN_ID --store FILE``.

    Raises:
        CliError: The run did not complete (exit 1), or was interrupted (exit 130).
        ConfigurationError, GraphValidationError, InvalidInputError: Bad file or input.
    """
    amount: Decimal | None = parse_budget(budget)
    run_input = parse_run_input(inputs, input_file)
    loaded = load(path, workflow)
    policy = with_overrides(loaded.policy, budget=amount, max_parallelism=max_parallelism)
    # the file's own terms (a provider, a `prices:` entry), before any model is built
    check_providers(loaded.config)
    check_prices(loaded.config, loaded.name, policy)
    built = loaded.config.build_workflow(loaded.name, policy_override=policy)
    run_id = uuid.uuid4()
    kept = None
    if store is not None:
        from langchain_runtime.cli.durable import open_store, save_source

        kept = open_store(store, create=True)
    try:
        orchestrator = _whole_result(built, kept)
        require_inputs(orchestrator.required_inputs, run_input)
        _warn_unused(err, orchestrator, run_input)
        if kept is not None:
            save_source(
                kept,
                str(run_id),
                file=path,
                workflow=loaded.name,
                budget=budget,
                max_parallelism=max_parallelism,
            )
        outcome = _show(orchestrator, run_input, run_id, loaded, as_json, out, err, full=full)
    finally:
        if kept is not None:
            kept.close()
    result = outcome.result
    hint = ""
    if store is not None and (outcome.interrupted or not result.ok):
        from langchain_runtime.cli.durable import resume_hint, stopped_on

        over = stopped_on(result, policy.budget)
        hint = f"; the run is kept, resume it with: {resume_hint(str(run_id), store, over)}"
    if outcome.interrupted:
        message = result.error.message if result.error else "interrupted"
        raise CliError(message + hint, EXIT_INTERRUPTED)
    if not result.ok:
        reason = f": {result.error.message}" if result.error is not None else ""
        raise CliError(f"run {result.run_id} ended {result.state.value}{reason}{hint}", EXIT_FAILED)


def _show(
    orchestrator: Orchestrator,
    run_input: dict[str, Any],
    run_id: uuid.UUID,
    loaded: Any,
    as_json: bool,
    out: Console,
    err: Console,
    *,
    full: bool = False,
) -> RunOutcome:
    order = _file_order(loaded, orchestrator)
    if as_json:
        outcome = execute(orchestrator, run_input, lambda _: None, run_id)
        print_json(run_json(outcome.result))
        return outcome
    deps = {task.id: task.deps for task in orchestrator.graph}
    currency = loaded.config.catalog().currency
    with RunProgress(err, order, deps, currency) as progress:
        outcome = execute(orchestrator, run_input, progress, run_id)
    print_run(out, outcome.result, order, full=full, placeholder=_simulated(loaded))
    return outcome
