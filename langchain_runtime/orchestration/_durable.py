"""Durable runs: what a run writes to its store, and how a stored run comes back.

A run with a store writes its header (input, policy with its budget, the graph's
fingerprint) when it starts, each commit (the committed tasks, their events and
memory writes) in one transaction before any dependent starts, and its final state
when it ends. :func:`check_resumable` decides whether a stored run may be resumed
by a graph; :func:`restored_results` rebuilds the completed tasks.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from langchain_runtime.domain import RunEvent, TaskResult, TaskState
from langchain_runtime.errors import ResumeError
from langchain_runtime.orchestration._accounting import model_name
from langchain_runtime.store import RunHeader, StoredRun, TaskRecord

if TYPE_CHECKING:
    from langchain_runtime.orchestration.graph import TaskGraph
    from langchain_runtime.orchestration.task import Task

__all__ = [
    "check_resumable",
    "fingerprint",
    "header",
    "owner_id",
    "restored_events",
    "restored_results",
    "task_fingerprint",
    "task_record",
]

#: The fields of a task that a resumed run must share with the stored one.
FINGERPRINT_FIELDS = ("deps", "prompt", "model", "inputs")


def owner_id() -> str:
    """Who executes a run: this process, as ``pid@host``."""
    return f"{os.getpid()}@{socket.gethostname()}"


def _prompt_text(task: Task) -> str | None:
    if task.prompt is None:
        return None
    pretty = getattr(task.prompt, "pretty_repr", None)
    try:
        return str(pretty()) if callable(pretty) else repr(task.prompt)
    except Exception:  # a template that cannot print itself: its repr still tells changes
        return repr(task.prompt)


def task_fingerprint(task: Task) -> dict[str, Any]:
    """What identifies a task's work: its deps, prompt, model id and routing."""
    return {
        "deps": sorted(task.deps),
        "prompt": _prompt_text(task),
        "model": model_name(task),
        "inputs": dict(sorted(task.inputs.items())) or None,
    }


def fingerprint(tasks: Iterable[Task]) -> dict[str, dict[str, Any]]:
    """The fingerprint of every task, by id."""
    return {task.id: task_fingerprint(task) for task in tasks}


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def first_difference(
    stored: Mapping[str, Mapping[str, Any]], current: Mapping[str, Mapping[str, Any]]
) -> str | None:
    """The first way ``current`` differs from ``stored`` (task ids sorted), or None."""
    for tid in sorted(set(stored) | set(current)):
        if tid not in current:
            return f"task {tid!r} is in the stored run but not in this graph"
        if tid not in stored:
            return f"task {tid!r} is in this graph but not in the stored run"
        for name in FINGERPRINT_FIELDS:
            before, now = stored[tid].get(name), current[tid].get(name)
            if before != now:
                return (
                    f"task {tid!r}: its {name} changed (stored {_short(before)}, now {_short(now)})"
                )
    return None


def check_resumable(
    stored: StoredRun | None, run_id: str, graph: TaskGraph, store: Any
) -> StoredRun:
    """The stored run, if ``graph`` may resume it; else :class:`ResumeError`."""
    if stored is None:
        raise ResumeError(f"no run {run_id!r} in {store!r}")
    if stored.live:
        raise ResumeError(
            f"run {run_id!r} is still live (owner {stored.header.owner}); abort it or wait "
            "for it to end before resuming"
        )
    diff = first_difference(stored.header.fingerprint, fingerprint(graph))
    if diff is not None:
        raise ResumeError(f"cannot resume run {run_id!r}: the graph differs: {diff}")
    return stored


def header(
    run_id: str,
    name: str,
    encoded_input: Mapping[str, Any],
    policy: Mapping[str, Any],
    graph: TaskGraph,
    *,
    created_at: datetime | None = None,
    enqueued: Iterable[Mapping[str, Any]] = (),
) -> RunHeader:
    return RunHeader(
        run_id=run_id,
        name=name,
        input=encoded_input,
        policy=policy,
        fingerprint=fingerprint(graph),
        created_at=created_at or datetime.now(timezone.utc),
        enqueued=tuple(enqueued),
        owner=owner_id(),
    )


def task_record(tr: TaskResult, encoded_output: Any) -> TaskRecord:
    data = tr.model_dump(mode="json", exclude={"output"})
    data["output"] = encoded_output
    return TaskRecord(task_id=tr.task_id, state=tr.state.value, result=data)


def restored_results(stored: StoredRun, decode: Any) -> dict[str, TaskResult]:
    """The completed tasks of ``stored``, as results marked ``restored``."""
    out: dict[str, TaskResult] = {}
    for tid, record in stored.tasks.items():
        if record.state != TaskState.COMPLETED.value:
            continue
        data = dict(record.result)
        output = decode(data.pop("output", None))
        tr = TaskResult.model_validate({**data, "restored": True})
        out[tid] = tr.model_copy(update={"output": output})
    return out


def restored_events(stored_events: Iterable[Mapping[str, Any]]) -> list[RunEvent]:
    return [RunEvent.model_validate(e) for e in stored_events]
