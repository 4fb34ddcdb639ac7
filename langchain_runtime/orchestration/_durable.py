"""Durable runs: what a run writes to its store, and how a stored run comes back.

A run with a store writes its header (input, policy with its budget, the graph's
fingerprint) when it starts, each commit (the committed tasks, their events and
memory writes) in one transaction before any dependent starts, and its final state
when it ends. :func:`check_resumable` decides whether a stored run may be resumed
by a graph; :func:`stored_result` rebuilds a stored task.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from langchain_runtime.cost.tracking import UsageTotals
from langchain_runtime.domain import ModelUsage, RunEvent, TaskResult
from langchain_runtime.errors import ResumeError
from langchain_runtime.orchestration._accounting import model_name
from langchain_runtime.store import RunHeader, StoredRun, TaskRecord, local_owner

if TYPE_CHECKING:
    from langchain_runtime.orchestration.graph import TaskGraph
    from langchain_runtime.orchestration.task import Task

__all__ = [
    "check_resumable",
    "fingerprint",
    "header",
    "restored_events",
    "task_fingerprint",
    "task_record",
]

#: The fields of a task that a resumed run must share with the stored one.
FINGERPRINT_FIELDS = ("deps", "prompt", "model", "inputs", "runnable")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")


def _prompt_text(task: Task) -> str | None:
    if task.prompt is None:
        return None
    pretty = getattr(task.prompt, "pretty_repr", None)
    try:
        return str(pretty()) if callable(pretty) else repr(task.prompt)
    except Exception:  # a template that cannot print itself: its repr still tells changes
        return repr(task.prompt)


def _runnable_text(task: Task) -> str | None:
    """A task given as a Runnable, as LangChain serializes it: its prompts, models and
    their settings (code is known by name only; object addresses are left out)."""
    if task.prompt is not None:
        return None  # prompt and model say it all
    from langchain_core.load import dumpd

    try:
        text = json.dumps(dumpd(task.runnable), sort_keys=True, default=repr)
    except Exception:  # not serializable at all: its type still tells a change
        text = type(task.runnable).__qualname__
    return _ADDRESS.sub("0x?", text)


def task_fingerprint(task: Task) -> dict[str, Any]:
    """What identifies a task's work: deps, prompt, model id, routing, and for a task
    given as a Runnable, that Runnable's serialized form."""
    return {
        "deps": sorted(task.deps),
        "prompt": _prompt_text(task),
        "model": model_name(task),
        "inputs": dict(sorted(task.inputs.items())) or None,
        "runnable": _runnable_text(task),
    }


def fingerprint(tasks: Iterable[Task]) -> dict[str, dict[str, Any]]:
    """The fingerprint of every task, by id."""
    return {task.id: task_fingerprint(task) for task in tasks}


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _excerpts(before: Any, now: Any, width: int = 60) -> tuple[str, str]:
    """Both values, around where they first differ when they are long texts."""
    if not (isinstance(before, str) and isinstance(now, str)):
        return _short(before, width), _short(now, width)
    pairs = zip(before, now, strict=False)  # texts of any lengths
    at = next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(before), len(now)))
    start = max(at - width // 3, 0)

    def cut(text: str) -> str:
        part = text[start : start + width]
        return ("..." if start else "") + repr(part) + ("..." if start + width < len(text) else "")

    return cut(before), cut(now)


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
                was, became = _excerpts(before, now)
                return f"task {tid!r}: its {name} changed (stored {was}, now {became})"
    return None


def check_resumable(
    stored: StoredRun | None, run_id: str, graph: TaskGraph, store: Any, *, claimed: bool = False
) -> StoredRun:
    """The stored run, if ``graph`` may resume it; else :class:`ResumeError`.

    ``claimed``: this process has just claimed the run, so it is live as ours.
    """
    if stored is None:
        raise ResumeError(f"no run {run_id!r} in {store!r}")
    if stored.live and not claimed:
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
        owner=local_owner(),
    )


def task_record(
    tr: TaskResult, encoded_output: Any, models: Mapping[str, UsageTotals] | None = None
) -> TaskRecord:
    """The stored form of a committed task; ``models`` is its usage per model."""
    data = tr.model_dump(mode="json", exclude={"output"})
    data["output"] = encoded_output
    if models:
        data["models"] = {
            name: {
                "usage": t.usage.model_dump(mode="json"),
                "cost": t.cost.model_dump(mode="json"),
                "calls": t.calls,
            }
            for name, t in models.items()
        }
    return TaskRecord(task_id=tr.task_id, state=tr.state.value, result=data)


def stored_result(record: TaskRecord, decode: Any) -> tuple[TaskResult, dict[str, ModelUsage]]:
    """A stored task as a result (its output decoded) and its usage per model."""
    data = dict(record.result)
    output = decode(data.pop("output", None))
    models = {name: ModelUsage.model_validate(m) for name, m in data.pop("models", {}).items()}
    tr = TaskResult.model_validate(data)
    return tr.model_copy(update={"output": output}), models


def restored_events(stored_events: Iterable[Mapping[str, Any]]) -> list[RunEvent]:
    return [RunEvent.model_validate(e) for e in stored_events]
